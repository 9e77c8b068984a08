"""Evaluate base and tuned side by side on the test split and write the report."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from rcatune.config.schema import EvaluationConfig, ModelConfig
from rcatune.evaluation.evaluate import ModelScores, load_for_evaluation, score_model
from rcatune.evaluation.gate import GateDecision, decide
from rcatune.evaluation.report import write_report
from rcatune.schema import TrainingExample


class Evaluation(BaseModel):
    tuned: ModelScores
    base: Optional[ModelScores]
    decision: GateDecision
    report_path: str


def evaluate_candidate(examples: list[TrainingExample], model_cfg: ModelConfig, model_dir: Optional[str],
                       is_adapter: bool, cfg: EvaluationConfig, system_prompt: str, max_length: int, out: Path,
                       history: Optional[list[dict[str, Any]]] = None, progress: bool = True,
                       title: str = "rcatune evaluation") -> Evaluation:
    """Score the base model and the candidate (`model_dir`) on the same examples; gate; report."""
    examples = examples[: cfg.max_examples] if cfg.max_examples else examples
    base = None
    if cfg.compare_with_base:
        model, tokenizer = load_for_evaluation(model_cfg)
        base = score_model("base", model, tokenizer, examples, cfg, system_prompt, max_length, progress)
        del model
        gc.collect()
    model, tokenizer = load_for_evaluation(model_cfg, model_dir, is_adapter)
    tuned = score_model("tuned", model, tokenizer, examples, cfg, system_prompt, max_length, progress)
    decision = decide(tuned.metrics, base.metrics if base else None, cfg)
    out.mkdir(parents=True, exist_ok=True)
    for scores in (base, tuned):
        if scores is not None:
            (out / f"answers_{scores.name}.jsonl").write_text(
                "".join(json.dumps(row) + "\n" for row in scores.answers), encoding="utf-8")
    report = write_report(out, tuned, base, decision, history or [], title)
    return Evaluation(tuned=tuned, base=base, decision=decision, report_path=str(report))
