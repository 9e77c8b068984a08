"""Sequence packing without cross-contamination.

Several tokenised examples share one row; `position_ids` restart at 0 for each, and no 2D attention
mask is passed, so transformers builds a block-diagonal causal mask from the position ids (for eager
and SDPA attention alike): no token attends across examples. Each example starts with prompt tokens
(label -100), so no loss term spans a boundary either. Padding forms a segment of its own.
"""

from __future__ import annotations

from rcatune.training.data import IGNORE


def pack(features: list[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """First-fit-decreasing packing of examples into rows of at most `max_length` tokens."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]), reverse=True)
    rows: list[dict[str, list[int]]] = []
    free: list[int] = []
    for index in order:
        feature = features[index]
        length = len(feature["input_ids"])
        slot = next((r for r, space in enumerate(free) if space >= length), None)
        if slot is None:
            rows.append({"input_ids": [], "labels": [], "position_ids": []})
            free.append(max_length)
            slot = len(rows) - 1
        row = rows[slot]
        row["input_ids"] += feature["input_ids"]
        row["labels"] += feature["labels"]
        row["position_ids"] += list(range(length))
        free[slot] -= length
    return rows


class PackedCollator:
    """Pad rows to the batch's longest; padding gets its own positions, hence its own segment."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(item["input_ids"]) for item in batch)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            length = len(item["input_ids"])
            ids[row, :length] = torch.tensor(item["input_ids"])
            labels[row, :length] = torch.tensor(item["labels"])
            own = item.get("position_ids") or list(range(length))
            positions[row, :length] = torch.tensor(own)
            positions[row, length:] = torch.arange(width - length)
        return {"input_ids": ids, "labels": labels, "position_ids": positions}
