"""Generate answers for held-out incidents and score them: one model at a time, base and tuned alike."""

from __future__ import annotations

import math
import statistics
import tempfile
from typing import Any

from rcatune.artifacts import PRIMARY_METRIC, ModelScores
from rcatune.config.evaluation import EvaluationConfig
from rcatune.evaluation.scoring import QueryChecker, answer_scores, corpus_bleu, first_label, semantic_similarity
from rcatune.inference import Completion, GenerationSettings, Generator, LoadedModel, session_messages
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
                     system_prompt: str, name: str, progress: bool) -> tuple[list[Completion], float]:
    """A greedy completion per example, `cfg.batch_size` at a time; and the seconds spent generating
    (a batch's time counts once)."""
    generator = Generator(loaded)
    settings = GenerationSettings(max_new_tokens=cfg.max_new_tokens)
    completions: list[Completion] = []
    total = 0.0
    with bar(len(examples), f"generate {name}", "answer", progress) as shown:
        for start in range(0, len(examples), cfg.batch_size):
            chunk = examples[start:start + cfg.batch_size]
            results = generator.complete([session_messages(e, system_prompt) for e in chunk], settings)
            total += results[0].seconds
            completions += results
            shown.update(len(chunk))
    return completions, total


def score_model(name: str, loaded: LoadedModel, examples: list[TrainingExample], cfg: EvaluationConfig,
                system_prompt: str, max_length: int, progress: bool = True) -> ModelScores:
    """Generate for every example and compute every metric."""
    labels = sorted({e.scenario for e in examples if e.scenario})
    references = [render(e, system_prompt).output for e in examples]
    rows: list[dict[str, Any]] = []
    predicted_causes: list[str] = []
    completions, generation_seconds = generate_answers(loaded, examples, cfg, system_prompt, name, progress)
    with tempfile.TemporaryDirectory() as folder:
        checker = QueryChecker(folder)
        try:
            for example, reference_text, completion in zip(examples, references, completions, strict=True):
                predicted, reference = parse_answer(completion.text), parse_answer(reference_text)
                predicted_causes.append(predicted.root_cause)
                row = {"id": example.id, "scenario": example.scenario, "answer": completion.text,
                       "latency_s": completion.seconds, "new_tokens": completion.completion_tokens,
                       "finish_reason": completion.finish_reason, **answer_scores(predicted, reference, checker)}
                if example.scenario:
                    row["predicted_scenario"] = first_label(predicted.root_cause, labels)
                    row["rca_correct"] = float(row["predicted_scenario"] == example.scenario)
                rows.append(row)
        finally:
            checker.close()
    similarity = semantic_similarity(predicted_causes, [e.root_cause for e in examples])
    for row, value in zip(rows, similarity, strict=True):
        row["rca_semantic"] = value
    latencies = sorted(r["latency_s"] for r in rows)
    metrics = {key: statistics.fmean(r[key] for r in rows) for key in
               ("query_parses", "query_valid", "critical_path_f1", "remediation_f1", "root_cause_f1", "rouge_l",
                "rca_semantic")}
    scored = [r["rca_correct"] for r in rows if "rca_correct" in r]
    if scored:
        metrics[PRIMARY_METRIC] = statistics.fmean(scored)
    metrics["bleu"] = corpus_bleu([r["answer"] for r in rows], references)
    metrics["perplexity"] = perplexity(loaded, examples, system_prompt, max_length)
    metrics["latency_p50_ms"] = 1000 * _quantile(latencies, 0.5)
    metrics["latency_p95_ms"] = 1000 * _quantile(latencies, 0.95)
    metrics["generation_tokens_per_second"] = sum(r["new_tokens"] for r in rows) / max(generation_seconds, 1e-9)
    metrics["generation_batch_size"] = float(cfg.batch_size)
    metrics["examples"] = float(len(rows))
    return ModelScores(name=name, metrics=metrics, answers=rows)


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    position = q * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
