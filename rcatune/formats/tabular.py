"""CSV and HuggingFace `DatasetDict` exports of rendered prompts."""

from __future__ import annotations

import csv
from pathlib import Path

from rcatune.prompts import Prompt, to_messages

# No label columns (scenario, incident id, phrasing): these files are what people train on, and a label
# beside the prompt is a column some trainer will feed the model. The labels stay in the dataset format.
CSV_COLUMNS = ("id", "split", "system", "instruction", "input", "output")


def write_csv(path: Path, split_prompts: dict[str, list[Prompt]], ids: dict[str, list[str]]) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for split, prompts in split_prompts.items():
            for prompt, example_id in zip(prompts, ids[split], strict=True):
                writer.writerow([example_id, split, prompt.system, prompt.instruction, prompt.input, prompt.output])
                rows += 1
    return rows


def write_hf_dataset(path: Path, split_prompts: dict[str, list[Prompt]], ids: dict[str, list[str]]) -> None:
    """A `DatasetDict` (train/validation/test[/shift]) saved with `save_to_disk`; reload with `load_from_disk`."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    hf_names = {"train": "train", "val": "validation", "test": "test", "shift": "shift"}
    parts = {}
    for split, prompts in split_prompts.items():
        parts[hf_names[split]] = Dataset.from_dict({
            "id": ids[split],
            "system": [p.system for p in prompts],
            "instruction": [p.instruction for p in prompts],
            "input": [p.input for p in prompts],
            "output": [p.output for p in prompts],
            "messages": [to_messages(p) for p in prompts],
        })
    DatasetDict(parts).save_to_disk(str(path))
