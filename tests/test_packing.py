"""Packed rows give every example exactly the logits it gets alone: no cross-contamination."""

from __future__ import annotations

import pytest

from rcatune.config.model import TinyModelConfig
from rcatune.demo.generator import generate_sessions
from rcatune.models import model_path
from rcatune.models.loading import load_tokenizer
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
from rcatune.schema import TrainingExample
from rcatune.training.data import IGNORE, PadCollator, tokenize
from rcatune.training.packing import pack

TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)


@pytest.fixture(scope="module")
def features():
    tokenizer = load_tokenizer(TINY, model_path(TINY))
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(6, seed=2)]
    return tokenizer, tokenize(examples, tokenizer, DEFAULT_SYSTEM_PROMPT, 1024).features


def test_pack_keeps_every_token_and_respects_the_limit(features):
    _, items = features
    rows = pack(items, max_length=2048)
    assert all(len(r["input_ids"]) <= 2048 for r in rows) and len(rows) < len(items)
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(f["input_ids"]) for f in items)
    assert sum(r["position_ids"].count(0) for r in rows) == len(items)
    for row in rows:  # every packed example starts with unlabelled prompt tokens: no loss spans a boundary
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        assert all(row["labels"][i] == IGNORE for i in starts)


def test_packed_logits_equal_unpacked_logits(features):
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer, items = features
    model = AutoModelForCausalLM.from_pretrained(model_path(TINY)).eval()
    model.config.use_cache = False
    first, second = items[0], items[1]
    batch = PadCollator(tokenizer.pad_token_id, packed=True)([
        {"input_ids": first["input_ids"] + second["input_ids"], "labels": first["labels"] + second["labels"],
         "position_ids": list(range(len(first["input_ids"]))) + list(range(len(second["input_ids"])))},
        {"input_ids": second["input_ids"], "labels": second["labels"]},  # shorter row: padded
    ])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone = model(input_ids=torch.tensor([second["input_ids"]]), use_cache=False).logits
    offset = len(first["input_ids"])
    assert torch.allclose(packed[0, offset:offset + len(second["input_ids"])], alone[0], atol=1e-4)
    assert torch.allclose(packed[1, :len(second["input_ids"])], alone[0], atol=1e-4)
