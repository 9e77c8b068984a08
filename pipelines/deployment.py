"""`pipeline=deployment`: deploy a registered version (deployment.version), roll back, report or stop, on the
chosen deployer (deployer=local|docker|kubernetes), or run an A/B test there (deployment.action=ab_start,
ab_status, ab_analyse, ab_stop with ab_test.*). Wiring only."""

from __future__ import annotations

from typing import Any, Optional

from zenml import pipeline

from rcatune import constants
from rcatune.config import RunConfig, Spec, to_spec
from rcatune.config.abtest import ABTestConfig
from rcatune.config.serving import ServingConfig
from rcatune.runner import Output, PipelineDefinition, RunContext, register
from steps.abtest import ab_test_step
from steps.deployment import change_deployment, deploy_release, deployment_status, resolve_release
from steps.tracking import track_run_config


@pipeline(enable_cache=False)
def deployment_pipeline(config: dict[str, Any], git: dict[str, Any], deployer: Spec, serving: ServingConfig,
                        action: str, version: str, registry_name: str, force: bool = False,
                        reason: Optional[str] = None, ab_test: Optional[ABTestConfig] = None) -> None:
    track_run_config(config, git)
    if action.startswith("ab_"):
        ab_test_step(action, deployer, serving, ab_test or ABTestConfig(), registry_name, force, reason)
    elif action == "deploy":
        deploy_release(resolve_release(registry_name, version, force, reason), deployer, serving)
    elif action in ("rollback", "stop"):
        change_deployment(action, deployer, serving)
    else:
        deployment_status(deployer, serving)


def _inputs(cfg: RunConfig, context: RunContext) -> dict[str, Any]:
    return {"config": context.resolved, "git": context.git, "deployer": to_spec("deployer", cfg.deployer),
            "serving": cfg.serving, "action": cfg.deployment.action.value, "version": cfg.deployment.version,
            "registry_name": cfg.model_registry_name, "force": cfg.deployment.force, "reason": cfg.deployment.reason,
            "ab_test": cfg.ab_test}


def _finish(cfg: RunConfig, context: RunContext, summary) -> None:
    """A status whose endpoint does not answer is a failure (exit 2), after the summary says what is there."""
    status = summary.deployment
    if cfg.deployment.action.value == "status" and status.get("answers") is False:
        from rcatune.errors import RcatuneError

        serving = f"v{status['version']} at {status['endpoint']}" if status.get("version") else "nothing is deployed"
        raise RcatuneError(f"deployment {status.get('name')!r} on {status.get('target')} does not answer "
                           f"({serving}); see run_summary.json for its instances, or deploy again")


def _check(cfg: RunConfig) -> None:
    """Container images carry the merged model alone: the ONNX graph (and vLLM) are served by local processes."""
    from rcatune.config.serving import Engine
    from rcatune.errors import ConfigError

    if cfg.serving.engine is not Engine.transformers and cfg.deployer.target != "local":
        raise ConfigError(f"serving.engine={cfg.serving.engine.value} is deployed by deployer=local only: the "
                          f"{cfg.deployer.target} images carry the merged model without an ONNX graph or vLLM; "
                          "deploy there with serving.engine=transformers")


register(PipelineDefinition(
    name="deployment", pipeline=deployment_pipeline, inputs=_inputs, finish=_finish, check=_check,
    outputs=(Output("track_run_config", constants.RUN_TRACKING),
             Output("deploy_release", constants.DEPLOYMENT),
             Output("change_deployment", constants.DEPLOYMENT),
             Output("deployment_status", constants.DEPLOYMENT_STATUS),
             Output("ab_test_step", "ab_test_report"))))
