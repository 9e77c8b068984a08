"""Tokenise examples into input ids with labels on the answer tokens only; batch with dynamic padding."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rcatune.errors import DataError
from rcatune.prompts import render, to_messages
from rcatune.schema import TrainingExample

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class TokenizedSet:
    features: list[dict[str, list[int]]]
    truncated: int
    tokens: int  # real (non-padding) tokens
    without_answer: int = 0  # cut so short no answer token was left: not trained on (nothing to learn from)


ROOT_CAUSE_END = "Diagnostic Query:"


def _tokens_before(tokenizer, answer_ids: list[int], complete) -> int:
    """How many of the answer's first tokens come before the one whose decoded prefix first satisfies
    `complete` (all of them when none does); a binary search on decoded prefixes."""
    low, high = 0, len(answer_ids)
    while low < high:
        middle = (low + high) // 2
        if complete(tokenizer.decode(answer_ids[:middle + 1])):
            high = middle
        else:
            low = middle + 1
    return low


def _root_cause_length(tokenizer, answer_ids: list[int]) -> int:
    """How many of the answer's first tokens make up its root-cause section."""
    return _tokens_before(tokenizer, answer_ids, lambda text: ROOT_CAUSE_END in text)


def _lead_length(tokenizer, answer_ids: list[int]) -> int:
    """How many make up its lead: the heading and the root cause's first clause, through the colon that ends
    it (`Root Cause: productCatalogFailure in product-catalog:`, where rcatune's answers name the fault).
    The whole of `answer_ids` when it has no such colon."""
    return min(_tokens_before(tokenizer, answer_ids, lambda text: text.count(":") >= 2) + 1, len(answer_ids))


def tokenize(examples: list[TrainingExample], tokenizer, system_prompt: str, max_length: int,
             root_cause_weight: float = 1.0, lead_weight: float | None = None) -> TokenizedSet:
    """Chat-template each example; labels are the assistant tokens (the `{% generation %}` block).

    With `root_cause_weight` above 1, each feature also carries `loss_weights`: the root-cause section's
    tokens (where the diagnosis is decided) weigh that much, the rest of the answer 1. `lead_weight` gives
    the lead, the clause that names the fault, a weight of its own (None: the root cause's)."""
    lead_weight = root_cause_weight if lead_weight is None else lead_weight
    features, truncated, without_answer = [], 0, 0
    for example in examples:
        encoded = tokenizer.apply_chat_template(
            to_messages(render(example, system_prompt)), tokenize=True, return_dict=True,
            return_assistant_tokens_mask=True)
        ids, mask = list(encoded["input_ids"]), list(encoded["assistant_masks"])
        if not any(mask):
            raise ValueError("the chat template marks no assistant tokens: it needs {% generation %} blocks "
                             "(set model.chat_template to one of rcatune.models.templates.TEMPLATES)")
        if len(ids) > max_length:
            truncated += 1
            ids, mask = ids[:max_length], mask[:max_length]
            if not any(mask):  # the prompt alone fills max_length: no answer token to learn from
                without_answer += 1
                continue
        labels = [token if keep else IGNORE for token, keep in zip(ids, mask, strict=True)]
        feature = {"input_ids": ids, "labels": labels}
        if root_cause_weight != 1.0 or lead_weight != 1.0:
            start = mask.index(1)
            cut = start + _root_cause_length(tokenizer, ids[start:])
            lead = start + _lead_length(tokenizer, ids[start:cut])
            feature["loss_weights"] = [0.0 if not keep else lead_weight if i < lead else
                                       root_cause_weight if i < cut else 1.0 for i, keep in enumerate(mask)]
        features.append(feature)
    if truncated:
        log.warning("%d of %d examples were longer than trainer.max_length=%d and were cut%s", truncated,
                    len(examples), max_length, f"; {without_answer} of them lost their whole answer and are left "
                    "out (raise trainer.max_length to keep them)" if without_answer else "")
    if not features:
        raise DataError(f"no example keeps an answer token within trainer.max_length={max_length}: every prompt "
                        "is longer than that; raise trainer.max_length")
    return TokenizedSet(features, truncated, sum(len(f["input_ids"]) for f in features), without_answer)


class PadCollator:
    """Pad each batch to its own longest row (not to max_length).

    Unpacked rows get an attention mask. Packed rows (`packed=True`, see `training.packing`) get
    position ids that restart per example instead, and their padding forms a segment of its own.
    """

    def __init__(self, pad_token_id: int, packed: bool = False) -> None:
        self.pad_token_id = pad_token_id
        self.packed = packed

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(item["input_ids"]) for item in batch)
        weighted = "loss_weights" in batch[0]
        weights = torch.zeros((len(batch), width), dtype=torch.float)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        extra = torch.zeros((len(batch), width), dtype=torch.long)  # attention mask, or position ids
        for row, item in enumerate(batch):
            length = len(item["input_ids"])
            ids[row, :length] = torch.tensor(item["input_ids"])
            labels[row, :length] = torch.tensor(item["labels"])
            if weighted:
                weights[row, :length] = torch.tensor(item["loss_weights"])
            if self.packed:
                extra[row, :length] = torch.tensor(item.get("position_ids") or list(range(length)))
                extra[row, length:] = torch.arange(width - length)
            else:
                extra[row, :length] = 1
        out = {"input_ids": ids, "labels": labels, ("position_ids" if self.packed else "attention_mask"): extra}
        if weighted:
            out["loss_weights"] = weights
        return out


def erase_prompt_tokens(input_ids, labels, rate: float, fill_id: int, protected, generator=None):
    """Word dropout on the prompt: each prompt token (label IGNORE) that is not in `protected` (a tensor of
    the chat template's special token ids) becomes `fill_id` with probability `rate`; answer tokens are never
    touched. A model that cannot count on every word of a session learns to read the fault off any of its
    signals. `generator`: where the draws come from (None: the global random state)."""
    import torch

    eligible = labels.eq(IGNORE) & ~torch.isin(input_ids, protected.to(input_ids.device))
    drop = eligible & (torch.rand(input_ids.shape, device=input_ids.device, generator=generator) < rate)
    return input_ids.masked_fill(drop, fill_id)


def answer_positions(labels):
    """The positions whose next token is an answer token: the only logits a loss on the answer reads. Most of
    a session is prompt, so projecting only these onto the vocabulary (`logits_to_keep`) saves most of the
    output layer's work, and with a real model's 128k-token vocabulary most of its memory."""
    import torch

    kept = torch.zeros_like(labels, dtype=torch.bool)
    kept[:, :-1] = labels[:, 1:].ne(IGNORE)
    return kept


def answer_losses(logits, labels, kept=None):
    """Each answer token's next-token cross entropy, in row order. `logits` are every position's, (batch, length,
    vocab), or with `kept` (`answer_positions(labels)`) only those positions', (n, vocab) in row order, as a
    model returns them for `logits_to_keep=kept`."""
    import torch

    if kept is None:
        kept = answer_positions(labels)
        logits = logits[kept]
    targets = labels[:, 1:][kept[:, :-1]]
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")


def weighted_loss(logits, labels, weights, kept=None):
    """Next-token cross entropy, each answer token weighted (the mean over the weights); `logits` and `kept` as
    for `answer_losses`."""
    if kept is None:
        kept = answer_positions(labels)
        logits = logits[kept]
    weights = weights[:, 1:][kept[:, :-1]]
    return (answer_losses(logits, labels, kept) * weights).sum() / weights.sum().clamp(min=1e-9)
