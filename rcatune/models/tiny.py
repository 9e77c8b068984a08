"""A tiny Llama-architecture model and tokenizer built from rcatune's own corpus, no hub needed.

The tokenizer is a byte-level BPE trained on rendered sample sessions and the OpenTelemetry Demo
facts, wrapped as a `PreTrainedTokenizerFast` with a ChatML chat template whose assistant turns sit in
a `{% generation %}` block (assistant-only loss masks). Both are saved with `save_pretrained` into a
folder named by a hash of everything that shapes them, and loaded back through the same
`from_pretrained` path a hub id or a local checkout takes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path

from rcatune.config.model import TinyModelConfig
from rcatune.models.templates import TEMPLATES

log = logging.getLogger(__name__)

BUILD_VERSION = "2"  # 2: the corpus has phrasing banks, without the held-out one
CORPUS_SESSIONS = 600
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def build_key(cfg: TinyModelConfig) -> str:
    """Everything that shapes the model and its tokenizer, the corpus text included (a generator change
    builds a new tokenizer rather than reuse a stale one)."""
    shape = {k: getattr(cfg, k) for k in ("hidden_size", "intermediate_size", "num_layers", "num_heads",
                                          "vocab_size", "context_length")}
    text = hashlib.sha256("\x00".join(corpus()).encode()).hexdigest()
    payload = json.dumps({"version": BUILD_VERSION, "shape": shape, "corpus": text}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """Text the tokenizer learns from: rendered sample sessions and the demo facts. Sessions in the held-out
    phrasing bank stay out, so the phrasing-shift split is new wording to the tokenizer too."""
    from rcatune.demo.faults import SHIFT_BANK
    from rcatune.demo.generator import demo_facts, generate_sessions
    from rcatune.prompts import DEFAULT_SYSTEM_PROMPT, render
    from rcatune.schema import TrainingExample

    texts = [DEFAULT_SYSTEM_PROMPT, json.dumps(demo_facts(), ensure_ascii=False)]
    for record in generate_sessions(CORPUS_SESSIONS, seed=1234):
        if record.get("phrasing") == SHIFT_BANK:
            continue
        prompt = render(TrainingExample.model_validate(record))
        texts += [prompt.instruction, prompt.input, prompt.output]
    return tuple(texts)


def build_tokenizer(cfg: TinyModelConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        unk_token="<|endoftext|>", model_max_length=cfg.context_length,
    )
    fast.chat_template = TEMPLATES[cfg.chat_template]
    return fast


def ensure_tiny_model(cfg: TinyModelConfig, cache_root: Path) -> Path:
    """Build (once) and return the folder holding the tiny model and tokenizer."""
    folder = cache_root / f"tiny-llama-{build_key(cfg)}"
    if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
        return folder
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    log.info("building the tiny model in %s", folder)
    tokenizer = build_tokenizer(cfg)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.context_length, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    staging = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(folder)
    return folder
