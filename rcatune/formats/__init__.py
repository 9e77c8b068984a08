"""Export the splits to every training format from one renderer (`rcatune.prompts`), row by row: each example
is rendered once and its row handed to every format's writer, so no format holds a split (let alone all of
them) in memory; the HuggingFace dataset goes to Arrow in chunks and is memory-mapped to be saved."""

from __future__ import annotations

import enum
from functools import partial
from pathlib import Path

from pydantic import BaseModel

from rcatune import atomic
from rcatune.errors import DataError
from rcatune.formats.llama_factory import LlamaFactoryWriter
from rcatune.formats.openai_chat import OpenAIChatWriter
from rcatune.formats.tabular import CsvWriter, HfDatasetWriter
from rcatune.pause import pause_point
from rcatune.preferences import PreferenceWriter
from rcatune.prompts import Prompt, render
from rcatune.schema import TrainingExample
from rcatune.split import DatasetSplits


class Format(str, enum.Enum):
    dataset = "dataset"  # the validated examples themselves, JSONL per split
    openai = "openai"
    hf = "hf"
    llama_factory = "llama_factory"
    csv = "csv"
    preferences = "preferences"  # DPO pairs and KTO rows (TRL's and LLaMA-Factory's shapes): rcatune.preferences


PLACES = {Format.dataset: "dataset", Format.openai: "openai", Format.hf: "hf",
          Format.llama_factory: "llama_factory", Format.csv: "prompts.csv", Format.preferences: "preferences"}


class FormatBundle(BaseModel):
    """Where each exported format lives, and its row counts per split."""

    root: str
    paths: dict[str, str]
    counts: dict[str, int]


class DatasetWriter:
    """The validated examples themselves, `<split>.jsonl`."""

    def __init__(self, place: Path) -> None:
        place.mkdir()
        self.place, self.handle = place, None

    def begin(self, split: str) -> None:
        self.handle = (self.place / f"{split}.jsonl").open("w", encoding="utf-8")

    def add(self, split: str, example: TrainingExample, prompt: Prompt) -> None:
        self.handle.write(example.model_dump_json() + "\n")

    def end(self, split: str) -> None:
        self.handle.close()

    def finish(self) -> None:
        pass

    def abandon(self) -> None:
        if self.handle:
            self.handle.close()


WRITERS = {Format.dataset: DatasetWriter, Format.openai: OpenAIChatWriter, Format.hf: HfDatasetWriter,
           Format.llama_factory: LlamaFactoryWriter, Format.csv: CsvWriter, Format.preferences: PreferenceWriter}


def export_formats(splits: DatasetSplits, out_dir: Path, formats: list[Format], system_prompt: str,
                   openai_max_tokens: int = 65_536) -> FormatBundle:
    """Write each requested format of every split under `out_dir`. The formats are written beside it and renamed
    into place together: a killed run leaves no partial format to be taken for a whole one (`<out_dir>.partial`,
    which the next run removes)."""
    wanted = list(dict.fromkeys(Format(f) for f in formats))
    makers = {**WRITERS, Format.openai: partial(OpenAIChatWriter, max_tokens=openai_max_tokens)}
    with atomic.folder(out_dir) as staged:
        writers = {fmt: makers[fmt](staged / PLACES[fmt]) for fmt in wanted}
        try:
            for name, examples in splits.items():
                for writer in writers.values():
                    writer.begin(name)
                for example in examples:
                    prompt = render(example, system_prompt)
                    for writer in writers.values():
                        writer.add(name, example, prompt)
                for writer in writers.values():
                    writer.end(name)
            for fmt, writer in writers.items():
                writer.finish()
                pause_point("prepare.formats", fmt.value)
        except BaseException:
            for writer in writers.values():
                writer.abandon()
            raise
    paths = {fmt.value: str(out_dir / PLACES[fmt]) for fmt in wanted}
    return FormatBundle(root=str(out_dir), paths=paths, counts=splits.counts())


__all__ = ["DataError", "Format", "FormatBundle", "export_formats"]
