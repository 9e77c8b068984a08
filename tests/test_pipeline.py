"""End to end through `python run.py`: real ZenML store and MLflow tracking under the test state folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rcatune.runtime import GPU_DEVICE_FILES
from tests.conftest import ROOT, run_py, run_py_killed_at

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TINY_OVERRIDES = ["model.hidden_size=64", "model.intermediate_size=128", "model.num_layers=2", "model.vocab_size=1024",
                  "data.split.min_examples=10", "progress=false", "evaluation.max_new_tokens=48",
                  "evaluation.max_examples=4"]


def mlflow_run(run_id: str):
    from mlflow.tracking import MlflowClient

    from rcatune.state import mlflow_tracking_uri

    return MlflowClient(tracking_uri=mlflow_tracking_uri()).get_run(run_id)


@pytest.fixture(scope="module")
def mixed_file(sample_records, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mixed") / "sessions.jsonl"
    lines = [json.dumps(r) for r in sample_records[:40]]
    lines.insert(5, '{"id": "broken", ')
    lines.insert(12, json.dumps(dict(sample_records[50], confidence_score=3)))
    lines.insert(20, json.dumps(sample_records[0]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prepare_on_a_mixed_file_reports_counts_that_add_up(mixed_file, tmp_path, state_home):
    run_dir = tmp_path / "run"
    result = run_py("pipeline=prepare", "data=jsonl", f"data.path={mixed_file}", f"hydra.run.dir={run_dir}")
    assert "read 43, accepted 40, rejected 3" in result.stdout
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["pipeline"] == "prepare"
    data = summary["counts"]["data"]
    assert (data["read"], data["accepted"], data["rejected"]) == (43, 40, 3)
    assert data["by_reason"] == {"malformed_json": 1, "out_of_range": 1, "duplicate_id": 1}
    assert sum(summary["counts"]["splits"].values()) == 40
    quarantine = [json.loads(line) for line in Path(summary["artifacts"]["quarantine"]).read_text().splitlines()]
    assert [(q["location"], q["category"]) for q in quarantine] == [
        ("line 6", "malformed_json"), ("line 13", "out_of_range"), ("line 21", "duplicate_id")]
    assert quarantine[1]["field"] == "confidence_score"
    for fmt in ("dataset", "openai", "hf", "llama_factory", "csv"):
        assert Path(summary["artifacts"][f"format_{fmt}"]).exists()
    assert summary["choices"]["data"] == "jsonl" and summary["git"]["commit"]
    assert (run_dir / ".hydra" / "config.yaml").exists()

    tracked = mlflow_run(summary["mlflow"]["run_id"])
    assert tracked.data.params["data.path"] == str(mixed_file)
    assert tracked.data.params["pipeline.name"] == "prepare"
    assert tracked.data.metrics["data_rejected"] == 3 and tracked.data.metrics["data_accepted"] == 40
    assert tracked.data.tags["data_hash"] == summary["data_hash"]
    assert Path(tracked.info.artifact_uri.removeprefix("file://")).is_relative_to(state_home)

    from zenml.client import Client

    zen_run = Client().get_pipeline_run(summary["zenml_run"])
    artifact = zen_run.steps["load_data"].outputs["validated_dataset"][0]
    assert artifact.run_metadata["rejected"] == 3 and artifact.run_metadata["data_hash"] == summary["data_hash"]
    assert len(artifact.load().examples) == 40
    assert not (ROOT / "mlruns").exists() and not (ROOT / "mlflow.db").exists()


def test_too_many_rejects_fail_with_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": \n[1]\n{"id": "x"}\n')
    run_dir = tmp_path / "run"
    result = run_py("pipeline=prepare", "data=jsonl", f"data.path={bad}", "progress=false", f"hydra.run.dir={run_dir}",
                    check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "3 of 3 records (100%) were rejected" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "failed" and summary["counts"]["data"]["rejected"] == 3
    assert summary["error"] in result.stderr and summary["traceback"] is None


def test_bad_config_fails_before_running(tmp_path):
    result = run_py("trainer.learning_rate=-1", f"hydra.run.dir={tmp_path}", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "trainer.learning_rate: must be positive" in result.stderr and "Traceback" not in result.stderr
    typo = run_py("+pipline=prepare", f"hydra.run.dir={tmp_path / 'typo'}", check=False)
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1
    assert "unknown key pipline; did you mean pipeline?" in typo.stderr
    assert not (tmp_path / "typo" / "run_summary.json").exists()  # refused before anything ran


def test_multirun_gives_one_zenml_and_one_mlflow_run_each(tmp_path):
    sweep = tmp_path / "sweep"
    run_py("-m", "pipeline=prepare", "data.size=40,60", "data.split.min_examples=10", f"hydra.sweep.dir={sweep}")
    summaries = [json.loads((sweep / str(i) / "run_summary.json").read_text()) for i in (0, 1)]
    assert [s["counts"]["data"]["accepted"] for s in summaries] == [40, 60]
    assert len({s["zenml_run"] for s in summaries}) == 2
    assert len({s["mlflow"]["run_id"] for s in summaries}) == 2
    assert [mlflow_run(s["mlflow"]["run_id"]).data.params["data.size"] for s in summaries] == ["40", "60"]


def test_reproduction_from_the_summary_gives_the_same_data(tmp_path):
    first = tmp_path / "first"
    run_py("pipeline=prepare", "data.size=50", "data.seed=3", "data.split.min_examples=10", f"hydra.run.dir={first}")
    summary = json.loads((first / "run_summary.json").read_text())
    again = tmp_path / "again"
    imports = run_py(*summary["overrides"], f"hydra.run.dir={again}", env={"PYTHONPROFILEIMPORTTIME": "1"}).stderr
    assert json.loads((again / "run_summary.json").read_text())["data_hash"] == summary["data_hash"]
    # a run that never trains does not import torch (start-up: Runtime.detect, ZenML's integrations and its
    # MLflow tracker each used to), unless this machine has a GPU driver torch must be asked about
    imported = {line.rsplit("|", 1)[1].strip() for line in imports.splitlines() if line.startswith("import time:")}
    assert "zenml" in imported
    if not any(Path(p).exists() for p in GPU_DEVICE_FILES):
        assert "torch" not in imported


def test_default_pipeline_trains_evaluates_registers_exports_then_evaluates_again(tmp_path):
    first = tmp_path / "first"
    run_py("data.size=50", "trainer.epochs=1", "export.onnx=true", *TINY_OVERRIDES, f"hydra.run.dir={first}")
    summary = json.loads((first / "run_summary.json").read_text())
    assert summary["pipeline"] == "fine_tuning" and summary["choices"]["data"] == "sample"
    assert summary["choices"]["method"] == "full" and summary["choices"]["evaluation"] == "tiny"
    assert summary["metrics"]["train_tokens_per_second"] > 0 and Path(summary["artifacts"]["model"]).is_dir()
    assert summary["evaluation"]["tuned"]["examples"] == 4 and "rca_accuracy" in summary["evaluation"]["base"]
    checks = summary["decisions"]["gate_checks"]
    accuracy = summary["evaluation"]["tuned"]["rca_accuracy"]
    assert [(c["metric"], c["rule"]) for c in checks] == [("rca_accuracy", "at_least"), ("perplexity", "at_most"),
                                                          ("bleu", "at_least"), ("rca_accuracy_gain", "at_least"),
                                                          ("mcnemar_p", "below")]
    assert summary["evaluation"]["headline"] == "shift" and set(summary["evaluation"]["sets"]) == {"shift", "test"}
    words = summary["evaluation"]["sets"]["shift"]["words_baseline"]  # fitted on the same train split
    assert words["examples"] == 4 and 0.0 <= words["rca_accuracy"] <= 1.0 and words["fitted_on"] > 0
    assert summary["evaluation"]["sets"]["shift"]["versus_baseline"]["n"] == 4
    assert "Bag-of-words baseline" in Path(summary["artifacts"]["evaluation_report"]).read_text()
    assert checks[0]["value"] == accuracy and checks[0]["passed"] == (accuracy >= checks[0]["threshold"])
    assert summary["decisions"]["gate"] == ("passed" if all(c["passed"] for c in checks) else "failed")
    assert summary["primary_metric"] == {"name": "rca_accuracy", "set": "shift", "value": accuracy}
    assert Path(summary["artifacts"]["evaluation_report"]).read_text().startswith("# rcatune evaluation")
    assert (Path(summary["artifacts"]["evaluation_report"]).parent / "metrics.png").exists()
    assert (Path(summary["artifacts"]["export_merged"]) / "config.json").exists()
    onnx_report = json.loads((Path(summary["artifacts"]["export_onnx"]) / "rcatune_onnx.json").read_text())
    assert onnx_report["parity"]["passed"] and summary["decisions"]["onnx_parity"].endswith("with its KV cache")

    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    from rcatune.state import mlflow_tracking_uri

    name, number = summary["decisions"]["zenml_model_version"].split(" v")
    version = Client().get_model_version(name, int(number))
    assert version.run_metadata["rca_accuracy"] == summary["evaluation"]["tuned"]["rca_accuracy"]
    assert version.run_metadata["stage_reason"] == summary["decisions"]["stage_reason"]
    assert version.run_metadata["data_hash"] == summary["data_hash"]
    assert version.run_metadata["git_commit"] == summary["git"]["commit"]
    assert version.run_metadata["config"]["trainer"]["epochs"] == 1
    mlflow_name, mlflow_number = summary["decisions"]["mlflow_model_version"].split(" v")
    registered = MlflowClient(tracking_uri=mlflow_tracking_uri()).get_model_version(mlflow_name, mlflow_number)
    assert registered.run_id == summary["mlflow"]["run_id"] and registered.tags["zenml_version"] == number
    logged = MlflowClient(tracking_uri=mlflow_tracking_uri()).get_run(registered.run_id).data.metrics
    assert logged["export_onnx_max_logit_difference"] == onnx_report["parity"]["max_logit_difference"]

    # score that registered version, and then its export folder, on new incidents from a file
    incidents = Path(summary["artifacts"]["format_dataset"]) / "test.jsonl"
    by_version = tmp_path / "by_version"
    run_py("pipeline=evaluate", f"pipeline.model_version={number}", "data=jsonl", f"data.path={incidents}",
           *TINY_OVERRIDES, f"hydra.run.dir={by_version}")
    scored = json.loads((by_version / "run_summary.json").read_text())
    assert scored["pipeline"] == "evaluate" and scored["evaluation"]["base"] is not None
    assert scored["counts"]["data"]["accepted"] == summary["counts"]["splits"]["test"]
    assert scored["evaluation"]["tuned"]["perplexity"] > 0 and scored["primary_metric"]["name"] == "rca_accuracy"
    # the bag-of-words baseline of the version's own training data came with it
    assert scored["evaluation"]["sets"]["data"]["words_baseline"]["fitted_on"] == words["fitted_on"]
    by_folder = tmp_path / "by_folder"
    run_py("pipeline=evaluate", f"pipeline.model_dir={summary['artifacts']['export_merged']}", "data=jsonl",
           f"data.path={incidents}", "evaluation.require_improvement=false", *TINY_OVERRIDES,
           f"hydra.run.dir={by_folder}")
    scored_folder = json.loads((by_folder / "run_summary.json").read_text())
    assert scored_folder["evaluation"]["sets"]["data"]["words_baseline"]["fitted_on"] == words["fitted_on"]
    # ... but not on the sessions it trained on, unless forced (and then the summary says so)
    trained_on = Path(summary["artifacts"]["format_dataset"]) / "train.jsonl"
    refused = run_py("pipeline=evaluate", f"pipeline.model_version={number}", "data=jsonl", f"data.path={trained_on}",
                     *TINY_OVERRIDES, f"hydra.run.dir={tmp_path / 'refused'}", check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "were in rcatune-rca v" in refused.stderr and "pipeline.allow_overlap=true" in refused.stderr
    forced = tmp_path / "forced"
    run_py("pipeline=evaluate", f"pipeline.model_version={number}", "data=jsonl", f"data.path={trained_on}",
           "pipeline.allow_overlap=true", "evaluation.compare_with_base=false", *TINY_OVERRIDES,
           f"hydra.run.dir={forced}")
    overlap = json.loads((forced / "run_summary.json").read_text())["decisions"]["evaluation_overlap"]
    assert overlap.startswith(f"{summary['counts']['splits']['train']} evaluation sessions were training data")
    # the export says which base it came from (rcatune_model.json), so base vs export is measured too
    assert scored_folder["evaluation"]["base"]["perplexity"] == pytest.approx(
        scored["evaluation"]["base"]["perplexity"], rel=1e-3)
    assert scored_folder["evaluation"]["tuned"]["perplexity"] == pytest.approx(
        scored["evaluation"]["tuned"]["perplexity"], rel=1e-3), "export scores like the model it came from"


def test_help_and_cfg_job():
    help_text = run_py("--help").stdout
    assert "schema/" not in help_text and "model/family:" in help_text  # what a user picks, not internals
    for group in ("pipeline", "data", "model", "method", "trainer", "evaluation", "stack", "experiment", "debug"):
        assert f"{group}:" in help_text
    assert "python run.py -m data.size=100,200" in help_text
    job = run_py("--cfg", "job", "data=sample", "data.size=77").stdout
    assert "size: 77" in job and "_target_: rcatune.sources.SampleSource" in job


def _eval_losses(run_dir: Path) -> list[float]:
    history = json.loads((run_dir / "training" / "train_metrics.json").read_text())["history"]
    return [entry["eval_loss"] for entry in history if "eval_loss" in entry]


# The recipe a user tried (issue 24): the tiny pace (word dropout, length-grouped batches, weighted loss), three
# epochs, a checkpoint every step, two kept.
RESUME_ARGS = ["data.size=40", "trainer.epochs=3", "trainer.batch_size=4", "trainer.save_steps=1",
               "trainer.save_total_limit=2", *TINY_OVERRIDES]


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("never_killed")
    run_py(*RESUME_ARGS, f"hydra.run.dir={run_dir}")
    return run_dir


def _steps_per_epoch(run_dir: Path) -> int:
    summary = json.loads((run_dir / "run_summary.json").read_text())
    return -(-summary["counts"]["splits"]["train"] // 4)  # ceil(train / batch 4)


@pytest.mark.parametrize("where", ["mid_epoch", "epoch_end"])
def test_killed_training_resumes_to_the_losses_of_a_run_never_killed(never_killed, tmp_path, where):
    """kill -9 once a chosen checkpoint is whole (inside the second epoch, or at the end of the first), then the
    same command with trainer.resume_from=latest: every epoch's eval loss is the never-killed run's. With
    save_total_limit=2 the resumed run also rotates away the checkpoint it resumed from while it trains."""
    per_epoch = _steps_per_epoch(never_killed)
    step = per_epoch + per_epoch // 2 if where == "mid_epoch" else per_epoch
    run_dir = tmp_path / "run"
    run_py_killed_at(f"training.checkpoint:{step}", *RESUME_ARGS, f"hydra.run.dir={run_dir}", pauses=tmp_path / "p")
    assert not (run_dir / "training" / "model").exists()

    run_py(*RESUME_ARGS, "trainer.resume_from=latest", f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded"
    resumed = summary["decisions"]["resumed_from"]
    assert resumed.endswith(f"checkpoint-{step}")
    assert not Path(resumed).exists(), "the checkpoint it resumed from was rotated away while it trained"
    steps = 3 * per_epoch
    state = json.loads((run_dir / "training" / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json")
                       .read_text())
    assert state["global_step"] == steps and state["epoch"] == 3
    assert (run_dir / "training" / "model" / "config.json").exists()  # model=tiny trains full weights
    assert Path(summary["artifacts"]["export_merged"]).is_dir() and summary["decisions"]["zenml_model_version"]
    assert summary["metrics"]["train_tokens_per_second"] > 0

    straight = json.loads((never_killed / "run_summary.json").read_text())
    # killed at the end of epoch 1 before its evaluation, the resumed run evaluates epochs 2 and 3 only
    evals = _eval_losses(run_dir)
    assert len(evals) == (3 if where == "mid_epoch" else 2)
    assert evals == pytest.approx(_eval_losses(never_killed)[-len(evals):], rel=1e-6)
    assert summary["metrics"]["eval_loss"] == pytest.approx(straight["metrics"]["eval_loss"], rel=1e-6)


def test_dpo_starts_from_a_registered_version_which_the_evaluation_compares_it_with(never_killed, tmp_path):
    """objective=dpo on the same data from a registered SFT version: that version's merged export is the run's
    base model, so 'base vs tuned' is SFT alone vs SFT + DPO on the same incidents; the result registers and
    exports like any run."""
    sft = json.loads((never_killed / "run_summary.json").read_text())
    number = sft["decisions"]["zenml_model_version"].split(" v")[1]
    run_dir = tmp_path / "dpo"
    run_py("objective=dpo", f"objective.start_from={number}", "data.size=40", "trainer.epochs=1",
           "trainer.learning_rate=5e-4", "trainer.batch_size=8", *TINY_OVERRIDES, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["choices"]["objective"] == "dpo"
    trained = json.loads((Path(summary["artifacts"]["model"]) / "rcatune_model.json").read_text())
    assert trained["base_model"]["values"]["name_or_path"] == sft["artifacts"]["export_merged"]
    assert summary["evaluation"]["base"]["perplexity"] == pytest.approx(
        sft["evaluation"]["tuned"]["perplexity"], rel=1e-3), "the base scored here is the SFT version"
    assert summary["decisions"]["zenml_model_version"] != sft["decisions"]["zenml_model_version"]
    assert Path(summary["artifacts"]["export_merged"]).is_dir()


def test_drift_against_a_runs_training_split_flags_fault_families_it_never_had(tmp_path):
    """pipeline=drift compares new sessions with the training split a run wrote (RUN_DIR/formats/dataset): sessions
    of fault families that split never had pass the threshold, new sessions of its own families do not."""
    from rcatune.demo.generator import generate_sessions

    held_out = {"emailMemoryLeak", "kafkaQueueProblems", "imageSlowLoad"}
    run = tmp_path / "run"  # the layout a fine_tuning run leaves (drift reads its training split, not its weights)
    (run / "training" / "model").mkdir(parents=True)
    (run / "formats" / "dataset").mkdir(parents=True)
    trained = [r for r in generate_sessions(240, seed=3) if r["scenario"] not in held_out]
    (run / "formats" / "dataset" / "train.jsonl").write_text("".join(json.dumps(r, default=str) + "\n"
                                                                      for r in trained))
    new = list(generate_sessions(160, seed=99))
    for name, rows in (("shifted", [r for r in new if r["scenario"] in held_out]),
                       ("familiar", [r for r in new if r["scenario"] not in held_out])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    scores = {}
    for name in ("shifted", "familiar"):
        run_py("pipeline=drift", f"pipeline.model_dir={run / 'training' / 'model'}", "data=jsonl",
               f"data.path={tmp_path / (name + '.jsonl')}", "pipeline.threshold=0.3", "pipeline.model_signal=false",
               "progress=false", f"hydra.run.dir={tmp_path / name}")
        summary = json.loads((tmp_path / name / "run_summary.json").read_text())
        assert summary["status"] == "succeeded" and Path(summary["artifacts"]["drift_report"]).exists()
        scores[name] = summary["decisions"]["drift"]
    assert scores["shifted"]["triggered"] and not scores["familiar"]["triggered"], scores
    assert scores["shifted"]["score"] > 0.6 > 0.2 > scores["familiar"]["score"], scores
    assert (run / "formats" / "dataset" / "drift_profile.json").exists()  # profiled once, then read


def test_drift_asks_the_model_how_sure_it_is_against_its_held_out_sessions(never_killed, tmp_path):
    """With the model (pipeline.model_signal, the default) each session also gets the model's confidence in its root
    cause, judged against the run's validation split: that split itself is below its own median about half the time
    and never below its minimum. A folder without weights is refused with the way round."""
    summary = json.loads((never_killed / "run_summary.json").read_text())
    held_out = never_killed / "formats" / "dataset" / "val.jsonl"
    count = len(held_out.read_text().splitlines())
    shares = {}
    for quantile in ("p50", "max"):
        run_py("pipeline=drift", f"pipeline.model_dir={summary['artifacts']['export_merged']}", "data=jsonl",
               f"data.path={held_out}", f"pipeline.outlier_quantile={quantile}", "progress=false",
               f"hydra.run.dir={tmp_path / quantile}")
        report = json.loads((tmp_path / quantile / "drift" / "drift.json").read_text())
        assert all(0 < s["confidence"] <= 1 for s in report["per_session"]) and len(report["per_session"]) == count
        shares[quantile] = report["shares"]["unsure"]
        assert "model confidence in its root cause" in (tmp_path / quantile / "drift" / "drift.md").read_text()
    assert shares["max"] == 0 and shares["p50"] == pytest.approx(round(0.5 * (count - 1)) / count), shares
    profile = json.loads((never_killed / "formats" / "dataset" / "drift_profile.json").read_text())
    assert profile["confidence_sessions"] == count and profile["confidence"]["p50"] > profile["confidence"]["max"]
    bare = tmp_path / "bare" / "training" / "model"
    bare.mkdir(parents=True)
    result = run_py("pipeline=drift", f"pipeline.model_dir={bare}", "data=jsonl", f"data.path={held_out}",
                    f"hydra.run.dir={tmp_path / 'refused'}", check=False)
    assert result.returncode == 2 and "pipeline.model_signal=false" in result.stderr


def test_the_handwritten_loop_trains_then_scores_the_new_version_on_sessions_people_wrote(tmp_path):
    """scripts/handwritten_loop.py (make gemma-run): one command, one table of base, tuned and bag-of-words."""
    import subprocess
    import sys

    run_dir = tmp_path / "loop"
    result = subprocess.run([sys.executable, "scripts/handwritten_loop.py", "--sets", "set6", "--run-dir",
                             str(run_dir), "data.size=50", "trainer.epochs=1", *TINY_OVERRIDES], cwd=ROOT,
                            capture_output=True, text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (run_dir / "handwritten.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| set ")]
    assert [row.split(" | ")[0] for row in rows] == ["| shift (headline)", "| test (split)", "| set6 (hand-written)"]
    set6 = json.loads((run_dir / "handwritten" / "set6" / "run_summary.json").read_text())
    assert set6["evaluation"]["sets"]["data"]["tuned"]["examples"] == 21  # every session of the set, not 4
    assert f"of {21}" in rows[2] and table in result.stdout
