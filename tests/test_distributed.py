"""`distributed=ddp|deepspeed_zero2|deepspeed_zero3`: torchrun starts the training recipe once per rank (two CPU
processes over gloo here); each rank trains on its share of every batch, so the run takes half the optimizer steps
of one process at the same per-process batch, and its loss curve agrees with one process at the same global batch.
A killed ZeRO-3 run resumes from its DeepSpeed checkpoint, and its gathered weights load with plain transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_py


def test_torchrun_is_standalone_on_one_node_and_meets_at_the_master_on_several():
    from rcatune.config.trainer import DistributedConfig, Strategy
    from rcatune.training.launch import torchrun_prefix

    one = torchrun_prefix(DistributedConfig(strategy=Strategy.ddp, nproc_per_node=2))
    assert one[1:] == ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    two = torchrun_prefix(DistributedConfig(strategy=Strategy.ddp, nproc_per_node=4, nodes=2, node_rank=1,
                                            master_addr="10.0.0.5", master_port=29400))
    assert two[3:] == ["--nproc_per_node=4", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.5",
                       "--master_port=29400"]
    assert DistributedConfig(strategy=Strategy.ddp, nproc_per_node=4, nodes=2).world_size == 8


def test_distributed_is_a_group_and_refused_where_it_cannot_run():
    from rcatune.errors import ConfigError
    from rcatune.jobs import compose

    cfg = compose(["distributed=ddp", "trainer.distributed.nproc_per_node=3"]).config()
    assert (cfg.trainer.distributed.strategy.value, cfg.trainer.distributed.world_size) == ("ddp", 3)
    assert compose([]).config().trainer.distributed.strategy.value == "none"
    with pytest.raises(ConfigError, match="runs with trainer=hf"):
        compose(["distributed=ddp", "trainer=llama_factory"])
    with pytest.raises(ConfigError, match="node_rank"):
        compose(["distributed=ddp", "trainer.distributed.nodes=2", "trainer.distributed.node_rank=2"])


COMMON = ["data.size=40", "trainer.epochs=4", "trainer.batch_size=8", "trainer.group_by_length=false",
          "trainer.prompt_dropout=0", "trainer.logging_steps=1", "model.hidden_size=64", "model.intermediate_size=128",
          "model.num_layers=2", "model.vocab_size=1024", "data.split.min_examples=5", "evaluation.max_examples=2",
          "evaluation.max_new_tokens=16", "progress=false"]


def test_deepspeed_config_follows_the_strategy_and_leaves_batches_to_the_trainer():
    from rcatune.config.trainer import DistributedConfig, Strategy
    from rcatune.runtime import Runtime
    from rcatune.training.hf import deepspeed_config

    cpu = Runtime(device="cpu", world_size=2)
    two = deepspeed_config(DistributedConfig(strategy=Strategy.deepspeed_zero2, offload_optimizer=True), cpu)
    assert two["zero_optimization"]["stage"] == 2
    assert two["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": False}
    assert "offload_param" not in two["zero_optimization"]
    assert {two[k] for k in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                             "gradient_clipping")} == {"auto"}  # the Trainer fills them: the two never disagree
    three = deepspeed_config(DistributedConfig(strategy=Strategy.deepspeed_zero3, offload_params=True),
                             Runtime(device="cuda", world_size=8))
    assert three["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert three["zero_optimization"]["offload_param"] == {"device": "cpu", "pin_memory": True}


def test_offloading_is_refused_where_deepspeed_would_ignore_it():
    from rcatune.errors import ConfigError
    from rcatune.jobs import compose

    for strategy in ("deepspeed_zero2", "deepspeed_zero3"):
        cfg = compose([f"distributed={strategy}"]).config()
        assert cfg.trainer.distributed.deepspeed and cfg.trainer.distributed.world_size == 2
    with pytest.raises(ConfigError, match="only ZeRO-3 partitions the parameters"):
        compose(["distributed=deepspeed_zero2", "trainer.distributed.offload_params=true"])
    with pytest.raises(ConfigError, match="offloading is DeepSpeed's"):
        compose(["distributed=ddp", "trainer.distributed.offload_optimizer=true"])


def _one_process(run_dir, tmp_path) -> dict:
    """The training job run_dir's run recorded, again in one process at twice the per-process batch (the same
    global batch): its result."""
    job = json.loads((run_dir / "training" / "training_job.json").read_text())
    job["trainer"]["values"]["batch_size"] = 16
    job["trainer"]["values"]["distributed"] = {"strategy": "none"}
    job["job"]["output_dir"] = str(tmp_path / "single")
    (tmp_path / "single").mkdir()
    (tmp_path / "single.json").write_text(json.dumps(job))
    subprocess.run([sys.executable, "-m", "rcatune.training", "run", str(tmp_path / "single.json"), "--result",
                    str(tmp_path / "single_result.json")], cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    return json.loads((tmp_path / "single_result.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "deepspeed_zero2", "deepspeed_zero3"])
def test_two_processes_take_half_the_steps_and_their_losses_agree_with_one(tmp_path, strategy):
    """run.py with two ranks (batch 8 on each), then the same training job in one process at batch 16: the same
    steps, and the training loss at every step within 2% (the weighted answer loss is a mean per rank, so the two
    differ by float and weighting only). DeepSpeed runs on CPU over gloo, in fp32."""
    run_dir = tmp_path / strategy
    run_py(f"distributed={strategy}", *COMMON, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded"
    training = run_dir / "training"
    ranked = json.loads((training / "training_result.json").read_text())
    job = json.loads((training / "training_job.json").read_text())
    assert job["trainer"]["values"]["distributed"]["strategy"] == strategy
    rows = ranked["metrics"]["train_rows"]
    assert ranked["metrics"]["global_steps"] == 4 * -(-rows // 16)  # each optimizer step: 8 rows on each rank

    single = _one_process(run_dir, tmp_path)
    assert single["metrics"]["global_steps"] == ranked["metrics"]["global_steps"]
    losses = [[h["loss"] for h in result["history"] if "loss" in h] for result in (ranked, single)]
    assert len(losses[0]) == len(losses[1]) == ranked["metrics"]["global_steps"]
    worst = max(abs(a - b) / b for a, b in zip(*losses, strict=True))
    assert worst < 0.02, losses
    assert abs(losses[0][0] - losses[1][0]) / losses[1][0] < 1e-3  # the first step: the same batch, the same loss
    print(f"{strategy} vs one process: {len(losses[0])} steps each, first step {losses[0][0]:.4f} vs "
          f"{losses[1][0]:.4f}, worst per-step train loss difference {worst:.2%}")
    assert (run_dir / "export" / "merged" / "config.json").exists()  # rank 0 wrote the model, which exports


@pytest.mark.slow
def test_a_killed_zero3_run_resumes_to_the_same_losses_and_saves_a_model_plain_transformers_loads(tmp_path):
    """ZeRO-3 over two ranks, kill -9 once the checkpoint of step 5 (inside epoch 3) is whole, then the same command
    with trainer.resume_from=latest: every epoch's validation loss is the never-killed run's; the saved weights are
    whole (gathered from the shards), and plain transformers loads and generates from them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import run_py_killed_at

    args = ["distributed=deepspeed_zero3", *COMMON, "trainer.save_steps=1", "trainer.save_total_limit=2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_py(*args, f"hydra.run.dir={straight}")
    run_py_killed_at("training.checkpoint:5", *args, f"hydra.run.dir={killed}", pauses=tmp_path / "p")
    assert not (killed / "training" / "model").exists()
    # torchrun starts each rank in a session of its own: the ranks die with their launcher all the same
    deadline = time.time() + 30
    while (left := subprocess.run(["pgrep", "-f", str(killed)], capture_output=True, text=True).stdout.split()):
        assert time.time() < deadline, f"ranks outlived their killed launcher: {left}"
        time.sleep(0.5)
    run_py(*args, "trainer.resume_from=latest", f"hydra.run.dir={killed}")
    summary = json.loads((killed / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["decisions"]["resumed_from"].endswith("checkpoint-5")

    def evals(run_dir):
        history = json.loads((run_dir / "training" / "train_metrics.json").read_text())["history"]
        return [entry["eval_loss"] for entry in history if "eval_loss" in entry]

    assert len(evals(straight)) == 4 and evals(killed)[-2:] == pytest.approx(evals(straight)[-2:], rel=1e-5)

    model_dir = killed / "training" / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert all(p.numel() > 0 and torch.isfinite(p).all() for p in model.parameters())
    expected = json.loads((killed / "training" / "training_result.json").read_text())["metrics"]["total_parameters"]
    assert sum(p.numel() for p in model.parameters()) == expected  # every shard gathered
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer("checkout latency", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def _distributed(**fields):
    from rcatune.config.trainer import ClusterConfig, DistributedConfig, Strategy

    cluster = ClusterConfig(image="registry.example/rcatune-train:1", node_selector={"gpu": "h100"},
                            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    return DistributedConfig(**{"strategy": Strategy.deepspeed_zero3, "nproc_per_node": 8, "nodes": 2,
                                "cluster": cluster, **fields})


def test_a_multi_node_run_renders_as_a_pytorchjob_whose_pods_pass_the_schema():
    import kubernetes_validate

    from rcatune.training.cluster import pods, pytorchjob

    manifest = pytorchjob("rca-llama3", _distributed())
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 1)
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch" and container["image"] == "registry.example/rcatune-train:1"
    command = container["command"][-1]
    for part in ("--nproc_per_node=8", "--nnodes=2", '--node_rank="$RANK"', '--master_addr="$MASTER_ADDR"',
                 "-m rcatune.training run /runs/rca-llama3/training_job.json"):
        assert part in command
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    spec = replicas["Worker"]["template"]["spec"]
    assert spec["nodeSelector"] == {"gpu": "h100"} and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {v["name"] for v in spec["volumes"]} == {"runs", "shm"}
    for pod in pods(manifest):
        for version in ("1.28.0", "1.30.0", "1.34.0"):
            kubernetes_validate.validate(pod, version, strict=True)
    one = pytorchjob("rca-one", _distributed(nodes=1, strategy="ddp"))
    assert list(one["spec"]["pytorchReplicaSpecs"]) == ["Master"]


def test_the_manifest_command_rewrites_the_job_for_the_cluster(tmp_path):
    import yaml

    from rcatune.config import to_spec
    from rcatune.config.trainer import HfTrainerConfig

    trainer = to_spec("trainer", HfTrainerConfig(distributed=_distributed())).model_dump()
    job = tmp_path / "training_job.json"
    job.write_text(json.dumps({"trainer": trainer, "job": {"output_dir": "/home/me/run/training"}}))
    done = subprocess.run([sys.executable, "-m", "rcatune.training", "manifest", str(job), "--name", "rca-x",
                           "--out", str(tmp_path / "k8s")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "kubectl apply -f" in done.stdout and "/runs/rca-x/training_job.json" in done.stdout
    manifest = yaml.safe_load((tmp_path / "k8s" / "pytorchjob.yaml").read_text())
    assert manifest["kind"] == "PyTorchJob" and manifest["apiVersion"] == "kubeflow.org/v1"
    rewritten = json.loads((tmp_path / "k8s" / "training_job.json").read_text())
    assert rewritten["job"]["output_dir"] == "/runs/rca-x/training"
    assert rewritten["trainer"]["values"]["resume_from"] == "latest"  # a restarted pod continues
    bad = subprocess.run([sys.executable, "-m", "rcatune.training", "manifest", str(job), "--name", "Bad_Name"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "a Kubernetes name" in bad.stderr
