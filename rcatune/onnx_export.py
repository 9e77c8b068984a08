"""ONNX export of a merged model (`export.onnx=true`), checked against PyTorch before it is called done.

The graph comes from `torch.onnx.export(dynamo=True)` (optimum's exporter does not resolve with our
transformers). It takes `input_ids`, `attention_mask`, `position_ids`, `logits_positions` (which positions'
logits to compute: all of them to score a text, the last one to decode, as transformers' `logits_to_keep`)
and, where the model's cache exports, one `past.N.key` / `past.N.value` pair per layer, and returns those
`logits` and the grown cache as `present.N.key` / `present.N.value`; batch, length, cache length and the
number of positions kept are dynamic. Where the cache does not export, the graph takes the ids alone and says
why in `rcatune_onnx.json`; generation then runs the whole sequence each step.

`OnnxCausalLM` runs that graph in onnxruntime behind the call the inference layer's greedy loop makes
(`Generator._greedy`), so the parity check decodes the probe session through the same loop with each
engine and compares the tokens, and the benches time one forward against the other.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rcatune.errors import RcatuneError

FOLDER = "onnx"
GRAPH = "model.onnx"
DESCRIPTION = "rcatune_onnx.json"
# what the parity check allows between PyTorch's and onnxruntime's logits (float32; measured: about 2e-6)
LOGIT_TOLERANCE = 1e-3
# the files of the merged folder an ONNX folder carries beside its graph (tokenizer, configs, signature, terms)
_CARRIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "chat_template.jinja", "rcatune_signature.json", "rcatune_model.json",
            "NOTICE", "GEMMA_TERMS.html")


class OnnxExportError(RcatuneError):
    """The merged model did not export, or the export does not match PyTorch."""


def _cache_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return past, [name.replace("past.", "present.") for name in past]


def _with_cache(model):
    """The model as a function of flat tensors: ids, mask, positions and one key and value per layer."""
    import torch
    from transformers import DynamicCache

    class WithCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, logits_positions, past):
            cache = DynamicCache(config=self.model.config)
            for layer in range(len(past) // 2):
                cache.update(past[2 * layer], past[2 * layer + 1], layer)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache, use_cache=True, logits_to_keep=logits_positions)
            grown = [tensor for layer in out["cache"].layers for tensor in (layer.keys, layer.values)]
            return (out.logits, *grown)

    return WithCache()


def _without_cache(model):
    import torch

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, logits_positions):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              use_cache=False, logits_to_keep=logits_positions).logits

    return Plain()


def _kv_shape(model) -> tuple[int, int]:
    config = model.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return int(heads), int(head_dim)


def _export(model, path: Path, with_cache: bool) -> None:
    import torch
    from torch.export import Dim

    batch, length, past_length, total = Dim("batch"), Dim("sequence"), Dim("past_sequence"), Dim("total_sequence")
    kept = Dim("kept_positions")
    # a sample with a cache of 3, 5 new tokens per row and the logits of the last 4: no dimension is 0 or 1 and
    # no two are equal, so none is specialised or tied to another
    ids = torch.randint(3, min(100, model.config.vocab_size), (2, 5))
    positions = torch.arange(3, 8)[None].expand(2, 5)
    keep = torch.arange(1, 5)
    names = ["input_ids", "attention_mask", "position_ids", "logits_positions"]
    if with_cache:
        layers, (heads, head_dim) = int(model.config.num_hidden_layers), _kv_shape(model)
        past = tuple(torch.zeros(2, heads, 3, head_dim) for _ in range(2 * layers))
        past_names, present_names = _cache_names(layers)
        args = (ids, torch.ones(2, 8, dtype=torch.long), positions, keep, past)
        shapes = ({0: batch, 1: length}, {0: batch, 1: total}, {0: batch, 1: length}, {0: kept},
                  tuple({0: batch, 2: past_length} for _ in past))
        module, inputs, outputs = _with_cache(model), names + past_names, ["logits", *present_names]
    else:
        args = (ids, torch.ones(2, 5, dtype=torch.long), positions - 3, keep)
        shapes = ({0: batch, 1: length}, {0: batch, 1: length}, {0: batch, 1: length}, {0: kept})
        module, inputs, outputs = _without_cache(model), names, ["logits"]
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), dynamo=True, input_names=inputs, output_names=outputs,
                          dynamic_shapes=shapes, optimize=True, external_data=True)


@dataclass
class Cache:
    """What `OnnxCausalLM` hands back as the model's cache: the grown keys and values, or the ids so far."""

    tensors: Optional[list[Any]] = None
    ids: Optional[Any] = None


