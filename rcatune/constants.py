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
EVALUATION = "evaluation"
GATE_DECISION = "gate_decision"
EVALUATION_REPORT = "evaluation_report"
EVALUATION_DIR = "evaluation"
PROMOTION = "promotion"
MLFLOW_MODEL_PATH = "model"
EXPORT = "export"
EXPORT_DIR = "export"
ANNOTATED_DATASET = "annotated_dataset"  # the versioned dataset a review sync produces (data=annotated reads it)
REVIEW_REPORT = "review_report"
PUSH_REPORT = "review_push"
ANNOTATION_DIR = "annotation"
RELEASE = "release"  # the registered version a deployment serves
DEPLOYMENT = "deployment"  # the record of a deploy, rollback or stop
DEPLOYMENT_STATUS = "deployment_status"
DRIFT_REPORT = "drift_report"  # pipeline=drift: the score, the reasons, every session's verdict
DRIFTED_SESSIONS = "drifted_sessions"  # the sessions that drifted, when the score passed the threshold
DRIFT_DIR = "drift"
