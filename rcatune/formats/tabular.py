"""CSV and HuggingFace `DatasetDict` exports of rendered prompts, written row by row."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from rcatune.prompts import Prompt, to_messages

# No label columns (scenario, incident id, phrasing): these files are what people train on, and a label
# beside the prompt is a column some trainer will feed the model. The labels stay in the dataset format.
CSV_COLUMNS = ("id", "split", "system", "instruction", "input", "output")
HF_NAMES = {"train": "train", "val": "validation", "test": "test", "shift": "shift"}
HF_TEXT_COLUMNS = ("id", "system", "instruction", "input", "output")
CHUNK_ROWS = 256  # rows per Arrow record batch: about 2 MB of rows held at a time (1,000 held 25 MB more at the peak)


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


# What `datasets` writes as `dataset_info.json` for hf_schema() (`Features.from_arrow_schema(hf_schema()).to_dict()`;
# tests/test_formats.py keeps the two equal).
HF_FEATURES = {
    **{name: {"dtype": "string", "_type": "Value"} for name in HF_TEXT_COLUMNS},
    "messages": {"feature": {"role": {"dtype": "string", "_type": "Value"},
                             "content": {"dtype": "string", "_type": "Value"}}, "_type": "List"},
}
HF_DATA_FILE = "data-00000-of-00001.arrow"


class HfDatasetWriter:
    """A `DatasetDict` (train/validation/test[/shift]) in the layout `save_to_disk` writes; reload with
    `load_from_disk`. Rows go in batches of CHUNK_ROWS straight to each split's Arrow stream file, and the split's
    `state.json` and `dataset_info.json` are written beside it: no split is ever held, mapped or copied (going
    through `datasets.Dataset.save_to_disk` maps the whole split to copy it, 400 MB resident at 100k sessions)."""

    def __init__(self, place: Path) -> None:
        place.mkdir()
        self.place, self.schema, self.splits, self.writer, self.rows = place, hf_schema(), [], None, []

    def begin(self, split: str) -> None:
        import pyarrow as pa

        self.folder = self.place / HF_NAMES[split]
        self.folder.mkdir()
        self.splits.append(split)
        self.digest = hashlib.blake2b(digest_size=8)  # the split's fingerprint, over its rows as they go by
        self.sink = pa.OSFile(str(self.folder / HF_DATA_FILE), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)

    def add(self, split: str, example, prompt: Prompt) -> None:
        self.rows.append(json.dumps({"id": example.id, "system": prompt.system, "instruction": prompt.instruction,
                                     "input": prompt.input, "output": prompt.output,
                                     "messages": to_messages(prompt)}))
        if len(self.rows) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            data = json_lines(self.rows)
            self.digest.update(data)
            for batch in arrow_rows(data, self.schema).to_batches():
                self.writer.write_batch(batch)
            self.rows = []

    def end(self, split: str) -> None:
        self._flush()
        self.writer.close()
        self.sink.close()
        self.writer = None
        # 16 hex digits, as `datasets` writes its fingerprints
        state = {"_data_files": [{"filename": HF_DATA_FILE}], "_fingerprint": self.digest.hexdigest(),
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
                 "_split": None}
        info = {"citation": "", "description": "", "features": HF_FEATURES, "homepage": "", "license": ""}
        (self.folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        (self.folder / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")

    def finish(self) -> None:
        """`dataset_dict.json`, the list of splits `load_from_disk` reads."""
        (self.place / "dataset_dict.json").write_text(json.dumps({"splits": [HF_NAMES[s] for s in self.splits]}),
                                                      encoding="utf-8")

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()



def json_lines(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def arrow_rows(data: bytes, schema):
    """JSON lines as an Arrow table of `schema`, parsed by Arrow's own reader: as fast as
    `RecordBatch.from_pylist` here, and unlike it (and `pa.array`) it does not import pandas (45 MB)."""
    import io

    from pyarrow import json as arrow_json

    return arrow_json.read_json(
        io.BytesIO(data), read_options=arrow_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=arrow_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))
