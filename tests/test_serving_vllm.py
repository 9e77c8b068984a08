"""serving.engine=vllm: the command rcatune gives vLLM (everywhere), and a real launch with the template check
where a CUDA GPU and vLLM are present (the gpu tier; vLLM has no CPU wheels)."""

from __future__ import annotations

import json
import shutil

import pytest

from rcatune.config.model import TinyModelConfig
from rcatune.config.serving import ServingConfig
from rcatune.errors import ConfigError
from rcatune.inference import PromptSignature, describe_folder
from rcatune.models import model_path
from rcatune.serving.pool import ModelSource
from rcatune.serving.vllm import build_command

TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)


def _adapter(folder, rank: int):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    describe_folder(folder, TINY, is_adapter=True, method="lora")
    return folder


def test_adapters_become_lora_modules_over_their_base(tmp_path):
    sources = [ModelSource("rcatune-rca-v1", _adapter(tmp_path / "v1", 8)),
               ModelSource("rcatune-rca-v2", _adapter(tmp_path / "v2", 16))]
    command = build_command(sources, ServingConfig(max_batch=4), 8500, ["rcatune-rca"], tmp_path / "t.jinja")
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--model") + 1] == model_path(TINY)
    assert command[command.index("--max-lora-rank") + 1] == "16" and "--enable-lora" in command
    modules = command[command.index("--lora-modules") + 1:]
    assert modules == [f"rcatune-rca-v1={tmp_path / 'v1'}", f"rcatune-rca-v2={tmp_path / 'v2'}"]
    assert command[command.index("--chat-template") + 1] == str(tmp_path / "t.jinja")
    assert command[command.index("--max-num-seqs") + 1] == "4"
    assert not any("token" in part.lower() and "max" not in part.lower() for part in command)  # VLLM_API_KEY env


def test_a_full_model_is_served_alone(tmp_path):
    full = tmp_path / "merged"
    full.mkdir()
    describe_folder(full, TINY, is_adapter=False, method="full")
    command = build_command([ModelSource("m", full)], ServingConfig(), 8500, ["rcatune-rca"], tmp_path / "t.jinja")
    names = command[command.index("--served-model-name") + 1:command.index("--host")]
    assert command[command.index("--model") + 1] == str(full) and names == ["m", "rcatune-rca"]
    with pytest.raises(ConfigError, match="one full model, or adapters over one base"):
        build_command([ModelSource("m", full), ModelSource("a", _adapter(tmp_path / "a", 8))], ServingConfig(),
                      8500, [], tmp_path / "t.jinja")


@pytest.mark.gpu
def test_vllm_serves_with_the_trained_template(tmp_path):
    """Where vLLM and a GPU exist: launch it on the tiny model and check its template against training."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import subprocess
    import sys
    import time

    from rcatune.inference import load_base
    from rcatune.runtime import Runtime

    base = load_base(TINY, Runtime(device="cpu", progress=False))
    folder = tmp_path / "model"
    shutil.copytree(model_path(TINY), folder)
    base.tokenizer.save_pretrained(folder)
    PromptSignature.of(base.tokenizer, "You diagnose.").save(folder)
    describe_folder(folder, TINY, is_adapter=False, method="full")
    log = tmp_path / "vllm.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "rcatune.serving", "--engine", "vllm", "--model",
                                    f"m={folder}", "--port", "8555"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None and "template checked" not in log.read_text():
            time.sleep(2)
        assert "template checked" in log.read_text(), log.read_text()[-3000:]
    finally:
        process.terminate()
