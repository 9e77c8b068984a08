"""What a run prints at the end: a short table and where to look."""

from __future__ import annotations

import json
from pathlib import Path

from rcatune.runinfo import RUN_SUMMARY, RunSummary


def summary_lines(summary: RunSummary, with_error: bool = True) -> list[str]:
    lines = [f"rcatune {summary.pipeline}: {summary.status} in {summary.seconds}s"]
    data = summary.counts.get("data")
    if data:
        lines.append(f"  data        read {data['read']}, accepted {data['accepted']}, rejected {data['rejected']}"
                     + (f" {data['by_reason']}" if data["rejected"] else ""))
    splits = summary.counts.get("splits")
    if splits:
        lines.append("  splits      " + ", ".join(f"{k} {v}" for k, v in splits.items()))
    if summary.data_hash:
        lines.append(f"  data hash   {summary.data_hash[:16]}")
    if summary.scrub:
        from rcatune.scrub import ScrubReport

        scrubbed = ScrubReport.model_validate({k: v for k, v in summary.scrub.items() if k != "warning"})
        lines.append("  scrub       " + scrubbed.lines()[0].removeprefix("scrub: "))
    for key, value in summary.metrics.items():
        lines.append(f"  {key:<11} {value:.4g}")
    lines += _review_lines(summary.review, summary.artifacts)
    lines += _deployment_lines(summary.deployment)
    lines += _ab_lines(summary.ab_test)
    lines += _evaluation_lines(summary.evaluation)
    for key, value in summary.decisions.items():
        if key == "gate_checks":
            from rcatune.artifacts import GateCheck

            lines += [f"    {'ok' if c['passed'] else 'FAILED':<7} {GateCheck(**c).text()}" for c in value]
        elif key == "versus_production":
            from rcatune.stats import PairedComparison

            lines.append(f"  versus      {PairedComparison(**value).line()}")
        else:
            lines.append(f"  {key:<11} {value}")
    if summary.error and with_error:
        lines.append(f"  error       {summary.error}")
    lines.append(f"  outputs     {summary.run_dir}")
    for key, value in summary.artifacts.items():
        lines.append(f"    {key:<18} {value}")
    lines.append(f"  summary     {Path(summary.run_dir) / RUN_SUMMARY}")
    if summary.mlflow:
        lines.append(f"  MLflow      run {summary.mlflow['run_id']} in experiment {summary.mlflow['experiment']}")
        uri = summary.mlflow["tracking_uri"]
        lines.append(f"              UI: {uri}" if uri.startswith(("http://", "https://"))
                     else f"              UI: .venv/bin/mlflow ui --backend-store-uri {uri}")
    if summary.zenml_run and summary.zenml_server:
        lines.append(f"  ZenML       run {summary.zenml_run} on {summary.zenml_server} (its dashboard)")
    elif summary.zenml_run:
        lines.append(f"  ZenML       run {summary.zenml_run}  (make zenml-runs lists the runs)")
    return lines


def _review_lines(review: dict, artifacts: dict) -> list[str]:
    lines = []
    for project in review.get("projects", []):
        lines.append(f"  review      {project['template']}: {project['tasks']} tasks, {project['finished']} reviewed "
                     f"- {project['url']}")
    if "examples_out" in review:
        lines.append(f"  review      {review['examples_out']} examples out, {review['human_validated_out']} of them "
                     f"human-validated ({review['validated']} by this review); {review['root_causes_corrected']} "
                     f"root causes and {review['queries_improved']} queries corrected; "
                     f"{review['annotations_rejected']} of {review['annotations_read']} annotations rejected "
                     f"-> {artifacts.get('annotated_dataset', 'the merged dataset')}")
        waiting = f"{review['unreviewed']} pushed and not yet reviewed"
        if review.get("never_pushed"):
            waiting += f", {review['never_pushed']} never pushed"
        lines.append(f"              {waiting}")
        for template, counts in review.get("decisions", {}).items():
            lines.append(f"              {template} decided by: " + ", ".join(
                f"{k.replace('_', ' ')} {n}" for k, n in counts.items()))
        headline = review.get("agreement", {}).get("root_cause", {}).get("validation", {})
        if headline.get("percent_agreement") is not None:
            alpha = headline.get("alpha")
            lines.append(f"  agreement   {headline['percent_agreement']:.1%} on the validation choice over "
                         f"{headline['units']} tasks (alpha {'n/a' if alpha is None else f'{alpha:.3f}'})")
    return lines


