"""Drift (issue 30, section 2): are new sessions like the ones a model trained on?

A profile of the training sessions (`DriftProfile.of`): the services and error signatures they name, and the
centroid of their all-MiniLM-L6-v2 embeddings (the encoder the project ships) with how far training sessions
lie from it. New sessions are compared with it (`compare`). A session has drifted when
- it names a service no training session named;
- none of its error signatures was seen in training (after numbers and ids are masked); or
- it lies farther from the centroid than `outlier_quantile` of the training sessions did; or
- the model is less sure of its root cause than it was for all but 1 - `outlier_quantile` of the held-out
  sessions of its own data (`model_confidence`: the validation split, since it is surer of what it trained on).

The score is the share of new sessions that drifted; past `threshold` the report says so (`triggered`).
`write_report` writes `drift.md` and `drift.png`: the distance distributions side by side, and the unseen
services. `pipeline=drift` runs it against a registered version's training split and, with
`pipeline.push_for_review=true`, pushes the drifted sessions to the review projects when the score passes the
threshold; with `pipeline.retrain_with`, the sync after their review starts a retraining job
(`rcatune.annotation.retrain`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from pydantic import BaseModel, Field

from rcatune.schema import TrainingExample

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "max": 1.0}
_VARIABLE = re.compile(r"(?:[0-9a-f]{8,}|[0-9]+(?:\.[0-9]+)?|#\"?[A-Z0-9]{6,}\"?)", re.IGNORECASE)


def signature_key(signature: str) -> str:
    """An error signature with what varies from incident to incident (numbers, ids, hex) masked, lower-cased."""
    return " ".join(_VARIABLE.sub("#", signature).lower().split())


def session_text(example: TrainingExample) -> str:
    """What a session says about its incident, as embedded: symptoms, services and error signatures."""
    return " | ".join(["; ".join(example.symptoms), ", ".join(example.affected_services),
                       "; ".join(example.error_signatures)])


def _embed(examples: list[TrainingExample], batch: int = 64):
    import torch

    from rcatune.embeddings import embed

    texts = [session_text(e) for e in examples]
    return torch.cat([embed(texts[i:i + batch]) for i in range(0, len(texts), batch)]) if texts else None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


CONFIDENCE_TOKENS = 12  # the root cause's first tokens: the fault and where it is
ROOT_CAUSE = "Root Cause:"  # how every answer rcatune trains on begins (rcatune.prompts.render_output)


def model_confidence(loaded, examples: list[TrainingExample], system_prompt: str, batch: int = 8,
                     tokens: int = CONFIDENCE_TOKENS) -> list[float]:
    """How sure the model is of each session's diagnosis: the geometric mean of the probabilities of the first
    `tokens` tokens it would answer after 'Root Cause:' (greedy), which name the fault and where it is."""
    import torch

    from rcatune.inference import session_messages

    tokenizer, model = loaded.tokenizer, loaded.model
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores: list[float] = []
    try:
        for first in range(0, len(examples), batch):
            texts = [tokenizer.apply_chat_template(session_messages(e, system_prompt), add_generation_prompt=True,
                                                   tokenize=False) + ROOT_CAUSE for e in examples[first:first + batch]]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = {k: v.to(next(model.parameters()).device) for k, v in encoded.items()}
            with torch.inference_mode():
                out = model.generate(**encoded, max_new_tokens=tokens, do_sample=False, output_scores=True,
                                     return_dict_in_generate=True, pad_token_id=pad)
            chosen = torch.stack([torch.log_softmax(step.float(), -1).max(-1).values for step in out.scores], 1)
            scores += chosen.mean(1).exp().tolist()
    finally:
        tokenizer.padding_side = side
    return scores


class DriftProfile(BaseModel):
    """What the training sessions looked like: enough to tell whether new ones differ (no session kept)."""

    sessions: int
    services: dict[str, int]
    signatures: list[str]  # signature_key of every error signature seen
    centroid: list[float]  # the mean embedding, normalised
    distances: dict[str, float]  # cosine distance of training sessions to the centroid, by quantile
    # model_confidence on held-out sessions of the training data (the validation split: the model is surer of
    # sessions it trained on), by quantile from the unsure side: confidence["p99"] is surer than 1% of them
    confidence: Optional[dict[str, float]] = None
    confidence_model: Optional[str] = None  # the model folder that measured it
    confidence_sessions: int = 0  # how many sessions it measured (an even sample of at most CONFIDENCE_SAMPLE)

    def with_confidence(self, examples: list[TrainingExample], loaded, folder: str,
                        system_prompt: str) -> "DriftProfile":
        """This profile with the model's confidence on an even sample of `examples`."""
        sample = examples[::max(1, -(-len(examples) // CONFIDENCE_SAMPLE))]
        values = model_confidence(loaded, sample, system_prompt)
        return self.model_copy(update={"confidence": {k: _quantile(values, 1 - q) for k, q in QUANTILES.items()},
                                       "confidence_model": folder, "confidence_sessions": len(sample)})

    @classmethod
    def of(cls, examples: list[TrainingExample]) -> "DriftProfile":
        import torch

        if not examples:
            from rcatune.errors import DataError

            raise DataError("a drift profile needs the training sessions: none were given")
        vectors = _embed(examples)
        centroid = torch.nn.functional.normalize(vectors.mean(0), dim=0)
        distances = (1 - vectors @ centroid).tolist()
        return cls(sessions=len(examples),
                   services=dict(Counter(s for e in examples for s in e.affected_services).most_common()),
                   signatures=sorted({signature_key(s) for e in examples for s in e.error_signatures}),
                   centroid=centroid.tolist(), distances={k: _quantile(distances, q) for k, q in QUANTILES.items()})


PROFILE_FILE = "drift_profile.json"
CONFIDENCE_SAMPLE = 300  # held-out sessions the model's confidence is measured on


def _read_split(path: Path) -> list[TrainingExample]:
    with open(path, encoding="utf-8") as handle:
        return [TrainingExample.model_validate_json(line) for line in handle if line.strip()]


def reference_profile(model_dir: Path | str, loaded=None, system_prompt: str = "") -> tuple[DriftProfile, Path]:
    """The profile of the training split of the run that trained `model_dir` (RUN_DIR/training/model or
    RUN_DIR/export/merged): read from RUN_DIR/formats/dataset/train.jsonl once, then kept beside it. With `loaded`
    (that model, loaded) it holds the model's confidence on the run's validation split too."""
    from rcatune import constants
    from rcatune.errors import ConfigError

    run_dir = Path(model_dir).resolve().parents[1]
    split = run_dir / constants.FORMATS_DIR / "dataset" / "train.jsonl"
    cached = split.parent / PROFILE_FILE
    if not split.exists():
        raise ConfigError(f"no training split at {split}: drift compares with the sessions {model_dir} trained on, "
                          "which a fine_tuning run writes there (formats.formats must include dataset)")
    profile = None
    if cached.exists() and cached.stat().st_mtime >= split.stat().st_mtime:
        profile = DriftProfile.model_validate_json(cached.read_text(encoding="utf-8"))
    if profile is None or (loaded is not None and profile.confidence_model != str(model_dir)):
        profile = profile or DriftProfile.of(_read_split(split))
        if loaded is not None:
            held_out = split.parent / "val.jsonl"
            if not held_out.exists() or not held_out.stat().st_size:
                raise ConfigError(f"the model's confidence is judged against the run's validation split, and {held_out}"
                                  " is missing or empty: set pipeline.model_signal=false to leave the model out")
            profile = profile.with_confidence(_read_split(held_out), loaded, str(model_dir), system_prompt)
        cached.write_text(profile.model_dump_json(), encoding="utf-8")
    return profile, split


class SessionDrift(BaseModel):
    id: str
    distance: float
    confidence: Optional[float] = None
    unseen_services: list[str] = Field(default_factory=list)
    unseen_signatures: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


class DriftReport(BaseModel):
    sessions: int
    drifted: int
    score: float  # the share of sessions that drifted
    threshold: float
    triggered: bool
    outlier_quantile: str
    outlier_distance: float
    centroid_shift: float  # cosine distance between the training and the new centroid
    shares: dict[str, float]  # by reason: unseen service, unseen signatures, outlier (, unsure)
    confidence_limit: Optional[float] = None  # the model's confidence on held-out sessions at outlier_quantile
    confidence_median: Optional[float] = None  # its median confidence on the new sessions
    unseen_services: dict[str, int]
    per_session: list[SessionDrift]

    def drifted_ids(self) -> list[str]:
        return [s.id for s in self.per_session if s.drifted]

    def summarise(self, summary) -> None:
        from rcatune import constants

        summary.artifacts["drift_report"] = str(Path(summary.run_dir) / constants.DRIFT_DIR / "drift.md")
        summary.decisions["drift"] = {"score": self.score, "threshold": self.threshold, "triggered": self.triggered,
                                      "drifted": self.drifted, "sessions": self.sessions,
                                      "centroid_shift": self.centroid_shift, "shares": self.shares}

    def lines(self) -> list[str]:
        verdict = "DRIFT: past the threshold" if self.triggered else "within the threshold"
        out = [f"drift: {self.drifted} of {self.sessions} sessions ({self.score:.1%}) differ from the training data; "
               f"{verdict} ({self.threshold:.0%})",
               f"centroid shift {self.centroid_shift:.4f}; beyond the training {self.outlier_quantile} distance "
               f"({self.outlier_distance:.4f}): {self.shares['outlier']:.1%}; unseen service: "
               f"{self.shares['unseen_service']:.1%}; no known error signature: {self.shares['unseen_signatures']:.1%}"]
        if self.confidence_limit is not None:
            out.append(f"model confidence in its root cause: median {self.confidence_median:.3f}; less sure than the "
                       f"held-out {self.outlier_quantile} ({self.confidence_limit:.3f}): {self.shares['unsure']:.1%}")
        if self.unseen_services:
            out.append("services never seen in training: " + ", ".join(f"{k} ({v})"
                                                                         for k, v in self.unseen_services.items()))
        return out


def compare(profile: DriftProfile, examples: Iterable[TrainingExample], threshold: float = 0.2,
            outlier_quantile: str = "p99", confidence: Optional[list[float]] = None) -> DriftReport:
    """Each new session against the profile, and the share that drifted. `confidence`: the model's, per session
    (`model_confidence`), judged against the profile's."""
    import torch

    examples = list(examples)
    if outlier_quantile not in QUANTILES:
        from rcatune.errors import ConfigError

        raise ConfigError(f"outlier_quantile must be one of {list(QUANTILES)}, got {outlier_quantile!r}")
    limit = profile.distances[outlier_quantile]
    known_services, known_signatures = set(profile.services), set(profile.signatures)
    vectors = _embed(examples)
    centroid = torch.tensor(profile.centroid)
    distances = (1 - vectors @ centroid).tolist() if vectors is not None else []
    confidence_limit = None
    if confidence is not None:
        if profile.confidence is None:
            from rcatune.errors import ConfigError

            raise ConfigError("the model's confidence on new sessions needs the profile's on held-out sessions: "
                              "build the profile with the model (reference_profile(..., loaded=...))")
        confidence_limit = profile.confidence[outlier_quantile]
    sure = confidence if confidence is not None else [None] * len(examples)
    per_session, unseen = [], Counter()
    for example, distance, certainty in zip(examples, distances, sure, strict=True):
        services = [s for s in example.affected_services if s not in known_services]
        signatures = [s for s in example.error_signatures if signature_key(s) not in known_signatures]
        reasons = []
        if services:
            reasons.append("unseen_service")
            unseen.update(services)
        if example.error_signatures and len(signatures) == len(example.error_signatures):
            reasons.append("unseen_signatures")
        if distance > limit:
            reasons.append("outlier")
        if certainty is not None and certainty < confidence_limit:
            reasons.append("unsure")
        per_session.append(SessionDrift(id=example.id, distance=round(distance, 6), unseen_services=services,
                                        unseen_signatures=signatures, reasons=reasons,
                                        confidence=None if certainty is None else round(certainty, 4)))
    count = len(per_session)
    drifted = sum(s.drifted for s in per_session)
    shift = 0.0
    if vectors is not None:
        shift = float(1 - torch.nn.functional.normalize(vectors.mean(0), dim=0) @ centroid)
    score = drifted / count if count else 0.0
    reasons = ("unseen_service", "unseen_signatures", "outlier") + (("unsure",) if confidence is not None else ())
    return DriftReport(
        sessions=count, drifted=drifted, score=round(score, 4), threshold=threshold, triggered=score > threshold,
        outlier_quantile=outlier_quantile, outlier_distance=limit, centroid_shift=round(shift, 6),
        shares={reason: round(sum(reason in s.reasons for s in per_session) / count, 4) if count else 0.0
                for reason in reasons},
        unseen_services=dict(unseen.most_common()), per_session=per_session, confidence_limit=confidence_limit,
        confidence_median=_quantile(confidence, 0.5) if confidence else None)


def write_report(report: DriftReport, profile: DriftProfile, folder: Path | str) -> dict[str, str]:
    """`drift.md`, `drift.png` (distances against the training quantiles; unseen services) and `drift.json`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    measured = report.confidence_limit is not None and profile.confidence is not None
    figure, axes = plt.subplots(1, 3 if measured else 2, figsize=(16 if measured else 11, 4))
    left, right = axes[0], axes[-1]
    if measured:
        middle = axes[1]
        middle.hist([s.confidence for s in report.per_session], bins=30, color="tab:purple", alpha=0.8,
                     label="new sessions")
        for name, style in (("p50", "-"), ("p99", "--")):
            middle.axvline(profile.confidence[name], linestyle=style, color="tab:blue", label=f"held-out {name}")
        middle.set_xlabel("model confidence in its root cause")
        middle.legend()
    left.hist([s.distance for s in report.per_session], bins=30, color="tab:orange", alpha=0.8, label="new sessions")
    for name, style in (("p95", ":"), ("p99", "--")):
        left.axvline(profile.distances[name], linestyle=style, color="tab:blue", label=f"training {name}")
    left.set_xlabel("cosine distance to the training centroid")
    left.set_ylabel("sessions")
    left.legend()
    names = list(report.unseen_services)[:12]
    if names:
        right.barh(names, [report.unseen_services[n] for n in names], color="tab:red")
        right.set_xlabel("sessions")
    else:
        right.axis("off")
        right.text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
    right.set_title("services never seen in training")
    figure.suptitle(f"drift score {report.score:.1%} (threshold {report.threshold:.0%})")
    figure.tight_layout()
    figure.savefig(folder / "drift.png", dpi=100)
    plt.close(figure)
    rows = [f"| {s.id} | {s.distance:.4f} | {'-' if s.confidence is None else f'{s.confidence:.3f}'} | "
            f"{', '.join(s.reasons)} | {', '.join(s.unseen_services)} |" for s in report.per_session if s.drifted][:200]
    confidence = ("" if profile.confidence is None else
                  f"; the model's confidence on {profile.confidence_sessions} held-out sessions, from the unsure side: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in profile.confidence.items()))
    text = "\n".join(["# Drift", "", *[f"- {line}" for line in report.lines()], "",
                      f"Training profile: {profile.sessions} sessions, {len(profile.services)} services, "
                      f"{len(profile.signatures)} error signatures; distance quantiles "
                      + ", ".join(f"{k} {v:.4f}" for k, v in profile.distances.items()) + confidence, "",
                      "![drift](drift.png)", "", "| session | distance | confidence | why | unseen services |",
                      "|---|---|---|---|---|", *rows, ""])
    (folder / "drift.md").write_text(text, encoding="utf-8")
    (folder / "drift.json").write_text(report.model_dump_json(indent=1), encoding="utf-8")
    return {name: str(folder / name) for name in ("drift.md", "drift.png", "drift.json")}


__all__ = ["DriftProfile", "DriftReport", "SessionDrift", "compare", "model_confidence", "reference_profile",
           "session_text", "signature_key", "write_report"]
