"""Scoring, the gate and the report, on known answers (no model needed), plus one real model pass."""

from __future__ import annotations

import math

import pytest

from rcatune.config.evaluation import EvaluationConfig
from rcatune.config.model import TinyModelConfig
from rcatune.demo.generator import generate_sessions
from rcatune.evaluation.gate import decide
from rcatune.evaluation.scoring import QueryChecker, answer_scores, corpus_bleu, first_label, path_f1, token_f1
from rcatune.prompts import parse_answer, render
from rcatune.runtime import Runtime
from rcatune.schema import TrainingExample

CPU = Runtime(device="cpu", progress=False)
TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)


@pytest.fixture(scope="module")
def example():
    records = generate_sessions(30, seed=4)
    return TrainingExample.model_validate(next(r for r in records if r["scenario"] == "paymentFailure"))


@pytest.fixture
def checker(tmp_path):
    # chdb serves one database folder per process at a time: close before the next one opens
    checker = QueryChecker(str(tmp_path / "chdb"))
    yield checker
    checker.close()


def test_first_label_is_the_earliest_mention():
    labels = ["paymentFailure", "paymentUnreachable", "adFailure"]
    assert first_label("checkout dials badAddress (paymentUnreachable), not paymentFailure", labels) == \
        "paymentUnreachable"
    assert first_label("nothing relevant", labels) is None


def test_f1_scores():
    assert token_f1("payment fails", "payment fails") == 1.0 and token_f1("a b", "c d") == 0.0
    assert path_f1([["a", "b", "c"]], [["a", "b", "c"]]) == 1.0
    assert path_f1([["a", "b"]], [["a", "b", "c"]]) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert path_f1([], [["a", "b"]]) == 0.0


def test_a_perfect_answer_scores_perfectly(example, checker):
    reference = parse_answer(render(example).output)
    scores = answer_scores(reference, reference, checker)
    assert scores == {"query_parses": 1.0, "query_valid": 1.0, "critical_path_f1": 1.0, "remediation_f1": 1.0,
                      "root_cause_f1": 1.0, "rouge_l": 1.0}
    assert corpus_bleu([render(example).output], [render(example).output]) == pytest.approx(1.0)


def test_broken_queries_are_invalid(checker):
    assert not checker.parses("SELEC * FRM")
    assert checker.parses("SELECT NoSuchColumn FROM otel_traces") and not checker.runs(
        "SELECT NoSuchColumn FROM otel_traces")
    assert checker.runs("SELECT ServiceName, count() FROM otel_traces GROUP BY ServiceName")


@pytest.mark.slow
def test_semantic_similarity_ranks_paraphrases_above_unrelated():
    from rcatune.evaluation.scoring import semantic_similarity

    same, other = semantic_similarity(
        ["payment service rejects charges with an invalid token", "the kafka consumer lags behind"],
        ["Charge requests to payment fail: Invalid token", "Charge requests to payment fail: Invalid token"])
    assert same > other + 0.2


def test_gate_records_every_check_as_fields():
    cfg = EvaluationConfig(min_accuracy=0.75, max_perplexity=10, min_bleu=0.3)
    good = {"rca_accuracy": 0.8, "perplexity": 3.0, "bleu": 0.5}
    assert decide(good, {"rca_accuracy": 0.1}, cfg).passed
    decision = decide({"rca_accuracy": 0.5, "perplexity": 30.0, "bleu": 0.1}, {"rca_accuracy": 0.6}, cfg)
    assert not decision.passed and all(not c.passed for c in decision.checks)
    assert [(c.metric, c.value, c.threshold, c.rule) for c in decision.checks] == [
        ("rca_accuracy", 0.5, 0.75, "at_least"), ("perplexity", 30.0, 10, "at_most"), ("bleu", 0.1, 0.3, "at_least"),
        ("rca_accuracy", 0.5, 0.6, "above")]
    assert decision.checks[0].text() == "rca_accuracy 0.500 vs minimum 0.750"
    no_base = decide(good, None, cfg)
    assert not no_base.passed and no_base.checks[-1].value == 0.8 and no_base.checks[-1].threshold is None
    assert "could not be measured" in no_base.checks[-1].note
    unlabelled = decide({"perplexity": 3.0, "bleu": 0.5}, None, EvaluationConfig(require_improvement=False))
    assert [c.passed for c in unlabelled.checks] == [False, True, True] and unlabelled.checks[0].value is None


@pytest.mark.slow
def test_scoring_a_real_model_end_to_end(tmp_path):
    from rcatune.evaluation.evaluate import score_model
    from rcatune.inference import load_base

    examples = [TrainingExample.model_validate(r) for r in generate_sessions(3, seed=5)]
    scores = score_model("base", load_base(TINY, CPU), examples, EvaluationConfig(max_new_tokens=16), "sys", 1024,
                         progress=False)
    metrics = scores.metrics
    assert metrics["examples"] == 3 and metrics["rca_accuracy"] == 0.0  # random weights name no fault
    assert math.isfinite(metrics["perplexity"]) and metrics["perplexity"] > 100
    assert metrics["latency_p95_ms"] >= metrics["latency_p50_ms"] > 0
    assert all(row["new_tokens"] <= 16 for row in scores.answers)


def test_batched_generation_gives_the_answers_of_one_at_a_time():
    from rcatune.evaluation.evaluate import score_model
    from rcatune.inference import GenerationSettings, Generator, load_base, session_messages

    examples = [TrainingExample.model_validate(r) for r in generate_sessions(5, seed=8)]
    loaded = load_base(TINY, CPU)
    generator = Generator(loaded)
    settings = GenerationSettings(max_new_tokens=24)
    one_by_one = [generator.complete([session_messages(e, "sys")], settings)[0] for e in examples]
    together = generator.complete([session_messages(e, "sys") for e in examples], settings)
    assert [(c.text, c.completion_tokens) for c in together] == [(c.text, c.completion_tokens) for c in one_by_one]
    assert all(c.seconds > 0 and c.prompt_tokens == generator.prompt_tokens(session_messages(e, "sys"))
               for c, e in zip(together, examples, strict=True))
    assert loaded.tokenizer.padding_side == "right"  # restored
    scores = score_model("base", loaded, examples, EvaluationConfig(max_new_tokens=24, batch_size=3), "sys", 1024,
                         progress=False)
    assert scores.metrics["generation_batch_size"] == 3.0 and scores.metrics["examples"] == 5
    assert [row["answer"] for row in scores.answers] == [c.text for c in one_by_one]


def test_promotion_rules():
    from rcatune.artifacts import GateCheck, GateDecision
    from rcatune.registry import decide_stage

    def gate(passed, value):
        check = GateCheck(metric="rca_accuracy", value=value, threshold=0.75, rule="at_least", passed=passed)
        return GateDecision(passed=passed, checks=[check], primary_metric="rca_accuracy", primary_value=value,
                            base_value=0.0)

    assert decide_stage(gate(False, 0.1), None) == (None, "gate failed: rca_accuracy 0.100 vs minimum 0.750")
    stage, reason = decide_stage(gate(True, 0.8), None)
    assert stage == "production" and "no production version" in reason
    assert decide_stage(gate(True, 0.8), 0.7)[0] == "production"
    stage, reason = decide_stage(gate(True, 0.8), 0.9)
    assert stage == "staging" and "does not beat production's 0.900" in reason
