"""Scores of generated answers against the reference, each in [0, 1] unless named otherwise."""

from __future__ import annotations

import re

from rcatune.embeddings import embed
from rcatune.prompts import Answer
from rcatune.sql import query_parses

_WORD = re.compile(r"[a-z0-9_./-]+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def token_f1(predicted: str, reference: str) -> float:
    """Bag-of-words F1 (SQuAD-style)."""
    pred, ref = _tokens(predicted), _tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = 0
    remaining = list(ref)
    for token in pred:
        if token in remaining:
            remaining.remove(token)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def path_f1(predicted: list[list[str]], reference: list[list[str]]) -> float:
    """F1 over call edges (a -> b) of the critical paths."""
    def edges(paths):
        return {(a.strip().lower(), b.strip().lower()) for path in paths for a, b in zip(path, path[1:], strict=False)}

    pred, ref = edges(predicted), edges(reference)
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    common = len(pred & ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class QueryChecker:
    """Does a diagnostic query parse as ClickHouse SQL and run on the OTel exporter tables (chdb)?"""

    def __init__(self, folder: str) -> None:
        from chdb import session as chdb_session

        from rcatune.telemetry import create_otel_tables

        self._session = chdb_session.Session(folder)
        create_otel_tables(self._session)

    def parses(self, sql: str) -> bool:
        return query_parses(sql)

    def runs(self, sql: str) -> bool:
        if not self.parses(sql):
            return False
        try:
            self._session.query(sql, "JSONEachRow")
            return True
        except Exception:  # chdb reports SQL errors as RuntimeError subclasses
            return False

    def close(self) -> None:
        self._session.close()




def semantic_similarity(predicted: list[str], reference: list[str]) -> list[float]:
    """Cosine similarity of the sentence embeddings, clipped to [0, 1]."""
    scores = (embed(predicted) * embed(reference)).sum(-1).clamp(min=0.0, max=1.0)
    return [float(s) for s in scores]


def answer_scores(predicted: Answer, reference: Answer, checker: QueryChecker) -> dict[str, float]:
    """Per-example scores that need no model."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return {
        "query_parses": float(checker.parses(predicted.diagnostic_query)),
        "query_valid": float(checker.runs(predicted.diagnostic_query)),
        "critical_path_f1": path_f1(predicted.critical_paths, reference.critical_paths),
        "remediation_f1": token_f1(" ".join(predicted.remediation_steps), " ".join(reference.remediation_steps)),
        "root_cause_f1": token_f1(predicted.root_cause, reference.root_cause),
        "rouge_l": scorer.score(_flat(reference), _flat(predicted))["rougeL"].fmeasure,
    }


def _flat(answer: Answer) -> str:
    paths = " ".join(" ".join(p) for p in answer.critical_paths)
    return " ".join([answer.root_cause, answer.diagnostic_query, paths, " ".join(answer.remediation_steps)])


def corpus_bleu(predicted: list[str], reference: list[str]) -> float:
    """sacrebleu corpus BLEU on the full answers, scaled to [0, 1]."""
    import sacrebleu

    return sacrebleu.corpus_bleu(predicted, [reference]).score / 100.0
