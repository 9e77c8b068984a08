"""ZenML pipelines, wiring only. Each module registers a `rcatune.runner.PipelineDefinition` (its name, its
inputs from the typed config, its ZenML options, the outputs its run summary keeps); `run.py` loads them
all and the runner runs the one `pipeline.name` picks."""
