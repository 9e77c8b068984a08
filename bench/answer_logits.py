"""The weighted loss's training step with the output layer on the answer's positions only
(`logits_to_keep=answer_positions(labels)`, what rcatune does) against every position's logits (what it
did before, and what a plain causal-LM loss does), on the same model, batch and weights. Each contender runs
in a fresh process (its own peak memory), interleaved (A B A B ...).

    python bench/answer_logits.py [--smoke] [--repeats 2]

Shapes: the default tiny model (its vocabulary: 8,192 tokens since the English words; the figures in
bench/NOTES.md were measured at 4,096) and the same body under Llama 3's 128,256-token vocabulary, where
the output layer dwarfs the rest. Figures per run: median seconds of a training step (forward, backward,
optimizer) over the measured steps, peak RSS, and the step's loss, which must agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS,
    interleave,
    markdown_table,
    medians,
    peak_rss_mb,
    ratios,
    run_worker,
    tiny_inputs,
    write,
)

CONTENDERS = ["answer_logits", "all_logits"]
KEYS = ["step_seconds", "peak_rss_mb", "loss"]


def shapes(smoke: bool) -> dict[str, dict]:
    from rcatune.config.model import TinyModelConfig

    default = TinyModelConfig()  # its tokenizer's ids must fit the model's vocabulary
    tiny = {"hidden": default.hidden_size, "intermediate": default.intermediate_size, "layers": default.num_layers,
            "vocab": default.vocab_size}
    if smoke:
        return {"tiny": {**tiny, "batch": 2, "sessions": 2, "steps": 2}}
    return {"tiny": {**tiny, "batch": 8, "sessions": 8, "steps": 6},
            "llama3-vocab": {**tiny, "vocab": 128256, "batch": 8, "sessions": 8, "steps": 4}}


def worker(name: str, spec: dict) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
    from rcatune.schema import TrainingExample
    from rcatune.training.data import PadCollator, answer_positions, tokenize, weighted_loss

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    rows = [TrainingExample.model_validate_json(line) for line in Path(spec["data"]).read_text().splitlines()]
    features = tokenize(rows[:spec["sessions"]], tokenizer, DEFAULT_SYSTEM_PROMPT, 1024, root_cause_weight=15,
                        lead_weight=30).features
    batch = PadCollator(tokenizer.pad_token_id)(features[:spec["batch"]])
    labels, weights = batch.pop("labels"), batch.pop("loss_weights")
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=spec["vocab"], hidden_size=spec["hidden"], intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["layers"], num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
        max_position_embeddings=2048))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    kept = answer_positions(labels)

    def step() -> float:
        if name == "answer_logits":
            loss = weighted_loss(model(**batch, logits_to_keep=kept).logits, labels, weights, kept)
        else:
            loss = weighted_loss(model(**batch).logits, labels, weights)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss)

    first = step()  # warm-up, and the loss both contenders must agree on (same weights, same batch)
    times = []
    for _ in range(spec["steps"]):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    print(json.dumps({"step_seconds": round(statistics.median(times), 4), "peak_rss_mb": peak_rss_mb(),
                      "loss": round(first, 5), "tokens": int(batch["attention_mask"].sum()),
                      "answer_share": round(float(kept.sum() / batch["attention_mask"].sum()), 3)}))


def prepare(work: Path) -> dict:
    data, model_dir = tiny_inputs(work, 8, seed=11)
    return {"data": str(data), "tokenizer": str(model_dir)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one small shape, one round (CI)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 2; 1 with --smoke)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, json.loads(args.spec))
        return {}
    repeats = args.repeats or (1 if args.smoke else 2)
    work = args.out / ("answer_logits_smoke.work" if args.smoke else "answer_logits.work")
    work.mkdir(parents=True, exist_ok=True)
    inputs = prepare(work)
    result: dict = {"inputs": {"repeats": repeats, "shapes": shapes(args.smoke)}, "shapes": {}}
    table = [f"Weighted loss, answer logits only vs every position's (one training step, medians of {repeats})", ""]
    rows = []
    for shape, spec in shapes(args.smoke).items():
        print(f"answer logits: {shape} {spec}", flush=True)

        def measure(name: str, round_: int, spec=spec) -> dict:
            return run_worker(Path(__file__), ["--worker", name, "--spec", json.dumps({**spec, **inputs})],
                              state=work / "state")

        runs = interleave(CONTENDERS, repeats, measure)
        per = medians(runs, KEYS + ["answer_share"])
        speed = ratios({k: {"steps_per_second": 1 / v["step_seconds"]} for k, v in per.items()}, "answer_logits",
                       "steps_per_second")
        memory = ratios(per, "answer_logits", "peak_rss_mb")
        result["shapes"][shape] = {"runs": runs, "medians": per, "speed_ratio": speed, "memory_ratio": memory}
        for name, figures in per.items():
            rows.append([shape, name, figures["step_seconds"], figures["peak_rss_mb"], figures["loss"],
                         figures["answer_share"]])
        rows.append([shape, "ratio", f"{speed['answer_logits/all_logits']}x steps/s",
                     f"{memory['answer_logits/all_logits']}x memory", "", ""])
    result["runs"] = [run for shape in result["shapes"].values() for run in shape["runs"]]
    table += markdown_table(["shape", "contender", "step s", "peak RSS MB", "loss", "answer share of tokens"], rows)
    write("answer_logits_smoke" if args.smoke else "answer_logits", result, table, args.out)
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
