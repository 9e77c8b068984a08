"""LLaMA-Factory dataset files: alpaca and sharegpt JSON plus the `dataset_info.json` that maps them."""

from __future__ import annotations

import json
from pathlib import Path

from rcatune.prompts import Prompt

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}


def dataset_name(split: str, style: str) -> str:
    return f"rcatune_{split}_{style}"


def _write_array(path: Path, rows: list[dict]) -> None:
    """A JSON array, one example per line: json's C encoder, written row by row (not one huge string)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for index, row in enumerate(rows):
            handle.write(("\n" if index == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
        handle.write("\n]\n" if rows else "]\n")


def write_llama_factory(out_dir: Path, split_prompts: dict[str, list[Prompt]]) -> dict[str, dict]:
    """Write `<split>_alpaca.json`, `<split>_sharegpt.json` and `dataset_info.json`; return the info."""
    out_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, dict] = {}
    for split, prompts in split_prompts.items():
        alpaca = [{"instruction": p.instruction, "input": p.input, "output": p.output, "system": p.system}
                  for p in prompts]
        sharegpt = [{"conversations": [{"from": "human", "value": p.user_message()},
                                       {"from": "gpt", "value": p.output}], "system": p.system}
                    for p in prompts]
        for style, rows, extra in (("alpaca", alpaca, {"columns": ALPACA_COLUMNS}),
                                   ("sharegpt", sharegpt, {"formatting": "sharegpt", "columns": SHAREGPT_COLUMNS,
                                                           "tags": SHAREGPT_TAGS})):
            file_name = f"{split}_{style}.json"
            _write_array(out_dir / file_name, rows)
            info[dataset_name(split, style)] = {"file_name": file_name, **extra}
    (out_dir / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info
