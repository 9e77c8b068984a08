"""OpenAI chat fine-tuning JSONL: one {"messages": [...]} object per line.

`check_openai_chat_file` applies OpenAI's documented rules for chat fine-tuning files: every line a
JSON object with a `messages` list; roles among system/user/assistant; string content that is not
empty; at least one assistant message per example; the example within the token limit; at least 10
examples in a training file. Tokens are bounded by UTF-8 bytes plus a per-message overhead (each
token of a byte-level BPE covers at least one byte), so a file that passes here never exceeds the
limit, whatever OpenAI tokenizer the target model uses.
"""

from __future__ import annotations

import json
from pathlib import Path

from rcatune.prompts import Prompt, to_messages

ROLES = frozenset({"system", "user", "assistant"})
MESSAGE_OVERHEAD_TOKENS = 4
MIN_TRAINING_EXAMPLES = 10


class OpenAIChatWriter:
    """`<split>.jsonl` in OpenAI's chat fine-tuning format, row by row; `finish` checks every file against
    OpenAI's rules (reading it line by line) and raises DataError with the problems."""

    def __init__(self, place: Path, max_tokens: int = 65_536) -> None:
        place.mkdir()
        self.place, self.max_tokens, self.handle, self.files = place, max_tokens, None, []

    def begin(self, split: str) -> None:
        self.files.append((split, self.place / f"{split}.jsonl"))
        self.handle = self.files[-1][1].open("w", encoding="utf-8")

    def add(self, split: str, example: object, prompt: Prompt) -> None:
        self.handle.write(json.dumps({"messages": to_messages(prompt)}, ensure_ascii=False) + "\n")

    def end(self, split: str) -> None:
        self.handle.close()

    def finish(self) -> None:
        from rcatune.errors import DataError

        problems = [f"{file.name} {p}" for split, file in self.files
                    for p in check_openai_chat_file(file, self.max_tokens, training=split == "train")]
        if problems:
            raise DataError("OpenAI chat export breaks OpenAI's file rules:\n  " + "\n  ".join(problems[:20]))

    def abandon(self) -> None:
        if self.handle:
            self.handle.close()


def token_upper_bound(messages: list[dict]) -> int:
    return sum(len(m["content"].encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 3


def check_openai_chat_file(path: Path, max_tokens: int = 65_536, training: bool = True) -> list[str]:
    """Every rule the file breaks, as 'line N: problem'; empty when the file is valid."""
    problems: list[str] = []
    lines = 0
    with path.open(encoding="utf-8") as handle:  # line by line: a 100k-session file is never held whole
        for lines, line in enumerate(handle, start=1):
            problems += [f"line {lines}: {problem}" for problem in _example_problems(line.rstrip("\n"), max_tokens)]
    if training and lines < MIN_TRAINING_EXAMPLES:
        problems.append(f"{lines} examples; OpenAI needs at least {MIN_TRAINING_EXAMPLES} in a training file")
    return problems


def _example_problems(line: str, max_tokens: int) -> list[str]:
    try:
        example = json.loads(line)
    except json.JSONDecodeError as error:
        return [f"not JSON ({error.msg})"]
    messages = example.get("messages") if isinstance(example, dict) else None
    if not isinstance(messages, list) or not messages:
        return ["no 'messages' list"]
    problems = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(f"message {index} has no valid role (one of {sorted(ROLES)})")
        elif not isinstance(message.get("content"), str) or not message["content"].strip():
            problems.append(f"message {index} ({message['role']}) has empty content")
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append("no assistant message")
    if not problems and (bound := token_upper_bound(messages)) > max_tokens:
        problems.append(f"may exceed {max_tokens} tokens (upper bound {bound})")
    return problems
