"""The evaluation report: a markdown table base vs tuned, the gate decision, sample answers, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rcatune.artifacts import GateDecision, ModelScores

SHOWN = ("rca_accuracy", "rca_semantic", "root_cause_f1", "query_parses", "query_valid", "critical_path_f1",
         "remediation_f1", "bleu", "rouge_l", "perplexity", "latency_p50_ms", "latency_p95_ms")
LOWER_IS_BETTER = {"perplexity", "latency_p50_ms", "latency_p95_ms"}


def metrics_table(tuned: ModelScores, base: Optional[ModelScores]) -> str:
    lines = ["| metric | base | tuned | change |", "|---|---:|---:|---:|"]
    for key in SHOWN:
        if key not in tuned.metrics:
            continue
        value = tuned.metrics[key]
        if base is not None and key in base.metrics:
            before = base.metrics[key]
            lines.append(f"| {key} | {before:.3f} | {value:.3f} | {value - before:+.3f} |")
        else:
            lines.append(f"| {key} | | {value:.3f} | |")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(tuned: ModelScores, base: Optional[ModelScores], path: Path) -> Path:
    plt = _pyplot()
    keys = [k for k in SHOWN if k in tuned.metrics and k not in LOWER_IS_BETTER]
    figure, axis = plt.subplots(figsize=(9, 4))
    width = 0.4
    positions = range(len(keys))
    if base is not None:
        axis.bar([p - width / 2 for p in positions], [base.metrics.get(k, 0) for k in keys], width, label="base")
    axis.bar([p + width / 2 for p in positions], [tuned.metrics[k] for k in keys], width, label="tuned")
    axis.set_xticks(list(positions), keys, rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_title("Base vs tuned on held-out incidents (higher is better)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_losses(history: list[dict[str, float]], path: Path) -> Optional[Path]:
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    if train:
        axis.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        axis.plot(*zip(*evals, strict=True), marker="o", label="validation loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss (answer tokens)")
    axis.set_title("Training curves")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(folder: Path, tuned: ModelScores, base: Optional[ModelScores], decision: GateDecision,
                 history: list[dict[str, float]], title: str) -> Path:
    """report.md with its plots beside it; returns the markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_metrics(tuned, base, folder / "metrics.png")
    losses = plot_losses(history, folder / "losses.png")
    samples = []
    for row in tuned.answers[:3]:
        samples.append(f"**{row['id']}** (scenario {row.get('scenario')}, predicted {row.get('predicted_scenario')})"
                       f"\n\n```\n{row['answer'][:1200]}\n```")
    text = "\n\n".join([
        f"# {title}",
        f"{int(tuned.metrics['examples'])} held-out incidents. Primary metric: {decision.primary_metric}.",
        metrics_table(tuned, base),
        "## Gate: " + ("passed" if decision.passed else "failed") + "\n\n"
        + "\n".join(f"- {r}" for r in decision.lines()),
        "![base vs tuned](metrics.png)",
        "![training curves](losses.png)" if losses else "",
        "## Sample answers (tuned)\n\n" + "\n\n".join(samples),
    ])
    path = folder / "report.md"
    path.write_text(text + "\n", encoding="utf-8")
    return path
