"""Names shared by steps, pipelines and the runner: artifacts, steps, files."""

VALIDATED_DATASET = "validated_dataset"
VALIDATION_REPORT = "validation_report"
DATASET_SPLITS = "dataset_splits"
TRAINING_FORMATS = "training_formats"
RUN_TRACKING = "run_tracking"

QUARANTINE_FILE = "quarantine.jsonl"
VALIDATION_REPORT_FILE = "validation_report.json"
FORMATS_DIR = "formats"
TRAINED_MODEL = "trained_model"
TRAINING_DIR = "training"
