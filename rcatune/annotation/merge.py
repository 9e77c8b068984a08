"""Reviews -> corrected examples, with agreement, adjudication flags and every refused annotation reported.

Per task, the reviews that fit the labeling config decide; a reviewer-marked ground truth annotation
(Label Studio's star, used for adjudication) overrides the others. Otherwise the majority decides,
unless the task is flagged for adjudication (annotators agree less than `task_agreement_min`), in
which case it is held back until someone adjudicates (or `merge_flagged=true`).

Root-cause view: `correct` -> human_validated; `partially_correct`/`incorrect` with a correct root
cause -> root_cause replaced, the original kept in corrections['root_cause'], human_validated;
`incorrect` without one -> dropped from the training data (`drop_rejected`). Evidence -> expert_notes;
ratings -> quality_ratings. Query view: an improved query that differs from the original and parses
as ClickHouse SQL replaces diagnostic_query (original in corrections['diagnostic_query']); ratings ->
quality_ratings['query_*']; issues ticked by at least half of the reviewers -> query_issues.
"""

from __future__ import annotations

import enum
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, Field, computed_field

from rcatune.annotation.agreement import krippendorff_alpha, percent_agreement, unit_agreement
from rcatune.annotation.templates import HASH_FIELD, KEY_FIELD, LabelSpec, answers, example_hash
from rcatune.schema import TrainingExample

# Questions whose agreement is reported: (control, Krippendorff level)
AGREEMENT_QUESTIONS = {
    "root_cause": [("validation", "nominal"), ("diagnostic_quality", "interval")],
    "query_quality": [("relevance", "interval"), ("efficiency", "interval"), ("completeness", "interval")],
}
RATING_FIELDS = {"diagnostic_quality": "diagnostic_quality", "relevance": "query_relevance",
                 "efficiency": "query_efficiency", "completeness": "query_completeness"}


@dataclass(frozen=True)
class MergeOptions:
    min_annotations: int = 1
    task_agreement_min: float = 0.9
    rating_spread_max: int = 1
    merge_flagged: bool = False
    drop_rejected: bool = True
    drop_unreviewed: bool = False
    agreement_target: float = 0.9


@dataclass
class Review:
    annotation_id: int
    annotator: Any
    ground_truth: bool
    values: dict[str, Any]


class Problem(BaseModel):
    """An annotation (or task) that was read but not merged, and why."""

    template: str
    task_id: int | None = None
    annotation_id: int | None = None
    example_id: str | None = None
    reason: str


class Decision(str, enum.Enum):
    """How a reviewed task was decided."""

    single_review = "single_review"  # one reviewer
    agreement = "agreement"  # every reviewer gave the same answer
    majority = "majority"  # reviewers disagreed; the majority decided (merge_flagged, or a clear majority)
    sole_proposal = "sole_proposal"  # query view: one reviewer proposed a better query, the others none
    ground_truth = "ground_truth"  # adjudicated: the annotation starred as ground truth decided
    pending = "pending"  # held back: still needs a decision


class Flag(BaseModel):
    """A task whose annotators disagree, and how it was decided (`pending`: still to adjudicate)."""

    template: str
    task_id: int
    example_id: str
    reasons: list[str]
    decided_by: Decision

    @computed_field  # type: ignore[prop-decorator]
    @property
    def held(self) -> bool:
        return self.decided_by is Decision.pending


