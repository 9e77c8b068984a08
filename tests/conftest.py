"""Shared fixtures: one state folder per test session, sample records, file writers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# No test needs the Hugging Face Hub (this machine cannot reach it): fail fast instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory) -> Path:
    """Every test (and every run.py it starts) writes under this session's own state folder."""
    from rcatune.state import configure_environment

    home = tmp_path_factory.mktemp("rcatune_state")
    os.environ["RCATUNE_HOME"] = str(home)
    for key in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH", "MLFLOW_TRACKING_URI", "HF_HOME"):
        os.environ.pop(key, None)  # never the user's stores: everything under this session's folder
    configure_environment(home)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return home


@pytest.fixture(scope="session")
def sample_records() -> list[dict]:
    from rcatune.demo.generator import generate_sessions

    return list(generate_sessions(120, seed=11))


@pytest.fixture
def write_jsonl(tmp_path):
    def write(lines: list, name: str = "sessions.jsonl") -> Path:
        path = tmp_path / name
        with path.open("wb") as handle:
            for line in lines:
                if isinstance(line, bytes):
                    handle.write(line + b"\n")
                elif isinstance(line, str):
                    handle.write(line.encode() + b"\n")
                else:
                    handle.write(json.dumps(line).encode() + b"\n")
        return path

    return write
