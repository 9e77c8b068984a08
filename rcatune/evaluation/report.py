"""The evaluation report: per set (the phrasing shift first) base vs tuned, paired comparisons, label
provenance, the gate, confusion matrices by fault, plots and sample answers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from rcatune.artifacts import GateDecision, ModelScores, SetScores

SHOWN = ("rca_accuracy", "label_coverage", "rca_semantic", "root_cause_f1", "query_parses", "query_valid",
         "critical_path_f1", "remediation_f1", "bleu", "rouge_l", "perplexity", "latency_p50_ms", "latency_p95_ms")
LOWER_IS_BETTER = {"perplexity", "latency_p50_ms", "latency_p95_ms"}
SET_TITLES = {"shift": "Phrasing shift (a phrasing bank never used for training)",
              "test": "Test split (phrased like the training data)", "data": "The data source"}


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


def _provenance(scores: ModelScores) -> str:
    counts = Counter(row["reference_how"] for row in scores.answers)
    parts = ", ".join(f"{n} {how}" for how, n in counts.most_common())
    return (f"Reference faults: {parts}; accuracy counts the {sum(1 for r in scores.answers if 'rca_correct' in r)} "
            f"labelled of {len(scores.answers)} (coverage {scores.metrics.get('label_coverage', 0):.0%}).")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(results: list[SetScores], path: Path) -> Path:
    """Accuracy-type metrics of each set, base vs tuned side by side."""
    plt = _pyplot()
    keys = [k for k in SHOWN if k in results[0].tuned.metrics and k not in LOWER_IS_BETTER]
    figure, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        width = 0.4
        positions = range(len(keys))
        if result.base is not None:
            axis.bar([p - width / 2 for p in positions], [result.base.metrics.get(k, 0) for k in keys], width,
                     label="base")
        axis.bar([p + width / 2 for p in positions], [result.tuned.metrics.get(k, 0) for k in keys], width,
                 label="tuned")
        axis.set_xticks(list(positions), keys, rotation=35, ha="right")
        axis.set_ylim(0, 1.05)
        axis.set_title(SET_TITLES.get(result.name, result.name), fontsize=9)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def confusion(scores: ModelScores) -> tuple[list[str], list[str], list[list[int]]]:
    """(reference labels, predicted labels, counts[reference][predicted]) over the labelled examples."""
    rows = [r for r in scores.answers if r.get("reference_label") is not None]
    references = sorted({r["reference_label"] for r in rows})
    predicted = sorted({r["predicted_label"] for r in rows} | set(references))
    counts = [[sum(1 for r in rows if r["reference_label"] == ref and r["predicted_label"] == pred)
               for pred in predicted] for ref in references]
    return references, predicted, counts


def plot_confusion(scores: ModelScores, title: str, path: Path) -> Optional[Path]:
    references, predicted, counts = confusion(scores)
    if not references:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.0 + 0.45 * len(predicted), 1.0 + 0.4 * len(references)))
    axis.imshow(counts, cmap="Blues")
    axis.set_xticks(range(len(predicted)), predicted, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(len(references)), references, fontsize=7)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            if value:
                axis.text(j, i, str(value), ha="center", va="center", fontsize=7,
                          color="white" if value > max(map(max, counts)) / 2 else "black")
    axis.set_xlabel("predicted fault")
    axis.set_ylabel("reference fault")
    axis.set_title(title, fontsize=9)
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


def _headline(results: list[SetScores]) -> str:
    parts = []
    for result in results:
        accuracy = result.tuned.metrics.get("rca_accuracy")
        base = result.base.metrics.get("rca_accuracy") if result.base else None
        shown = "n/a" if accuracy is None else f"{accuracy:.3f}"
        words = result.baseline.metrics.get("rca_accuracy") if result.baseline else None
        others = ([f"base {base:.3f}"] if base is not None else []) + \
                 ([f"bag-of-words baseline {words:.3f}"] if words is not None else [])
        parts.append(f"{result.name} {shown}" + (f" ({', '.join(others)})" if others else ""))
    return "Root-cause accuracy, headline first: " + "; ".join(parts) + "."


def write_report(folder: Path, results: list[SetScores], decision: GateDecision, history: list[dict[str, float]],
                 title: str, catalog=None) -> Path:
    """report.md with its plots beside it; returns the markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_metrics(results, folder / "metrics.png")
    losses = plot_losses(history, folder / "losses.png")
    sections = [f"# {title}", _headline(results)]
    for result in results:
        tuned = result.tuned
        section = [f"## {SET_TITLES.get(result.name, result.name)}: {int(tuned.metrics['examples'])} incidents",
                   metrics_table(tuned, result.base), _provenance(tuned)]
        if result.comparison is not None:
            section.append(result.comparison.line() + ".")
        if result.versus_baseline is not None and result.baseline is not None:
            section.append(f"Bag-of-words baseline (TF-IDF + logistic regression fitted on the "
                           f"{int(result.baseline.metrics['fitted_on'])} labelled training prompts): "
                           + result.versus_baseline.line() + ".")
        matrix = plot_confusion(tuned, f"tuned, {result.name}: reference vs predicted fault",
                                folder / f"confusion_{result.name}.png")
        if matrix:
            section.append(f"![confusion by fault, {result.name}]({matrix.name})")
        sections.append("\n\n".join(section))
    sections.append(f"## Gate ({results[0].name}): " + ("passed" if decision.passed else "failed") + "\n\n"
                    + "\n".join(f"- {line}" for line in decision.lines()))
    sections.append("![base vs tuned](metrics.png)")
    if losses:
        sections.append("![training curves](losses.png)")
    samples = [f"**{row['id']}** (reference {row.get('reference_label')} [{row.get('reference_how')}], predicted "
               f"{row.get('predicted_label')})\n\n```\n{row['answer'][:1200]}\n```"
               for row in results[0].tuned.answers[:3]]
    sections.append("## Sample answers (tuned, headline set)\n\n" + "\n\n".join(samples))
    if catalog is not None:
        sections.append(f"Fault catalog: {len(catalog.faults)} faults; labels inferred by id, keywords, service and "
                        "MiniLM similarity, `none` for incidents outside the catalog.")
    path = folder / "report.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path
