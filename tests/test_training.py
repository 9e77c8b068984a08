"""Training on the tiny model: masks, every method, failures before training, metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rcatune.config import instantiate
from rcatune.config.method import (
    FreezeMethodConfig,
    FullMethodConfig,
    LoraMethodConfig,
    QloraMethodConfig,
)
from rcatune.config.model import FamilyConfig, ModelConfig, TinyModelConfig
from rcatune.config.trainer import HfTrainerConfig
from rcatune.demo.faults import FAULTS
from rcatune.demo.generator import generate_sessions
from rcatune.errors import ConfigError
from rcatune.models import model_path
from rcatune.models.loading import load_model, load_tokenizer
from rcatune.models.templates import TEMPLATES
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT, render, to_messages
from rcatune.runtime import Runtime
from rcatune.schema import TrainingExample
from rcatune.training import TrainingJob
from rcatune.training.data import IGNORE, tokenize
from rcatune.training.hf import HfTrainer

FAULTS_BY_ID = {f.id: f for f in FAULTS}
TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)
CPU = Runtime(device="cpu", progress=False)


def train(train_set, val_set, model, method, trainer, out, system_prompt=DEFAULT_SYSTEM_PROMPT):
    return HfTrainer(trainer).train(TrainingJob(train_set, val_set, model, instantiate(method), system_prompt, out,
                                                CPU))


def family(template: str = "chatml", modules=("q_proj",)) -> FamilyConfig:
    return FamilyConfig(name="llama3", chat_template=template, lora_target_modules=list(modules))


@pytest.fixture(scope="module")
def examples():
    return [TrainingExample.model_validate(r) for r in generate_sessions(24, seed=31)]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY, model_path(TINY))


def _trainer(**changes) -> HfTrainerConfig:
    values = dict(learning_rate=2e-3, epochs=1, batch_size=4, gradient_accumulation_steps=1, max_length=1024,
                  gradient_checkpointing=False, logging_steps=1, warmup_ratio=0.0)
    values.update(changes)
    return HfTrainerConfig(**values)


def test_tiny_model_loads_through_from_pretrained(tokenizer):
    from transformers import AutoModelForCausalLM

    path = model_path(TINY)
    assert model_path(TINY) == path, "built once, cached by content"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.vocab_size == len(tokenizer) and model.config.hidden_size == 64
    assert tokenizer.model_max_length == TINY.context_length


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_chat_template_masks_exactly_the_answer(name, tokenizer, examples):
    tokenizer = load_tokenizer(ModelConfig(name_or_path="x", family=family(name)), model_path(TINY))
    [features] = tokenize(examples[:1], tokenizer, DEFAULT_SYSTEM_PROMPT, 4096).features
    answer = [t for t in features["labels"] if t != IGNORE]
    text = tokenizer.decode(answer, skip_special_tokens=True)
    # special tokens in those families' own tokenizers, text in ours
    for marker in ("<|eot_id|>", "<|end|>", "<end_of_turn>"):
        text = text.replace(marker, "")
    assert text.strip() == render(examples[0]).output.strip()
    prompt = tokenizer.apply_chat_template(to_messages(render(examples[0]), with_answer=False), tokenize=False,
                                           add_generation_prompt=True)
    assert render(examples[0]).output not in prompt and DEFAULT_SYSTEM_PROMPT in prompt


def test_truncation_is_counted_and_rows_left_without_an_answer_are_dropped(tokenizer, examples):
    from rcatune.errors import DataError
    from rcatune.inference import session_messages

    prompts = sorted(len(tokenizer.apply_chat_template(session_messages(e, DEFAULT_SYSTEM_PROMPT),
                                                       add_generation_prompt=True, tokenize=True, return_dict=True)
                         ["input_ids"]) for e in examples[:6])
    limit = prompts[2] + 8  # the three shortest prompts keep a few answer tokens, the others none
    result = tokenize(examples[:6], tokenizer, DEFAULT_SYSTEM_PROMPT, max_length=limit, root_cause_weight=15)
    assert result.truncated == 6 and result.without_answer == sum(p + 1 > limit for p in prompts)
    assert len(result.features) == 6 - result.without_answer >= 3
    assert all(len(f["input_ids"]) == limit and any(label != IGNORE for label in f["labels"])
               for f in result.features)
    with pytest.raises(DataError, match="raise trainer.max_length"):
        tokenize(examples[:3], tokenizer, DEFAULT_SYSTEM_PROMPT, max_length=20)


def test_tiny_model_embeddings_start_from_english_word_vectors(tokenizer):
    import dataclasses

    import torch
    from transformers import AutoModelForCausalLM

    def rows(config):
        weight = AutoModelForCausalLM.from_pretrained(model_path(config)).get_input_embeddings().weight
        return torch.nn.functional.normalize(weight.detach(), dim=-1)

    def token(text):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{text!r} is not one token of the test tokenizer"
        return ids[0]

    vectors = rows(TINY)
    error, capital, plural, cart = (vectors[token(t)] for t in (" error", "Error", " errors", " cart"))
    assert error @ capital > 0.99 and error @ plural > 0.8  # case and spacing do not part them; kin are near
    assert error @ cart < 0.3
    plain = dataclasses.replace(TINY, embeddings="random")
    assert model_path(plain) != model_path(TINY)
    assert abs(float(rows(plain)[token(" error")] @ rows(plain)[token("Error")])) < 0.5


@pytest.mark.slow
def test_common_english_words_are_whole_tokens_of_the_default_tokenizer():
    import dataclasses

    from rcatune.models.tiny import build_tokenizer

    words = (" rejected", " abroad", " basket")  # words the generator never writes

    def whole(config):
        tokenizer = build_tokenizer(config)
        return [w for w in words if len(tokenizer.tokenize(w)) == 1]

    default = TinyModelConfig()
    assert whole(default) == list(words)
    assert not whole(dataclasses.replace(default, english_words=0))  # pieces of the sessions' own words


def test_loss_weights_mark_the_root_cause(tokenizer, examples):
    import torch

    from rcatune.training.data import weighted_loss

    plain = tokenize(examples[:2], tokenizer, DEFAULT_SYSTEM_PROMPT, 1024).features[0]
    assert "loss_weights" not in plain
    weighted = tokenize(examples[:2], tokenizer, DEFAULT_SYSTEM_PROMPT, 1024, root_cause_weight=15).features[0]
    start = next(i for i, label in enumerate(plain["labels"]) if label != IGNORE)
    assert weighted["labels"] == plain["labels"] and set(weighted["loss_weights"][:start]) == {0.0}
    heavy = [i for i, w in enumerate(weighted["loss_weights"]) if w == 15]
    assert heavy[0] == start and heavy == list(range(start, heavy[-1] + 1))  # the root cause, from its first token
    assert "Root Cause:" in tokenizer.decode(plain["input_ids"][start:heavy[-1] + 1])
    assert "SELECT" not in tokenizer.decode(plain["input_ids"][start:heavy[-1] + 1])  # it ends at the next heading
    answer = [i for i, label in enumerate(plain["labels"]) if label != IGNORE]
    assert {weighted["loss_weights"][i] for i in answer if i > heavy[-1]} == {1.0}
    # the lead, where the fault is named, can weigh more than the rest of the root cause
    lead = tokenize(examples[:2], tokenizer, DEFAULT_SYSTEM_PROMPT, 1024, root_cause_weight=15,
                    lead_weight=60).features[0]["loss_weights"]
    first = [i for i, w in enumerate(lead) if w == 60]
    assert first == list(range(start, first[-1] + 1)) and lead[first[-1] + 1:heavy[-1] + 1] == [15] * (
        heavy[-1] - first[-1])
    assert tokenizer.decode(plain["input_ids"][start:first[-1] + 1]) == \
        f"Root Cause: {examples[0].scenario} in {FAULTS_BY_ID[examples[0].scenario].service}:"
    # weighted_loss is the weighted mean of the per-token cross entropy over the answer
    ids = torch.tensor([weighted["input_ids"]])
    logits = torch.randn(1, ids.size(1), len(tokenizer))
    labels, weights = torch.tensor([weighted["labels"]]), torch.tensor([weighted["loss_weights"]])
    each = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
    expected = (each * weights[0, 1:]).sum() / weights[0, 1:].sum()
    assert torch.isclose(weighted_loss(logits, labels, weights), expected)


def test_the_weighted_loss_reads_only_the_answers_logits_of_a_real_model(tokenizer, examples):
    import torch

    from rcatune.training.data import PadCollator, answer_positions, weighted_loss

    torch.manual_seed(0)
    model = load_model(TINY, None, model_path(TINY), CPU)
    batch = PadCollator(tokenizer.pad_token_id)(
        tokenize(examples[:3], tokenizer, DEFAULT_SYSTEM_PROMPT, 1024, root_cause_weight=15).features)
    labels, weights = batch.pop("labels"), batch.pop("loss_weights")
    kept = answer_positions(labels)
    assert kept.sum() == (labels[:, 1:] != IGNORE).sum() < batch["attention_mask"].sum() / 2  # mostly prompt
    part = model(**batch, logits_to_keep=kept).logits
    assert part.shape == (int(kept.sum()), len(tokenizer))
    with torch.no_grad():
        whole = weighted_loss(model(**batch).logits, labels, weights)
    assert torch.isclose(weighted_loss(part, labels, weights, kept), whole, atol=1e-5)


def test_the_plain_answer_loss_is_the_models_own_from_the_answers_logits_only(tokenizer, examples, tmp_path):
    """Unweighted training and every evaluation take the answer's logits only (a 262k-token vocabulary made the
    whole sequence's logits most of Gemma's memory) and still give the loss the model's own computes: as a
    mean, and as a sum over the tokens of accumulated batches (num_items_in_batch)."""
    import torch
    from transformers import TrainingArguments

    from rcatune.training.data import PadCollator
    from rcatune.training.hf import trainer_class

    torch.manual_seed(0)
    model = load_model(TINY, None, model_path(TINY), CPU)
    batch = PadCollator(tokenizer.pad_token_id)(tokenize(examples[:3], tokenizer, DEFAULT_SYSTEM_PROMPT,
                                                         1024).features)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], prediction_loss_only=True)
    trainer = trainer_class(weighted=False)(model=model, args=args)
    seen = {}
    original = model.forward

    def forward(*a, **kw):
        seen["kept"] = kw.get("logits_to_keep")
        return original(*a, **kw)

    with torch.no_grad():
        own = model(**batch).loss
        model.forward = forward
        mine = trainer.compute_loss(model, dict(batch))
        assert torch.is_tensor(seen["kept"]) and int(seen["kept"].sum()) == int((batch["labels"] != IGNORE).sum())
        assert torch.isclose(mine, own, atol=1e-5)
        count = torch.tensor(int((batch["labels"][:, 1:] != IGNORE).sum()) * 3)  # as if 3 such batches
        model.forward = original
        accumulated = model(**batch, num_items_in_batch=count).loss
        assert torch.isclose(trainer.compute_loss(model, dict(batch), num_items_in_batch=count), accumulated,
                             atol=1e-5)


def test_a_weighted_loss_reads_the_same_whatever_the_gradient_accumulation(examples, tmp_path):
    """Batches of 4, or 4 batches of 1 accumulated: the same loss (it was 4x, as the Trainer takes a loss
    it is handed for scaled and sums it over the accumulated batches)."""
    losses = {}
    for batch, accumulate in ((4, 1), (1, 4)):
        result = train(examples[:8], examples[8:10], TINY, FullMethodConfig(),
                       _trainer(batch_size=batch, gradient_accumulation_steps=accumulate, root_cause_weight=15,
                                group_by_length=False, learning_rate=1e-3), tmp_path / f"{batch}x{accumulate}")
        losses[accumulate] = result.metrics["train_loss"]
    assert losses[4] == pytest.approx(losses[1], rel=0.02)


def test_prompt_dropout_erases_prompt_tokens_only(tokenizer, examples):
    import torch

    from rcatune.training.data import PadCollator, erase_prompt_tokens

    batch = PadCollator(tokenizer.pad_token_id)(tokenize(examples[:4], tokenizer, DEFAULT_SYSTEM_PROMPT,
                                                         1024).features)
    ids, labels, special = batch["input_ids"], batch["labels"], torch.tensor(tokenizer.all_special_ids)
    torch.manual_seed(0)
    erased = erase_prompt_tokens(ids, labels, 0.3, tokenizer.pad_token_id, special)
    changed = erased != ids
    answer = labels != IGNORE
    assert not changed[answer].any() and torch.equal(erased[answer], ids[answer])
    assert not changed[torch.isin(ids, special)].any()  # the chat template's markers stay
    prompt = ~answer & (ids != tokenizer.pad_token_id) & ~torch.isin(ids, special)
    assert 0.25 < changed[prompt].float().mean() < 0.35 and (erased[changed] == tokenizer.pad_token_id).all()
    assert torch.equal(erase_prompt_tokens(ids, labels, 0.0, tokenizer.pad_token_id, special), ids)
    with pytest.raises(ConfigError, match="trainer.prompt_dropout"):
        _trainer(prompt_dropout=1.0)


@pytest.mark.slow
def test_lora_trains_and_reports_real_token_throughput(examples, tmp_path):
    result = train(examples[:16], examples[16:20], TINY, LoraMethodConfig(rank=4, alpha=8), _trainer(epochs=2),
                   tmp_path)
    assert result.is_adapter and (Path(result.model_dir) / "adapter_config.json").exists()
    assert (Path(result.model_dir) / "tokenizer.json").exists()
    assert (Path(result.model_dir) / "rcatune_signature.json").exists()
    assert (Path(result.model_dir) / "rcatune_model.json").exists()
    metrics = result.metrics
    assert math.isfinite(metrics["eval_loss"]) and metrics["epochs"] == 2
    assert metrics["trainable_parameters"] < metrics["total_parameters"] / 5
    real_tokens = sum(len(f["input_ids"]) for f in tokenize(examples[:16], load_tokenizer(TINY, result.base_model),
                                                            DEFAULT_SYSTEM_PROMPT, 1024).features)
    assert metrics["train_real_tokens"] == 2 * real_tokens
    assert metrics["train_tokens_per_second"] == pytest.approx(2 * real_tokens / metrics["train_seconds"], rel=0.01)
    assert metrics["peak_memory_mb"] > 50
    assert sum(1 for h in result.history if "eval_loss" in h) >= 2
    assert json.loads((tmp_path / "train_metrics.json").read_text())["metrics"] == metrics


@pytest.mark.slow
def test_full_fine_tuning_learns(examples, tmp_path):
    result = train(examples[:16], examples[16:20], TINY, FullMethodConfig(), _trainer(epochs=4, learning_rate=3e-3),
                   tmp_path)
    evals = [h["eval_loss"] for h in result.history if "eval_loss" in h]
    assert not result.is_adapter and (Path(result.model_dir) / "config.json").exists()
    assert result.metrics["trainable_parameters"] == result.metrics["total_parameters"]
    assert all(b <= a for a, b in zip(evals, evals[1:], strict=False)) and evals[-1] < evals[0] - 0.4, evals


@pytest.mark.slow
def test_qlora_trains_4bit_on_cpu(examples, tmp_path):
    result = train(examples[:8], examples[8:10], TINY, QloraMethodConfig(rank=4, alpha=8), _trainer(),
                   tmp_path)
    assert result.is_adapter and math.isfinite(result.metrics["eval_loss"])
    model = load_model(TINY, instantiate(QloraMethodConfig()), result.base_model, CPU)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())


def test_freeze_trains_only_the_last_layers(examples, tmp_path):
    freeze = instantiate(FreezeMethodConfig(trainable_layers=1))
    model = freeze.apply(load_model(TINY, freeze, model_path(TINY), CPU), TINY)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("layers.1." in n for n in trainable)
    with pytest.raises(ConfigError, match="trainable_layers=5 but the model has 2 layers"):
        instantiate(FreezeMethodConfig(trainable_layers=5)).apply(model, TINY)


@pytest.mark.slow
def test_bad_method_settings_fail_before_training(examples, tmp_path):
    with pytest.raises(ConfigError, match=r"LoRA target modules \['c_attn'\] do not exist.*q_proj"):
        train(examples[:4], examples[4:6], TINY, LoraMethodConfig(target_modules=["c_attn"]), _trainer(), tmp_path)
    odd = TinyModelConfig(hidden_size=72, intermediate_size=128, num_layers=1, num_heads=4, vocab_size=1024)
    with pytest.raises(ConfigError, match="hidden_size=72 is not a multiple of 32"):
        load_model(odd, instantiate(QloraMethodConfig()), "unused", CPU)


def test_a_model_that_cannot_be_loaded_says_how_to_point_at_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    llama = ModelConfig(name_or_path="meta-llama/Meta-Llama-3-8B-Instruct", family=family("llama3"))
    with pytest.raises(ConfigError, match="model.name_or_path=/path/to/checkout"):
        load_tokenizer(llama, llama.name_or_path)


@pytest.mark.slow
def test_export_merges_the_adapter_and_reloads_with_plain_transformers(examples, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rcatune.config.method import Quantisation
    from rcatune.export import export_model
    from rcatune.inference import PromptSignature

    trained = train(examples[:8], examples[8:10], TINY, LoraMethodConfig(rank=4, alpha=8), _trainer(),
                    tmp_path / "train")
    result = export_model(trained, tmp_path / "export", Quantisation.int8,
                          {"name": "rca", "base_model": trained.base_model, "method": "lora",
                           "metrics": {"rca_accuracy": 0.5}}, CPU, smoke_tokens=8)
    assert PromptSignature.read(result.merged) == PromptSignature.read(trained.model_dir) is not None
    assert result.smoke["signature_differences"] == [] and result.smoke["completion_tokens"] <= 8
    assert (Path(result.adapter) / "adapter_config.json").exists()
    assert not (Path(result.merged) / "adapter_config.json").exists()
    assert "rca_accuracy | 0.5" in (Path(result.merged) / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(result.merged)
    tokenizer = AutoTokenizer.from_pretrained(result.merged)
    inputs = tokenizer.apply_chat_template(to_messages(render(examples[0]), with_answer=False),
                                           add_generation_prompt=True, return_dict=True, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 5 or output[0, -1] == tokenizer.eos_token_id

    # the merged weights reproduce the adapter model's logits
    import torch
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(trained.base_model)
    adapted = PeftModel.from_pretrained(base, trained.model_dir).eval()
    with torch.no_grad():
        assert torch.allclose(adapted(**inputs).logits, model(**inputs).logits, atol=1e-4)
    assert 0 < result.size_reduction < 1 and result.quantised_bytes < result.merged_bytes


@pytest.mark.slow
def test_packed_training_covers_the_same_tokens_in_fewer_rows(examples, tmp_path):
    result = train(examples[:16], examples[16:20], TINY, FullMethodConfig(),
                   _trainer(packing=True, max_length=2048, epochs=1), tmp_path)
    assert result.metrics["train_rows"] < result.metrics["train_examples"]
    assert math.isfinite(result.metrics["eval_loss"])


# Recorded on this project's CPU machines (torch 2.13.0, one thread). A change in tokenisation, masking,
# collation or optimisation moves these; when such a change is intended, re-record them and say why.
# Re-recorded when the tiny model's embeddings began from MiniLM's word vectors (its first logits are
# larger, so the first steps' loss is higher) and the generator began to show sparse sessions; and again
# when the generator began to write bare tickets and the tokenizer learnt common English words.
GOLDEN = {"train_loss": 6.797283, "eval_loss": 6.065724}


@pytest.mark.slow
def test_golden_loss_after_a_fixed_run(tmp_path):
    """Full fine-tuning of the tiny model for 8 steps on fixed data gives the recorded losses."""
    import torch

    torch.set_num_threads(1)
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(20, seed=3)]
    result = train(examples[:16], examples[16:], TINY, FullMethodConfig(),
                   _trainer(epochs=2, learning_rate=3e-3, seed=42, group_by_length=False), tmp_path)
    assert result.metrics["global_steps"] == 8
    measured = {k: result.metrics[k] for k in GOLDEN}
    print(f"golden losses: {measured}")
    assert measured == pytest.approx(GOLDEN, rel=5e-4)  # flipping the answer-only mask moves it by 0.5%
