"""`annotation=`: expert review before the split (none, or a Label Studio server)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import List, Optional

from rcatune.config._require import require

REVIEW_TEMPLATES = ("root_cause", "query_quality")  # the views in rcatune/annotation/templates/


class AnnotationAction(str, enum.Enum):
    push = "push"  # send examples for review (idempotent), print the URL and progress
    sync = "sync"  # export reviews, check them, merge corrections, report agreement
    status = "status"  # progress of the review only


class MergeInto(str, enum.Enum):
    pushed = "pushed"  # what the pushes sent (recorded under the state folder), whatever this run's data is
    source = "source"  # this run's data source: examples never pushed are reported apart


class Unreviewed(str, enum.Enum):
    keep = "keep"  # examples nobody reviewed yet stay in the dataset, not human-validated
    drop = "drop"  # train only on reviewed examples


@dataclass
class AnnotationConfig:
    """`annotation=none`: no human review."""

    enabled: bool = False


@dataclass
class LabelStudioAnnotationConfig(AnnotationConfig):
    """Human review in Label Studio. The API token is never part of the config: it comes from
    $LABEL_STUDIO_API_KEY or `token_file` (default: the one `make labelstudio-start` keeps)."""

    enabled: bool = True
    action: AnnotationAction = AnnotationAction.push
    url: Optional[str] = None  # None: the server `make labelstudio-start` runs, else http://127.0.0.1:8200
    token_file: Optional[str] = None  # None: <state>/labelstudio/token
    project: str = "rcatune review"  # projects are '<project> / <template>'
    templates: List[str] = field(default_factory=lambda: list(REVIEW_TEMPLATES))
    pre_annotate: bool = True  # the AI's answer as an editable pre-annotation
    model_version: str = "session-ai"  # the label shown on pre-annotations
    batch_size: int = 200  # tasks per import request
    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 0.5
    wait: bool = False  # fine_tuning: push, wait for reviews, sync and train in one run
    wait_timeout_s: float = 3600.0
    poll_s: float = 15.0
    min_annotations: int = 1  # reviews per task before a task counts as done (wait) and may merge
    agreement_target: float = 0.9  # the original design's aim, reported against
    task_agreement_min: float = 0.9  # a task whose annotators agree less goes to adjudication
    rating_spread_max: int = 1  # ... or whose ratings differ by more than this
    merge_flagged: bool = False  # merge the majority of a flagged task without waiting for adjudication
    drop_rejected: bool = True  # 'incorrect' with no correction: the example leaves the training data
    unreviewed: Unreviewed = Unreviewed.keep
    merge_into: MergeInto = MergeInto.pushed  # sync: what the reviews are merged into
    fault_catalog: Optional[str] = None  # re-infer a corrected example's fault label (None: the built-in catalog)

    def __post_init__(self) -> None:
        require(bool(self.templates) and all(t in REVIEW_TEMPLATES for t in self.templates), "annotation.templates",
                f"choose one or more of {list(REVIEW_TEMPLATES)}, got {list(self.templates)}")
        require(len(self.project.strip()) >= 3, "annotation.project", "needs at least 3 characters")
        require(self.batch_size > 0, "annotation.batch_size", "must be positive")
        require(self.retries >= 0, "annotation.retries", "must be >= 0")
        require(self.min_annotations >= 1, "annotation.min_annotations", "must be at least 1")
        for key in ("agreement_target", "task_agreement_min"):
            value = getattr(self, key)
            require(0.0 <= value <= 1.0, f"annotation.{key}", f"must be within [0, 1], got {value}")
        require(self.url is None or self.url.startswith(("http://", "https://")), "annotation.url",
                f"must start with http:// or https://, got {self.url!r}")

    @property
    def waits_for_experts(self) -> bool:
        """Push (or status) without waiting: the review runs on its own and training comes later."""
        return self.action is not AnnotationAction.sync and not self.wait

    @property
    def reads_source(self) -> bool:
        """Whether this run reads its data source: to push it, or to merge the reviews into it."""
        return self.action is AnnotationAction.push or self.wait or self.merge_into is MergeInto.source


SCHEMAS = {"none": AnnotationConfig, "label_studio": LabelStudioAnnotationConfig}
