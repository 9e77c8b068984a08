"""GPU: LoRA and QLoRA training of an 8B-shaped Llama (random weights, no hub) at sequence length 2048.

    python bench/gpu_qlora.py --out DIR [--steps 8] [--methods lora,qlora]

On any machine with a CUDA GPU (about 40 GB free for LoRA on the 8B shape; QLoRA needs far less). It
needs only torch, transformers and peft (bitsandbytes for QLoRA; without it QLoRA is skipped and the
JSON says so), so it runs on a bare CUDA image from a checkout:

    pip install torch transformers peft bitsandbytes
    PYTHONUNBUFFERED=1 python bench/gpu_qlora.py --out results-gpu

Contenders, interleaved per method:
- rcatune: what `trainer=hf trainer.packing=true` does: sessions packed first-fit-decreasing into
  2048-token rows, position ids restarting per session (no attention across sessions), no padding;
- baseline: plain transformers + peft as a notebook does it: one session per row, padded to 2048.
Both: LoRA r=16 on every linear layer, bf16, gradient checkpointing, batch 1, AdamW.
Session lengths come from `bench/data/session_lengths.json` (the sample sessions, rcatune's prompt
format). Figures: real (non-padding) tokens/s, peak GPU memory, and model FLOPs utilisation with the
6 x parameters x tokens convention (attention and LoRA's cheaper backward not counted).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEQ = 2048
LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=False)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense bf16, SXM figures


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def build_checkpoint(folder: Path) -> None:
    """Random bf16 weights in the Llama 3 8B shape, saved once (QLoRA quantises on load, as from the hub)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").exists():
        return
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**LLAMA3_8B))
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(folder, max_shard_size="5GB")
    del model
    gc.collect()
    torch.cuda.empty_cache()


def rows(mode: str, lengths: list[int], count: int, seed: int = 0) -> list[dict]:
    """Training rows of token ids: packed (rcatune) or padded (baseline)."""
    rng = random.Random(seed)
    sessions = [rng.choice(lengths) for _ in range(count * 4)]
    out = []
    if mode == "baseline":
        for length in sessions[:count]:
            out.append({"real": length, "positions": None, "length": SEQ})
        return out
    free: list[int] = []
    packed: list[list[int]] = []
    for length in sorted(sessions, reverse=True):  # first-fit decreasing, as rcatune.training.packing
        slot = next((i for i, space in enumerate(free) if space >= length), None)
        if slot is None:
            packed.append([])
            free.append(SEQ)
            slot = len(packed) - 1
        packed[slot].append(length)
        free[slot] -= length
    for parts in packed[:count]:
        out.append({"real": sum(parts), "positions": parts, "length": sum(parts)})
    return out


def batch(row: dict, vocab: int, device):
    import torch

    ids = torch.randint(0, vocab, (1, row["length"]), device=device)
    if row["positions"] is None:  # padded: attention mask covers the real tokens only
        mask = torch.zeros(1, row["length"], dtype=torch.long, device=device)
        mask[0, :row["real"]] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    positions = torch.cat([torch.arange(n, device=device) for n in row["positions"]]).unsqueeze(0)
    return {"input_ids": ids, "position_ids": positions, "labels": ids.clone()}


def measure(method: str, mode: str, checkpoint: Path, lengths: list[int], steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    kwargs = {"dtype": torch.bfloat16, "device_map": {"": 0}, "attn_implementation": "sdpa"}
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True,
                                                           bnb_4bit_compute_dtype=torch.bfloat16)
    loaded = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(checkpoint, **kwargs)
    load_seconds = time.perf_counter() - loaded
    if method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    params = sum(p.numel() for p in model.parameters())
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    data = rows(mode, lengths, steps + 2)
    model.train()
    real = 0
    for step, row in enumerate(data):
        if step == 2:  # two warm-up steps, then time
            torch.cuda.synchronize()
            started = time.perf_counter()
            real = 0
        loss = model(**batch(row, LLAMA3_8B["vocab_size"], "cuda")).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        real += row["real"]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    figures = {"method": method, "contender": "rcatune" if mode == "packed" else "baseline",
               "steps": steps, "real_tokens": real, "seconds": round(seconds, 2),
               "tokens_per_second": round(real / seconds, 1),
               "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
               "parameters": params, "load_seconds": round(load_seconds, 1), "loss": round(float(loss), 3)}
    peak = peak_tflops(torch.cuda.get_device_name(0))
    if peak:
        figures["mfu"] = round(6 * 8.03e9 * figures["tokens_per_second"] / (peak * 1e12), 4)
    del model, optimiser
    gc.collect()
    torch.cuda.empty_cache()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--methods", default="lora,qlora")
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/llama3-8b-random"))
    args = parser.parse_args()
    import torch

    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    args.out.mkdir(parents=True, exist_ok=True)
    lengths = json.loads((HERE / "data" / "session_lengths.json").read_text())["lengths"]
    started = time.perf_counter()
    build_checkpoint(args.checkpoint)
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "seq": SEQ,
              "build_seconds": round(time.perf_counter() - started, 1), "runs": [], "skipped": {}}
    for method in args.methods.split(","):
        if method == "qlora":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError as error:
                result["skipped"]["qlora"] = f"bitsandbytes is not installed here ({error})"
                continue
        for mode in ("packed", "padded"):
            figures = measure(method, mode, args.checkpoint, lengths, args.steps)
            print(json.dumps(figures), flush=True)
            result["runs"].append(figures)
    for method in {r["method"] for r in result["runs"]}:
        mine = {r["contender"]: r for r in result["runs"] if r["method"] == method}
        if len(mine) == 2:
            result[f"{method}_rcatune/baseline_tokens_per_second"] = round(
                mine["rcatune"]["tokens_per_second"] / mine["baseline"]["tokens_per_second"], 2)
    (args.out / "gpu_qlora.json").write_text(json.dumps(result, indent=2))
    lines = [f"GPU ({result['device']}, seq {SEQ}, Llama 3 8B shape, random weights)", "",
             "| method | contender | real tokens/s | peak GPU GB | MFU (6N) |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['contender']} | {r['tokens_per_second']:,.0f} | {r['peak_memory_gb']} | "
              f"{r.get('mfu', '-')} |" for r in result["runs"]]
    (args.out / "gpu_qlora.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
