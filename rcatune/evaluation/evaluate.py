"""Generate answers for held-out incidents and score them: one model at a time, base and tuned alike."""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from typing import Any, Optional

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from rcatune.config.schema import EvaluationConfig, ModelConfig
from rcatune.evaluation.scoring import QueryChecker, answer_scores, corpus_bleu, first_label, semantic_similarity
from rcatune.models.loading import load_model, load_tokenizer, resolve_model_path
from rcatune.prompts import parse_answer, render, to_messages
from rcatune.schema import TrainingExample
from rcatune.training.data import IGNORE, tokenize

PRIMARY_METRIC = "rca_accuracy"


class ModelScores(BaseModel):
    """Aggregate metrics of one model, and its answers."""

    name: str
    metrics: dict[str, float]
    answers: list[dict[str, Any]] = Field(default_factory=list)


def load_for_evaluation(model_cfg: ModelConfig, model_dir: Optional[str] = None, is_adapter: bool = False):
    """The base model, or a tuned one (full weights, or the base in full precision plus an adapter)."""
    import torch

    on_gpu = torch.cuda.is_available()
    base_path = resolve_model_path(model_cfg)
    if model_dir is None:
        return load_model(model_cfg, None, base_path, on_gpu).eval(), load_tokenizer(model_cfg, base_path)
    tokenizer = load_tokenizer(model_cfg, model_dir)
    if is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(model_cfg, None, base_path, on_gpu), model_dir)
    else:
        model = load_model(model_cfg, None, model_dir, on_gpu)
    return model.eval(), tokenizer


def perplexity(model, tokenizer, examples: list[TrainingExample], system_prompt: str, max_length: int) -> float:
    """exp(mean negative log-likelihood of the reference answer tokens)."""
    import torch

    total, count = 0.0, 0
    features = tokenize(examples, tokenizer, system_prompt, max_length).features
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


def generate(model, tokenizer, example: TrainingExample, system_prompt: str,
             max_new_tokens: int) -> tuple[str, float, int]:
    """Greedy answer, its latency in seconds and the number of tokens generated."""
    import torch

    messages = to_messages(render(example, system_prompt), with_answer=False)
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt").to(model.device)
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    latency = time.perf_counter() - started
    new_tokens = output[0][inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new_tokens, skip_special_tokens=True), latency, int(len(new_tokens))


def generate_batch(model, tokenizer, examples: list[TrainingExample], system_prompt: str,
                   max_new_tokens: int) -> tuple[list[tuple[str, int]], float]:
    """Greedy answers for several prompts at once (left padding); each answer with its token count,
    and the batch's wall time."""
    import torch

    texts = [tokenizer.apply_chat_template(to_messages(render(e, system_prompt), with_answer=False),
                                           add_generation_prompt=True, tokenize=False) for e in examples]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    finally:
        tokenizer.padding_side = side
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    wall = time.perf_counter() - started
    answers = []
    for row in output[:, inputs["input_ids"].shape[1]:].tolist():
        if tokenizer.eos_token_id in row:  # finished rows are filled up with padding after their end
            row = row[:row.index(tokenizer.eos_token_id) + 1]
        answers.append((tokenizer.decode(row, skip_special_tokens=True), len(row)))
    return answers, wall


def _answers(model, tokenizer, examples: list[TrainingExample], cfg: EvaluationConfig, system_prompt: str,
             name: str, progress: bool) -> tuple[list[tuple[str, float, int]], float]:
    """(answer, latency, new tokens) per example, one at a time or in batches; and the seconds spent
    generating (a batch's time counts once)."""
    answers, total = [], 0.0
    with tqdm(total=len(examples), desc=f"generate {name}", disable=not progress) as bar:
        for start in range(0, len(examples), cfg.batch_size):
            chunk = examples[start:start + cfg.batch_size]
            if cfg.batch_size == 1:
                text, latency, count = generate(model, tokenizer, chunk[0], system_prompt, cfg.max_new_tokens)
                results, wall = [(text, count)], latency
            else:
                results, wall = generate_batch(model, tokenizer, chunk, system_prompt, cfg.max_new_tokens)
            total += wall
            bar.update(len(chunk))
            answers += [(text, wall, count) for text, count in results]
    return answers, total


def score_model(name: str, model, tokenizer, examples: list[TrainingExample], cfg: EvaluationConfig,
                system_prompt: str, max_length: int, progress: bool = True) -> ModelScores:
    """Generate for every example and compute every metric."""
    labels = sorted({e.scenario for e in examples if e.scenario})
    references = [render(e, system_prompt).output for e in examples]
    rows: list[dict[str, Any]] = []
    predicted_causes: list[str] = []
    answers, generation_seconds = _answers(model, tokenizer, examples, cfg, system_prompt, name, progress)
    with tempfile.TemporaryDirectory() as folder:
        checker = QueryChecker(folder)
        try:
            for example, reference_text, (text, latency, new_tokens) in zip(examples, references, answers,
                                                                             strict=True):
                predicted, reference = parse_answer(text), parse_answer(reference_text)
                predicted_causes.append(predicted.root_cause)
                row = {"id": example.id, "scenario": example.scenario, "answer": text, "latency_s": latency,
                       "new_tokens": new_tokens, **answer_scores(predicted, reference, checker)}
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
    metrics["perplexity"] = perplexity(model, tokenizer, examples, system_prompt, max_length)
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
