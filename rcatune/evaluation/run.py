"""Evaluate base and candidate side by side on the same evaluation sets, compare them paired, gate, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from rcatune import atomic
from rcatune.artifacts import Evaluation, ModelScores, SetScores
from rcatune.config.evaluation import EvaluationConfig
from rcatune.evaluation.baseline import WordsBaseline
from rcatune.evaluation.catalog import FaultCatalog
from rcatune.evaluation.evaluate import score_model
from rcatune.evaluation.gate import decide
from rcatune.evaluation.report import write_report
from rcatune.inference import LoadedModel
from rcatune.schema import TrainingExample
from rcatune.stats import compare

Loader = Callable[[], LoadedModel]


def evaluation_sets(sets: dict[str, list[TrainingExample]], cfg: EvaluationConfig) -> dict[str, list[TrainingExample]]:
    """The non-empty sets, the headline one (the phrasing shift, when there is one) first, each cut to
    `max_examples`."""
    ordered = sorted(((name, examples) for name, examples in sets.items() if examples),
                     key=lambda item: item[0] != "shift")
    return {name: examples[: cfg.max_examples] if cfg.max_examples else examples for name, examples in ordered}


def score_sets(name: str, load: Loader, sets: dict[str, list[TrainingExample]], cfg: EvaluationConfig,
               system_prompt: str, max_length: int, catalog: FaultCatalog, progress: bool,
               journals: Optional[Path] = None) -> dict[str, ModelScores]:
    """One model (loaded once) on every set; answers journaled under `journals` (resumed after a kill)."""
    loaded = load()
    try:
        return {set_name: score_model(f"{name} / {set_name}" if len(sets) > 1 else name, loaded, examples, cfg,
                                      system_prompt, max_length, catalog, progress,
                                      journals / f"{name}_{set_name}.jsonl" if journals else None)
                for set_name, examples in sets.items()}
    finally:
        loaded.release()


def evaluate_candidate(sets: dict[str, list[TrainingExample]], candidate: Loader, base: Optional[Loader],
                       cfg: EvaluationConfig, system_prompt: str, max_length: int, out: Path,
                       history: Optional[list[dict[str, Any]]] = None, progress: bool = True,
                       title: str = "rcatune evaluation", words: Optional[WordsBaseline] = None) -> Evaluation:
    """Score the base model (when `base` loads one) and the candidate on the same sets; compare; gate; report.
    With `words` (the bag-of-words baseline of the candidate's training data), it is scored on the same
    sets and compared with the candidate, paired.

    Models are passed as loaders so only one is in memory at a time."""
    sets = evaluation_sets(sets, cfg)
    catalog = FaultCatalog.load(cfg.fault_catalog)
    journals = out / "journal"
    base_scores = score_sets("base", base, sets, cfg, system_prompt, max_length, catalog, progress,
                             journals) if base else {}
    tuned = score_sets("tuned", candidate, sets, cfg, system_prompt, max_length, catalog, progress, journals)
    results = []
    for name in sets:
        comparison = compare("tuned", tuned[name].answers, "base", base_scores[name].answers, cfg.confidence,
                             cfg.bootstrap_resamples) if name in base_scores else None
        baseline = words.score(sets[name], tuned[name], system_prompt) if words else None
        versus = compare("tuned", tuned[name].answers, baseline.name, baseline.answers, cfg.confidence,
                         cfg.bootstrap_resamples) if baseline else None
        results.append(SetScores(name=name, tuned=_named(tuned[name], "tuned"),
                                 base=_named(base_scores[name], "base") if name in base_scores else None,
                                 comparison=comparison, baseline=baseline, versus_baseline=versus))
    decision = decide(results[0], cfg)
    out.mkdir(parents=True, exist_ok=True)
    for result in results:
        for scores in (result.base, result.tuned):
            if scores is not None:
                atomic.write_text(out / f"answers_{result.name}_{scores.name}.jsonl",
                                  "".join(json.dumps(row) + "\n" for row in scores.answers))
    report = write_report(out, results, decision, history or [], title, catalog)
    return Evaluation(sets=results, decision=decision, report_path=str(report))


def _named(scores: ModelScores, name: str) -> ModelScores:
    return scores.model_copy(update={"name": name})
