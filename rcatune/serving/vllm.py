"""`serving.engine=vllm`: vLLM's own OpenAI server, with the versions as LoRA modules over their base.

vLLM is a GPU engine (its CPU build is source-only), so this is for users with one. Before traffic, the
same template check as rcatune's own server: the trained chat template is passed explicitly, and the
probe session is rendered through vLLM's `/tokenize` and compared with the token ids saved at training;
a difference stops the server and names it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from rcatune.config import load_spec
from rcatune.config.serving import ServingConfig
from rcatune.errors import ConfigError
from rcatune.inference import PromptSignature
from rcatune.inference.loading import read_description
from rcatune.models import model_path
from rcatune.serving.pool import ModelSource, base_name


def build_command(sources: list[ModelSource], config: ServingConfig, port: int, aliases: list[str],
                  template_file: Path) -> list[str]:
    """The vLLM command line: one base (the adapters' shared one, or a single full model) and LoRA modules."""
    adapters = [s for s in sources if (s.folder / "adapter_config.json").exists()]
    full = [s for s in sources if s not in adapters]
    if full and (adapters or len(full) > 1):
        raise ConfigError("serving.engine=vllm serves one full model, or adapters over one base: serve "
                          f"{[s.name for s in full]} from separate servers (or use engine=transformers)")
    if adapters:
        bases = {json.dumps(read_description(s.folder)["base_model"], sort_keys=True) for s in adapters}
        if len(bases) != 1:
            raise ConfigError("serving.engine=vllm: the adapters are over different bases; serve them separately")
        spec = load_spec(json.loads(bases.pop()))
        model, names = model_path(spec), [base_name(spec)]
        ranks = [json.loads((s.folder / "adapter_config.json").read_text())["r"] for s in adapters]
    else:
        model, names, ranks = str(full[0].folder), [full[0].name, *aliases], []
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--served-model-name", *names, "--host", config.host, "--port", str(port),
               "--chat-template", str(template_file), "--max-num-seqs", str(config.max_batch),
               "--max-model-len", str(_context(sources))]
    if adapters:
        command += ["--enable-lora", "--max-lora-rank", str(max(ranks)), "--max-loras", str(len(adapters)),
                    "--lora-modules", *[f"{s.name}={s.folder}" for s in adapters]]
    return command


def _context(sources: list[ModelSource]) -> int:
    description = read_description(sources[0].folder)
    return load_spec(description["base_model"]).context_length if description else 2048


def check_template(url: str, signature: PromptSignature, token: Optional[str]) -> list[str]:
    """What vLLM renders for the probe, compared with what training saw ([] when identical)."""
    import requests

    from rcatune.inference.signature import _messages

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = requests.post(f"{url}/tokenize", json={"messages": _messages(signature.system_prompt, False),
                                                   "add_generation_prompt": True, "add_special_tokens": False},
                          headers=headers, timeout=30)
    reply.raise_for_status()
    served = reply.json()["tokens"]
    if served == signature.probe_prompt_ids:
        return []
    at = next((i for i, (a, b) in enumerate(zip(served, signature.probe_prompt_ids, strict=False)) if a != b),
              min(len(served), len(signature.probe_prompt_ids)))
    return [f"vLLM renders the probe differently from training from token {at} on "
            f"({len(served)} tokens vs trained {len(signature.probe_prompt_ids)})"]


def run_vllm(sources: list[ModelSource], config: ServingConfig, port: int, aliases: list[str],
             token: Optional[str]) -> int:
    """Launch vLLM, check its template against the trained signature, then wait on it."""
    import requests

    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        raise ConfigError("serving.engine=vllm needs vLLM (pip install vllm) on a machine with a CUDA GPU; "
                          "engine=transformers serves anywhere") from None
    if not torch.cuda.is_available():
        raise ConfigError("serving.engine=vllm needs a CUDA GPU; engine=transformers serves on a CPU")
    signature = PromptSignature.read(sources[0].folder)
    if signature is None:
        raise ConfigError(f"{sources[0].folder} has no rcatune_signature.json: cannot check vLLM's template")
    with tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False) as handle:
        handle.write(signature.chat_template)
    env = dict(os.environ, **({"VLLM_API_KEY": token} if token else {}))
    process = subprocess.Popen(build_command(sources, config, port, aliases, Path(handle.name)), env=env)
    url = f"http://{config.host}:{port}"
    deadline = time.monotonic() + config.ready_timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(1)
    else:
        process.terminate()
        raise ConfigError(f"vLLM did not become healthy within {config.ready_timeout_s:.0f} s")
    differences = check_template(url, signature, token)
    if differences:
        process.terminate()
        raise ConfigError("; ".join(differences))
    print(f"rcatune serve: vLLM on {url}/v1, template checked", flush=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopping this process stops vLLM too
    try:
        return process.wait()
    finally:
        process.terminate()
