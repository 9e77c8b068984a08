"""Export a trained model for serving: adapter, merged weights, tokenizer, model card, quantised copy.

Adapters are merged into the base loaded in full precision (for QLoRA too: never into 4-bit
weights). The merged folder loads with plain `transformers` and nothing from rcatune.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from rcatune.config.schema import ModelConfig, Quantisation
from rcatune.models.loading import load_model, resolve_model_path


class ExportResult(BaseModel):
    root: str
    merged: str
    adapter: Optional[str]
    quantised: Optional[str]
    merged_bytes: int
    quantised_bytes: Optional[int]
    size_reduction: Optional[float]  # 1 - quantised / merged


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors"))


def merge(model_cfg: ModelConfig, model_dir: str, is_adapter: bool, out: Path):
    """Full-precision weights with the adapter (if any) folded in, saved with the tokenizer."""
    from transformers import AutoTokenizer, GenerationConfig

    if is_adapter:
        from peft import PeftModel

        base = load_model(model_cfg, None, resolve_model_path(model_cfg), on_gpu=False)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    else:
        model = load_model(model_cfg, None, model_dir, on_gpu=False)
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


def model_card(facts: dict[str, Any]) -> str:
    metrics = facts.get("metrics", {})
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in metrics.items() if isinstance(v, (int, float)))
    return f"""# {facts['name']}

Fine-tuned by rcatune to find root causes of incidents from OpenTelemetry diagnostic sessions:
given symptoms, affected services and a telemetry summary, it answers with the root cause, a ClickHouse
query over the OpenTelemetry exporter tables, the critical paths and remediation steps.

- Base model: `{facts['base_model']}`; method: {facts['method']}
- Data: {facts.get('data_source', 'unknown')} (data hash `{facts.get('data_hash', 'unknown')}`)
- Code: commit `{facts.get('git_commit', 'unknown')}`
- Gate: {facts.get('gate', 'not evaluated')}; stage: {facts.get('stage', 'none')}

## Evaluation (held-out incidents)

| metric | value |
|---|---:|
{rows}

## Intended use and limits

A diagnostic aid for on-call engineers: its answers are hypotheses to confirm with the query it
proposes, not actions to take blindly. It knows only the systems and faults in its training data;
outside them it will still answer confidently. Prompts must use the rcatune prompt format
(`rcatune.prompts.render`) and the chat template saved with the tokenizer.

## Load

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{facts['merged_dir']}")
tokenizer = AutoTokenizer.from_pretrained("{facts['merged_dir']}")
```
"""


def export_model(model_cfg: ModelConfig, model_dir: str, is_adapter: bool, out: Path, quantisation: Quantisation,
                 facts: dict[str, Any]) -> ExportResult:
    """Write the serving bundle under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    adapter = None
    if is_adapter:
        adapter = out / "adapter"
        shutil.copytree(model_dir, adapter, dirs_exist_ok=True)
    merged = out / "merged"
    merge(model_cfg, model_dir, is_adapter, merged)
    quantised = quantise(merged, quantisation, out / f"quantised-{quantisation.value}")
    merged_bytes = folder_bytes(merged)
    quantised_bytes = folder_bytes(quantised) if quantised else None
    card = model_card({**facts, "merged_dir": str(merged)})
    for folder in (merged, out):
        (folder / "README.md").write_text(card, encoding="utf-8")
    result = ExportResult(root=str(out), merged=str(merged), adapter=str(adapter) if adapter else None,
                          quantised=str(quantised) if quantised else None, merged_bytes=merged_bytes,
                          quantised_bytes=quantised_bytes,
                          size_reduction=1 - quantised_bytes / merged_bytes if quantised_bytes else None)
    (out / "export.json").write_text(json.dumps(result.model_dump(), indent=1), encoding="utf-8")
    return result
