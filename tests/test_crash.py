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


REGISTER = ["data.size=40", "trainer.epochs=1", "data.split.min_examples=5", "model_registry_name=crash-reg",
            "evaluation.min_accuracy=0", "evaluation.min_bleu=0", "evaluation.max_perplexity=1e9",
            "evaluation.require_improvement=false",
            "evaluation.promotion_margin=-1", "model.hidden_size=64", "model.intermediate_size=128",
            "model.num_layers=2", "model.vocab_size=1024", "progress=false", "evaluation.max_new_tokens=16",
            "evaluation.max_examples=4"]


def _registry(name: str) -> tuple[dict, dict, dict]:
    """({ZenML number: (stage, registration)}, {ZenML number: MLflow version}, {alias: MLflow version})."""
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    from rcatune.registry import mlflow_twins

    versions = Client().list_model_versions(model=name, size=100, hydrate=True)
    zenml = {str(v.number): (getattr(v.stage, "value", v.stage) or None, (v.run_metadata or {}).get("registration"))
             for v in versions}
    twins = {number: str(twin.version) for number, twin in mlflow_twins(name).items()}
    aliases = dict(MlflowClient().get_registered_model(name).aliases)
    return zenml, twins, {k: str(v) for k, v in aliases.items()}


def test_registration_killed_between_its_registries_is_repaired_or_reported_by_the_next_run(tmp_path):
    """Run 1 is killed after ZenML's stage is set but before MLflow's aliases follow; run 2 after its MLflow twin
    is created but before its stage is set; run 3 completes. Each next run's check repairs what is known (run 1
    committed: its aliases) and reports what is not (run 2 never committed: left unpromoted), in one line."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    run_py_killed_at("register.stage", *REGISTER, f"hydra.run.dir={tmp_path / 'one'}", pauses=tmp_path / "p1")
    zenml, twins, aliases = _registry("crash-reg")
    assert zenml == {"1": ("production", "started")} and twins == {"1": "1"} and "champion" not in aliases

    run_py_killed_at("register.mlflow", *REGISTER, "seed=2", f"hydra.run.dir={tmp_path / 'two'}",
                     pauses=tmp_path / "p2")
    log = (tmp_path / "p2" / "run.log").read_text()
    assert "registry check: crash-reg: repaired v1: registered and staged (production)" in log
    assert "MLflow champion now v1" in log
    zenml, twins, aliases = _registry("crash-reg")
    assert zenml["1"] == ("production", "complete") and zenml["2"] == (None, "started") and twins["2"] == "2"
    assert aliases["champion"] == "1"

    run_py(*REGISTER, "seed=3", f"hydra.run.dir={tmp_path / 'three'}")
    summary = json.loads((tmp_path / "three" / "run_summary.json").read_text())
    line = summary["decisions"]["registry_check"]
    assert line.startswith("registry check: crash-reg: found v2: its registration was interrupted (MLflow v2 exists")
    assert "\n" not in line
    zenml, twins, aliases = _registry("crash-reg")
    assert zenml["2"] == (None, "interrupted") and zenml["3"][1] == "complete" and twins["3"] == "3"
    production = [n for n, (stage, _) in zenml.items() if stage == "production"]
    assert len(production) == 1 and aliases["champion"] == twins[production[0]]

    check = subprocess.run([sys.executable, "-m", "rcatune.registry", "check", "--model", "crash-reg"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and "ZenML and MLflow agree" in check.stdout, check.stdout + check.stderr


def _evaluate_args(model_dir: str, run_dir: Path) -> list[str]:
    return ["pipeline=evaluate", f"pipeline.model_dir={model_dir}", "evaluation.compare_with_base=false",
            "data.size=40", "evaluation.max_examples=4", "evaluation.max_new_tokens=24", "evaluation.batch_size=1",
            "progress=false",
            f"hydra.run.dir={run_dir}"]


def test_a_killed_evaluation_resumes_from_the_answers_it_wrote(tmp_path):
    """Killed after its second answer; the same command again takes those two from the journal and generates the
    rest: every metric and answer is what a run never killed gives."""
    from rcatune.config.model import TinyModelConfig
    from rcatune.models import model_path

    model_dir = model_path(TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                                vocab_size=1024))
    run_dir, straight_dir = tmp_path / "run", tmp_path / "never_killed"
    run_py_killed_at("evaluation.answers:2", *_evaluate_args(model_dir, run_dir), pauses=tmp_path / "p")
    journal = list((run_dir / "evaluation" / "journal").glob("*.jsonl"))
    assert len(journal) == 1 and len(journal[0].read_text().splitlines()) == 2

    run_py(*_evaluate_args(model_dir, run_dir))
    run_py(*_evaluate_args(model_dir, straight_dir))
    resumed = json.loads((run_dir / "run_summary.json").read_text())["evaluation"]
    straight = json.loads((straight_dir / "run_summary.json").read_text())["evaluation"]
    first = next(iter(resumed["sets"]))
    assert resumed["sets"][first]["tuned"].pop("answers_resumed") == 2
    for name, scores in straight["sets"].items():
        for key, value in scores["tuned"].items():
            if "latency" not in key and "per_second" not in key:
                assert resumed["sets"][name]["tuned"][key] == pytest.approx(value), (name, key)
    for answers in (run_dir / "evaluation").glob("answers_*.jsonl"):
        mine = [json.loads(line)["answer"] for line in answers.read_text().splitlines()]
        theirs = [json.loads(line)["answer"] for line in (straight_dir / "evaluation" / answers.name).read_text()
                  .splitlines()]
        assert mine == theirs


def test_a_deploy_killed_half_way_keeps_the_old_version_serving_and_the_next_action_finishes_it(
        servable_versions, tmp_path):
    """kill -9 after the new instance started (before its smoke test): the old version keeps serving, and the
    rerun completes the deploy, stopping the orphan. kill -9 after the router switched (before the state was
    saved): the next action (here: status) makes the new instance the active one and writes the missing record.
    The router's target, the state and the records agree after each."""
    import requests

    from rcatune.deploy.records import deployments_dir, history
    from rcatune.processes import alive, free_port

    first, second = (v["number"] for v in servable_versions)
    where = ["pipeline=deployment", "progress=false", f"deployer.port={free_port()}", "deployer.name=crash"]
    folder = deployments_dir() / "local" / "crash"

    def serving() -> str:
        return requests.post(endpoint + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "checkout fails"}], "max_tokens": 4}).json()["model"]

    def state() -> dict:
        return json.loads((folder / "state.json").read_text())

    def agree() -> None:
        target = json.loads((folder / "active.json").read_text())
        current = state()
        assert "pending" not in current and target["url"] == current["active"]["url"]
        assert history("local", "crash")[-1].version == current["active"]["version"] == target["version"]

    run_py(*where, f"deployment.version={first}", f"hydra.run.dir={tmp_path / 'one'}")
    endpoint = json.loads((tmp_path / "one" / "run_summary.json").read_text())["deployment"]["endpoint"]

    run_py_killed_at("deploy.started", *where, f"deployment.version={second}", f"hydra.run.dir={tmp_path / 'k1'}",
                     pauses=tmp_path / "p1")
    orphan = state()["pending"]
    assert serving() == f"rcatune-rca-v{first}" and alive(orphan["pid"])
    run_py(*where, f"deployment.version={second}", f"hydra.run.dir={tmp_path / 'two'}")
    assert serving() == f"rcatune-rca-v{second}" and not alive(orphan["pid"])
    agree()

    run_py_killed_at("deploy.switched", *where, f"deployment.version={first}", f"hydra.run.dir={tmp_path / 'k2'}",
                     pauses=tmp_path / "p2")
    assert serving() == f"rcatune-rca-v{first}" and state()["active"]["version"] == second  # they disagree
    run_py(*where, "deployment.action=status", f"hydra.run.dir={tmp_path / 'status'}")
    agree()
    last = history("local", "crash")[-1]
    assert (last.action, last.version, last.previous) == ("deploy", first, second) and "recovered" in last.detail
    assert state()["previous"]["version"] == second and alive(state()["previous"]["pid"])  # warm for a rollback
    run_py(*where, "deployment.action=stop", f"hydra.run.dir={tmp_path / 'stop'}")


