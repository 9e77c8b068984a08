"""Generate answers for held-out incidents and score them: one model at a time, base and tuned alike."""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path
from typing import Any, Optional

from rcatune.artifacts import PRIMARY_METRIC, ModelScores
from rcatune.config.evaluation import EvaluationConfig
from rcatune.evaluation.catalog import FaultCatalog, reference_labels
from rcatune.evaluation.journal import AnswerJournal, fingerprint
from rcatune.evaluation.scoring import QueryChecker, answer_scores, corpus_bleu, semantic_similarity
from rcatune.inference import Completion, GenerationSettings, Generator, LoadedModel, session_messages
from rcatune.pause import pause_point
from rcatune.progress import bar
from rcatune.prompts import parse_answer, render
from rcatune.schema import TrainingExample
from rcatune.training.data import IGNORE, tokenize


def perplexity(loaded: LoadedModel, examples: list[TrainingExample], system_prompt: str, max_length: int) -> float:
    """exp(mean negative log-likelihood of the reference answer tokens)."""
    import torch

    model = loaded.model
    total, count = 0.0, 0
    features = tokenize(examples, loaded.tokenizer, system_prompt, max_length).features
    with torch.no_grad():
        for feature in features:
            ids = torch.tensor([feature["input_ids"]], device=model.device)
            labels = torch.tensor([feature["labels"]], device=model.device)
            tokens = int((labels[:, 1:] != IGNORE).sum())
            if tokens == 0:
                continue
            total += float(model(input_ids=ids, labels=labels).loss) * tokens
            count += tokens
    return math.exp(total / count) if count else float("inf")


def generate_answers(loaded: LoadedModel, examples: list[TrainingExample], cfg: EvaluationConfig,
                     system_prompt: str, name: str, progress: bool,
                     journal: Optional[Path] = None) -> tuple[list[Completion], float, int]:
    """A greedy completion per example, `cfg.batch_size` at a time; the seconds spent generating (a batch's
    time counts once); and how many answers came from `journal` (a killed evaluation's, resumed)."""
    generator = Generator(loaded)
    settings = GenerationSettings(max_new_tokens=cfg.max_new_tokens)
    conversations = [session_messages(e, system_prompt) for e in examples]
    prompts = [generator.render(m) for m in conversations]
    written = AnswerJournal(journal, fingerprint(loaded) if journal else "", settings)
    done = {i: written.get(p) for i, p in enumerate(prompts) if written.get(p) is not None}
    todo = [i for i in range(len(examples)) if i not in done]
    total = sum(c.seconds for c in done.values())
    with bar(len(examples), f"generate {name}", "answer", progress) as shown:
        shown.update(len(done))
        for start in range(0, len(todo), cfg.batch_size):
            chunk = todo[start:start + cfg.batch_size]
            results = generator.complete([conversations[i] for i in chunk], settings)
            written.add([prompts[i] for i in chunk], results)
            total += results[0].seconds
            done.update(zip(chunk, results, strict=True))
            shown.update(len(chunk))
            pause_point("evaluation.answers", len(done))
    return [done[i] for i in range(len(examples))], total, len(examples) - len(todo)


def score_model(name: str, loaded: LoadedModel, examples: list[TrainingExample], cfg: EvaluationConfig,
                system_prompt: str, max_length: int, catalog: FaultCatalog, progress: bool = True,
                journal: Optional[Path] = None) -> ModelScores:
    """Generate for every example (taking what `journal` holds from a killed run) and compute every metric.

    Root-cause accuracy counts the examples whose reference fault is known (given as `scenario`, or
    inferred from the reference root cause against `catalog`): `label_coverage` says which share that is."""
    references = [render(e, system_prompt).output for e in examples]
    completions, generation_seconds, resumed = generate_answers(loaded, examples, cfg, system_prompt, name, progress,
                                                                journal)
    predicted_answers = [parse_answer(c.text) for c in completions]
    predicted_labels = catalog.infer([a.root_cause for a in predicted_answers])
    truths = reference_labels(examples, catalog)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        checker = QueryChecker(folder)
        try:
            for index, (example, reference_text, completion) in enumerate(zip(examples, references, completions,
                                                                             strict=True)):
                predicted, reference = predicted_answers[index], parse_answer(reference_text)
                truth = truths[index]
                guess = predicted_labels[index]
                row = {"id": example.id, "reference_label": truth.label, "reference_how": truth.how,
                       "reference_score": truth.score, "predicted_label": guess.label or "unknown",
                       "predicted_score": guess.score, "answer": completion.text, "latency_s": completion.seconds,
                       "new_tokens": completion.completion_tokens, "finish_reason": completion.finish_reason,
                       **answer_scores(predicted, reference, checker)}
                if truth.label is not None:
                    row["rca_correct"] = float(guess.label == truth.label)
                rows.append(row)
        finally:
            checker.close()
    similarity = semantic_similarity([a.root_cause for a in predicted_answers], [e.root_cause for e in examples])
    for row, value in zip(rows, similarity, strict=True):
        row["rca_semantic"] = value
    latencies = sorted(r["latency_s"] for r in rows)
    metrics = {key: statistics.fmean(r[key] for r in rows) for key in
               ("query_parses", "query_valid", "critical_path_f1", "remediation_f1", "root_cause_f1", "rouge_l",
                "rca_semantic")}
    scored = [r["rca_correct"] for r in rows if "rca_correct" in r]
    if scored:
        metrics[PRIMARY_METRIC] = statistics.fmean(scored)
    metrics["label_coverage"] = len(scored) / len(rows) if rows else 0.0
    for how in ("given", "inferred", "re-inferred after review", "stated unknown", "unlabelled"):
        metrics[f"labels_{how.replace(' ', '_').replace('-', '_')}"] = float(sum(r["reference_how"] == how
                                                                                for r in rows))
    metrics["bleu"] = corpus_bleu([r["answer"] for r in rows], references)
    metrics["perplexity"] = perplexity(loaded, examples, system_prompt, max_length)
    metrics["latency_p50_ms"] = 1000 * _quantile(latencies, 0.5)
    metrics["latency_p95_ms"] = 1000 * _quantile(latencies, 0.95)
    metrics["generation_tokens_per_second"] = sum(r["new_tokens"] for r in rows) / max(generation_seconds, 1e-9)
    metrics["generation_batch_size"] = float(cfg.batch_size)
    metrics["examples"] = float(len(rows))
    if resumed:
        metrics["answers_resumed"] = float(resumed)
    return ModelScores(name=name, metrics=metrics, answers=rows)


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    position = q * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
