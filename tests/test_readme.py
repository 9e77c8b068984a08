"""The README's commands compose against the real config tree (CI runs what the README shows)."""

from __future__ import annotations

import re
import shlex

import pytest

from rcatune.jobs import compose
from tests.conftest import ROOT

COMMANDS = [line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith(".venv/bin/python run.py")]


def test_readme_has_run_commands():
    assert len(COMMANDS) >= 6
    assert (ROOT / "README.md").read_text().splitlines()[3:5] == [
        "make run    # sets up .venv with the pinned versions, then runs the default pipeline on embedded defaults",
        "make test   # sets up .venv, then runs the test suite"]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_composes(command, tmp_path, monkeypatch):
    args = [a for a in shlex.split(command)[2:] if a not in ("-m", "--help") and not a.startswith("--cfg")]
    args = [a for a in args if a != "job"]
    overrides = [re.sub(r"=(\w+)(,\w+)+$", r"=\1", a) for a in args]  # a sweep: compose its first point
    monkeypatch.chdir(tmp_path)  # the files the README's commands name, as a user would have them
    named = [a.split("=", 1)[1] for a in args if a.startswith("data.path=")]
    for name in ("sessions.jsonl", "sessions.csv", "new.jsonl", *named):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "RUN_DIR" / "export" / "merged").mkdir(parents=True)
    (tmp_path / "RUN_DIR" / "export" / "merged" / "config.json").write_text("{}")
    job = compose(overrides, run_dir=str(tmp_path / "run"))  # as run.py composes it: validated, unknown keys refused
    assert job.pipeline == job.config().pipeline.name


def test_the_data_docs_list_every_field_the_schema_and_the_csv_header_take():
    from rcatune.schema import TrainingExample

    text = (ROOT / "docs" / "data.md").read_text()
    missing = [name for name in TrainingExample.model_fields if f"| `{name}` |" not in text]
    assert not missing, f"docs/data.md's field table lacks {missing}"


def test_the_readme_curl_session_names_endpoints_the_control_api_has(state_home):
    from rcatune.api.app import create_app
    from rcatune.config.api import ApiConfig

    paths = create_app(ApiConfig(), run_jobs=False).openapi()["paths"]
    patterns = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in paths]
    used = re.findall(r"localhost:8400(/api/v1/[^\s'\"]+)", (ROOT / "README.md").read_text())
    assert len(used) >= 6
    assert [u for u in used if not any(p.match(u) for p in patterns)] == []
