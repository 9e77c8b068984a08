"""trainer=llama_factory: the YAML rcatune writes, the log checks, and a real llamafactory-cli run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rcatune.config import instantiate
from rcatune.config.method import FreezeMethodConfig, FullMethodConfig, LoraMethodConfig, QloraMethodConfig
from rcatune.config.model import FamilyConfig, ModelConfig
from rcatune.config.trainer import LlamaFactoryTrainerConfig
from rcatune.models import model_path
from rcatune.runtime import Runtime
from rcatune.training import llama_factory as lf
from tests.test_pipeline import TINY_OVERRIDES, run_py

LLAMA = ModelConfig(name_or_path="meta-llama/Meta-Llama-3-8B-Instruct", family=FamilyConfig(
    name="llama3", chat_template="llama3", lora_target_modules=["q_proj", "v_proj"]))
GPU = Runtime(device="cuda", progress=False)  # the YAML only: nothing runs


def yaml_for(method, resume=None, **trainer):
    return lf.training_yaml("/models/llama3", LLAMA, instantiate(method), LlamaFactoryTrainerConfig(**trainer),
                            Path("/data"), Path("/out"), GPU, resume)


def test_each_method_maps_to_llama_factory_keys():
    lora = yaml_for(LoraMethodConfig(rank=8, alpha=16, dropout=0.1), learning_rate=1e-4, packing=True)
    assert {k: lora[k] for k in ("finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target",
                                 "template", "learning_rate", "packing", "neat_packing", "bf16", "use_cpu")} == {
        "finetuning_type": "lora", "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.1,
        "lora_target": "q_proj,v_proj", "template": "llama3", "learning_rate": 1e-4, "packing": True,
        "neat_packing": True, "bf16": True, "use_cpu": False}
    qlora = yaml_for(QloraMethodConfig())
    assert (qlora["quantization_bit"], qlora["quantization_method"], qlora["double_quantization"]) == (4, "bnb", True)
    assert yaml_for(FullMethodConfig())["finetuning_type"] == "full"
    freeze = yaml_for(FreezeMethodConfig(trainable_layers=3))
    assert (freeze["finetuning_type"], freeze["freeze_trainable_layers"]) == ("freeze", 3)
    assert yaml_for(LoraMethodConfig(), template="llama3_custom")["template"] == "llama3_custom"
    qwen = ModelConfig(name_or_path="Qwen/Qwen2.5-7B-Instruct", family=FamilyConfig(
        name="qwen2", chat_template="chatml", lora_target_modules=["q_proj"]))
    assert lf.training_yaml("/q", qwen, instantiate(LoraMethodConfig()), LlamaFactoryTrainerConfig(), Path("/d"),
                            Path("/o"), GPU)["template"] == "qwen"  # LLaMA-Factory's name for the family
    # LLaMA-Factory checkpoints unless told `disable_gradient_checkpointing`, whatever `gradient_checkpointing` says
    on, off = yaml_for(LoraMethodConfig()), yaml_for(LoraMethodConfig(), gradient_checkpointing=False)
    assert (on["disable_gradient_checkpointing"], off["disable_gradient_checkpointing"]) == (False, True)
    resumed = yaml_for(LoraMethodConfig(), resume="/out/model/checkpoint-40", save_steps=20)
    assert (resumed["resume_from_checkpoint"], resumed["save_strategy"], resumed["save_steps"]) == (
        "/out/model/checkpoint-40", "steps", 20)


def test_preference_objectives_map_to_llama_factory_keys():
    from rcatune.config.objective import DpoObjectiveConfig, KtoObjectiveConfig, SftObjectiveConfig

    assert lf.objective_settings(SftObjectiveConfig()) == {}
    dpo = DpoObjectiveConfig(beta=0.2, loss_type="ipo")
    assert lf.objective_settings(dpo) == {"pref_beta": 0.2, "pref_loss": "ipo"}
    assert lf.objective_settings(KtoObjectiveConfig(beta=0.3, desirable_weight=1.5, undesirable_weight=0.5)) == {
        "pref_beta": 0.3, "kto_chosen_weight": 1.5, "kto_rejected_weight": 0.5}


def test_a_lenient_log_becomes_an_error():
    ok = ["[INFO|trainer.py] >>   Num examples = 12", "[INFO|trainer.py] >>   Num examples = 3"]
    lf.check_log(ok, train_rows=12)
    with pytest.raises(lf.LlamaFactoryError, match="trained on 11 examples, but rcatune wrote 12"):
        lf.check_log(["  Num examples = 11"], train_rows=12)
    with pytest.raises(lf.LlamaFactoryError, match="dropped 1 example"):
        lf.check_log(["[WARNING] Dropped invalid example: [{'content': ''}]", *ok], train_rows=12)
    with pytest.raises(lf.LlamaFactoryError, match="never said how many"):
        lf.check_log(["loading"], train_rows=12)


def test_missing_installation_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.delenv(lf.CLI_ENV, raising=False)
    monkeypatch.setattr(lf, "PROJECT_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(lf.LlamaFactoryError, match="make llamafactory"):
        lf.find_cli()


@pytest.mark.integration
@pytest.mark.slow
def test_llama_factory_drops_bad_rows_silently_and_rcatune_catches_it(cli, tmp_path, state_home):
    from rcatune.config.model import TinyModelConfig

    model = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2)
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"instruction": f"question {i}", "input": "", "output": f"answer {i}"} for i in range(6)]
    rows[2]["output"] = None  # no answer: LLaMA-Factory drops the row with a warning and carries on
    (data / "train.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": "train.json"}}))
    config = lf.training_yaml(model_path(model), model, instantiate(FullMethodConfig()),
                              LlamaFactoryTrainerConfig(epochs=1, batch_size=2, max_length=64,
                                                        gradient_checkpointing=False),
                              data, tmp_path, Runtime(device="cpu", progress=False))
    config.update(dataset="bad", eval_dataset=None)
    del config["eval_dataset"], config["eval_strategy"]
    config_file = tmp_path / "train.yaml"
    lf._write_yaml(config_file, config)
    code, lines, peak_mb = lf.run_cli(cli, config_file, tmp_path / "lf.log", echo=False)
    assert code == 0, "\n".join(lines[-20:])  # LLaMA-Factory itself calls this a success
    assert peak_mb > 100  # its own peak memory, read from /proc while it ran
    assert any("Dropped invalid example" in line for line in lines)
    with pytest.raises(lf.LlamaFactoryError, match="dropped 1 example"):
        lf.check_log(lines, train_rows=6)


@pytest.mark.integration
@pytest.mark.slow
def test_fine_tuning_with_llama_factory_reaches_evaluate_register_export(cli, tmp_path):
    run_dir = tmp_path / "run"
    run_py("trainer=llama_factory", "method=lora", "trainer.epochs=1", "trainer.batch_size=4",
           "trainer.gradient_accumulation_steps=1", "trainer.max_length=1024", "trainer.gradient_checkpointing=false",
           "data.size=40", *TINY_OVERRIDES, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["choices"]["trainer"] == "llama_factory"
    training = run_dir / "training"
    config = (training / "llamafactory_train.yaml").read_text()
    assert "finetuning_type: lora" in config and "template: chatml" in config
    assert (training / "model" / "adapter_config.json").exists()
    train_rows = summary["counts"]["splits"]["train"]
    log = (training / "llamafactory.log").read_text()
    assert f"Num examples = {train_rows}" in log
    assert summary["metrics"]["train_tokens_per_second"] > 0 and summary["metrics"]["eval_loss"] > 0
    assert summary["evaluation"]["tuned"]["perplexity"] > 0
    assert summary["decisions"]["zenml_model_version"].startswith("rcatune-rca v")
    assert (Path(summary["artifacts"]["export_merged"]) / "config.json").exists()

    # Continue it for a second epoch from its checkpoint, keeping one checkpoint: LLaMA-Factory deletes the one it
    # resumed from while it trains, and the run must still finish.
    checkpoints = sorted((training / "model").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, "LLaMA-Factory saved no checkpoint to resume from"
    run_py("trainer=llama_factory", "method=lora", "trainer.epochs=2", "trainer.batch_size=4",
           "trainer.gradient_accumulation_steps=1", "trainer.max_length=1024", "trainer.gradient_checkpointing=false",
           "trainer.save_total_limit=1", "trainer.resume_from=latest", "data.size=40", *TINY_OVERRIDES,
           f"hydra.run.dir={run_dir}")
    resumed = json.loads((run_dir / "run_summary.json").read_text())
    assert resumed["status"] == "succeeded"
    assert resumed["decisions"]["resumed_from"] == str(checkpoints[-1]) and not checkpoints[-1].exists()
    assert f"resume_from_checkpoint: {checkpoints[-1]}" in (training / "llamafactory_train.yaml").read_text()
    metrics = json.loads((training / "train_metrics.json").read_text())["metrics"]
    assert metrics["epochs"] == 2 and metrics["train_tokens_per_second"] > 0