class _Output(dict):
    @property
    def logits(self):
        return self["logits"]


class OnnxCausalLM:
    """An exported graph in onnxruntime, called as the greedy loop calls a transformers model."""

    def __init__(self, folder: Path | str, threads: int = 0) -> None:
        import onnxruntime
        import torch
        from transformers import AutoConfig, GenerationConfig

        folder = Path(folder)
        self.description = json.loads((folder / DESCRIPTION).read_text(encoding="utf-8"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(folder / GRAPH), options,
                                                    providers=["CPUExecutionProvider"])
        self.config = AutoConfig.from_pretrained(folder)
        self.config.use_cache = True  # training may have switched it off; this graph decodes from its cache
        self.generation_config = GenerationConfig.from_pretrained(folder)
        self.device = torch.device("cpu")
        self.with_cache = bool(self.description["kv_cache"])
        self._past = [i.name for i in self.session.get_inputs() if i.name.startswith("past.")]
        self._heads, self._head_dim = _kv_shape(self)

    def eval(self) -> "OnnxCausalLM":
        return self

    def generate(self, *_: Any, **__: Any):
        raise OnnxExportError("the ONNX engine decodes greedily without stop sequences (the inference layer's own "
                              "loop); sample or stop on strings with the PyTorch model")

    def __call__(self, input_ids, attention_mask, position_ids, cache: Optional[Cache] = None,
                 use_cache: bool = True, logits_to_keep: int = 0, **_: Any) -> _Output:
        import numpy as np
        import torch

        if not self.with_cache and cache is not None and cache.ids is not None:
            input_ids = torch.cat([cache.ids, input_ids], dim=1)
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        length = input_ids.shape[1]
        keep = np.arange(length - logits_to_keep if 0 < logits_to_keep <= length else 0, length, dtype=np.int64)
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
                 "position_ids": position_ids.numpy(), "logits_positions": keep}
        if not self.with_cache:
            (logits,) = self.session.run(["logits"], feeds)
            kept = Cache(ids=input_ids)
        else:
            if cache is None:
                empty = np.zeros((input_ids.shape[0], self._heads, 0, self._head_dim), dtype=np.float32)
                feeds.update((name, empty) for name in self._past)
            else:
                feeds.update(zip(self._past, cache.tensors, strict=True))
            logits, *grown = self.session.run(None, feeds)
            kept = Cache(tensors=grown)
        return _Output(logits=torch.from_numpy(np.ascontiguousarray(logits)), cache=kept)


def find_export(folder: Path | str) -> tuple[Path, Path]:
    """(merged folder, ONNX folder) of an export, from either of them or from the trained model of the same run
    (RUN_DIR/training/model, which a registry version points at): serving.engine=onnx serves both."""
    from rcatune import constants
    from rcatune.errors import ConfigError

    folder = Path(folder)
    for export in (folder.parent, folder.parent.parent / constants.EXPORT_DIR):
        if (export / FOLDER / DESCRIPTION).exists() and (export / "merged" / "config.json").exists():
            return export / "merged", export / FOLDER
    raise ConfigError(f"{folder} has no ONNX export beside it (EXPORT/{FOLDER}/{DESCRIPTION} and EXPORT/merged): "
                      "train or export it with export.onnx=true, or serve it with engine=transformers")