def _ab_lines(report: dict) -> list[str]:
    """An A/B test: what started, or the look: units, the primary effect, guardrails, the decision and its act."""
    if not report:
        return []
    if report.get("action") in ("ab_start", "ab_stop"):
        return [f"  ab test     {report['action']}: {report['experiment']}"
                + (f" (control v{report['control']}, treatment v{report['treatment']}; outcomes in {report['store']})"
                   if report["action"] == "ab_start" else "")]
    analysis = report["analysis"]
    lines = [f"  ab test     {report['experiment']}: control v{report['control']} vs treatment v{report['treatment']}"
             f"{' (SWITCHED OFF)' if report.get('killed') else ''}",
             f"    units     {analysis['units']}, requests {analysis['requests']}, with feedback "
             f"{analysis['with_feedback']}", f"    split     {analysis['srm']['line']}"]
    primary = analysis.get("primary")
    if primary:
        lines.append(f"    primary   {primary['metric']} {primary['control']:.3f} -> {primary['treatment']:.3f}, "
                     f"difference {primary['difference']:+.3f} [{primary['low']:+.3f}, {primary['high']:+.3f}]"
                     f"{' (always valid)' if primary['p_value'] is None else ''}")
    for guard in analysis["guardrails"]:
        lines.append(f"    guardrail {guard['metric']} {guard['control']:.4g} -> {guard['treatment']:.4g}, "
                     f"difference [{guard['low']:.4g}, {guard['high']:.4g}] vs margin {guard['margin']:.4g}")
    if analysis.get("units_still_needed") and analysis["decision"] == "continue":
        lines.append(f"    needed    about {analysis['units_still_needed']} more units per arm")
    lines.append(f"    decision  {analysis['decision']}: {'; '.join(analysis['reasons'])}")
    if report.get("acted"):
        lines.append(f"    done      {report['acted']}")
    return lines


def _deployment_lines(deployment: dict) -> list[str]:
    if not deployment:
        return []
    if "action" not in deployment:  # a status
        shown = {k: v for k, v in deployment.items() if not isinstance(v, dict)}
        lines = ["  deployment  " + ", ".join(f"{k} {v}" for k, v in shown.items())]
        router = deployment.get("router")
        if router:
            lines.append(f"    router    pid {router.get('pid')} on port {router.get('port')} "
                         f"{'running' if router.get('running') else 'NOT RUNNING'}")
        for role in ("active", "previous"):
            if deployment.get(role):
                item = deployment[role]
                where = f"pid {item['pid']} port {item['port']}" if item.get("pid") else item.get("url", "")
                lines.append(f"    {role:<9} v{item['version']} ({item['model']}) {where} at {item['url']} "
                             f"{'answers' if item.get('answers') else 'DOES NOT ANSWER'}")
        return lines
    from rcatune.deploy.records import DeploymentRecord

    record = DeploymentRecord.model_validate(deployment)
    lines = [f"  deployment  {record.line()}"]
    if record.endpoint:
        lines.append(f"    endpoint  {record.endpoint}/v1  (OpenAI API; model \"{record.registry_name}\" or "
                     f"\"{record.model}\")")
    for key in ("switch_seconds", "warm", "image", "revision", "context"):
        if key in record.detail:
            lines.append(f"    {key:<9} {record.detail[key]}")
    if "commands" in record.detail:
        lines += [f"    run       {command}" for command in record.detail["commands"]]
    return lines


KEY_METRICS = ("rca_accuracy", "label_coverage", "rca_semantic", "query_valid", "critical_path_f1", "bleu", "rouge_l",
               "perplexity", "latency_p95_ms")


def _evaluation_lines(evaluation: dict) -> list[str]:
    """Base and tuned per evaluation set, the headline set (the phrasing shift, when there is one) first."""
    sets = evaluation.get("sets") or ({"data": {"tuned": evaluation["tuned"], "base": evaluation.get("base")}}
                                      if evaluation.get("tuned") else {})
    if not sets:
        return []
    names = list(sets)
    header = "".join(f"{(n + (' (headline)' if i == 0 else '')):>24}" for i, n in enumerate(names))
    lines = [f"  evaluation      {header}", "                    " + "        base     tuned" * len(names)]

    def cell(values, key) -> str:
        if not values or key not in values:
            return " " * 10
        value = values[key]
        return f"{value:>10.3f}" if abs(value) < 1e5 else f"{value:>10.3g}"
    for key in KEY_METRICS:
        if key not in sets[names[0]]["tuned"]:
            continue
        cells = "".join(f"    {cell(sets[n].get('base'), key)}{cell(sets[n]['tuned'], key)}" for n in names)
        lines.append(f"    {key:<16}{cells}")
    if any(sets[n].get("words_baseline") for n in names):
        cells = "".join(f"    {' ' * 10}{cell(sets[n].get('words_baseline'), 'rca_accuracy')}" for n in names)
        lines.append(f"    {'bag-of-words':<16}{cells}   (rca_accuracy of TF-IDF + logistic regression, train split)")
    return lines


def print_summary(summary: RunSummary, with_error: bool = True) -> None:
    print("\n".join(summary_lines(summary, with_error)), flush=True)


def print_summary_file(run_dir: Path, with_error: bool = True) -> None:
    """The summary a failed run left (its error is printed once, by the caller, on stderr)."""
    path = run_dir / RUN_SUMMARY
    if path.exists():
        print_summary(RunSummary.model_validate(json.loads(path.read_text(encoding="utf-8"))), with_error)
