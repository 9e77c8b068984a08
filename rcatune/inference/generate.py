"""Generate from a loaded model: single or batched, greedy or sampled, stop sequences, token counts.

Prompts are rendered with the model's own chat template (what training saw) and generated together
with left padding. Each completion says why it ended (`stop`: the end-of-turn token or a stop
sequence; `length`: `max_new_tokens` ran out), as the OpenAI API does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

from rcatune.inference.loading import LoadedModel

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length
    seconds: float  # wall time of the generate call that produced it (a batch's time, for each of its rows)
    token_ids: list[int] = field(default_factory=list)


class Generator:
    """Renders conversations with the model's template and generates their answers."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model, self.tokenizer = loaded.model, loaded.tokenizer

    def render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prompt_tokens(self, messages: Messages) -> int:
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def _inputs(self, conversations: list[Messages]):
        texts = [self.render(m) for m in conversations]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            return self.tokenizer(texts, return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(self.model.device)
        finally:
            self.tokenizer.padding_side = side

    def _kwargs(self, settings: GenerationSettings) -> dict:
        kwargs = {"max_new_tokens": settings.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id,
                  "eos_token_id": self.tokenizer.eos_token_id, "do_sample": not settings.greedy}
        if not settings.greedy:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        if settings.stop:
            kwargs.update(stop_strings=list(settings.stop), tokenizer=self.tokenizer)
        return kwargs

    def complete(self, conversations: list[Messages], settings: GenerationSettings) -> list[Completion]:
        """One completion per conversation, generated together."""
        import torch

        inputs = self._inputs(conversations)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        started = time.perf_counter()
        with torch.no_grad():
            output = self.model.generate(**inputs, **self._kwargs(settings))
        seconds = time.perf_counter() - started
        width = inputs["input_ids"].shape[1]
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [self._completion(row, int(length), settings, seconds)
                for row, length in zip(output[:, width:].tolist(), prompt_lengths, strict=True)]

    def _completion(self, row: list[int], prompt_tokens: int, settings: GenerationSettings,
                    seconds: float) -> Completion:
        eos = self.tokenizer.eos_token_id
        ended = eos in row
        if ended:  # finished rows are filled up with padding after their end
            row = row[:row.index(eos) + 1]
        elif settings.stop and self.tokenizer.pad_token_id in row:
            row = row[:row.index(self.tokenizer.pad_token_id)]  # stopped by a stop sequence: padded after
        text = self.tokenizer.decode(row, skip_special_tokens=True)
        cut = _cut_at_stop(text, settings.stop)
        stopped = ended or cut is not None
        return Completion(text=text if cut is None else text[:cut], prompt_tokens=prompt_tokens,
                          completion_tokens=len(row), finish_reason="stop" if stopped else "length",
                          seconds=seconds, token_ids=row)

    def stream(self, messages: Messages, settings: GenerationSettings) -> Iterator[str]:
        """Text deltas as they are generated (a thread generates; this yields), then stops. The last
        value of `self.last` holds the finished `Completion`."""
        import threading

        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self._inputs([messages])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        holder: dict = {}
        halt = threading.Event()  # set when the reader leaves early (closes this generator): stop generating

        class Halt(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

        def run() -> None:
            with torch.no_grad():
                holder["output"] = self.model.generate(**inputs, **self._kwargs(settings), streamer=streamer,
                                                       stopping_criteria=StoppingCriteriaList([Halt()]))

        started = time.perf_counter()
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        sent = ""
        try:
            for delta in streamer:
                candidate = sent + delta
                cut = _cut_at_stop(candidate, settings.stop)
                if cut is not None:
                    if cut > len(sent):
                        yield candidate[len(sent):cut]
                    sent = candidate[:cut]
                    break
                sent = candidate
                if delta:
                    yield delta
        finally:  # also when the reader closes the stream early: the generation stops at its next token
            halt.set()
            worker.join()
            width = inputs["input_ids"].shape[1]
            if "output" in holder:
                self.last = self._completion(holder["output"][0, width:].tolist(),
                                             int(inputs["attention_mask"].sum()), settings,
                                             time.perf_counter() - started)
                self.last.text = sent


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> Optional[int]:
    """Where the first stop sequence starts in `text`, or None."""
    found = [text.find(s) for s in stops if s and s in text]
    return min(found) if found else None
