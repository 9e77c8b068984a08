"""Run one composed config: prepare the state folder and stack, run its pipeline, write the summary."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from rcatune import constants
from rcatune.config.schema import AnnotationAction, MergeInto, PipelineName, RunConfig
from rcatune.errors import RcatuneError
from rcatune.runinfo import RunSummary, git_state
from rcatune.stacks import ensure_stack, ensure_zenml_repository, load_definition
from rcatune.state import configure_environment, mlflow_artifact_root, mlflow_tracking_uri

log = logging.getLogger("rcatune")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _pipeline(name: PipelineName):
    if name is PipelineName.prepare:
        from pipelines.prepare import prepare_pipeline
        return prepare_pipeline
    if name is PipelineName.evaluate:
        from pipelines.evaluate import evaluate_pipeline
        return evaluate_pipeline
    if name is PipelineName.annotation:
        from pipelines.annotation import annotation_pipeline
        return annotation_pipeline
    from pipelines.fine_tuning import fine_tuning_pipeline
    return fine_tuning_pipeline


def _pipeline_name(cfg: RunConfig) -> PipelineName:
    """fine_tuning with review: push (or status) runs the annotation pipeline and stops there, since
    experts need time; sync (or wait=true) merges the reviews inside fine_tuning, then trains."""
    name = cfg.pipeline.name
    if name in (PipelineName.fine_tuning, PipelineName.prepare) and cfg.annotation.enabled \
            and cfg.annotation.action is not AnnotationAction.sync and not cfg.annotation.wait:
        return PipelineName.annotation
    return name


def _parameters(cfg: RunConfig, resolved: dict[str, Any], git: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The pipeline's inputs; polymorphic configs travel as typed specs."""
    from rcatune.config import to_spec

    name = _pipeline_name(cfg)
    params: dict[str, Any] = {"config": resolved, "git": git, "data": cfg.data, "output_dir": str(run_dir),
                              "progress": cfg.progress}
    review = to_spec(cfg.annotation) if cfg.annotation.enabled else None
    params["read_source"] = not cfg.annotation.enabled or cfg.annotation.action is AnnotationAction.push or (
        cfg.annotation.action is AnnotationAction.sync and (cfg.annotation.wait
                                                           or cfg.annotation.merge_into is MergeInto.source))
    if name is PipelineName.annotation:
        return {**params, "annotation": review, "action": cfg.annotation.action.value}
    params["formats"] = cfg.formats
    if name is PipelineName.prepare:
        params["annotation"] = review
    if name is PipelineName.evaluate:
        params.pop("read_source")
    if name is PipelineName.fine_tuning:
        params.update(model=to_spec(cfg.model), method=to_spec(cfg.method), trainer=cfg.trainer,
                      evaluation=cfg.evaluation, export=cfg.export, annotation=review,
                      facts={"git_commit": git.get("commit"), "data_source": cfg.data._target_})
    elif name is PipelineName.evaluate:
        params.update(pipeline_cfg=to_spec(cfg.pipeline), model=to_spec(cfg.model), evaluation=cfg.evaluation,
                      model_registry_name=cfg.model_registry_name, max_length=cfg.trainer.max_length)
    return params


def _output(run: Any, step_name: str, artifact: str) -> Any:
    return run.steps[step_name].outputs[artifact][0].load()


