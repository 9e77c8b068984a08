"""`pipeline=fine_tuning` (the default): prepare (with review sync when annotation=label_studio), train,
evaluate base vs tuned, gate, register, export. With `register=false` (a sweep's trials) it stops after the
gate: no model version, no export. Wiring only."""

from __future__ import annotations

from typing import Any, Optional

from zenml import pipeline

from pipelines.prepare import DATA_OUTPUTS, data_inputs, prepare_data, review_first
from rcatune import constants
from rcatune.config import RunConfig, Spec, to_spec
from rcatune.config.data import SplitConfig
from rcatune.config.evaluation import EvaluationConfig
from rcatune.config.root import ExportConfig, FormatsConfig
from rcatune.config.scrub import ScrubConfig
from rcatune.runner import Output, PipelineDefinition, RunContext, register
from rcatune.runtime import Runtime
from steps.evaluation import evaluate_model, gate_model
from steps.export import export_trained
from steps.register import register_model
from steps.training import train_model


@pipeline(enable_cache=False)
def fine_tuning_pipeline(config: dict[str, Any], git: dict[str, Any], data: Spec, scrub: ScrubConfig,
                         split: SplitConfig, formats: FormatsConfig, output_dir: str, runtime: Runtime, model: Spec,
                         method: Spec, trainer: Spec, max_length: int, evaluation: EvaluationConfig,
                         export: ExportConfig, facts: dict[str, Any], annotation: Optional[Spec] = None,
                         read_source: bool = True, objective: Optional[Spec] = None, register_version: bool = True,
                         trial: Optional[dict[str, Any]] = None) -> None:
    dataset, splits = prepare_data(config, git, data, scrub, split, formats, output_dir, runtime, annotation,
                                   read_source)
    trained = train_model(splits, model, method, trainer, formats.system_prompt, output_dir, runtime, objective,
                          trial)
    result, _report = evaluate_model(splits, trained, evaluation, formats.system_prompt, max_length, output_dir,
                                     runtime)
    decision = gate_model(result)
    if not register_version:
        return
    promotion = register_model(dataset, splits, trained, result, decision, evaluation, formats.system_prompt,
                               max_length, {**facts, "config": config}, runtime)
    export_trained(trained, result, promotion, export, facts, evaluation.max_new_tokens, output_dir, runtime)


def _inputs(cfg: RunConfig, context: RunContext) -> dict[str, Any]:
    from rcatune.registry.versions import preference_start

    model, objective = preference_start(cfg)  # objective=dpo: the registered SFT version is the base
    return {**data_inputs(cfg, context), "model": to_spec("model", model), "method": to_spec("method", cfg.method),
            "trainer": to_spec("trainer", cfg.trainer), "objective": to_spec("objective", objective),
            "max_length": cfg.trainer.max_length, "register_version": cfg.register,
            "trial": {"study": cfg.sweep.study, "number": cfg.sweep.trial} if cfg.sweep.active else None,
            "evaluation": cfg.evaluation, "export": cfg.export,
            "facts": {"git_commit": context.git.get("commit"), "data_source": cfg.data._target_}}


def _options(cfg: RunConfig) -> dict[str, Any]:
    """Register each run as a version of the ZenML Model (the Model Control Plane); a run that does not register
    (register=false) makes no version."""
    from zenml import Model

    if not cfg.register:
        return {}
    return {"model": Model(name=cfg.model_registry_name, description="rcatune root-cause model",
                           tags=[cfg.model.name_or_path.split("/")[-1], cfg.method.name])}


register(PipelineDefinition(
    name="fine_tuning", pipeline=fine_tuning_pipeline, inputs=_inputs, options=_options, route=review_first,
    outputs=DATA_OUTPUTS + (Output("train_model", constants.TRAINED_MODEL),
                            Output("evaluate_model", constants.EVALUATION),
                            Output("register_model", constants.PROMOTION),
                            Output("export_trained", constants.EXPORT))))
