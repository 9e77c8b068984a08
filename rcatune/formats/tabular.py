"""CSV and HuggingFace `DatasetDict` exports of rendered prompts, written row by row."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from rcatune.prompts import Prompt, to_messages

# No label columns (scenario, incident id, phrasing): these files are what people train on, and a label
# beside the prompt is a column some trainer will feed the model. The labels stay in the dataset format.
CSV_COLUMNS = ("id", "split", "system", "instruction", "input", "output")
HF_NAMES = {"train": "train", "val": "validation", "test": "test", "shift": "shift"}
HF_TEXT_COLUMNS = ("id", "system", "instruction", "input", "output")
CHUNK_ROWS = 1000  # rows per Arrow record batch: a few MB held at a time


class CsvWriter:
    """One `prompts.csv` for every split (a `split` column says which)."""

    def __init__(self, place: Path) -> None:
        self.handle = place.open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(CSV_COLUMNS)

    def begin(self, split: str) -> None:
        pass

    def add(self, split: str, example, prompt: Prompt) -> None:
        self.writer.writerow([example.id, split, prompt.system, prompt.instruction, prompt.input, prompt.output])

    def end(self, split: str) -> None:
        pass

    def finish(self) -> None:
        self.handle.close()

    def abandon(self) -> None:
        self.handle.close()


def hf_schema():
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([*((name, pa.string()) for name in HF_TEXT_COLUMNS), ("messages", pa.list_(message))])


class HfDatasetWriter:
    """A `DatasetDict` (train/validation/test[/shift]) saved with `save_to_disk`; reload with `load_from_disk`.
    Rows go to an Arrow stream file per split in batches of CHUNK_ROWS; `finish` memory-maps those files as
    datasets and saves them, so no split is ever held in memory (the pages of the split being saved are mapped,
    file-backed, counted in the process's resident memory until it is done)."""

    def __init__(self, place: Path) -> None:
        self.place, self.parts = place, place.with_name(place.name + ".arrow-parts")
        self.parts.mkdir()
        self.schema, self.files, self.writer, self.rows = hf_schema(), {}, None, []

    def begin(self, split: str) -> None:
        import pyarrow as pa

        self.files[split] = self.parts / f"{split}.arrow"
        self.sink = pa.OSFile(str(self.files[split]), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)

    def add(self, split: str, example, prompt: Prompt) -> None:
        self.rows.append({"id": example.id, "system": prompt.system, "instruction": prompt.instruction,
                          "input": prompt.input, "output": prompt.output, "messages": to_messages(prompt)})
        if len(self.rows) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_batch(pa.RecordBatch.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def end(self, split: str) -> None:
        self._flush()
        self.writer.close()
        self.sink.close()
        self.writer = None

    def finish(self) -> None:
        """Each split saved on its own (what `DatasetDict.save_to_disk` does, one split's pages mapped at a time),
        then `dataset_dict.json`, the list `load_from_disk` reads."""
        import json

        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
        self.place.mkdir()
        for split, file in self.files.items():
            part = Dataset.from_file(str(file))
            part.save_to_disk(str(self.place / HF_NAMES[split]))
            del part
            file.unlink()
        (self.place / "dataset_dict.json").write_text(json.dumps({"splits": [HF_NAMES[s] for s in self.files]}),
                                                      encoding="utf-8")
        shutil.rmtree(self.parts)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