class MergeReport(BaseModel):
    examples_in: int = 0
    examples_out: int = 0
    annotations_read: int = 0
    annotations_merged_from: int = 0  # valid reviews of known, current tasks
    annotations_rejected: int = 0
    annotations_skipped: int = 0  # cancelled (skipped) in Label Studio
    reviewed: int = 0
    validated: int = 0  # human-validated by this review
    human_validated_out: int = 0  # human_validated=true in the merged data (this review's + unreviewed ones')
    root_causes_corrected: int = 0
    queries_improved: int = 0
    labels_reinferred: int = 0  # fault labels re-inferred from a corrected root cause (the old one in corrections)
    dropped: list[str] = Field(default_factory=list)  # judged incorrect, no correction
    held: list[str] = Field(default_factory=list)  # waiting for adjudication
    unreviewed: int = 0  # pushed, not (yet) reviewed
    unreviewed_dropped: int = 0
    never_pushed: int = 0  # merged into a larger set than was pushed (annotation.merge_into=source)
    decisions: dict[str, dict[str, int]] = Field(default_factory=dict)  # template -> how tasks were decided -> n
    problems: list[Problem] = Field(default_factory=list)
    flagged: list[Flag] = Field(default_factory=list)
    agreement: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    agreement_target: float = 0.9

    def headline(self) -> dict[str, Any]:
        """The validation choice's agreement (the figure the original design's 90% aim is about)."""
        return self.agreement.get("root_cause", {}).get("validation", {})

    def lines(self) -> list[str]:
        out = [f"reviews: {self.annotations_read} read = {self.annotations_merged_from} usable + "
               f"{self.annotations_rejected} rejected + {self.annotations_skipped} skipped",
               f"examples: {self.examples_in} in, {self.reviewed} reviewed, {self.validated} human-validated, "
               f"{self.root_causes_corrected} root causes corrected, {self.queries_improved} queries improved, "
               f"{len(self.dropped)} dropped as incorrect, {len(self.held)} held for adjudication, "
               f"{self.unreviewed} unreviewed" + (f", {self.never_pushed} never pushed" if self.never_pushed else "")
               + f" -> {self.examples_out} out, {self.human_validated_out} of them human-validated"]
        for template, counts in self.decisions.items():
            out.append(f"decided ({template}): " + ", ".join(f"{n} by {k.replace('_', ' ')}"
                                                             for k, n in counts.items()))
        for template, questions in self.agreement.items():
            for question, figures in questions.items():
                if figures["percent_agreement"] is None:
                    out.append(f"agreement {template}.{question}: no task has two reviews yet")
                    continue
                alpha = figures["alpha"]
                mark = "meets" if figures["meets_target"] else "BELOW"
                out.append(f"agreement {template}.{question}: {figures['percent_agreement']:.1%} over "
                           f"{figures['units']} tasks ({mark} the {self.agreement_target:.0%} target), "
                           f"Krippendorff alpha ({figures['level']}) "
                           f"{'n/a' if alpha is None else f'{alpha:.3f}'}")
        for problem in self.problems:
            out.append(f"not merged: {problem.template} task {problem.task_id} annotation {problem.annotation_id}: "
                       f"{problem.reason}")
        for flag in self.flagged:
            prefix = "adjudicate" if flag.held else f"decided by {flag.decided_by.value.replace('_', ' ')}"
            out.append(f"{prefix}: {flag.template} task {flag.task_id} ({flag.example_id}): "
                       f"{'; '.join(flag.reasons)}")
        return out


@dataclass
class MergeResult:
    examples: list[TrainingExample]
    report: MergeReport
    reviews: dict[str, dict[str, list[Review]]] = field(default_factory=dict)  # template -> example id -> reviews


def _read_reviews(template: str, tasks: list[dict[str, Any]], spec: LabelSpec, by_id: dict[str, TrainingExample],
                  report: MergeReport) -> tuple[dict[str, list[Review]], dict[str, int]]:
    reviews: dict[str, list[Review]] = defaultdict(list)
    task_of: dict[str, int] = {}
    for task in tasks:
        data = task.get("data") or {}
        example_id = data.get(KEY_FIELD)
        example = by_id.get(str(example_id)) if example_id is not None else None
        stale = example is not None and data.get(HASH_FIELD) not in (None, example_hash(example))
        for annotation in task.get("annotations") or []:
            report.annotations_read += 1
            problem = dict(template=template, task_id=task.get("id"), annotation_id=annotation.get("id"),
                           example_id=example_id)
            if annotation.get("was_cancelled"):
                report.annotations_skipped += 1
                continue
            reason = None
            if example is None:
                reason = (f"task is not one of this dataset's examples ({KEY_FIELD}={example_id!r}); "
                          "was it imported by hand or from other data?")
            elif stale:
                reason = f"example {example_id} changed since it was pushed; push it again to review the new version"
            else:
                issues = spec.check(annotation.get("result"))
                if issues:
                    reason = "does not fit the labeling config: " + "; ".join(issues)
            if reason:
                report.annotations_rejected += 1
                report.problems.append(Problem(**problem, reason=reason))
                continue
            report.annotations_merged_from += 1
            task_of.setdefault(example.id, task["id"])
            reviews[example.id].append(Review(annotation["id"], annotation.get("completed_by"),
                                              bool(annotation.get("ground_truth")), answers(annotation["result"])))
    return reviews, task_of


def _agreement(template: str, reviews: dict[str, list[Review]], target: float) -> dict[str, dict[str, Any]]:
    figures = {}
    for question, level in AGREEMENT_QUESTIONS.get(template, []):
        units = []
        for items in reviews.values():
            values = [_scalar(r.values[question]) for r in items if question in r.values]
            units.append(values)
        agreement = percent_agreement(units)
        figures[question] = {"level": level, "units": sum(len(u) >= 2 for u in units),
                             "percent_agreement": agreement, "alpha": krippendorff_alpha(units, level),
                             "meets_target": agreement is not None and agreement >= target}
    return figures


