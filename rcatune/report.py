"""What a run prints at the end: a short table and where to look."""

from __future__ import annotations

import json
from pathlib import Path

from rcatune.runinfo import RUN_SUMMARY, RunSummary


def summary_lines(summary: RunSummary) -> list[str]:
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
    for key, value in summary.metrics.items():
        lines.append(f"  {key:<11} {value:.4g}")
    lines += _review_lines(summary.review)
    lines += _evaluation_lines(summary.evaluation)
    for key, value in summary.decisions.items():
        lines.append(f"  {key:<11} {value}")
    if summary.error:
        lines.append(f"  error       {summary.error}")
    lines.append(f"  outputs     {summary.run_dir}")
    for key, value in summary.artifacts.items():
        lines.append(f"    {key:<18} {value}")
    lines.append(f"  summary     {Path(summary.run_dir) / RUN_SUMMARY}")
    if summary.mlflow:
        lines.append(f"  MLflow      run {summary.mlflow['run_id']} in experiment {summary.mlflow['experiment']}")
        lines.append(f"              UI: .venv/bin/mlflow ui --backend-store-uri {summary.mlflow['tracking_uri']}")
    if summary.zenml_run:
        lines.append(f"  ZenML       run {summary.zenml_run}  (make zenml-runs lists the runs)")
    return lines


def _review_lines(review: dict) -> list[str]:
    lines = []
    for project in review.get("projects", []):
        lines.append(f"  review      {project['template']}: {project['tasks']} tasks, {project['finished']} reviewed "
                     f"- {project['url']}")
    if "examples_out" in review:
        lines.append(f"  review      {review['validated']} validated, {review['root_causes_corrected']} root causes "
                     f"and {review['queries_improved']} queries corrected; {review['annotations_rejected']} of "
                     f"{review['annotations_read']} annotations rejected -> {review['artifact']}")
        headline = review.get("agreement", {}).get("root_cause", {}).get("validation", {})
        if headline.get("percent_agreement") is not None:
            alpha = headline.get("alpha")
            lines.append(f"  agreement   {headline['percent_agreement']:.1%} on the validation choice over "
                         f"{headline['units']} tasks (alpha {'n/a' if alpha is None else f'{alpha:.3f}'})")
    return lines


KEY_METRICS = ("rca_accuracy", "rca_semantic", "query_valid", "critical_path_f1", "bleu", "rouge_l", "perplexity",
               "latency_p95_ms")


def _evaluation_lines(evaluation: dict) -> list[str]:
    tuned, base = evaluation.get("tuned"), evaluation.get("base")
    if not tuned:
        return []
    lines = ["  evaluation            base      tuned"]
    for key in KEY_METRICS:
        if key in tuned:
            before = f"{base[key]:>9.3f}" if base and key in base else " " * 9
            lines.append(f"    {key:<18}{before}  {tuned[key]:>9.3f}")
    return lines


def print_summary(summary: RunSummary) -> None:
    print("\n".join(summary_lines(summary)), flush=True)


def print_summary_file(run_dir: Path) -> None:
    path = run_dir / RUN_SUMMARY
    if path.exists():
        print_summary(RunSummary.model_validate(json.loads(path.read_text(encoding="utf-8"))))
