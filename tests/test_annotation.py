"""Review loop logic without a server: templates, client-side checks, agreement, merging."""

from __future__ import annotations

import pytest

from rcatune.annotation.agreement import krippendorff_alpha, percent_agreement, unit_agreement
from rcatune.annotation.merge import MergeOptions, merge_reviews
from rcatune.annotation.templates import (
    HASH_FIELD,
    KEY_FIELD,
    TEMPLATES,
    LabelSpec,
    label_config,
    lint,
    task,
)
from rcatune.schema import TrainingExample

DESIGN_QUERY_VIEW = """<View>
  <Header value="Generated Query"/>
  <Code name="generated_query" value="$query" language="sql"/>
  <Rating name="relevance" toName="generated_query" maxRating="5">
    <Label value="Relevance to Problem"/>
  </Rating>
</View>"""


@pytest.fixture(scope="module")
def examples(sample_records) -> list[TrainingExample]:
    return [TrainingExample.model_validate(r) for r in sample_records[:12]]


def choice(name: str, value: str | list[str], to: str = "ai_root_cause") -> dict:
    values = value if isinstance(value, list) else [value]
    return {"from_name": name, "to_name": to, "type": "choices", "value": {"choices": values}}


def text(name: str, value: str, to: str = "ai_root_cause") -> dict:
    return {"from_name": name, "to_name": to, "type": "textarea", "value": {"text": [value]}}


def rating(name: str, value, to: str = "ai_root_cause") -> dict:
    return {"from_name": name, "to_name": to, "type": "rating", "value": {"rating": value}}


def exported(example: TrainingExample, template: str, task_id: int, *annotations: tuple) -> dict:
    """A task as Label Studio's JSON export has it: data as pushed plus annotations."""
    items = []
    for number, (annotator, result, *flags) in enumerate(annotations, start=1):
        items.append({"id": task_id * 100 + number, "completed_by": annotator, "result": result,
                      "was_cancelled": "cancelled" in flags, "ground_truth": "truth" in flags})
    return {"id": task_id, "data": task(example, template, True, "ai")["data"], "annotations": items}


# ------------------------------------------------------------------------------------------ templates
def test_both_templates_pass_the_lint_and_the_designs_query_view_does_not():
    for template in TEMPLATES:
        assert lint(label_config(template)) == []
    assert lint(DESIGN_QUERY_VIEW) == ["<Code> is not a Label Studio tag",
                                       "<Label value='Relevance to Problem'> may not sit inside <Rating>"]


def test_tasks_carry_every_variable_their_view_shows(examples):
    for template in TEMPLATES:
        spec = LabelSpec.parse(label_config(template))
        item = task(examples[0], template, pre_annotate=True, model_version="ai")
        assert spec.variables <= set(item["data"]), template
        assert item["data"][KEY_FIELD] == examples[0].id and len(item["data"][HASH_FIELD]) == 16
        prediction = item["predictions"][0]
        assert spec.check(prediction["result"]) == ([] if template == "query_quality"
                                                    else ["required validation is missing"])
    assert "predictions" not in task(examples[0], "root_cause", pre_annotate=False, model_version="ai")


def test_client_side_check_catches_what_the_server_accepts():
    spec = LabelSpec.parse(label_config("root_cause"))
    assert spec.check([choice("validation", "correct"), rating("diagnostic_quality", 5)]) == []
    problems = spec.check([choice("validation", "maybe"), rating("diagnostic_quality", 99),
                           text("nonsense", "x"), choice("validation", "correct", to="symptoms")])
    assert problems == [
        "result[0]: validation has unknown choice(s) ['maybe']; allowed: ['correct', 'partially_correct', 'incorrect']",
        "result[1]: diagnostic_quality rating 99 is not a whole number from 1 to 5",
        "result[2]: unknown control 'nonsense' (config has ['correct_root_cause', 'diagnostic_quality', 'evidence', "
        "'validation'])",
        "result[3]: validation answered twice",
        "result[3]: validation points at 'symptoms', not 'ai_root_cause'",
    ]
    assert spec.check([]) == ["required validation is missing"]
    assert spec.check([choice("validation", ["correct", "incorrect"])]) == [
        "result[0]: validation is single-choice but got 2 choices"]
    assert spec.check([rating("diagnostic_quality", True), choice("validation", "correct")]) == [
        "result[0]: diagnostic_quality rating True is not a whole number from 1 to 5"]
    assert spec.check({"not": "a list"}) == ["result is dict, not a list of regions"]


