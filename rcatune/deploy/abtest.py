"""Start, look at, decide and stop an A/B test on a deployment: what `deployment.action=ab_*` (and the control
API) calls. `rcatune.abtest` holds the statistics, the assignment, the store and the analysis; this is where
they act on a deployer. Starting promotes nothing; only the decision does, through the same deployment record
and registry move as any deploy."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Optional

from rcatune.abtest.analysis import Analysis, analyse
from rcatune.abtest.routing import store_url
from rcatune.abtest.store import OutcomeStore, default_url
from rcatune.deploy.base import DeploymentError


def _deployer(deployer_cfg, serving):
    """The deployer, which must split traffic: the local and docker deployers (their router), Kubernetes (a
    router Deployment in front of two)."""
    from rcatune.deploy import deployer_for

    deployer = deployer_for(deployer_cfg, serving)
    if not all(hasattr(deployer, name) for name in ("ab_start", "ab_state", "ab_switch_off", "ab_stop")):
        raise DeploymentError(f"deployer={deployer_cfg.target} cannot split traffic for an A/B test: use the local, "
                              "docker or kubernetes deployer")
    return deployer


def _spec(cfg, experiment: str) -> dict[str, Any]:
    return {"id": experiment, "salt": cfg.salt or experiment, "treatment_share": cfg.treatment_share,
            "ramp": [list(step) for step in cfg.ramp], "unit_fields": list(cfg.unit_fields),
            "store_url_env": cfg.store_url_env, "store_url": None if _env_url(cfg) else default_url()}


def _env_url(cfg) -> Optional[str]:
    import os

    return os.environ.get(cfg.store_url_env) or None


def start(deployer_cfg, serving, cfg, registry_name: str, force: bool = False, reason: Optional[str] = None) -> dict:
    """Serve `cfg.treatment` beside the version serving (control) and split traffic by unit."""
    from rcatune.deploy import recorded, release

    if not cfg.treatment:
        raise DeploymentError("ab_test.treatment: which version is the treatment? (a number, or staging)")
    deployer = _deployer(deployer_cfg, serving)
    treatment = release(registry_name, cfg.treatment, force, reason)
    current = deployer.status()
    if not current.get("version"):
        raise DeploymentError("nothing serves to be the control: deploy a version first (deployment.action=deploy)")
    experiment = cfg.name or f"{registry_name}-v{current['version']}-vs-v{treatment.version}-{int(time.time())}"
    spec = _spec(cfg, experiment)
    if hasattr(deployer, "ab_preflight"):
        deployer.ab_preflight(spec)  # what this target needs before anything is written
    store = OutcomeStore(store_url(spec))
    store.start(experiment, str(current["version"]), treatment.version, {**dataclasses.asdict(cfg), "spec": spec})
    record = recorded(deployer.ab_start(treatment, spec))
    return {"experiment": experiment, "control": str(current["version"]), "treatment": treatment.version,
            "store": store.safe_url, "record": record.model_dump()}


def look(deployer_cfg, serving, cfg, act: bool) -> dict:
    """The running experiment's analysis now; with `act`, its decision carried out: `deploy_treatment`
    promotes (the treatment serves, control stays warm, the registry follows), a switch-off sends every unit
    to control, `keep_control` at the horizon ends it."""
    deployer = _deployer(deployer_cfg, serving)
    running = deployer.ab_state()
    if running is None:
        raise DeploymentError(f"no A/B test runs on deployment {deployer.name!r} (deployment.action=ab_start)")
    experiment, store = running["id"], OutcomeStore(store_url(running))
    rows = _since_ramp(store.rows(experiment), running)
    result = analyse(experiment, rows, cfg, _weights(running))
    if running.get("killed"):  # every unit is on control since: the split is broken on purpose, nothing to read
        result.decision, result.switch_off = "keep_control", True
        result.reasons = [f"switched off at {running.get('killed_at')}: {running.get('killed_reason')}"]
    outcome = {"experiment": experiment, "control": running["control"],
               "treatment": running["treatment"]["version"], "killed": bool(running.get("killed")),
               "counts": store.counts(experiment), "analysis": result.as_dict(), "acted": None}
    store.add_look(experiment, result.as_dict())
    if act:
        outcome["acted"] = _act(deployer, store, experiment, running, result)
    _track(outcome, lambda: store.looks(experiment))
    return outcome


def _since_ramp(rows: list[dict], running: dict) -> list[dict]:
    """With a ramp, the split is compared from its last step on (before it the share was another)."""
    ramp = running.get("ramp") or []
    if not ramp:
        return rows
    since = float(running["started_at"]) + float(ramp[-1][0])
    return [r for r in rows if r["at"] >= since]


def _weights(running: dict) -> dict[str, float]:
    share = float(running.get("treatment_share", 0.5))
    if running.get("ramp"):
        share = min(float(running["ramp"][-1][1]), share)
    return {"control": 1 - share, "treatment": share}


def _act(deployer, store: OutcomeStore, experiment: str, running: dict, result: Analysis) -> Optional[str]:
    from rcatune.deploy import recorded

    reason = "; ".join(result.reasons)
    if result.decision == "deploy_treatment":
        record = recorded(deployer.ab_stop(reason, promote=True))
        store.finish(experiment, "decided", "deploy_treatment", reason)
        return f"v{record.version} promoted and serving all traffic (v{record.previous} warm for a rollback)"
    if result.switch_off:
        if not running.get("killed"):
            deployer.ab_switch_off(reason)
        store.finish(experiment, "switched_off", "keep_control", reason)
        return f"treatment v{running['treatment']['version']} switched off: every unit on control"
    if result.decision == "keep_control":
        recorded(deployer.ab_stop(reason))
        store.finish(experiment, "decided", "keep_control", reason)
        return f"ended: v{running['control']} kept"
    return None


def stop(deployer_cfg, serving, reason: Optional[str]) -> dict:
    """End the experiment by hand, keeping control."""
    from rcatune.deploy import recorded

    deployer = _deployer(deployer_cfg, serving)
    running = deployer.ab_state()
    if running is None:
        raise DeploymentError(f"no A/B test runs on deployment {deployer.name!r}")
    why = reason or "stopped by hand"
    record = recorded(deployer.ab_stop(why))
    OutcomeStore(store_url(running)).finish(running["id"], "stopped", "keep_control", why)
    return {"experiment": running["id"], "record": record.model_dump()}


def _track(outcome: dict, looks) -> None:
    """Into the caller's MLflow run, when there is one: the decision, the figures, and the plots over the looks
    (`looks()` reads them)."""
    from rcatune.tracking import tracking_run

    if not tracking_run():
        return
    import tempfile

    import mlflow

    analysis = outcome["analysis"]
    mlflow.set_tags({"ab_test": outcome["experiment"], "ab_test.decision": analysis["decision"]})
    mlflow.log_dict(outcome, "ab_test/analysis.json")
    if analysis.get("primary"):
        primary = analysis["primary"]
        mlflow.log_metrics({"ab_primary_difference": primary["difference"], "ab_primary_low": primary["low"],
                            "ab_primary_high": primary["high"], "ab_units": sum(analysis["units"].values())})
    with tempfile.TemporaryDirectory() as folder:
        path = plot_looks(looks(), Path(folder) / "ab_test_over_time.png")
        if path:
            mlflow.log_artifact(str(path), artifact_path="ab_test")


def plot_looks(looks: list[dict], path: Path) -> Optional[Path]:
    """Each metric's difference over the looks, with its interval (the boundary it must clear is 0)."""
    series = [(look, look.get("primary")) for look in looks if look.get("primary")]
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({m for look, _ in series for m in (look.get("effects") or {})})
    fig, axes = plt.subplots(len(metrics) + 1, 1, figsize=(7, 2.4 * (len(metrics) + 1)), squeeze=False)
    units = [sum(look["units"].values()) for look, _ in series]
    primary = [p for _, p in series]
    ax = axes[0][0]
    ax.fill_between(units, [p["low"] for p in primary], [p["high"] for p in primary], alpha=0.3,
                    label="always-valid interval" if primary[-1]["p_value"] is None else "interval")
    ax.plot(units, [p["difference"] for p in primary], marker="o", label="treatment - control")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title(f"primary: {primary[-1]['metric']}")
    ax.legend(fontsize=7)
    for row, metric in enumerate(metrics, start=1):
        points = [(u, look["effects"][metric]) for u, (look, _) in zip(units, series, strict=True)
                  if metric in (look.get("effects") or {})]
        ax = axes[row][0]
        ax.fill_between([u for u, _ in points], [e["low"] for _, e in points], [e["high"] for _, e in points],
                        alpha=0.3)
        ax.plot([u for u, _ in points], [e["difference"] for _, e in points], marker=".")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{metric} (fixed-horizon interval)", fontsize=9)
    axes[-1][0].set_xlabel("units")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
