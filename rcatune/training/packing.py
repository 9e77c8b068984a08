"""Sequence packing without cross-contamination.

Several tokenised examples share one row; `position_ids` restart at 0 for each, and no 2D attention
mask is passed, so transformers builds a block-diagonal causal mask from the position ids (for eager
and SDPA attention alike): no token attends across examples. Each example starts with prompt tokens
(label -100), so no loss term spans a boundary either. Padding forms a segment of its own.
"""

from __future__ import annotations


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
            rows.append({"input_ids": [], "labels": [], "position_ids": [],
                         **({"loss_weights": []} if "loss_weights" in feature else {})})
            free.append(max_length)
            slot = len(rows) - 1
        row = rows[slot]
        row["input_ids"] += feature["input_ids"]
        row["labels"] += feature["labels"]
        row["position_ids"] += list(range(length))
        if "loss_weights" in feature:
            row["loss_weights"] += feature["loss_weights"]
        free[slot] -= length
    return rows

