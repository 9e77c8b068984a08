"""Generate from a loaded model: single or batched, greedy or sampled, stop sequences, token counts.

Prompts are rendered with the model's own chat template (what training saw) and generated together
with left padding. Each completion says why it ended (`stop`: the end-of-turn token or a stop
sequence; `length`: `max_new_tokens`, the model's context or `max_seconds` ran out), as the OpenAI API
does. A prompt that leaves no room in the model's context is refused (`ContextTooLong`); a generation
that fails ends its stream with the error instead of leaving the reader waiting.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

from rcatune.errors import RcatuneError
from rcatune.inference.loading import LoadedModel

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None
    max_seconds: Optional[float] = None  # the generation stops here, as if max_new_tokens ran out

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


class ContextTooLong(RcatuneError):
    """A prompt that leaves no room for an answer in the model's context."""

    def __init__(self, prompt_tokens: int, context: int, max_new_tokens: int = 0, at_least: bool = False) -> None:
        super().__init__(f"the prompt is {'at least ' if at_least else ''}{prompt_tokens} tokens"
                         + (f" and asks for {max_new_tokens} more" if max_new_tokens else "")
                         + f"; this model's context is {context} tokens: shorten the messages"
                         + (" or lower max_tokens" if max_new_tokens else ""))
        self.prompt_tokens, self.context = prompt_tokens, context


class Generator:
    """Renders conversations with the model's template and generates their answers."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.context = _context(self.model, self.tokenizer)
        # One tokenizer call at a time: a padded call reconfigures the tokenizer, and a server counts prompts
        # in another thread while its worker generates.
        self._tokenizing = threading.Lock()
        self.longest_token_bytes = max(len(t.encode("utf-8", "replace")) for t in self.tokenizer.get_vocab())
        # greedy completions without stop sequences decode in a loop of our own over the model's forward: the
        # same tokens as generate(), without its per-token bookkeeping (see `_greedy`)
        self.own_loop = _plain_greedy(self.model)
        # ... and, where the loaded model has a decoder (its ONNX graph in onnxruntime), over that for batches of
        # up to `decoder_max_rows`: measured 2.73x faster than the model's forward one prompt at a time, 0.75x in
        # batches of 8 (bench/results/generation.md)
        self.decoder = loaded.decoder if loaded.decoder is not None and _plain_greedy(loaded.decoder) else None
        self.decoder_max_rows = 1

    def _greedy(self, inputs, max_new_tokens: int, max_seconds: Optional[float],
                abandoned: Optional[Callable[[], Sequence[bool]]], forward):
        """What `generate(do_sample=False)` returns for these left-padded rows (prompt, then new tokens, finished
        rows filled with padding), computed as it computes them: a forward over the prompts with positions
        counted from each row's first real token, then one token per step from the model's own cache."""
        import torch

        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        pad = eos if pad is None else pad
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = forward(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache, step = out["cache"], positions[:, -1:]
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        new: list = []
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        for index in range(max_new_tokens):
            token = out.logits[:, -1, :].argmax(dim=-1)
            token = torch.where(finished, torch.full_like(token, pad), token)
            new.append(token)
            if eos is not None:
                finished |= token == eos
            if abandoned is not None:
                flags = list(abandoned())
                finished |= torch.tensor(flags * ids.shape[0] if len(flags) == 1 else flags, dtype=torch.bool,
                                         device=ids.device)
            if index + 1 == max_new_tokens or bool(finished.all()) or (
                    deadline is not None and time.monotonic() > deadline):
                break
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            step = step + 1
            out = forward(input_ids=token[:, None], attention_mask=mask, position_ids=step, cache=cache,
                          use_cache=True, logits_to_keep=1)
            cache = out["cache"]
        return torch.cat([ids, torch.stack(new, dim=1)], dim=1)

    def _greedy_forward(self, rows: int):
        """What decodes `rows` greedy rows in the loop of our own: the decoder, the model, or None (generate())."""
        if self.decoder is not None and rows <= self.decoder_max_rows:
            return self.decoder
        return self.model if self.own_loop else None

    def fewest_tokens(self, text: str) -> int:
        """A lower bound on the tokens `text` encodes to (no token covers more bytes than its longest entry)."""
        return -(-len(text.encode("utf-8", "replace")) // self.longest_token_bytes)

    def render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prompt_tokens(self, messages: Messages) -> int:
        text = self.render(messages)
        with self._tokenizing:
            return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _inputs(self, conversations: list[Messages]):
        texts = [self.render(m) for m in conversations]
        with self._tokenizing:
            return self._padded(texts)

    def _padded(self, texts: list[str]):
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            return self.tokenizer(texts, return_tensors="pt", padding=True, verbose=False,
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

    def _room(self, inputs, settings: GenerationSettings) -> dict:
        """`settings` as generate() arguments, with max_new_tokens cut to what the context leaves."""
        width = inputs["input_ids"].shape[1]
        if width >= self.context:
            raise ContextTooLong(width, self.context)
        kwargs = self._kwargs(settings)
        kwargs["max_new_tokens"] = min(settings.max_new_tokens, self.context - width)
        if settings.max_seconds is not None:
            kwargs["max_time"] = settings.max_seconds
        return kwargs

    def complete(self, conversations: list[Messages], settings: GenerationSettings,
                 abandoned: Optional[Callable[[], Sequence[bool]]] = None) -> list[Completion]:
        """One completion per conversation, generated together. `abandoned` says, per row, whether nobody waits
        for it any more: such rows stop at their next token."""
        import torch
        from transformers import StoppingCriteriaList

        inputs = self._inputs(conversations)
        kwargs = self._room(inputs, settings)
        if abandoned is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_stop_rows(abandoned)])
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        started = time.perf_counter()
        with torch.no_grad():
            forward = self._greedy_forward(inputs["input_ids"].shape[0]) if settings.greedy and not settings.stop \
                else None
            if forward is not None:
                output = self._greedy(inputs, kwargs["max_new_tokens"], settings.max_seconds, abandoned, forward)
            else:
                output = self.model.generate(**inputs, **kwargs)
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
        value of `self.last` holds the finished `Completion`. A generation that fails raises here, in the
        reader, once the deltas before it are read."""
        import threading

        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        self.last = None
        inputs = self._inputs([messages])
        kwargs = self._room(inputs, settings)
        # The streamer's wait is bounded too: a generate thread that stops producing is a failure, not a hang.
        wait = None if settings.max_seconds is None else settings.max_seconds + 30.0
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=wait)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        holder: dict = {}
        halt = threading.Event()  # set when the reader leaves early (closes this generator): stop generating

        def run() -> None:
            try:
                with torch.no_grad():
                    holder["output"] = self.model.generate(
                        **inputs, **kwargs, streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_stop_rows(lambda: (halt.is_set(),))]))
            except BaseException as error:  # handed to the reader, which would otherwise wait forever
                holder["error"] = error
                streamer.end()

        started = time.perf_counter()
        worker = threading.Thread(target=run, daemon=True, name="rcatune-stream")
        worker.start()
        sent = ""
        try:
            for delta in _bounded(streamer, wait):
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
            worker.join(wait)
            width = inputs["input_ids"].shape[1]
            if "output" in holder:
                self.last = self._completion(holder["output"][0, width:].tolist(),
                                             int(inputs["attention_mask"].sum()), settings,
                                             time.perf_counter() - started)
                self.last.text = sent
        if "error" in holder:
            raise holder["error"]


