"""The README's commands compose against the real config tree (CI runs what the README shows)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rcatune.config import register_configs
from tests.conftest import ROOT

COMMANDS = [line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith(".venv/bin/python run.py")]


def test_readme_has_run_commands():
    assert len(COMMANDS) >= 6
    assert (ROOT / "README.md").read_text().splitlines()[3:5] == [
        "make run    # sets up .venv with the pinned versions, then runs the default pipeline on embedded defaults",
        "make test   # sets up .venv, then runs the test suite"]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_composes(command):
    args = [a for a in shlex.split(command)[2:] if a not in ("-m", "--help") and not a.startswith("--cfg")]
    args = [a for a in args if a != "job"]
    overrides = [re.sub(r"=(\w+)(,\w+)+$", r"=\1", a) for a in args]  # a sweep: compose its first point
    OmegaConf.register_new_resolver("rcatune_state", lambda: "/tmp/x", replace=True)
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    GlobalHydra.instance().clear()
    assert cfg.pipeline.name


def test_the_data_docs_list_every_field_the_schema_and_the_csv_header_take():
    from rcatune.schema import TrainingExample

    text = (ROOT / "docs" / "data.md").read_text()
    missing = [name for name in TrainingExample.model_fields if f"| `{name}` |" not in text]
    assert not missing, f"docs/data.md's field table lacks {missing}"