class _StepFailuresReportedByRunner(logging.Filter):
    """ZenML logs a failed step's exception twice (once with its traceback) before re-raising it; the
    runner reports it once itself (a message for rcatune errors, the traceback for bugs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        carried = [record.exc_info[1]] if record.exc_info else []
        carried += [a for a in (record.args if isinstance(record.args, tuple) else ()) if isinstance(a, BaseException)]
        return not carried


def quiet_logs() -> None:
    """One line per message: ZenML's warnings on stderr, its step-failure echoes and MLflow's start-up
    chatter out."""
    zenml_logger = logging.getLogger("zenml")
    zenml_logger.propagate = False
    if not any(isinstance(f, _StepFailuresReportedByRunner) for h in zenml_logger.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_StepFailuresReportedByRunner())
        zenml_logger.addHandler(handler)
    logging.getLogger("zenml.zen_stores.base_zen_store").setLevel(logging.ERROR)  # "Setting the ... active stack"
    logging.getLogger("zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker").setLevel(
        logging.ERROR)
    import mlflow  # noqa: F401  (importing mlflow resets its logger level: set ours after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def launch(cfg: RunConfig, resolved: dict[str, Any], choices: dict[str, Any], overrides: list[str],
           run_dir: Path) -> RunSummary:
    """Run the configured pipeline on the configured stack; always leave run_summary.json behind."""
    started = time.perf_counter()
    state = configure_environment()
    quiet_logs()
    git = git_state(PROJECT_ROOT)
    name = _pipeline_name(cfg).value
    summary = RunSummary(pipeline=name, run_dir=str(run_dir), choices=choices, overrides=overrides, git=git)
    try:
        _run(cfg, resolved, git, state, run_dir, summary)
        summary.status = "succeeded"
    except RcatuneError as error:  # expected: bad data, bad config, a server down, a token refused
        summary.status, summary.error = "failed", str(error)
        raise
    except Exception as error:  # a bug: its traceback is kept
        import traceback

        summary.status, summary.error = "failed", f"{type(error).__name__}: {error}"
        summary.traceback = traceback.format_exc()
        raise
    finally:
        summary.seconds = round(time.perf_counter() - started, 2)
        _add_report(run_dir, summary)
        summary.write(run_dir)
    return summary


def _run(cfg: RunConfig, resolved: dict[str, Any], git: dict[str, Any], state: Path, run_dir: Path,
         summary: RunSummary) -> None:
    from rcatune.tracking import ensure_experiment

    if cfg.stack.remote:
        raise RcatuneError(f"stack={cfg.stack.name} is remote and needs a deployed ZenML server; see stacks/README.md")
    ensure_zenml_repository(state)
    definition = load_definition(PROJECT_ROOT / "stacks" / cfg.stack.definition, state)
    ensure_stack(definition)
    name = _pipeline_name(cfg)
    experiment = cfg.experiment_name or name.value
    ensure_experiment(experiment, mlflow_tracking_uri(state), str(mlflow_artifact_root(state)))
    from zenml.enums import ExecutionMode

    # FAIL_FAST: the failed step's own exception comes back (not a RuntimeError naming the step), and
    # the steps after it are not attempted
    options: dict[str, Any] = {"enable_cache": cfg.pipeline.enable_cache, "execution_mode": ExecutionMode.FAIL_FAST,
                               "settings": {"experiment_tracker": {"experiment_name": experiment}}}
    if name is PipelineName.fine_tuning:
        from zenml import Model

        options["model"] = Model(name=cfg.model_registry_name, description="rcatune root-cause model",
                                 tags=[cfg.model.name_or_path.split("/")[-1], cfg.method.name])
    pipeline = _pipeline(name).with_options(**options)
    run = pipeline(**_parameters(cfg, resolved, git, run_dir))
    _collect(run, experiment, summary)
    if name is PipelineName.annotation and cfg.pipeline.name is not PipelineName.annotation:
        summary.decisions["next"] = _after_push(cfg)
        print(summary.decisions["next"])


def _after_push(cfg: RunConfig) -> str:
    return ("Training waits for the experts' reviews. When they are done (or to use what is there), run:\n"
            f"  python run.py {' '.join(_cli_overrides())} annotation.action=sync\n"
            "which merges the reviews and trains on the result in one run; or wait in one run next time with "
            "annotation.wait=true.")


def _cli_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (tests calling launch directly)
        overrides = ["annotation=label_studio"]
    return [o for o in overrides if not o.startswith(("annotation.action=", "hydra."))]


def _collect(run: Any, experiment: str, summary: RunSummary) -> None:
    """Copy what the steps produced into the run summary."""
    summary.zenml_run = run.name
    tracking = _output(run, "track_run_config", constants.RUN_TRACKING)
    summary.mlflow = {"experiment": experiment, "experiment_id": tracking.experiment_id, "run_id": tracking.run_id,
                      "tracking_uri": tracking.tracking_uri}
    if "load_data" in run.steps:
        dataset_meta = run.steps["load_data"].outputs[constants.VALIDATED_DATASET][0].run_metadata
        summary.data_hash = dataset_meta.get("data_hash")
    for step_name in ("push_for_review", "review_status"):
        if step_name in run.steps:
            pushed = _output(run, step_name, constants.PUSH_REPORT)
            summary.review["projects"] = [p.model_dump() for p in pushed.projects]
    if "sync_reviews" in run.steps:
        from steps.annotation import review_summary

        report = _output(run, "sync_reviews", constants.REVIEW_REPORT)
        summary.review.update(review_summary(report))
        merged = run.steps["sync_reviews"].outputs[constants.ANNOTATED_DATASET][0]
        summary.review["artifact"] = f"{constants.ANNOTATED_DATASET} v{merged.version}"
        summary.data_hash = merged.run_metadata.get("data_hash", summary.data_hash)
        review_dir = Path(summary.run_dir) / constants.ANNOTATION_DIR
        summary.artifacts["review_report"] = str(review_dir / "review_report.json")
        summary.artifacts["merged_dataset"] = str(review_dir / "merged.jsonl")
    if "export_data" in run.steps:
        bundle = _output(run, "export_data", constants.TRAINING_FORMATS)
        summary.counts["splits"] = bundle.counts
        summary.artifacts.update({f"format_{k}": v for k, v in bundle.paths.items()})
    if "train_model" in run.steps:
        trained = _output(run, "train_model", constants.TRAINED_MODEL)
        summary.metrics.update({k: trained.metrics[k] for k in ("train_loss", "eval_loss", "train_seconds",
                                                                  "train_tokens_per_second", "peak_memory_mb")})
        summary.artifacts["model"] = trained.model_dir
        if trained.resumed_from:
            summary.decisions["resumed_from"] = trained.resumed_from
    evaluating = next((s for s in ("evaluate_model", "evaluate_candidate_model") if s in run.steps), None)
    if evaluating:
        evaluation = _output(run, evaluating, constants.EVALUATION)
        summary.evaluation = {"tuned": evaluation.tuned.metrics,
                              "base": evaluation.base.metrics if evaluation.base else None}
        summary.artifacts["evaluation_report"] = evaluation.report_path
        decision = evaluation.decision
        summary.decisions["gate"] = "passed" if decision.passed else "failed"
        summary.decisions["gate_reasons"] = decision.reasons
    if "register_model" in run.steps:
        promotion = _output(run, "register_model", constants.PROMOTION)
        summary.decisions["stage"] = promotion.stage or "none"
        summary.decisions["stage_reason"] = promotion.reason
        summary.decisions["zenml_model_version"] = f"{promotion.zenml_model} v{promotion.zenml_version}"
        summary.decisions["mlflow_model_version"] = f"{promotion.mlflow_model} v{promotion.mlflow_version}"
    if "export_trained" in run.steps:
        exported = _output(run, "export_trained", constants.EXPORT)
        summary.artifacts["export"] = exported.root
        summary.artifacts["export_merged"] = exported.merged


def _add_report(run_dir: Path, summary: RunSummary) -> None:
    """Validation counts come from the report file, so a run that failed on bad data still has them."""
    report_file = run_dir / constants.VALIDATION_REPORT_FILE
    if report_file.exists():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        summary.counts["data"] = {k: report[k] for k in ("read", "accepted", "rejected", "by_reason")}
        if report.get("quarantine_path"):
            summary.artifacts["quarantine"] = report["quarantine_path"]
        summary.artifacts["validation_report"] = str(report_file)
    config_file = run_dir / ".hydra" / "config.yaml"
    if config_file.exists():
        summary.artifacts["resolved_config"] = str(config_file)
