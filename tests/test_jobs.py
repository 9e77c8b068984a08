"""A run is a value: composed in Python as on the command line, serialised, run by a second process, started by
any launcher; a failing trial of a sweep is a result, not the end of the sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rcatune.errors import ConfigError
from rcatune.jobs import Job, compose
from tests.conftest import ROOT, run_py
from tests.test_pipeline import TINY_OVERRIDES

PREPARE = ["pipeline=prepare", "data.size=40", "data.split.min_examples=10", "progress=false"]


def test_a_job_composed_in_python_equals_the_command_lines(tmp_path):
    run_py(*PREPARE, f"hydra.run.dir={tmp_path / 'cli'}")
    cli = Job.load(tmp_path / "cli" / "job.json")
    here = compose(PREPARE, run_dir=str(tmp_path / "cli"))
    assert here.as_dict() == cli.as_dict()
    assert here.config().data.size == 40 and here.pipeline == "prepare"
    assert Job.from_json(here.to_json()).config() == here.config()  # read back, composed again, the same


@pytest.mark.parametrize("override, says", [
    ("data.sise=3", "data.sise"),
    ("+pipline=prepare", "did you mean pipeline?"),
    ("data=nosuch", "nosuch"),
    ("trainer.learning_rate=-1", "trainer.learning_rate"),
])
def test_a_bad_override_is_an_exception_naming_the_key(override, says):
    with pytest.raises(ConfigError, match="invalid configuration") as error:
        compose([override])
    assert says in str(error.value) and "\n" not in str(error.value).strip()


def test_a_job_that_no_longer_composes_to_what_it_recorded_is_refused(tmp_path):
    job = compose(PREPARE, run_dir=str(tmp_path / "r"))
    values = job.as_dict()
    values["resolved"]["data"]["size"] = 41  # as if conf/ had changed since
    with pytest.raises(ConfigError, match="data.size: recorded 41, now 40"):
        Job.from_json(json.dumps(values)).config()


def _metrics(summary: dict) -> dict:
    """The figures a run computes: training's, and evaluation's of the tuned and base models (times, speeds and
    memory left out: they are the machine's)."""
    noisy = ("seconds", "per_second", "memory", "latency")
    figures = {**summary["metrics"], **{f"tuned.{k}": v for k, v in summary["evaluation"]["tuned"].items()},
               **{f"base.{k}": v for k, v in summary["evaluation"]["base"].items()}}
    return {k: v for k, v in figures.items() if not any(n in k for n in noisy)}


@pytest.mark.integration
def test_fine_tuning_in_process_and_by_the_subprocess_launcher_give_equal_losses_and_metrics(tmp_path):
    """The same job twice, each on a fresh state folder: in this process, and as a process of its own that also
    trains in a process of its own (`launcher=subprocess trainer.launcher=subprocess`)."""
    job = ["data.size=40", "trainer.epochs=1", *TINY_OVERRIDES]
    summaries = {}
    for name, extra in (("inprocess", []), ("subprocess", ["launcher=subprocess", "trainer.launcher=subprocess"])):
        run_dir = tmp_path / name
        env = dict(os.environ, OMP_NUM_THREADS="1", RCATUNE_HOME=str(tmp_path / f"state-{name}"))
        done = subprocess.run([sys.executable, "run.py", *job, *extra, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
        summaries[name] = json.loads((run_dir / "run_summary.json").read_text())
    assert (tmp_path / "subprocess" / "training" / "training_job.json").exists()
    inprocess, separate = summaries["inprocess"], summaries["subprocess"]
    assert separate["status"] == inprocess["status"] == "succeeded"
    assert separate["data_hash"] == inprocess["data_hash"]
    assert {"train_loss", "eval_loss", "tuned.rca_accuracy", "tuned.perplexity"} <= set(_metrics(inprocess))
    assert _metrics(separate) == _metrics(inprocess)
    assert separate["primary_metric"] == inprocess["primary_metric"]
    assert separate["choices"]["launcher"] == "subprocess"


@pytest.mark.integration
def test_a_failing_trial_of_a_sweep_leaves_the_other_trials_result(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_py("-m", "pipeline=prepare", "data.size=5,40", "data.split.min_examples=10", "progress=false",
                  f"hydra.sweep.dir={sweep}", check=False)
    assert done.returncode == 2
    assert "trial 0 (pipeline=prepare data.size=5" in done.stderr and "1 trial(s) of the sweep failed" in done.stderr
    failed, passed = (json.loads((sweep / str(i) / "run_summary.json").read_text()) for i in (0, 1))
    assert failed["status"] == "failed" and "fewer than data.split.min_examples=10" in failed["error"]
    assert passed["status"] == "succeeded" and passed["counts"]["data"]["accepted"] == 40


@pytest.mark.integration
def test_python_m_rcatune_jobs_composes_and_runs_a_job(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    made = subprocess.run([sys.executable, "-m", "rcatune.jobs", "compose", *PREPARE, "--run-dir", str(tmp_path / "r")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    job_file = tmp_path / "job.json"
    job_file.write_text(made.stdout)
    ran = subprocess.run([sys.executable, "-m", "rcatune.jobs", "run", str(job_file)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "r" / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["overrides"] == PREPARE
    assert "rcatune prepare: succeeded" in ran.stdout
    bad = subprocess.run([sys.executable, "-m", "rcatune.jobs", "compose", "data.sise=3"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "data.sise" in bad.stderr and bad.stderr.count("\n") == 1
    assert Path(tmp_path / "r" / "job.json").exists()
