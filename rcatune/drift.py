"""Drift (issue 30, section 2): are new sessions like the ones a model trained on?

A profile of the training sessions (`DriftProfile.of`): the services and error signatures they name, and the
centroid of their all-MiniLM-L6-v2 embeddings (the encoder the project ships) with how far training sessions
lie from it. New sessions are compared with it (`compare`). A session has drifted when
- it names a service no training session named;
- none of its error signatures was seen in training (after numbers and ids are masked); or
- it lies farther from the centroid than `outlier_quantile` of the training sessions did.

The score is the share of new sessions that drifted; past `threshold` the report says so (`triggered`).
`write_report` writes `drift.md` and `drift.png`: the distance distributions side by side, and the unseen
services. `pipeline=drift` runs it against a registered version's training split and, with
`pipeline.push_for_review=true`, pushes the drifted sessions to the review projects when the score passes the
threshold. Not yet here: the model's own confidence, and a retraining job started after the review's sync.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable

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


class DriftProfile(BaseModel):
    """What the training sessions looked like: enough to tell whether new ones differ (no session kept)."""

    sessions: int
    services: dict[str, int]
    signatures: list[str]  # signature_key of every error signature seen
    centroid: list[float]  # the mean embedding, normalised
    distances: dict[str, float]  # cosine distance of training sessions to the centroid, by quantile

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


def reference_profile(model_dir: Path | str) -> tuple[DriftProfile, Path]:
    """The profile of the training split of the run that trained `model_dir` (RUN_DIR/training/model or
    RUN_DIR/export/merged): read from RUN_DIR/formats/dataset/train.jsonl once, then kept beside it."""
    from rcatune import constants
    from rcatune.errors import ConfigError

    run_dir = Path(model_dir).resolve().parents[1]
    split = run_dir / constants.FORMATS_DIR / "dataset" / "train.jsonl"
    cached = split.parent / PROFILE_FILE
    if cached.exists() and cached.stat().st_mtime >= split.stat().st_mtime:
        return DriftProfile.model_validate_json(cached.read_text(encoding="utf-8")), split
    if not split.exists():
        raise ConfigError(f"no training split at {split}: drift compares with the sessions {model_dir} trained on, "
                          "which a fine_tuning run writes there (formats.formats must include dataset)")
    with open(split, encoding="utf-8") as handle:
        profile = DriftProfile.of([TrainingExample.model_validate_json(line) for line in handle if line.strip()])
    cached.write_text(profile.model_dump_json(), encoding="utf-8")
    return profile, split


class SessionDrift(BaseModel):
    id: str
    distance: float
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
    shares: dict[str, float]  # by reason: unseen service, unseen signatures, outlier
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
        if self.unseen_services:
            out.append("services never seen in training: " + ", ".join(f"{k} ({v})"
                                                                         for k, v in self.unseen_services.items()))
        return out


def compare(profile: DriftProfile, examples: Iterable[TrainingExample], threshold: float = 0.2,
            outlier_quantile: str = "p99") -> DriftReport:
    """Each new session against the profile, and the share that drifted."""
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
    per_session, unseen = [], Counter()
    for example, distance in zip(examples, distances, strict=True):
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
        per_session.append(SessionDrift(id=example.id, distance=round(distance, 6), unseen_services=services,
                                        unseen_signatures=signatures, reasons=reasons))
    count = len(per_session)
    drifted = sum(s.drifted for s in per_session)
    shift = 0.0
    if vectors is not None:
        shift = float(1 - torch.nn.functional.normalize(vectors.mean(0), dim=0) @ centroid)
    score = drifted / count if count else 0.0
    return DriftReport(
        sessions=count, drifted=drifted, score=round(score, 4), threshold=threshold, triggered=score > threshold,
        outlier_quantile=outlier_quantile, outlier_distance=limit, centroid_shift=round(shift, 6),
        shares={reason: round(sum(reason in s.reasons for s in per_session) / count, 4) if count else 0.0
                for reason in ("unseen_service", "unseen_signatures", "outlier")},
        unseen_services=dict(unseen.most_common()), per_session=per_session)


def write_report(report: DriftReport, profile: DriftProfile, folder: Path | str) -> dict[str, str]:
    """`drift.md`, `drift.png` (distances against the training quantiles; unseen services) and `drift.json`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
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
    rows = [f"| {s.id} | {s.distance:.4f} | {', '.join(s.reasons)} | {', '.join(s.unseen_services)} |"
            for s in report.per_session if s.drifted][:200]
    text = "\n".join(["# Drift", "", *[f"- {line}" for line in report.lines()], "",
                      f"Training profile: {profile.sessions} sessions, {len(profile.services)} services, "
                      f"{len(profile.signatures)} error signatures; distance quantiles "
                      + ", ".join(f"{k} {v:.4f}" for k, v in profile.distances.items()), "", "![drift](drift.png)", "",
                      "| session | distance | why | unseen services |", "|---|---|---|---|", *rows, ""])
    (folder / "drift.md").write_text(text, encoding="utf-8")
    (folder / "drift.json").write_text(report.model_dump_json(indent=1), encoding="utf-8")
    return {name: str(folder / name) for name in ("drift.md", "drift.png", "drift.json")}


__all__ = ["DriftProfile", "DriftReport", "SessionDrift", "compare", "reference_profile", "session_text",
           "signature_key", "write_report"]
