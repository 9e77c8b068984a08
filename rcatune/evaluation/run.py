"""Evaluate base and candidate side by side on the same examples, gate, and write the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from rcatune.artifacts import Evaluation, ModelScores
from rcatune.config.evaluation import EvaluationConfig
from rcatune.evaluation.evaluate import score_model
from rcatune.evaluation.gate import decide
from rcatune.evaluation.report import write_report
from rcatune.inference import LoadedModel
from rcatune.schema import TrainingExample


def evaluate_candidate(examples: list[TrainingExample], candidate: Callable[[], LoadedModel],
                       base: Optional[Callable[[], LoadedModel]], cfg: EvaluationConfig, system_prompt: str,
                       max_length: int, out: Path, history: Optional[list[dict[str, Any]]] = None,
                       progress: bool = True, title: str = "rcatune evaluation") -> Evaluation:
    """Score the base model (when `base` loads one) and the candidate on the same examples; gate; report.

    Models are passed as loaders so only one is in memory at a time."""
    examples = examples[: cfg.max_examples] if cfg.max_examples else examples
    base_scores = _score("base", base, examples, cfg, system_prompt, max_length, progress) if base else None
    tuned = _score("tuned", candidate, examples, cfg, system_prompt, max_length, progress)
    decision = decide(tuned.metrics, base_scores.metrics if base_scores else None, cfg)
    out.mkdir(parents=True, exist_ok=True)
    for scores in (base_scores, tuned):
        if scores is not None:
            (out / f"answers_{scores.name}.jsonl").write_text(
                "".join(json.dumps(row) + "\n" for row in scores.answers), encoding="utf-8")
    report = write_report(out, tuned, base_scores, decision, history or [], title)
    return Evaluation(tuned=tuned, base=base_scores, decision=decision, report_path=str(report))


def _score(name: str, load: Callable[[], LoadedModel], examples: list[TrainingExample], cfg: EvaluationConfig,
           system_prompt: str, max_length: int, progress: bool) -> ModelScores:
    loaded = load()
    try:
        return score_model(name, loaded, examples, cfg, system_prompt, max_length, progress)
    finally:
        loaded.release()