def export_onnx(merged: Path | str, out: Path | str, probe_tokens: int = 64) -> dict[str, Any]:
    """Export the merged folder's model to `out` (with its cache where it exports), copy what loading it needs,
    and check it against PyTorch: logits on the probe session and a padded batch, then the greedy answer to the
    probe session token by token. Writes `rcatune_onnx.json`; raises when the export does not match."""
    import torch
    from transformers import AutoModelForCausalLM

    merged, out = Path(merged), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    started = time.perf_counter()
    description: dict[str, Any] = {"graph": GRAPH, "kv_cache": True, "without_cache_because": None,
                                   "opset": None, "torch": torch.__version__}
    try:
        _export(model, out / GRAPH, with_cache=True)
    except Exception as error:  # noqa: BLE001 - any exporter failure: fall back to the graph without the cache
        description.update(kv_cache=False, without_cache_because=f"{type(error).__name__}: {str(error)[:500]}")
        for stale in out.glob(f"{GRAPH}*"):
            stale.unlink()
        try:
            _export(model, out / GRAPH, with_cache=False)
        except Exception as again:  # noqa: BLE001
            raise OnnxExportError(f"{merged} did not export to ONNX: {type(again).__name__}: {again}") from again
    description["export_seconds"] = round(time.perf_counter() - started, 2)
    for name in _CARRIED:
        if (merged / name).exists():
            shutil.copy2(merged / name, out / name)
    description["bytes"] = sum(p.stat().st_size for p in out.glob(f"{GRAPH}*"))
    description["opset"] = _opset(out / GRAPH)
    (out / DESCRIPTION).write_text(json.dumps(description, indent=1), encoding="utf-8")
    description["parity"] = parity(model, merged, out, probe_tokens)
    (out / DESCRIPTION).write_text(json.dumps(description, indent=1), encoding="utf-8")
    if not description["parity"]["passed"]:
        raise OnnxExportError(f"the ONNX export in {out} does not match PyTorch: {description['parity']}")
    return description


def _opset(path: Path) -> Optional[int]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)


def parity(model, merged: Path, onnx_folder: Path, probe_tokens: int) -> dict[str, Any]:
    """Logits of PyTorch and onnxruntime on the probe session and on a left-padded batch (the probe beside a
    shorter conversation), and the greedy answer to the probe through the same loop on each engine."""
    import torch

    from rcatune.inference import GenerationSettings, Generator, LoadedModel, session_messages
    from rcatune.inference.loading import folder_tokenizer
    from rcatune.inference.signature import PromptSignature, probe_example
    from rcatune.runtime import Runtime

    runtime = Runtime(device="cpu", progress=False)
    tokenizer = folder_tokenizer(merged)
    signature = PromptSignature.read(merged)
    probe = session_messages(probe_example(), signature.system_prompt if signature else "")
    short = [probe[0], {"role": "user", "content": "checkout errors at 31%; what failed?"}]
    engines = {"pytorch": Generator(LoadedModel(model, tokenizer, "pytorch", signature, runtime)),
               "onnxruntime": Generator(LoadedModel(OnnxCausalLM(onnx_folder), tokenizer, "onnx", signature,
                                                    runtime))}
    logits = {}
    for name, generator in engines.items():
        inputs = generator._inputs([probe, short])
        with torch.no_grad():
            logits[name] = generator.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                           position_ids=(inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0),
                                           use_cache=True).logits
    real = inputs["attention_mask"].bool()
    difference = float((logits["pytorch"] - logits["onnxruntime"]).abs()[real].max())
    settings = GenerationSettings(max_new_tokens=probe_tokens)
    answers = {name: generator.complete([probe], settings)[0] for name, generator in engines.items()}
    same = answers["pytorch"].token_ids == answers["onnxruntime"].token_ids
    return {"passed": difference <= LOGIT_TOLERANCE and same, "max_logit_difference": difference,
            "logit_tolerance": LOGIT_TOLERANCE, "greedy_tokens_equal": same,
            "greedy_tokens": len(answers["pytorch"].token_ids),
            "probe_answer": answers["onnxruntime"].text[:200]}


__all__ = ["DESCRIPTION", "FOLDER", "GRAPH", "OnnxCausalLM", "OnnxExportError", "export_onnx", "find_export",
           "parity"]
