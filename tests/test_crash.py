"""kill -9 at a chosen point of each stage (rcatune.pause), then the same command again: nothing half written is
taken for whole, and the rerun ends as a run never killed would (issue 24, section 1). Training's own kill
points are in test_pipeline.py (they share its never-killed run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_py, run_py_killed_at

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PREPARE = ["pipeline=prepare", "data.size=60", "data.split.min_examples=10", "progress=false"]


def _formats(run_dir: Path) -> dict[str, str]:
    return json.loads((run_dir / "run_summary.json").read_text())["artifacts"]


def test_prepare_killed_while_writing_formats_leaves_no_partial_format_and_reruns_to_the_same_data(tmp_path):
    from datasets import load_from_disk

    run_dir = tmp_path / "run"
    run_py_killed_at("prepare.formats:hf", *PREPARE, f"hydra.run.dir={run_dir}", pauses=tmp_path / "p")
    assert not (run_dir / "formats").exists(), "formats appeared before all of them were written"
    assert (run_dir / "formats.partial" / "hf").is_dir()  # what the killed run had written, aside

    run_py(*PREPARE, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and not (run_dir / "formats.partial").exists()
    never_killed = tmp_path / "never_killed"
    run_py(*PREPARE, f"hydra.run.dir={never_killed}")
    straight = json.loads((never_killed / "run_summary.json").read_text())
    assert summary["data_hash"] == straight["data_hash"]
    counts = summary["counts"]["splits"]
    hf = load_from_disk(_formats(run_dir)["format_hf"])
    assert {name: len(part) for name, part in hf.items()} == \
        {{"val": "validation"}.get(k, k): v for k, v in counts.items() if v}
    for split, rows in counts.items():
        if rows:
            lines = (Path(_formats(run_dir)["format_openai"]) / f"{split}.jsonl").read_text().splitlines()
            assert len(lines) == rows and all(json.loads(line)["messages"] for line in lines)
    for name in ("dataset", "openai", "llama_factory"):
        mine, theirs = Path(_formats(run_dir)[f"format_{name}"]), Path(_formats(never_killed)[f"format_{name}"])
        assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in theirs.iterdir())
        for file in mine.iterdir():
            assert file.read_bytes() == (theirs / file.name).read_bytes(), file
