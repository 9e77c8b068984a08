"""The inference layer: load a model, render prompts as training did, generate, parse the structured answer.

Evaluation, the export smoke test and the server all go through here, so a model is prompted the
same way everywhere it is used.
"""

from __future__ import annotations

from rcatune.inference.generate import Completion, ContextTooLong, GenerationSettings, Generator, Messages
from rcatune.inference.loading import LoadedModel, describe_folder, load_base, load_folder
from rcatune.inference.signature import PromptSignature, SignatureMismatch
from rcatune.prompts import Answer, parse_answer, render, to_messages
from rcatune.schema import TrainingExample


def session_messages(example: TrainingExample, system_prompt: str) -> Messages:
    """The conversation a diagnostic session becomes (system, user), as in training."""
    return to_messages(render(example, system_prompt), with_answer=False)


def diagnose(generator: Generator, examples: list[TrainingExample], system_prompt: str,
             settings: GenerationSettings) -> list[tuple[Completion, Answer]]:
    """Each session's completion and its parsed answer."""
    completions = generator.complete([session_messages(e, system_prompt) for e in examples], settings)
    return [(c, parse_answer(c.text)) for c in completions]


__all__ = ["Answer", "Completion", "ContextTooLong", "GenerationSettings", "Generator", "LoadedModel", "Messages",
           "PromptSignature", "SignatureMismatch", "describe_folder", "diagnose", "load_base", "load_folder",
           "parse_answer", "session_messages"]