PARALLEL_TINY = ["model.hidden_size=64", "model.intermediate_size=128", "model.num_layers=2", "model.vocab_size=1024",
                 "data.split.min_examples=5", "progress=false", "evaluation.max_new_tokens=16",
                 "evaluation.max_examples=4", "evaluation.min_accuracy=0", "evaluation.min_bleu=0",
                 "evaluation.max_perplexity=1e9", "evaluation.require_improvement=false"]
LOOK = """
import json
from rcatune.state import configure_environment
configure_environment()
from mlflow.tracking import MlflowClient
from zenml.client import Client
from rcatune.registry import mlflow_twins
client = Client()
runs = [(r.pipeline.name, str(r.status)) for r in client.list_pipeline_runs(size=100)]
versions = [(v.number, getattr(v.stage, "value", v.stage)) for v in
            client.list_model_versions(model="rcatune-rca", size=100)]
mlflow_runs = [r.info.status for e in MlflowClient().search_experiments() for r in
               MlflowClient().search_runs([e.experiment_id])]
print(json.dumps({"runs": runs, "versions": versions, "twins": sorted(mlflow_twins("rcatune-rca")),
                  "mlflow_runs": mlflow_runs}))
"""


def test_two_trainings_and_a_prepare_at_once_on_a_fresh_state_folder_all_land(tmp_path):
    """Three runs started together on one new state folder (its stores created by whichever comes first): each
    succeeds, each lands in ZenML and MLflow, the two model versions get two numbers, one production."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH",
                                                             "MLFLOW_TRACKING_URI", "HF_HOME")}
    env.update(RCATUNE_HOME=str(tmp_path / "state"), OMP_NUM_THREADS="1")
    commands = [["data.size=40", "trainer.epochs=1", "seed=1", *PARALLEL_TINY],
                ["data.size=40", "trainer.epochs=1", "seed=2", *PARALLEL_TINY],
                ["pipeline=prepare", "data.size=60", "data.split.min_examples=5", "progress=false"]]
    processes = [subprocess.Popen([sys.executable, "run.py", *args, f"hydra.run.dir={tmp_path / str(i)}"], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for i, args in enumerate(commands)]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
        assert "locked" not in output.lower(), output[-3000:]
    looked = subprocess.run([sys.executable, "-c", LOOK], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    found = json.loads(looked.stdout.strip().splitlines()[-1])
    assert sorted(name for name, _ in found["runs"]) == ["fine_tuning_pipeline"] * 2 + ["prepare_pipeline"]
    assert all(status == "completed" for _, status in found["runs"]), found["runs"]
    assert sorted(number for number, _ in found["versions"]) == [1, 2] and found["twins"] == ["1", "2"]
    assert [stage for _, stage in found["versions"]].count("production") == 1
    assert len(found["mlflow_runs"]) >= 3 and all(s == "FINISHED" for s in found["mlflow_runs"])


def test_ctrl_c_leaves_a_summary_that_says_interrupted(tmp_path):
    """Ctrl-C (SIGINT) mid-run: run_summary.json says interrupted, not running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    run_dir, pauses = tmp_path / "run", tmp_path / "p"
    env = dict(os.environ, OMP_NUM_THREADS="1", RCATUNE_PAUSE_AT="prepare.formats:hf", RCATUNE_PAUSE_DIR=str(pauses))
    process = subprocess.Popen([sys.executable, "run.py", *PREPARE, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (pauses / "prepare.formats:hf.paused").exists():
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=120)[0]
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert process.returncode == 130 and summary["status"] == "interrupted", output[-2000:]
    assert "Traceback" not in output and "rcatune: interrupted" in output
