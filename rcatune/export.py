"""Export a trained model for serving: adapter, merged weights, tokenizer, signature, model card, quantised copy.

Adapters are merged into the base loaded in full precision (for QLoRA too: never into 4-bit
weights). The merged folder loads with plain `transformers` and nothing from rcatune; it also carries
the signature of what training rendered, and the export ends with one diagnosis through the
inference layer (the smoke test).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from rcatune.artifacts import ExportBundle, TrainedModel
from rcatune.config import load_spec
from rcatune.config.method import Quantisation
from rcatune.config.model import ModelConfig
from rcatune.evaluation.baseline import FILE as WORDS_BASELINE_FILE
from rcatune.inference import PromptSignature, describe_folder
from rcatune.lineage import TrainingData
from rcatune.models import model_path
from rcatune.models.loading import load_model
from rcatune.runtime import Runtime

CPU = Runtime(device="cpu", progress=False)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors"))


def merge(model_cfg: ModelConfig, model_dir: str, is_adapter: bool, out: Path):
    """Full-precision weights with the adapter (if any) folded in, saved with the tokenizer."""
    from transformers import AutoTokenizer, GenerationConfig

    if is_adapter:
        from peft import PeftModel

        base = load_model(model_cfg, None, model_path(model_cfg), CPU)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    else:
        model = load_model(model_cfg, None, model_dir, CPU)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model.generation_config = GenerationConfig(
        max_new_tokens=512, do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return model


def quantise(merged: Path, kind: Quantisation, out: Path) -> Optional[Path]:
    """A bitsandbytes-quantised copy of the merged model (int8, nf4 or fp4)."""
    if kind is Quantisation.none:
        return None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_8bit=True) if kind is Quantisation.int8 else BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=kind.value, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(merged, quantization_config=config)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(merged).save_pretrained(out)
    return out


def smoke_test(folder: Path, runtime: Runtime, max_new_tokens: int) -> dict[str, Any]:
    """Load the export through the inference layer, check its signature, diagnose the probe session."""
    from rcatune.inference import GenerationSettings, Generator, diagnose, load_folder
    from rcatune.inference.signature import probe_example

    started = time.perf_counter()
    loaded = load_folder(folder, runtime)
    try:
        differences = loaded.signature.differences(loaded.tokenizer) if loaded.signature else ["no signature"]
        system_prompt = loaded.system_prompt or ""
        [(completion, answer)] = diagnose(Generator(loaded), [probe_example()], system_prompt,
                                          GenerationSettings(max_new_tokens=max_new_tokens))
    finally:
        loaded.release()
    return {"passed": not differences and bool(answer.root_cause), "signature_differences": differences,
            "root_cause": answer.root_cause[:200], "finish_reason": completion.finish_reason,
            "completion_tokens": completion.completion_tokens, "seconds": round(time.perf_counter() - started, 2)}


def carry_licence(model_cfg: ModelConfig, folders: list[Path]) -> list[str]:
    """Copy the base model's licence files (a packaged model's terms and NOTICE) into each folder made from it."""
    from rcatune.models.packaged import licence_files

    base = Path(model_path(model_cfg))
    found = licence_files(base) if base.is_dir() else []
    for folder in folders:
        for file in found:
            shutil.copy2(file, folder / file.name)
    return [file.name for file in found]


def model_card(facts: dict[str, Any]) -> str:
    metrics = facts.get("metrics", {})
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in metrics.items() if isinstance(v, (int, float)))
    licence = (f"- Licence: the base model's terms apply to this model too; read {' and '.join(facts['licence'])}, "
               "which travel with it\n" if facts.get("licence") else "")
    return f"""# {facts['name']}

Fine-tuned by rcatune to find root causes of incidents from OpenTelemetry diagnostic sessions:
given symptoms, affected services and a telemetry summary, it answers with the root cause, a ClickHouse
query over the OpenTelemetry exporter tables, the critical paths and remediation steps.

- Base model: `{facts['base_model']}`; method: {facts['method']}
- Data: {facts.get('data_source', 'unknown')} (data hash `{facts.get('data_hash', 'unknown')}`)
- Code: commit `{facts.get('git_commit', 'unknown')}`
- Gate: {facts.get('gate', 'not evaluated')}; stage: {facts.get('stage', 'none')}
{licence}
## Evaluation (held-out incidents)

| metric | value |
|---|---:|
{rows}

## Intended use and limits

A diagnostic aid for on-call engineers: its answers are hypotheses to confirm with the query it
proposes, not actions to take blindly. It knows only the systems and faults in its training data;
outside them it will still answer confidently. Prompts must use the rcatune prompt format
(`rcatune.prompts.render`), the system prompt and the chat template it was trained with: both are in
`rcatune_signature.json`, with the token ids of a rendered probe to check a serving stack against.

## Load

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{facts['merged_dir']}")
tokenizer = AutoTokenizer.from_pretrained("{facts['merged_dir']}")
```
"""


def export_model(trained: TrainedModel, out: Path, quantisation: Quantisation, facts: dict[str, Any],
                 runtime: Runtime, smoke_tokens: int = 128, onnx: bool = False) -> ExportBundle:
    """Write the serving bundle under `out`, then smoke-test it; with `onnx`, also the ONNX graph of the merged
    model, checked against PyTorch (`rcatune.onnx_export`: it raises when they differ)."""
    model_cfg = load_spec(trained.model_spec)
    out.mkdir(parents=True, exist_ok=True)
    adapter = None
    if trained.is_adapter:
        adapter = out / "adapter"
        shutil.copytree(trained.model_dir, adapter, dirs_exist_ok=True)
    merged = out / "merged"
    merge(model_cfg, trained.model_dir, trained.is_adapter, merged)
    signature = PromptSignature.read(trained.model_dir)
    if signature is not None:
        signature.save(merged)
    training_data = TrainingData.read(trained.model_dir)
    if training_data is not None:
        training_data.save(merged)
    words = Path(trained.model_dir) / WORDS_BASELINE_FILE  # the evaluation's bag-of-words baseline, when fitted
    if words.exists():
        shutil.copy2(words, merged / WORDS_BASELINE_FILE)
    describe_folder(merged, model_cfg, is_adapter=False, method=trained.method)
    quantised = quantise(merged, quantisation, out / f"quantised-{quantisation.value}")
    merged_bytes = folder_bytes(merged)
    quantised_bytes = folder_bytes(quantised) if quantised else None
    licence = carry_licence(model_cfg, [folder for folder in (merged, adapter, quantised) if folder is not None])
    card = model_card({**facts, "merged_dir": str(merged), "licence": licence})
    for folder in (merged, out):
        (folder / "README.md").write_text(card, encoding="utf-8")
    bundle = ExportBundle(root=str(out), merged=str(merged), adapter=str(adapter) if adapter else None,
                          quantised=str(quantised) if quantised else None, merged_bytes=merged_bytes,
                          quantised_bytes=quantised_bytes,
                          size_reduction=1 - quantised_bytes / merged_bytes if quantised_bytes else None)
    bundle.smoke = smoke_test(merged, runtime, smoke_tokens)
    if onnx:
        from rcatune.onnx_export import FOLDER, export_onnx

        bundle.onnx_report = export_onnx(merged, out / FOLDER, probe_tokens=smoke_tokens)
        bundle.onnx = str(out / FOLDER)
    (out / "export.json").write_text(json.dumps(bundle.model_dump(), indent=1), encoding="utf-8")
    return bundle
