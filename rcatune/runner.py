"""Run any registered pipeline from a typed config. The runner knows no pipeline by name.

A pipeline module (in `pipelines/`) registers a `PipelineDefinition`: its name (the `pipeline.name` of
its `conf/pipeline/` file), the ZenML pipeline, how its inputs are built from the typed run config,
its ZenML options, and which step outputs go into `run_summary.json`. Adding a pipeline is one module
and one config file; nothing here changes.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from rcatune import constants
from rcatune.config import RunConfig
from rcatune.errors import ConfigError, Interrupted, RcatuneError, TrialPruned
from rcatune.progress import interactive
from rcatune.runinfo import RunSummary, git_state
from rcatune.runtime import Runtime
from rcatune.state import configure_environment, state_dir, state_lock

ZENML_RUN_FILE = "zenml_run_name"  # in the run folder: the ZenML run's name, written as it starts

log = logging.getLogger("rcatune")


@dataclass(frozen=True)
class RunContext:
    """What a run knows besides its typed config: the resolved config, the command line, where it writes."""

    resolved: dict[str, Any]  # the composed config, interpolations resolved (recorded, tracked)
    choices: dict[str, Any]  # group -> option, as Hydra chose them
    overrides: list[str]  # the command line's overrides: enough to run it again
    run_dir: Path
    project_root: Path
    git: dict[str, Any] = field(default_factory=dict)
    runtime: Runtime = field(default_factory=Runtime)


@dataclass(frozen=True)
class Output:
    """A step output whose artifact goes into the run summary (`artifact.summarise(summary)`)."""

    step: str  # the step's name in the pipeline (its function name)
    artifact: str  # the output's artifact name (rcatune.constants)
    summarise: Optional[Callable[[Any, RunSummary], None]] = None  # default: the artifact's own `summarise`
    load: bool = True  # False: only its metadata (a dataset's data_hash) is wanted


@dataclass(frozen=True)
class PipelineDefinition:
    name: str
    pipeline: Any  # the ZenML pipeline
    inputs: Callable[[RunConfig, RunContext], dict[str, Any]]
    outputs: tuple[Output, ...] = ()
    options: Callable[[RunConfig], dict[str, Any]] = lambda cfg: {}
    # The pipeline that actually runs for this config, when another one should (None: this one).
    route: Callable[[RunConfig], Optional[str]] = lambda cfg: None
    check: Callable[[RunConfig], None] = lambda cfg: None  # refuse a config before anything starts
    finish: Callable[[RunConfig, RunContext, RunSummary], None] = lambda cfg, context, summary: None


_REGISTRY: dict[str, PipelineDefinition] = {}


def register(definition: PipelineDefinition) -> PipelineDefinition:
    _REGISTRY[definition.name] = definition
    return definition


def load_pipelines(package: str = "pipelines") -> dict[str, PipelineDefinition]:
    """Import every module of `package` (each registers its pipeline); the registry by name."""
    root = importlib.import_module(package)
    for module in pkgutil.iter_modules(root.__path__):
        importlib.import_module(f"{package}.{module.name}")
    return dict(_REGISTRY)


def definition_for(cfg: RunConfig) -> PipelineDefinition:
    """The pipeline this config runs (following a pipeline's route to another)."""
    definition = _lookup(cfg.pipeline.name)
    routed = definition.route(cfg)
    return _lookup(routed) if routed else definition


def _lookup(name: str) -> PipelineDefinition:
    if name not in _REGISTRY:
        raise ConfigError(f"pipeline.name: no pipeline named {name!r} is registered (known: {sorted(_REGISTRY)}); "
                          "a pipeline is a module in pipelines/ plus a file in conf/pipeline/")
    return _REGISTRY[name]


def run(cfg: RunConfig, context: RunContext) -> RunSummary:
    """Run the configured pipeline on the configured stack; always leave run_summary.json behind."""
    started = time.perf_counter()
    definition = definition_for(cfg)
    summary = RunSummary(pipeline=definition.name, run_dir=str(context.run_dir), choices=context.choices,
                         overrides=context.overrides, git=context.git)
    try:
        definition.check(cfg)
        _execute(definition, cfg, context, summary)
        summary.status = "succeeded"
    except TrialPruned as error:  # a sweep's pruner stopped it: the trial's result, not a failure
        summary.status, summary.error = "pruned", str(error)
        raise
    except RcatuneError as error:  # expected: bad data, bad config, a server down, a token refused
        summary.status, summary.error = "failed", str(error)
        raise
    except BaseException as error:
        if _interruption(error):  # Ctrl-C (ZenML turns it into its own exception inside a step), SIGTERM
            summary.status = "interrupted"
            summary.error = (f"interrupted ({type(error).__name__}) after {time.perf_counter() - started:.0f} s; "
                             "the same command again continues where it can (docs/crash-safety.md)")
            raise Interrupted(summary.error) from None
        if not isinstance(error, Exception):
            raise
        import traceback  # a bug: its traceback is kept

        summary.status, summary.error = "failed", f"{type(error).__name__}: {error}"
        summary.traceback = traceback.format_exc()
        raise
    finally:
        summary.seconds = round(time.perf_counter() - started, 2)
        _add_files(context.run_dir, summary)
        summary.write(context.run_dir)
    return summary


def _interruption(error: BaseException) -> bool:
    return isinstance(error, (KeyboardInterrupt, SystemExit)) or type(error).__name__ == "RunInterruptedException"


def _execute(definition: PipelineDefinition, cfg: RunConfig, context: RunContext, summary: RunSummary) -> None:
    from zenml.enums import ExecutionMode

    from rcatune.logs import quiet_logs
    from rcatune.stacks import (
        connect,
        ensure_stack,
        ensure_zenml_repository,
        load_definition,
        remove_step_containers,
        run_settings,
        skip_unloaded_autologging,
        skip_unused_integrations,
    )
    from rcatune.tracking import ensure_experiment

    connection = connect(cfg.stack, state_dir())  # before ZenML's client is made: which store, which login
    state = configure_environment()
    quiet_logs(bars=context.runtime.progress and interactive())
    experiment = cfg.experiment_name or definition.name
    with state_lock("setup", state):  # a fresh store is created (and migrated) by one run at a time
        ensure_zenml_repository(connection.repository)
        ensure_stack(load_definition(context.project_root / "stacks" / cfg.stack.definition, state,
                                     connection.mlflow_uri, cfg.stack.values))
        ensure_experiment(experiment, connection.mlflow_uri, connection.mlflow_artifact_root)
    # FAIL_FAST: the failed step's own exception comes back (not a RuntimeError naming the step), and the
    # steps after it are not attempted
    # a container stack's image and mounts, a cluster stack's pods per step
    pipeline_settings, step_settings = run_settings(cfg.stack, [context.project_root, state, context.run_dir],
                                                    context.project_root)
    options = {"enable_cache": cfg.pipeline.enable_cache, "execution_mode": ExecutionMode.FAIL_FAST,
               "settings": {"experiment_tracker": {"experiment_name": experiment}, **pipeline_settings},
               **({"steps": step_settings} if step_settings else {}), **definition.options(cfg)}
    run_name = f"{definition.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    context.run_dir.mkdir(parents=True, exist_ok=True)
    (context.run_dir / ZENML_RUN_FILE).write_text(run_name, encoding="utf-8")  # whoever watches finds its steps
    pipeline = definition.pipeline.with_options(run_name=run_name, **options)
    skip_unused_integrations()
    skip_unloaded_autologging()
    try:
        zenml_run = pipeline(**definition.inputs(cfg, context))
    except BaseException:
        _collect_partial(run_name, definition.outputs, summary)
        raise
    _collect(zenml_run, definition.outputs, summary)
    if cfg.stack.containers is not None and not cfg.stack.containers.keep:
        remove_step_containers(cfg.stack.containers.docker_host)
    summary.zenml_run = zenml_run.name
    summary.zenml_server = os.environ["ZENML_STORE_URL"] if connection.server else None
    definition.finish(cfg, context, summary)


def _collect(zenml_run: Any, outputs: tuple[Output, ...], summary: RunSummary) -> None:
    """Each declared output the run produced, into the summary."""
    for output in outputs:
        step = zenml_run.steps.get(output.step)
        if step is None or output.artifact not in step.outputs:
            continue
        artifact_version = step.outputs[output.artifact][0]
        value = artifact_version.load() if output.load else artifact_version
        (output.summarise or type(value).summarise)(value, summary)


def _collect_partial(run_name: str, outputs: tuple[Output, ...], summary: RunSummary) -> None:
    """What the steps that finished before a failure (or a sweep's pruning) produced, e.g. the MLflow run: into the
    summary all the same. Best effort: the failure itself is what the run reports."""
    try:
        from zenml.client import Client

        _collect(Client().get_pipeline_run(run_name), outputs, summary)
    except Exception as error:  # the run never reached the store, or an output cannot be read
        log.debug("no outputs of the failed run %s: %s", run_name, error)


def _add_files(run_dir: Path, summary: RunSummary) -> None:
    """Validation counts come from the report file, so a run that failed on bad data still has them."""
    report_file = run_dir / constants.VALIDATION_REPORT_FILE
    if report_file.exists():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        summary.counts["data"] = {k: report[k] for k in ("read", "accepted", "rejected", "by_reason")}
        if report.get("quarantine_path"):
            summary.artifacts["quarantine"] = report["quarantine_path"]
        if report.get("scrub"):
            summary.scrub = report["scrub"]
            if not report["scrub"]["enabled"]:
                summary.scrub["warning"] = ("NOT SCRUBBED (scrub=none): secrets and personal data in the source "
                                            "reach every export, annotator and model")
        summary.artifacts["validation_report"] = str(report_file)
    config_file = run_dir / ".hydra" / "config.yaml"
    if config_file.exists():
        summary.artifacts["resolved_config"] = str(config_file)


def run_context(resolved: dict[str, Any], choices: dict[str, Any], overrides: list[str], run_dir: Path,
                project_root: Path, runtime: Runtime) -> RunContext:
    return RunContext(resolved=resolved, choices=choices, overrides=overrides, run_dir=run_dir,
                      project_root=project_root, git=git_state(project_root), runtime=runtime)
