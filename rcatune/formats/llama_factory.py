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


class LlamaFactoryWriter:
    """`<split>_alpaca.json`, `<split>_sharegpt.json` (JSON arrays, one example per line, json's C encoder, row
    by row) and the `dataset_info.json` that maps them."""

    STYLES = (("alpaca", {"columns": ALPACA_COLUMNS}),
              ("sharegpt", {"formatting": "sharegpt", "columns": SHAREGPT_COLUMNS, "tags": SHAREGPT_TAGS}))

    def __init__(self, place: Path) -> None:
        place.mkdir(parents=True, exist_ok=True)
        self.place, self.info, self.handles, self.written = place, {}, {}, 0

    def begin(self, split: str) -> None:
        for style, extra in self.STYLES:
            file_name = f"{split}_{style}.json"
            self.handles[style] = (self.place / file_name).open("w", encoding="utf-8")
            self.handles[style].write("[")
            self.info[dataset_name(split, style)] = {"file_name": file_name, **extra}
        self.written = 0

    def add(self, split: str, example: object, prompt: Prompt) -> None:
        self.add_prompt(prompt)

    def add_prompt(self, p: Prompt) -> None:
        rows = {"alpaca": {"instruction": p.instruction, "input": p.input, "output": p.output, "system": p.system},
                "sharegpt": {"conversations": [{"from": "human", "value": p.user_message()},
                                               {"from": "gpt", "value": p.output}], "system": p.system}}
        for style, row in rows.items():
            self.handles[style].write(("\n" if self.written == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
        self.written += 1

    def end(self, split: str) -> None:
        for handle in self.handles.values():
            handle.write("\n]\n" if self.written else "]\n")
            handle.close()
        self.handles = {}

    def finish(self) -> None:
        (self.place / "dataset_info.json").write_text(json.dumps(self.info, indent=2), encoding="utf-8")

    def abandon(self) -> None:
        for handle in self.handles.values():
            handle.close()


def write_llama_factory(out_dir: Path, split_prompts: dict[str, list[Prompt]]) -> dict[str, dict]:
    """Write `<split>_alpaca.json`, `<split>_sharegpt.json` and `dataset_info.json`; return the info."""
    writer = LlamaFactoryWriter(out_dir)
    for split, prompts in split_prompts.items():
        writer.begin(split)
        for prompt in prompts:
            writer.add_prompt(prompt)
        writer.end(split)
    writer.finish()
    return writer.info