# generation_config settings under which greedy generate() changes logits or stops otherwise than by eos, length
# or time: with any of them set, completions go through generate()
_PROCESSORS = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
               "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0, "min_new_tokens": None,
               "forced_bos_token_id": None, "forced_eos_token_id": None, "suppress_tokens": None,
               "begin_suppress_tokens": None, "sequence_bias": None, "exponential_decay_length_penalty": None,
               "renormalize_logits": False, "guidance_scale": None, "watermarking_config": None, "num_beams": 1,
               "stop_strings": None, "forced_decoder_ids": None, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}


def _plain_greedy(model) -> bool:
    """Whether greedy generate() on `model` is argmax after argmax (no logits processor, one beam, a decoder
    with a cache): then `Generator._greedy` gives the same tokens."""
    config = getattr(model, "generation_config", None)
    if config is None or not getattr(getattr(model, "config", None), "use_cache", True):
        return False
    if getattr(config, "cache_implementation", None) not in (None, "dynamic"):
        return False  # a static or hybrid cache, which generate() would build
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return False
    return all(getattr(config, key, neutral) in (neutral, None) or (neutral == 0 and not getattr(config, key))
               for key, neutral in _PROCESSORS.items())


def _stop_rows(done: Callable[[], Sequence[bool]]):
    """A stopping criterion: the rows `done()` marks stop at their next token (one flag: every row)."""
    import torch
    from transformers import StoppingCriteria

    class Rows(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            flags = list(done())
            if len(flags) == 1:
                flags = flags * input_ids.shape[0]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return Rows()


def _bounded(streamer, wait: Optional[float]) -> Iterator[str]:
    """The streamer's deltas; a wait beyond `wait` seconds is an error that says so."""
    import queue

    try:
        yield from streamer
    except queue.Empty:
        raise RcatuneError(f"the generation produced nothing for {wait:.0f} s: it was stopped") from None


def _context(model, tokenizer) -> int:
    """The model's context in tokens (its positions; else the tokenizer's maximum)."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        return positions
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 2**31


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> Optional[int]:
    """Where the first stop sequence starts in `text`, or None."""
    found = [text.find(s) for s in stops if s and s in text]
    return min(found) if found else None
