"""Export the splits to every training format from one renderer (`rcatune.prompts`)."""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import BaseModel

from rcatune import atomic
from rcatune.errors import DataError
from rcatune.formats.llama_factory import write_llama_factory
from rcatune.formats.openai_chat import check_openai_chat_file, write_openai_chat
from rcatune.formats.tabular import write_csv, write_hf_dataset
from rcatune.pause import pause_point
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
    """Render every split once and write each requested format under `out_dir`. The formats are written
    beside it and renamed into place together: a killed run leaves no partial format to be taken for a whole
    one (`<out_dir>.partial`, which the next run removes)."""
    prompts = {name: [render(e, system_prompt) for e in examples] for name, examples in splits.items()}
    ids = {name: [e.id for e in examples] for name, examples in splits.items()}
    places = {Format.dataset: "dataset", Format.openai: "openai", Format.hf: "hf",
              Format.llama_factory: "llama_factory", Format.csv: "prompts.csv"}
    with atomic.folder(out_dir) as staged:
        for fmt in formats:
            _write(Format(fmt), staged / places[Format(fmt)], splits, prompts, ids, openai_max_tokens)
            pause_point("prepare.formats", Format(fmt).value)
    paths = {Format(fmt).value: str(out_dir / places[Format(fmt)]) for fmt in formats}
    return FormatBundle(root=str(out_dir), paths=paths, counts=splits.counts())


def _write(fmt: Format, place: Path, splits: DatasetSplits, prompts: dict, ids: dict, openai_max_tokens: int) -> None:
    if fmt is Format.dataset:
        place.mkdir()
        for name, examples in splits.items():
            (place / f"{name}.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in examples),
                                                 encoding="utf-8")
    elif fmt is Format.openai:
        place.mkdir()
        problems = []
        for name, split_prompts in prompts.items():
            file = place / f"{name}.jsonl"
            write_openai_chat(file, split_prompts)
            problems += [f"{file.name} {p}" for p in
                         check_openai_chat_file(file, openai_max_tokens, training=name == "train")]
        if problems:
            raise DataError("OpenAI chat export breaks OpenAI's file rules:\n  " + "\n  ".join(problems[:20]))
    elif fmt is Format.hf:
        write_hf_dataset(place, prompts, ids)
    elif fmt is Format.llama_factory:
        write_llama_factory(place, prompts)
    elif fmt is Format.csv:
        write_csv(place, prompts, ids)
