"""What a model was trained to read: chat template, system prompt, special tokens, golden token ids.

Saved beside every trained model and export (`rcatune_signature.json`), so whatever serves a model can
check that it renders exactly what training saw. A template or EOS mismatch between training and
serving is a recurring, silent loss of quality (models that ramble or never stop); comparing the
rendered token ids of a fixed probe catches what comparing template strings misses.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from pydantic import BaseModel

from rcatune.errors import RcatuneError

SIGNATURE_FILE = "rcatune_signature.json"


class SignatureMismatch(RcatuneError):
    """The tokenizer or template at hand renders prompts differently from training."""


def probe_example():
    """A fixed session (not from the generator, so it never changes with it) rendered for the golden ids."""
    from rcatune.schema import TrainingExample

    start = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
    return TrainingExample(
        id="rcatune-signature-probe", timestamp=datetime(2026, 1, 5, 11, 0, tzinfo=timezone.utc),
        telemetry_context={"trace_summary": {"checkout": {"spans": 1200, "error_ratio": 0.31}}},
        service_topology={"frontend": ["checkout"], "checkout": ["payment"]},
        time_range=(start, datetime(2026, 1, 5, 10, 30, tzinfo=timezone.utc)),
        symptoms=["checkout PlaceOrder errors at 31%"], affected_services=["checkout", "payment"],
        error_signatures=["failed to charge card"], root_cause="payment rejects charges.",
        diagnostic_query="SELECT count() FROM otel_traces", critical_paths=[["frontend", "checkout", "payment"]],
        remediation_steps=["Roll back payment."], confidence_score=0.9, time_to_identification=60.0,
        human_prompts_required=1)


def _messages(system_prompt: str, with_answer: bool) -> list[dict[str, str]]:
    from rcatune.prompts import render, to_messages

    return to_messages(render(probe_example(), system_prompt), with_answer=with_answer)


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The ids a generation request renders to (the chat template with the generation prompt)."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def training_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The ids training sees for a conversation with its answer (as `rcatune.training.data.tokenize`)."""
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


class PromptSignature(BaseModel):
    chat_template: str
    template_sha256: str
    system_prompt: str
    bos_token: Optional[str]
    eos_token: Optional[str]
    eos_token_id: Optional[int]
    pad_token_id: Optional[int]
    probe_prompt_ids: list[int]  # the probe as a generation request renders it
    probe_training_ids: list[int]  # the probe with its answer, as training tokenises it

    @classmethod
    def of(cls, tokenizer, system_prompt: str) -> "PromptSignature":
        template = tokenizer.chat_template or ""
        return cls(chat_template=template, template_sha256=hashlib.sha256(template.encode()).hexdigest(),
                   system_prompt=system_prompt, bos_token=tokenizer.bos_token, eos_token=tokenizer.eos_token,
                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                   probe_prompt_ids=prompt_ids(tokenizer, _messages(system_prompt, with_answer=False)),
                   probe_training_ids=training_ids(tokenizer, _messages(system_prompt, with_answer=True)))

    def save(self, folder: Path | str) -> Path:
        path = Path(folder) / SIGNATURE_FILE
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path | str) -> Optional["PromptSignature"]:
        path = Path(folder) / SIGNATURE_FILE
        if not path.exists():
            return None
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))

    def differences(self, tokenizer, system_prompt: Optional[str] = None) -> list[str]:
        """What `tokenizer` (with its chat template) and `system_prompt` render differently; [] when identical."""
        found = []
        if system_prompt is not None and system_prompt != self.system_prompt:
            found.append(f"system prompt differs: trained with {self.system_prompt[:60]!r}..., "
                         f"serving {system_prompt[:60]!r}...")
        current = PromptSignature.of(tokenizer, self.system_prompt)
        if current.template_sha256 != self.template_sha256:
            found.append(f"chat template differs (sha256 {current.template_sha256[:12]} vs trained "
                         f"{self.template_sha256[:12]})")
        for name in ("eos_token", "eos_token_id", "bos_token", "pad_token_id"):
            if getattr(current, name) != getattr(self, name):
                found.append(f"{name} differs: {getattr(current, name)!r} vs trained {getattr(self, name)!r}")
        for name in ("probe_prompt_ids", "probe_training_ids"):
            mine, theirs = getattr(self, name), getattr(current, name)
            if mine != theirs:
                pairs = enumerate(zip(mine, theirs, strict=False))
                at = next((i for i, (a, b) in pairs if a != b), min(len(mine), len(theirs)))
                found.append(f"{name.replace('_', ' ')} differ from token {at} on ({len(theirs)} tokens vs trained "
                             f"{len(mine)}): {tokenizer.decode(theirs[at:at + 8])!r} vs trained "
                             f"{tokenizer.decode(mine[at:at + 8])!r}")
        if self.probe_training_ids[:len(self.probe_prompt_ids)] != self.probe_prompt_ids:
            found.append("the generation prompt is not a prefix of what training saw: the chat template renders "
                         "the assistant turn differently in training and in serving")
        return found

    def check(self, tokenizer, system_prompt: Optional[str] = None, where: str = "this model") -> None:
        """Raise `SignatureMismatch` naming what differs."""
        found = self.differences(tokenizer, system_prompt)
        if found:
            raise SignatureMismatch(f"{where} would not render what training saw: " + "; ".join(found))