def _scalar(value: Any) -> Any:
    """One choice as itself, several as a (hashable) tuple; other values unchanged."""
    if isinstance(value, list):
        return value[0] if len(value) == 1 else tuple(value)
    return value


def _norm(text: str) -> str:
    return " ".join(text.split())


def _improved_queries(items: list[Review], example: TrainingExample) -> dict[str, str]:
    """The distinct improved queries (normalised -> as written) that differ from the example's own."""
    return {_norm(sql): sql for r in items if (sql := r.values.get("improved_query"))
            and _norm(sql) != _norm(example.diagnostic_query)}


def _deciders(items: list[Review]) -> tuple[list[Review], bool]:
    truth = [r for r in items if r.ground_truth]
    return (truth[-1:], True) if truth else (items, False)


def _mean(values: list[int]) -> float:
    return round(statistics.fmean(values), 3)


class _Merger:
    def __init__(self, options: MergeOptions, query_ok: Callable[[str], str | None], report: MergeReport,
                 relabel: Callable[[str], str | None] | None = None) -> None:
        self.options, self.query_ok, self.report, self.relabel = options, query_ok, report, relabel

    def flag_reasons(self, template: str, items: list[Review], example: TrainingExample) -> tuple[list[str], list[str]]:
        """Why a task needs adjudication: (disagreements that hold it back, rating spreads that do not)."""
        holding, spreads = [], []
        if template == "root_cause":
            choices = [_scalar(r.values["validation"]) for r in items if "validation" in r.values]
            if len(choices) >= 2 and unit_agreement(choices) < self.options.task_agreement_min:
                holding.append(f"validation: {dict(Counter(choices))}")
        else:
            proposals = _improved_queries(items, example)
            if len(proposals) > 1:
                holding.append(f"{len(proposals)} different improved queries")
        for control in RATING_FIELDS:
            ratings = [r.values[control] for r in items if control in r.values]
            if len(ratings) >= 2 and max(ratings) - min(ratings) > self.options.rating_spread_max:
                spreads.append(f"{control} ratings {sorted(ratings)} differ by more than "
                               f"{self.options.rating_spread_max}")
        return holding, spreads

    def ratings(self, items: list[Review]) -> dict[str, float]:
        out = {}
        for control, name in RATING_FIELDS.items():
            values = [r.values[control] for r in items if control in r.values]
            if values:
                out[name] = _mean(values)
        return out

    def root_cause(self, example: TrainingExample, items: list[Review], held_by_flag: bool,
                   update: dict[str, Any]) -> tuple[str, Decision]:
        """Apply the root-cause view; returns ('merged' | 'held' | 'dropped', how it was decided).

        human_validated says what this review found: true only when it confirmed or corrected the root
        cause; a task still under review, or one judged wrong with nothing better, is not validated."""
        deciders, adjudicated = _deciders(items)
        update["human_validated"] = False
        if held_by_flag and not adjudicated and not self.options.merge_flagged:
            return "held", Decision.pending
        counts = Counter(_scalar(r.values["validation"]) for r in deciders if "validation" in r.values)
        verdict, votes = counts.most_common(1)[0] if counts else (None, 0)
        if verdict is None or votes * 2 <= sum(counts.values()):
            return "held", Decision.pending
        decided_by = (Decision.ground_truth if adjudicated else Decision.single_review if len(deciders) == 1
                      else Decision.agreement if votes == sum(counts.values()) else Decision.majority)
        agreeing = [r for r in deciders if _scalar(r.values.get("validation")) == verdict]
        notes = [r.values["evidence"] for r in items if r.values.get("evidence")]
        if notes:
            update["expert_notes"] = "\n".join(filter(None, [example.expert_notes, *notes]))
        update.setdefault("quality_ratings", {}).update(self.ratings(items))
        if verdict == "correct":
            update["human_validated"] = True
            self.report.validated += 1
            return "merged", decided_by
        proposals = Counter(r.values["correct_root_cause"] for r in agreeing
                            if r.values.get("correct_root_cause")
                            and _norm(r.values["correct_root_cause"]) != _norm(example.root_cause))
        if proposals:
            update["root_cause"] = proposals.most_common(1)[0][0]
            corrections = update.setdefault("corrections", dict(example.corrections or {}))
            corrections["root_cause"] = example.root_cause
            if example.scenario and self.relabel is not None:  # the label scored against follows the correction
                corrections["scenario"] = example.scenario
                update["scenario"] = self.relabel(update["root_cause"])
                self.report.labels_reinferred += 1
            update["human_validated"] = True
            self.report.validated += 1
            self.report.root_causes_corrected += 1
            return "merged", decided_by
        if verdict == "incorrect" and self.options.drop_rejected:
            return "dropped", decided_by
        return "merged", decided_by  # partially correct or incorrect, nothing better offered: kept, not validated

    def query(self, example: TrainingExample, items: list[Review], task_id: int,
              update: dict[str, Any]) -> tuple[str, Decision]:
        deciders, adjudicated = _deciders(items)
        update.setdefault("quality_ratings", {}).update(self.ratings(items))
        votes = Counter(issue for r in items for issue in r.values.get("issues", []))
        issues = sorted(i for i, n in votes.items() if n * 2 >= len(items))
        if issues:
            update["query_issues"] = issues
        proposals = _improved_queries(deciders, example)
        if len(proposals) > 1 and not adjudicated:
            return "held", Decision.pending
        written = {_norm(r.values.get("improved_query") or example.diagnostic_query) for r in items}
        decided_by = (Decision.ground_truth if adjudicated else Decision.single_review if len(items) == 1
                      else Decision.agreement if len(written) == 1 else Decision.sole_proposal)
        if proposals:
            sql = next(iter(proposals.values()))
            problem = self.query_ok(sql)
            if problem:
                self.report.problems.append(Problem(template="query_quality", task_id=task_id,
                                                    example_id=example.id, reason=f"improved query {problem}"))
                return "merged", decided_by
            update["diagnostic_query"] = sql
            update.setdefault("corrections", dict(example.corrections or {}))["diagnostic_query"] = \
                example.diagnostic_query
            self.report.queries_improved += 1
        return "merged", decided_by


