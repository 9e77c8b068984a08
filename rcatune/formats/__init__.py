"""Export the splits to every training format from one renderer (`rcatune.prompts`)."""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import BaseModel

from rcatune.errors import DataError
from rcatune.formats.llama_factory import write_llama_factory
from rcatune.formats.openai_chat import check_openai_chat_file, write_openai_chat
from rcatune.formats.tabular import write_csv, write_hf_dataset
from rcatune.prompts import render
from rcatune.split import DatasetSplits


class Format(str, enum.Enum):
    dataset = "dataset"  # the validated examples themselves, JSONL per split
    openai = "openai"
    hf = "hf"
    llama_factory = "llama_factory"
    csv = "csv"


class FormatBundle(BaseModel):
    """Where each exported format lives, and its row counts per split."""

    root: str
    paths: dict[str, str]
    counts: dict[str, int]


def export_formats(splits: DatasetSplits, out_dir: Path, formats: list[Format], system_prompt: str,
                   openai_max_tokens: int = 65_536) -> FormatBundle:
    """Render every split once and write each requested format under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts = {name: [render(e, system_prompt) for e in examples] for name, examples in splits.items()}
    ids = {name: [e.id for e in examples] for name, examples in splits.items()}
    paths: dict[str, str] = {}
    for fmt in formats:
        fmt = Format(fmt)
        if fmt is Format.dataset:
            folder = out_dir / "dataset"
            folder.mkdir(exist_ok=True)
            for name, examples in splits.items():
                (folder / f"{name}.jsonl").write_text(
                    "".join(e.model_dump_json() + "\n" for e in examples), encoding="utf-8")
            paths["dataset"] = str(folder)
        elif fmt is Format.openai:
            folder = out_dir / "openai"
            folder.mkdir(exist_ok=True)
            problems = []
            for name, split_prompts in prompts.items():
                file = folder / f"{name}.jsonl"
                write_openai_chat(file, split_prompts)
                problems += [f"{file.name} {p}" for p in
                             check_openai_chat_file(file, openai_max_tokens, training=name == "train")]
            if problems:
                raise DataError("OpenAI chat export breaks OpenAI's file rules:\n  " + "\n  ".join(problems[:20]))
            paths["openai"] = str(folder)
        elif fmt is Format.hf:
            write_hf_dataset(out_dir / "hf", prompts, ids)
            paths["hf"] = str(out_dir / "hf")
        elif fmt is Format.llama_factory:
            write_llama_factory(out_dir / "llama_factory", prompts)
            paths["llama_factory"] = str(out_dir / "llama_factory")
        elif fmt is Format.csv:
            write_csv(out_dir / "prompts.csv", prompts, ids)
            paths["csv"] = str(out_dir / "prompts.csv")
    return FormatBundle(root=str(out_dir), paths=paths, counts=splits.counts())
