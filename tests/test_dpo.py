"""objective=dpo and kto (issue 30, section 1): TRL's trainers through rcatune's recipe (and LLaMA-Factory's own
stages), from an SFT model, on the preferences of the train split; what it trains prefers the chosen answers to
the rejected ones more than the SFT model did, on validation pairs it never trained on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rcatune.config import instantiate
from rcatune.config.method import FullMethodConfig, LoraMethodConfig
from rcatune.config.model import ModelConfig
from rcatune.config.objective import DpoObjectiveConfig, KtoObjectiveConfig
from rcatune.demo.generator import generate_sessions
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
from rcatune.schema import TrainingExample
from rcatune.training import TrainingJob
from rcatune.training.hf import HfTrainer
from tests.test_training import CPU, TINY, _trainer, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sessions():
    return [TrainingExample.model_validate(r) for r in generate_sessions(24, seed=61)]


@pytest.fixture(scope="module")
def sft(sessions, tmp_path_factory) -> Path:
    """A tiny SFT model (full fine-tuning), as a registered version's merged export would hold it."""
    result = train(sessions[:16], sessions[16:18], TINY, FullMethodConfig(), _trainer(epochs=3, learning_rate=3e-3),
                   tmp_path_factory.mktemp("sft") / "train")
    return Path(result.model_dir)


def _margins(model_dir: str | Path, examples: list[TrainingExample]) -> list[float]:
    """log p(chosen) - log p(rejected) of each validation pair's answer under the model in `model_dir`."""
    import torch

    from rcatune.inference import load_folder
    from rcatune.preferences import preference_pairs

    loaded = load_folder(model_dir, CPU)
    model, tokenizer = loaded.model, loaded.tokenizer

    def logp(messages, answer: str) -> float:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + answer_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1]
        return float(torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(answer_ids)[:, None]).sum())

    return [logp(p.prompt_messages(), p.chosen) - logp(p.prompt_messages(), p.rejected)
            for p in preference_pairs(examples, DEFAULT_SYSTEM_PROMPT)]


@pytest.mark.parametrize("objective,method", [(DpoObjectiveConfig, FullMethodConfig()),
                                              (DpoObjectiveConfig, LoraMethodConfig(rank=8, alpha=16)),
                                              (KtoObjectiveConfig, FullMethodConfig())],
                         ids=["dpo-full", "dpo-lora", "kto-full"])
def test_preference_tuning_from_the_sft_model_prefers_the_chosen_answers_on_pairs_it_never_saw(
        sft, sessions, tmp_path, objective, method):
    start = ModelConfig(name_or_path=str(sft), family=TINY.family, dtype=TINY.dtype)
    job = TrainingJob(sessions[:16], sessions[16:20], start, instantiate(method), DEFAULT_SYSTEM_PROMPT,
                      tmp_path / "dpo", CPU, objective(start_dir=str(sft), beta=0.1))
    result = HfTrainer(_trainer(epochs=2, learning_rate=5e-4 if method.name == "full" else 5e-3,
                                batch_size=8)).train(job)
    assert math.isfinite(result.metrics["eval_loss"]) and result.metrics["global_steps"] > 0
    assert result.is_adapter == (method.name == "lora")
    held_out = sessions[20:]
    before, after = _margins(sft, held_out), _margins(result.model_dir, held_out)
    gained = sum(a > b for a, b in zip(after, before, strict=True))
    assert sum(after) / len(after) > sum(before) / len(before) and gained > len(before) / 2, (before, after)


def test_dpo_needs_pairs_and_says_where_they_come_from(sft, sessions, tmp_path):
    from rcatune.errors import DataError

    bare = [s.model_copy(update={"false_hypotheses": [], "corrections": None}) for s in sessions[:6]]
    start = ModelConfig(name_or_path=str(sft), family=TINY.family, dtype=TINY.dtype)
    job = TrainingJob(bare[:4], bare[4:], start, instantiate(FullMethodConfig()), DEFAULT_SYSTEM_PROMPT,
                      tmp_path / "dpo", CPU, DpoObjectiveConfig(start_dir=str(sft)))
    with pytest.raises(DataError, match="the train split gives no preference pairs"):
        HfTrainer(_trainer()).train(job)


@pytest.mark.parametrize("objective", [DpoObjectiveConfig], ids=["dpo"])  # kto's keys: test_llama_factory.py
def test_llama_factory_trains_the_same_preferences_with_its_own_stage(cli, sft, sessions, tmp_path, objective):
    from rcatune.config.trainer import LlamaFactoryTrainerConfig
    from rcatune.training.llama_factory import LlamaFactoryTrainer

    start = ModelConfig(name_or_path=str(sft), family=TINY.family, dtype=TINY.dtype)
    objective = objective(start_dir=str(sft), beta=0.1)
    job = TrainingJob(sessions[:16], sessions[16:20], start, instantiate(FullMethodConfig()), DEFAULT_SYSTEM_PROMPT,
                      tmp_path / "lf", CPU, objective)
    result = LlamaFactoryTrainer(LlamaFactoryTrainerConfig(
        epochs=2, batch_size=8, learning_rate=5e-4, max_length=1024, gradient_checkpointing=False,
        warmup_ratio=0.0, logging_steps=1)).train(job)
    written = (tmp_path / "lf" / "llamafactory_train.yaml").read_text()
    kind = objective.name
    assert f"stage: {kind}" in written and "pref_beta: 0.1" in written and f"rcatune_train_{kind}" in written
    assert math.isfinite(result.metrics["eval_loss"])
    before, after = _margins(sft, sessions[20:]), _margins(result.model_dir, sessions[20:])
    assert sum(after) / len(after) > sum(before) / len(before), (before, after)
