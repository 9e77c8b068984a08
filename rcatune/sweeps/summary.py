"""The end of a sweep: the best trial, its overrides and the command that re-runs it for registration, Optuna's
plots, and an MLflow parent run that holds them with every trial's run nested under it."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any, Optional

from rcatune.sweeps.space import override_value

log = logging.getLogger("rcatune")
SUMMARY_FILE = "sweep_summary.json"
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


def rerun_command(fixed: list[str], params: dict[str, Any]) -> str:
    """One command that trains the best trial again, registered (the sweep's own switches left out)."""
    kept = [o for o in fixed if o.split("=")[0].lstrip("+~") not in ("hparams_search", "register")
            and not o.startswith(("sweep.", "hydra."))]
    return " ".join(["python", "run.py", *kept, *(f"{k}={override_value(v)}" for k, v in params.items())])


def trial_row(trial) -> dict[str, Any]:
    return {"number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
            "params": dict(trial.params), "intermediate": {int(k): v for k, v in trial.intermediate_values.items()},
            **{k: trial.user_attrs[k] for k in ("run_dir", "mlflow_run_id", "error", "retry_of")
               if k in trial.user_attrs}}


def summarise(study, fixed: list[str], metric: str, sweep_dir: Path, storage: str,
              resumed: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """sweep_summary.json and the plots in the sweep folder; the summary as a dict."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": study.study_name, "storage": storage, "metric": metric,
        "direction": study.direction.name.lower(), "counts": counts, "resumed": resumed or {},
        "trials": [trial_row(t) for t in trials], "best": None, "rerun": None, "plots": {}}
    if complete:
        best = study.best_trial
        summary["best"] = trial_row(best)
        summary["rerun"] = rerun_command(fixed, best.params)
    summary["plots"] = plots(study, sweep_dir / "plots") if complete else {}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary


def plots(study, folder: Path) -> dict[str, str]:
    """Optuna's history, importance and parallel-coordinate plots as PNGs (a plot its data cannot make, e.g.
    importances from one finished trial, is left out and logged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = getattr(optuna_plots, f"plot_{name}")(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(9, 5)
            figure.tight_layout()
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=100)
            plt.close(figure)
            made[name] = str(path)
        except Exception as error:  # a plot the trials cannot make yet
            log.warning("sweep: no %s plot (%s: %s)", name, type(error).__name__, str(error).splitlines()[0][:200])
    return made


def log_parent_run(summary: dict[str, Any], sweep_dir: Path, space: dict[str, Any]) -> Optional[str]:
    """An MLflow run for the sweep in the trials' experiment and store, with the summary, the plots and the
    search space; every trial's run is nested under it. Its id, or None when no trial reached MLflow."""
    from mlflow.tracking import MlflowClient

    tracked = [t for t in summary["trials"] if t.get("mlflow_run_id")]
    if not tracked:
        log.warning("sweep: no trial reached MLflow; the sweep has no parent run")
        return None
    first = json.loads((Path(tracked[0]["run_dir"]) / "run_summary.json").read_text(encoding="utf-8"))["mlflow"]
    client = MlflowClient(tracking_uri=first["tracking_uri"])
    parent = client.create_run(first["experiment_id"], run_name=f"sweep {summary['study']}",
                               tags={"rcatune.sweep": summary["study"], "rcatune.kind": "sweep"})
    run_id = parent.info.run_id
    for key, distribution in space.items():
        client.log_param(run_id, f"space.{key}", str(distribution)[:500])
    client.log_param(run_id, "metric", summary["metric"])
    client.log_param(run_id, "direction", summary["direction"])
    for state, count in summary["counts"].items():
        client.log_metric(run_id, f"trials_{state}", count)
    if summary["best"]:
        client.log_metric(run_id, f"best_{summary['metric']}", summary["best"]["value"])
        client.set_tag(run_id, "best_trial", str(summary["best"]["number"]))
        client.set_tag(run_id, "rerun", summary["rerun"][:5000])
    client.log_artifact(run_id, str(sweep_dir / SUMMARY_FILE))
    for path in summary["plots"].values():
        client.log_artifact(run_id, path, artifact_path="plots")
    for trial in tracked:
        client.set_tag(trial["mlflow_run_id"], "mlflow.parentRunId", run_id)
        client.set_tag(trial["mlflow_run_id"], "rcatune.trial", str(trial["number"]))
    client.set_terminated(run_id)
    return run_id


def render(summary: dict[str, Any]) -> str:
    """The sweep's end, as printed."""
    counts = summary["counts"]
    lines = [f"sweep {summary['study']} ({summary['storage']}): {counts['complete']} complete, "
             f"{counts['pruned']} pruned, {counts['fail']} failed; {summary['direction']} {summary['metric']} "
             "(the validation split)"]
    if summary["resumed"]:
        lines.append(f"  resumed: {summary['resumed']}")
    for trial in summary["trials"]:
        value = f"{trial['value']:.4f}" if trial["value"] is not None else "-"
        params = " ".join(f"{k}={override_value(v)}" for k, v in trial["params"].items())
        lines.append(f"  trial {trial['number']:>3}  {trial['state']:<8} {value:>9}  {params}"
                     + (f"  ({trial['error'][:120]})" if trial.get("error") else ""))
    if summary["best"]:
        best = summary["best"]
        lines += [f"best: trial {best['number']}, {summary['metric']} {best['value']:.4f}, run {best.get('run_dir')}",
                  f"re-run it registered: {summary['rerun']}"]
    else:
        lines.append("best: none (no trial completed)")
    if summary.get("mlflow_run_id"):
        lines.append(f"MLflow: parent run {summary['mlflow_run_id']} with the plots and every trial nested")
    if summary["plots"]:
        lines.append(f"plots: {', '.join(summary['plots'].values())}")
    return "\n".join(lines)
