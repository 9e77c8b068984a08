"""Sweeps over Optuna (`hparams_search=optuna`): the search space, the study's database, pruning, the refusals,
and a real four-trial sweep with two parallel workers that is killed once and resumed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rcatune.errors import ConfigError, TrialPruned
from tests.conftest import ROOT


def test_the_search_space_reads_hydras_sweep_syntax():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from rcatune.sweeps.space import parse_space

    space, fixed = parse_space({"trainer.learning_rate": "tag(log, interval(1e-5, 1e-2))",
                                "trainer.warmup_ratio": "interval(0.0, 0.2)", "trainer.batch_size": "choice(2, 4, 8)",
                                "trainer.epochs": "range(1, 4)", "method.rank": "tag(int, interval(4, 32))",
                                "seed": "7"}, ["data.size=100,200", "progress=false"])
    assert space["trainer.learning_rate"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert space["trainer.warmup_ratio"] == FloatDistribution(0.0, 0.2)
    assert space["trainer.batch_size"] == CategoricalDistribution([2, 4, 8])
    assert space["trainer.epochs"] == CategoricalDistribution([1, 2, 3])
    assert space["method.rank"] == IntDistribution(4, 32)
    assert space["data.size"] == CategoricalDistribution([100, 200])  # the command line's sweep joins the space
    assert fixed == ["seed=7", "progress=false"]
    # the command line's +hydra.sweeper.params.trainer.warmup_ratio=... nests, and wins over the file's dotted key
    nested, _ = parse_space({"trainer.warmup_ratio": "interval(0.0, 0.2)",
                             "trainer": {"warmup_ratio": "interval(0.0, 0.05)", "batch_size": "choice(2, 4)"}}, [])
    assert nested == {"trainer.warmup_ratio": FloatDistribution(0.0, 0.05),
                      "trainer.batch_size": CategoricalDistribution([2, 4])}


@pytest.mark.parametrize("params, why", [({"a": "tag(cube, interval(1, 2))"}, "unknown tag"),
                                         ({"a": "interval(2, 1)"}, "low < high"),
                                         ({"a": "tag(log, interval(0, 1))"}, "low > 0"),
                                         ({"a": "choice("}, "hydra.sweeper.params")])
def test_a_search_space_that_cannot_work_is_refused_with_the_key(params, why):
    from rcatune.sweeps.space import parse_space

    with pytest.raises(ConfigError, match="hydra.sweeper.params") as error:
        parse_space(params, [])
    assert why in str(error.value)


def test_a_bad_search_space_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "run.py", "hparams_search=optuna",
                           '+hydra.sweeper.params.trainer.warmup_ratio="interval(2, 1)"',
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "rcatune: error: hydra.sweeper.params.trainer.warmup_ratio: interval(2.0, 1.0) needs low < high")
    assert "Traceback" not in done.stderr


def test_sampled_values_go_back_through_hydras_grammar():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rcatune.sweeps.space import override_value

    parser = OverridesParser.create()
    for value in (1e-5, 0.1, 3, True, "tiny", "a b,c", "it's"):
        parsed = parser.parse_override(f"key={override_value(value)}").value()
        assert parsed == value, (value, override_value(value))


def test_a_password_never_sits_in_a_config_and_never_shows(monkeypatch, tmp_path):
    from rcatune.sweeps.study import STORAGE_ENV, redacted, refuse_password, storage_url

    with pytest.raises(ConfigError, match=STORAGE_ENV):
        refuse_password("postgresql+psycopg://sweeper:s3cret@db:5432/optuna", "hydra.sweeper.storage")
    refuse_password("sqlite:////tmp/x.db", "hydra.sweeper.storage")
    assert "s3cret" not in redacted("postgresql+psycopg://sweeper:s3cret@db:5432/optuna")
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert storage_url(tmp_path) == f"sqlite:///{tmp_path}/sweeps/optuna.db"
    monkeypatch.setenv(STORAGE_ENV, "postgresql+psycopg://sweeper:s3cret@db:5432/optuna")
    assert storage_url(tmp_path).endswith("@db:5432/optuna")


def study_in(tmp_path, pruner=None, name="s"):
    import optuna

    from rcatune.sweeps.study import make_pruner, open_storage

    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = open_storage(url)
    spec = pruner or {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}
    study = optuna.create_study(study_name=name, storage=storage, pruner=make_pruner(spec), load_if_exists=True)
    study.set_user_attr("pruner", spec)
    return url, storage, study


def test_a_trial_worse_than_the_median_after_an_epoch_is_pruned(tmp_path):
    from rcatune.sweeps.study import TrialRef

    url, _, study = study_in(tmp_path)
    for value in (1.0, 1.2):  # two finished trials: losses 1.0 and 1.2 after epoch 1
        trial = study.ask()
        trial.report(value, 1)
        study.tell(trial, value)
    good, bad = study.ask(), study.ask()
    TrialRef("s", good.number).report(0.9, 1, url)  # better than the median: goes on
    with pytest.raises(TrialPruned, match="epoch 1"):
        TrialRef("s", bad.number).report(3.0, 1, url)
    assert study.trials[bad.number].intermediate_values == {1: 3.0}
    with pytest.raises(ConfigError, match="no trial 99"):
        TrialRef("s", 99).report(1.0, 1, url)


def test_a_killed_sweeps_running_trials_are_failed_and_asked_again(tmp_path):
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from rcatune.sweeps.study import recover_orphans, sweeper_id

    _, storage, study = study_in(tmp_path)
    dead = study.ask({"x": FloatDistribution(0, 1)})
    dead.set_user_attr("sweeper", f"{sweeper_id().rpartition(':')[0]}:999999999")  # this host, no such process
    alive = study.ask({"x": FloatDistribution(0, 1)})
    alive.set_user_attr("sweeper", sweeper_id())  # this process: still running
    assert recover_orphans(study, storage) == [dead.number]
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL and "killed" in trials[dead.number].user_attrs["error"]
    assert trials[alive.number].state == TrialState.RUNNING
    again = study.ask({"x": FloatDistribution(0, 1)})
    assert again.params == dead.params and again.user_attrs["retry_of"] == dead.number


def test_a_sweep_tunes_on_the_validation_split_only():
    from hydra_plugins.rcatune_optuna_sweeper.optuna_sweeper import RcatuneOptunaSweeper

    settings = dict(study_name=None, storage=None, direction="maximize", n_trials=4, n_jobs=2, max_failures=None,
                    sampler="tpe", seed=1, pruner={"name": "none"}, params={})
    with pytest.raises(ConfigError, match="test or shift"):
        RcatuneOptunaSweeper(metric="rca_accuracy", **settings)
    with pytest.raises(ConfigError, match="password"):
        RcatuneOptunaSweeper(metric="eval_loss", **{**settings, "storage": "postgresql://u:pw@h/db"})


def test_hparams_search_composes_a_sweep_whose_trials_do_not_register():
    from rcatune.jobs.compose import compose

    job = compose(["hparams_search=optuna"])
    assert job.config().register is False and job.choices["hparams_search"] == "optuna"
    assert job.choices["hydra/sweeper"] == "rcatune_optuna" and job.choices["hydra/launcher"] == "joblib"
    assert compose([]).config().register is True


def test_the_rerun_command_leaves_the_sweeps_own_switches_out():
    from rcatune.sweeps.summary import rerun_command

    command = rerun_command(["hparams_search=optuna", "data.size=60", "register=false", "sweep.trial=3",
                             "hydra.sweep.dir=/x"], {"trainer.learning_rate": 0.001})
    assert command == "python run.py data.size=60 trainer.learning_rate=0.001"


# --- a real sweep -----------------------------------------------------------------------------------------------

SWEEP = ["hparams_search=optuna", "data.size=60", "trainer.epochs=2", "progress=false", "model.num_layers=2",
         "evaluation.max_examples=4", "evaluation.max_new_tokens=32", "data.split.min_examples=10"]


def trials_of(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as connection:
        try:
            return connection.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
        except sqlite3.OperationalError:  # the schema is being made
            return []


@pytest.mark.integration
@pytest.mark.slow
def test_a_four_trial_sweep_with_two_workers_killed_once_resumes_to_its_best_trial(tmp_path, state_home):
    import optuna
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    from rcatune.state import mlflow_tracking_uri

    db = state_home / "sweeps" / "optuna.db"
    env = {k: v for k, v in os.environ.items() if k != "RCATUNE_SWEEP_STORAGE"}
    env["OMP_NUM_THREADS"] = "1"
    first_log = tmp_path / "first.log"
    with open(first_log, "wb") as handle:  # the first sweep: killed (-9, its whole process group) mid-batch
        process = subprocess.Popen([sys.executable, "run.py", *SWEEP, f"hydra.sweep.dir={tmp_path / 'first'}"],
                                   cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.time() + 600
    while True:
        states = [state for _, state in trials_of(db)]
        if sum(s in ("COMPLETE", "PRUNED") for s in states) >= 2 and "RUNNING" in states:
            break
        assert process.poll() is None, f"the sweep ended before it was killed:\n{first_log.read_text()[-3000:]}"
        assert time.time() < deadline, "the sweep did not start its second batch within 10 minutes"
        time.sleep(0.5)
    time.sleep(4)  # the second batch is training
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed = [number for number, state in trials_of(db) if state == "RUNNING"]
    assert killed

    again = subprocess.run([sys.executable, "run.py", *SWEEP, f"hydra.sweep.dir={tmp_path / 'again'}"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming with" in again.stdout and f"trial(s) {killed} were killed" in again.stdout

    summary = json.loads((tmp_path / "again" / "sweep_summary.json").read_text())
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 4
    assert summary["counts"]["fail"] == len(killed)
    rows = {t["number"]: t for t in summary["trials"]}
    for number in killed:  # each killed trial failed with why, and its parameters ran again
        assert rows[number]["state"] == "fail" and "killed" in rows[number]["error"]
        retry = [t for t in summary["trials"] if t.get("retry_of") == number]
        assert len(retry) == 1 and retry[0]["params"] == rows[number]["params"] and retry[0]["state"] != "fail"
    finished = [t for t in summary["trials"] if t["state"] in ("complete", "pruned")]
    assert all(t["intermediate"] for t in finished)  # every finished trial reported its epochs' validation loss
    best = summary["best"]
    assert best["value"] == min(t["value"] for t in finished if t["state"] == "complete")
    assert summary["rerun"].startswith("python run.py data.size=60") and "hparams_search" not in summary["rerun"]
    assert f"trainer.learning_rate={best['params']['trainer.learning_rate']!r}" in summary["rerun"]
    assert set(summary["plots"]) >= {"optimization_history", "parallel_coordinate"}

    # every finished trial's run landed in both stores; none registered a model version
    client = Client()
    mlflow = MlflowClient(tracking_uri=mlflow_tracking_uri())
    for trial in finished:
        run = json.loads((Path(trial["run_dir"]) / "run_summary.json").read_text())
        assert run["status"] == ("succeeded" if trial["state"] == "complete" else "pruned")
        zenml_run = client.get_pipeline_run((Path(trial["run_dir"]) / "zenml_run_name").read_text())
        assert zenml_run.model_version is None  # register=false: no version of the ZenML Model
        tags = mlflow.get_run(trial["mlflow_run_id"]).data.tags
        assert tags["mlflow.parentRunId"] == summary["mlflow_run_id"] and tags["rcatune.trial"] == str(trial["number"])
        assert "stage" not in run["decisions"]  # register=false: no model version, no export
    parent = mlflow.get_run(summary["mlflow_run_id"])
    assert parent.data.tags["best_trial"] == str(best["number"])
    assert {a.path for a in mlflow.list_artifacts(summary["mlflow_run_id"], "plots")} >= {
        "plots/optimization_history.png", "plots/parallel_coordinate.png"}
    study = optuna.load_study(study_name=summary["study"], storage=f"sqlite:///{db}")
    assert study.best_trial.number == best["number"]
    stores = [db, *(state_home / "zenml").rglob("*.db"), *(state_home / "mlflow").rglob("*.db")]
    assert len(stores) >= 3
    for store in stores:  # parallel trials corrupted no store
        with sqlite3.connect(store) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",), store


@pytest.mark.integration
@pytest.mark.slow
def test_a_sweep_runs_its_trials_as_submitit_jobs(tmp_path, state_home):
    """hydra/launcher=submitit_local: the launcher SLURM clusters use (submitit), with its local executor: each
    trial a submitit job with its own folder, the results read back and told to the study."""
    env = {k: v for k, v in os.environ.items() if k != "RCATUNE_SWEEP_STORAGE"}
    sweep = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "run.py", *SWEEP, "hydra/launcher=submitit_local",
                           "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=submitit", f"hydra.sweep.dir={sweep}"],
                          cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 2 and summary["counts"]["fail"] == 0
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # two submitit jobs, their results


@pytest.mark.integration
def test_a_teams_study_lives_in_postgresql_shared_by_sweepers_and_outlives_a_killed_one(postgres, monkeypatch):
    """$RCATUNE_SWEEP_STORAGE on a real PostgreSQL: two sweepers (each its own connection, as on two machines)
    ask trials at once and get distinct numbers; a sweeper that restarts finds the study, fails its dead
    predecessor's running trial and asks it again; the URL's password never shows."""
    import threading
    import time

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from rcatune.sweeps.study import STORAGE_ENV, open_storage, recover_orphans, redacted, storage_url, sweeper_id

    monkeypatch.setenv(STORAGE_ENV, postgres)
    url = storage_url()
    assert url == postgres and make_url_password(url) not in redacted(url)
    name = f"team-{time.time_ns()}"
    space = {"x": FloatDistribution(0, 1)}
    optuna.create_study(study_name=name, storage=open_storage(url))
    numbers: list[int] = []

    def sweeper() -> None:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        for _ in range(5):
            trial = study.ask(space)
            study.tell(trial, trial.params["x"])
            numbers.append(trial.number)

    workers = [threading.Thread(target=sweeper) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(numbers) == list(range(10))  # none lost, none given twice

    study = optuna.load_study(study_name=name, storage=open_storage(url))
    dead = study.ask(space)
    dead.set_user_attr("sweeper", f"{sweeper_id().rpartition(':')[0]}:999999999")  # killed: no such process
    restarted_storage = open_storage(url)  # the sweeper starts again, elsewhere
    restarted = optuna.load_study(study_name=name, storage=restarted_storage)
    assert recover_orphans(restarted, restarted_storage) == [dead.number]
    again = restarted.ask(space)
    assert again.params == dead.params and again.user_attrs["retry_of"] == dead.number
    states = [t.state for t in restarted.get_trials()]
    assert states.count(TrialState.COMPLETE) == 10 and states.count(TrialState.FAIL) == 1
    optuna.delete_study(study_name=name, storage=restarted_storage)


def make_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).password