def merge_reviews(examples: list[TrainingExample], exports: dict[str, list[dict[str, Any]]],
                  specs: dict[str, LabelSpec], options: MergeOptions,
                  query_ok: Callable[[str], str | None] = lambda sql: None,
                  relabel: Callable[[str], str | None] | None = None) -> MergeResult:
    """Merge the exported reviews of each template into the examples they were pushed from.

    `query_ok(sql)` returns None for a usable query, or why it is not (e.g. 'does not parse'); `relabel(root
    cause)` the fault label a corrected root cause names (None: none is clear), so scoring follows the review.
    """
    report = MergeReport(examples_in=len(examples), agreement_target=options.agreement_target)
    by_id = {e.id: e for e in examples}
    all_reviews: dict[str, dict[str, list[Review]]] = {}
    tasks_of: dict[str, dict[str, int]] = {}
    for template, tasks in exports.items():
        all_reviews[template], tasks_of[template] = _read_reviews(template, tasks, specs[template], by_id, report)
        report.agreement[template] = _agreement(template, all_reviews[template], options.agreement_target)
    pushed_ids = {str((t.get("data") or {}).get(KEY_FIELD)) for tasks in exports.values() for t in tasks}
    merger = _Merger(options, query_ok, report, relabel)
    out: list[TrainingExample] = []
    for example in examples:
        update: dict[str, Any] = {}
        outcomes = []
        for template, reviews in all_reviews.items():
            items = reviews.get(example.id, [])
            if len(items) < options.min_annotations:
                continue
            task_id = tasks_of[template][example.id]
            holding, spreads = merger.flag_reasons(template, items, example)
            reasons = holding + spreads
            if template == "root_cause":
                outcome, decided_by = merger.root_cause(example, items, bool(holding), update)
            else:
                outcome, decided_by = merger.query(example, items, task_id, update)
            tally = report.decisions.setdefault(template, {})
            tally[decided_by.value] = tally.get(decided_by.value, 0) + 1
            if reasons:
                report.flagged.append(Flag(template=template, task_id=task_id, example_id=example.id,
                                           reasons=reasons, decided_by=decided_by))
            outcomes.append(outcome)
        if not outcomes:
            if example.id in pushed_ids:
                report.unreviewed += 1
            else:
                report.never_pushed += 1
            if options.drop_unreviewed:
                report.unreviewed_dropped += 1
                continue
            out.append(example)
            continue
        report.reviewed += 1
        if "dropped" in outcomes:
            report.dropped.append(example.id)
            continue
        if "held" in outcomes:
            report.held.append(example.id)
        out.append(_apply(example, update) if update else example)
    report.examples_out = len(out)
    report.human_validated_out = sum(e.human_validated for e in out)
    return MergeResult(out, report, all_reviews)


def _apply(example: TrainingExample, update: dict[str, Any]) -> TrainingExample:
    data = example.to_json_dict()
    if not update.get("quality_ratings"):
        update.pop("quality_ratings", None)
    elif example.quality_ratings:
        update["quality_ratings"] = {**example.quality_ratings, **update["quality_ratings"]}
    data.update(update)
    return TrainingExample.model_validate(data)
