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


def write_openai_chat(path: Path, prompts: list[Prompt]) -> int:
    with path.open("w", encoding="utf-8") as handle:
        for prompt in prompts:
            handle.write(json.dumps({"messages": to_messages(prompt)}, ensure_ascii=False) + "\n")
    return len(prompts)


def token_upper_bound(messages: list[dict]) -> int:
    return sum(len(m["content"].encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 3


def check_openai_chat_file(path: Path, max_tokens: int = 65_536, training: bool = True) -> list[str]:
    """Every rule the file breaks, as 'line N: problem'; empty when the file is valid."""
    problems: list[str] = []
    count = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        count += 1
        try:
            example = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error.msg})")
            continue
        messages = example.get("messages") if isinstance(example, dict) else None
        if not isinstance(messages, list) or not messages:
            problems.append(f"line {number}: no 'messages' list")
            continue
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                problems.append(f"line {number}: message {index} has no valid role (one of {sorted(ROLES)})")
            elif not isinstance(message.get("content"), str) or not message["content"].strip():
                problems.append(f"line {number}: message {index} ({message['role']}) has empty content")
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            problems.append(f"line {number}: no assistant message")
        elif not problems or not problems[-1].startswith(f"line {number}:"):
            bound = token_upper_bound(messages)
            if bound > max_tokens:
                problems.append(f"line {number}: may exceed {max_tokens} tokens (upper bound {bound})")
    if training and count < MIN_TRAINING_EXAMPLES:
        problems.append(f"{count} examples; OpenAI needs at least {MIN_TRAINING_EXAMPLES} in a training file")
    return problems