# ------------------------------------------------------------------------------------------ agreement
def test_krippendorff_alpha_reproduces_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, gaps.
    observers = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
                 [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
                 [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
                 [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[o[u] for o in observers if o[u] is not None] for u in range(12)]
    assert round(krippendorff_alpha(units, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(units, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(units, "interval"), 3) == 0.849


def test_agreement_edge_cases():
    assert percent_agreement([["a"], []]) is None  # nobody double-annotated
    assert krippendorff_alpha([["a", "a"], ["a", "a"]]) is None  # no variation: undefined, not 1.0
    assert unit_agreement(["a", "a", "b"]) == pytest.approx(1 / 3)
    assert percent_agreement([["a", "a"], ["a", "b"], ["b"]]) == 0.5


# ------------------------------------------------------------------------------------------ merging
def test_merge_applies_each_verdict_and_reports_what_it_refused(examples):
    # no earlier corrections (the generator adds some at random): what the merge records is all there is
    e = [x.model_copy(update={"corrections": None, **({"human_validated": True} if i == 2 else {})})
         for i, x in enumerate(examples)]
    fix = "cartservice Redis connection pool exhausted by a retry storm"
    better_sql = "SELECT ServiceName, count() FROM otel_traces WHERE StatusCode = 'Error' GROUP BY ServiceName"
    root = [
        exported(e[0], "root_cause", 1, (1, [choice("validation", "correct"), rating("diagnostic_quality", 4)]),
                 (2, [choice("validation", "correct"), rating("diagnostic_quality", 5)])),
        exported(e[1], "root_cause", 2, (1, [choice("validation", "incorrect"), text("correct_root_cause", fix),
                                             text("evidence", "trace 42 shows pool waits")]),
                 (2, [choice("validation", "incorrect"), text("correct_root_cause", fix)])),
        exported(e[2], "root_cause", 3, (1, [choice("validation", "correct")]),
                 (2, [choice("validation", "incorrect")])),  # disagreement: held
        exported(e[3], "root_cause", 4, (1, [choice("validation", "incorrect")]),
                 (2, [choice("validation", "incorrect"), text("correct_root_cause", e[3].root_cause)])),  # no fix
        exported(e[4], "root_cause", 5, (1, [choice("validation", "maybe")]),  # invalid: refused
                 (2, [choice("validation", "correct")], "cancelled")),  # skipped
        {"id": 99, "data": {KEY_FIELD: "not-in-dataset"}, "annotations": [
            {"id": 9901, "completed_by": 1, "result": [choice("validation", "correct")]}]},
        exported(e[5], "root_cause", 6, (1, [choice("validation", "correct")]),
                 (2, [choice("validation", "incorrect"), text("correct_root_cause", fix)], "truth")),  # adjudicated
    ]
    stale = exported(e[6], "root_cause", 7, (1, [choice("validation", "correct")]))
    stale["data"][HASH_FIELD] = "0" * 16
    root.append(stale)
    query = [
        exported(e[0], "query_quality", 11,
                 (1, [text("improved_query", better_sql, "generated_query"), rating("relevance", 3, "generated_query"),
                      choice("issues", ["missing_filters"], "generated_query")]),
                 (2, [text("improved_query", e[0].diagnostic_query, "generated_query"),
                      rating("relevance", 5, "generated_query"),
                      choice("issues", ["missing_filters", "wrong_aggregation"], "generated_query")])),
        exported(e[1], "query_quality", 12, (1, [text("improved_query", "SELEC * FRM", "generated_query")])),
    ]
    specs = {t: LabelSpec.parse(label_config(t)) for t in TEMPLATES}
    bad_sql = {"SELEC * FRM"}
    result = merge_reviews(e[:8], {"root_cause": root, "query_quality": query}, specs, MergeOptions(),
                           lambda sql: "does not parse" if sql in bad_sql else None)
    report = result.report
    out = {x.id: x for x in result.examples}

    assert out[e[0].id].human_validated and out[e[0].id].quality_ratings == {
        "diagnostic_quality": 4.5, "query_relevance": 4.0}
    assert out[e[0].id].diagnostic_query == better_sql
    assert out[e[0].id].corrections == {"diagnostic_query": e[0].diagnostic_query}
    assert out[e[0].id].query_issues == ["missing_filters", "wrong_aggregation"]  # each ticked by half or more
    assert out[e[1].id].root_cause == fix and out[e[1].id].corrections == {"root_cause": e[1].root_cause}
    assert out[e[1].id].expert_notes.endswith("trace 42 shows pool waits") and out[e[1].id].human_validated
    assert out[e[1].id].diagnostic_query == e[1].diagnostic_query  # the improved query did not parse
    assert report.held == [e[2].id] and out[e[2].id].root_cause == e[2].root_cause
    assert e[2].human_validated and not out[e[2].id].human_validated  # under review: the disagreement stands
    assert e[3].id not in out and report.dropped == [e[3].id]
    assert out[e[5].id].root_cause == fix  # the ground-truth annotation decided
    assert out[e[6].id] == e[6] and out[e[7].id] == e[7]

    assert report.annotations_read == 17
    assert report.annotations_read == (report.annotations_merged_from + report.annotations_rejected
                                       + report.annotations_skipped)
    assert (report.annotations_rejected, report.annotations_skipped) == (3, 1)
    reasons = [(p.task_id, p.reason.split(":")[0]) for p in report.problems]
    assert reasons == [
        (5, "does not fit the labeling config"),
        (99, "task is not one of this dataset's examples (rcatune_id='not-in-dataset'); was it imported by hand "
             "or from other data?"),
        (7, f"example {e[6].id} changed since it was pushed; push it again to review the new version"),
        (12, "improved query does not parse")]
    assert [(f.task_id, f.held, f.decided_by.value) for f in report.flagged] == [
        (11, False, "sole_proposal"), (3, True, "pending"), (6, False, "ground_truth")]
    assert report.decisions == {"root_cause": {"agreement": 3, "pending": 1, "ground_truth": 1},
                                "query_quality": {"sole_proposal": 1, "single_review": 1}}
    assert report.human_validated_out == sum(x.human_validated for x in result.examples)
    assert (report.validated, report.root_causes_corrected, report.queries_improved) == (3, 2, 1)
    assert report.examples_out == 7 and report.unreviewed == 2  # e[4], e[6] (stale)
    assert report.never_pushed == 1  # e[7]: a task in no project

    # hand calculation, validation: units (c,c) (i,i) (c,i) (i,i) (c,i)
    # percent agreement 3/5; coincidences o_cc=2, o_ii=4, o_ci=o_ic=2: n_c=4, n_i=6, n=10
    # alpha = 1 - (n-1) * D_o / D_e = 1 - 9 * 4 / (2 * 4 * 6) = 0.25
    validation = report.agreement["root_cause"]["validation"]
    assert validation["units"] == 5 and validation["percent_agreement"] == pytest.approx(0.6)
    assert validation["alpha"] == pytest.approx(0.25) and validation["meets_target"] is False
    quality = report.agreement["root_cause"]["diagnostic_quality"]
    assert quality["units"] == 1 and quality["alpha"] == 0.0  # one pair (4, 5): 1 - (2 - 1) * 2 / 2


def test_a_corrected_root_cause_moves_the_label_it_is_scored_against(examples):
    from rcatune.evaluation.catalog import FaultCatalog

    e = examples
    catalog = FaultCatalog.builtin()
    fix = "The ad service burns CPU in busy threads (adHighCpu), which slows every ad request."
    original = next(x for x in e if x.scenario not in ("adHighCpu", "none"))
    tasks = [exported(original, "root_cause", 1, (1, [choice("validation", "incorrect"),
                                                      text("correct_root_cause", fix)]))]
    specs = {"root_cause": LabelSpec.parse(label_config("root_cause"))}
    result = merge_reviews([original], {"root_cause": tasks}, specs, MergeOptions(),
                           relabel=lambda cause: catalog.infer([cause])[0].label)
    [merged] = result.examples
    assert merged.root_cause == fix and merged.scenario == "adHighCpu"
    assert merged.corrections["scenario"] == original.scenario and result.report.labels_reinferred == 1
    from rcatune.evaluation.catalog import reference_label

    assert reference_label(merged, catalog).how == "re-inferred after review"


def test_merge_can_keep_or_drop_unreviewed_and_merge_flagged_majorities(examples):
    e = examples
    three = exported(e[0], "root_cause", 1, (1, [choice("validation", "correct")]),
                     (2, [choice("validation", "correct")]), (3, [choice("validation", "incorrect")]))
    specs = {"root_cause": LabelSpec.parse(label_config("root_cause"))}
    held = merge_reviews(e[:3], {"root_cause": [three]}, specs, MergeOptions())
    assert held.report.held == [e[0].id] and not held.examples[0].human_validated
    merged = merge_reviews(e[:3], {"root_cause": [three]}, specs, MergeOptions(merge_flagged=True,
                                                                              drop_unreviewed=True))
    assert [x.id for x in merged.examples] == [e[0].id] and merged.examples[0].human_validated
    assert merged.report.unreviewed_dropped == 2 and merged.report.flagged[0].held is False
    waiting = merge_reviews(e[:3], {"root_cause": [three]}, specs, MergeOptions(min_annotations=4))
    assert (waiting.report.unreviewed, waiting.report.never_pushed) == (1, 2) and waiting.examples == e[:3]


def test_pipeline_annotation_needs_a_review_tool():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rcatune.config import register_configs
    from rcatune.errors import ConfigError
    from tests.conftest import ROOT

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = OmegaConf.to_object(compose("config", overrides=["pipeline=annotation"]))
        assert cfg.annotation.enabled and cfg.annotation.action.value == "push"
        assert cfg.annotation.templates == ["root_cause", "query_quality"]
        from rcatune import runner

        runner.load_pipelines("pipelines")
        unreviewed = OmegaConf.to_object(compose("config", overrides=["pipeline=annotation", "annotation=none"]))
        with pytest.raises(ConfigError, match="add annotation=label_studio"):  # refused before anything starts
            runner.definition_for(unreviewed).check(unreviewed)
        with pytest.raises(ConfigError, match="annotation.templates"):
            OmegaConf.to_object(compose("config", overrides=["annotation=label_studio",
                                                             "annotation.templates=[nope]"]))
