"""Answers written down as they are generated, so a killed evaluation resumes instead of starting over: each
batch is appended (and synced) to a JSONL journal under the evaluation folder, keyed by a fingerprint of the
model (its logits on a fixed probe: the same weights give the same key, whatever their folder), the generation
settings and the rendered prompt. A rerun takes every answer the journal holds for the same key."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from rcatune.inference import Completion, GenerationSettings, LoadedModel


def fingerprint(loaded: LoadedModel) -> str:
    """A short hash of the model's logits on a fixed probe (one forward pass)."""
    import torch

    ids = torch.arange(1, 17, device=loaded.model.device).unsqueeze(0) % max(loaded.model.config.vocab_size, 2)
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits.float()
    return hashlib.sha256(torch.round(logits * 1e3).to(torch.int64).cpu().numpy().tobytes()).hexdigest()[:16]


class AnswerJournal:
    def __init__(self, path: Optional[Path], model_key: str, settings: GenerationSettings) -> None:
        self.path = path
        self.key = hashlib.sha256(json.dumps([model_key, asdict(settings)], sort_keys=True).encode()).hexdigest()[:16]
        self.known: dict[str, Completion] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # the line a kill cut short
                    continue
                if entry.get("key") == self.key:
                    self.known[entry["prompt"]] = Completion(**entry["completion"])

    @staticmethod
    def prompt_key(prompt: str) -> str:
        return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:24]

    def get(self, prompt: str) -> Optional[Completion]:
        return self.known.get(self.prompt_key(prompt))

    def add(self, prompts: list[str], completions: list[Completion]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for prompt, completion in zip(prompts, completions, strict=True):
                handle.write(json.dumps({"key": self.key, "prompt": self.prompt_key(prompt),
                                         "completion": asdict(completion)}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
