"""`distributed=ddp`: torchrun starts the training recipe once per rank (two CPU processes over gloo here); each
rank trains on its share of every batch, so the run takes half the optimizer steps of one process at the same
per-process batch, and its loss curve agrees with one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


@pytest.mark.slow
def test_two_processes_take_half_the_steps_and_their_losses_agree_with_one(tmp_path):
    """run.py with distributed=ddp (batch 8 on each of 2 ranks), then the same training job in one process at
    batch 16: the same steps, and the training loss at every step within 2% (the weighted answer loss is a mean
    per rank, so the two differ by float and weighting only)."""
    common = ["data.size=40", "trainer.epochs=4", "trainer.batch_size=8", "trainer.group_by_length=false",
              "trainer.prompt_dropout=0", "trainer.logging_steps=1", "model.hidden_size=64",
              "model.intermediate_size=128", "model.num_layers=2", "model.vocab_size=1024",
              "data.split.min_examples=5", "evaluation.max_examples=2", "evaluation.max_new_tokens=16",
              "progress=false"]
    run_dir = tmp_path / "ddp"
    run_py("distributed=ddp", *common, f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded"
    training = run_dir / "training"
    ddp = json.loads((training / "training_result.json").read_text())
    job = json.loads((training / "training_job.json").read_text())
    assert job["trainer"]["values"]["distributed"]["strategy"] == "ddp"
    rows = ddp["metrics"]["train_rows"]
    assert ddp["metrics"]["global_steps"] == 4 * -(-rows // 16)  # each optimizer step: 8 rows on each rank

    job["trainer"]["values"]["batch_size"] = 16  # one process, the same global batch
    job["trainer"]["values"]["distributed"]["strategy"] = "none"
    job["job"]["output_dir"] = str(tmp_path / "single")
    (tmp_path / "single").mkdir()
    (tmp_path / "single.json").write_text(json.dumps(job))
    subprocess.run([sys.executable, "-m", "rcatune.training", "run", str(tmp_path / "single.json"), "--result",
                    str(tmp_path / "single_result.json")], cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    single = json.loads((tmp_path / "single_result.json").read_text())
    assert single["metrics"]["global_steps"] == ddp["metrics"]["global_steps"]
    losses = [[h["loss"] for h in result["history"] if "loss" in h] for result in (ddp, single)]
    assert len(losses[0]) == len(losses[1]) == ddp["metrics"]["global_steps"]
    worst = max(abs(a - b) / b for a, b in zip(*losses, strict=True))
    assert worst < 0.02, losses
    assert abs(losses[0][0] - losses[1][0]) / losses[1][0] < 1e-3  # the first step: the same batch, the same loss
    print(f"ddp vs one process: {len(losses[0])} steps each, worst per-step train loss difference {worst:.2%}")
    assert (run_dir / "export" / "merged" / "config.json").exists()  # rank 0 wrote the model, which exports
