"""The training recipe in a process of its own: the step writes the training job (data, model, method,
objective, trainer) as JSON, starts `python -m rcatune.training run`, and reads back the `TrainedModel` rank 0
wrote. The same entry point is what a distributed launcher starts once per rank (the scale-out issue)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from rcatune.artifacts import TrainedModel
from rcatune.errors import RcatuneError, TrialPruned
from rcatune.training.base import TrainingJob
from rcatune.training.hf import RUN_ID_ENV

JOB_FILE, RESULT_FILE = "training_job.json", "training_result.json"
EXIT_PRUNED = 3  # the training process's exit when a sweep's pruner stopped the trial


def write_job(trainer_cfg: Any, job: TrainingJob) -> Path:
    from rcatune import atomic
    from rcatune.config import to_spec

    job.output_dir.mkdir(parents=True, exist_ok=True)
    path = job.output_dir / JOB_FILE
    atomic.write_text(path, json.dumps({"trainer": to_spec("trainer", trainer_cfg).model_dump(),
                                        "job": json.loads(job.to_json())}))
    return path


def read_job(path: Path) -> tuple[Any, TrainingJob]:
    from rcatune.config import load_spec

    values = json.loads(Path(path).read_text(encoding="utf-8"))
    return load_spec(values["trainer"]), TrainingJob.from_json(json.dumps(values["job"]))


def torchrun_prefix(distributed: Any) -> list[str]:
    """torchrun's command line for `distributed` (a DistributedConfig), up to the module it starts: one node is
    `--standalone` (a free rendezvous port of its own), several meet at master_addr:master_port."""
    prefix = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={distributed.nproc_per_node}"]
    if distributed.nodes == 1:
        return [*prefix, "--standalone"]
    return [*prefix, f"--nnodes={distributed.nodes}", f"--node_rank={distributed.node_rank}",
            f"--master_addr={distributed.master_addr}", f"--master_port={distributed.master_port}"]


def train_in_subprocess(trainer_cfg: Any, job: TrainingJob, prefix: Optional[list[str]] = None) -> TrainedModel:
    """Train in a child process (`prefix`: what starts it, torchrun for several ranks; default this Python);
    its failure is this step's failure, with its last words."""
    path = write_job(trainer_cfg, job)
    result = job.output_dir / RESULT_FILE
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    try:
        import mlflow

        if mlflow.active_run() is not None:
            env[RUN_ID_ENV] = mlflow.active_run().info.run_id
            env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    except ImportError:
        pass
    command = [*(prefix or [sys.executable]), "-m", "rcatune.training", "run", str(path), "--result", str(result)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    import codecs

    decoder, tail = codecs.getincrementaldecoder("utf-8")("replace"), ""
    for chunk in iter(lambda: process.stderr.read1(4096), b""):  # progress bars and logs live, the end kept
        text = decoder.decode(chunk)
        sys.stderr.write(text)  # text, not bytes: ZenML's step log capture wraps sys.stderr
        sys.stderr.flush()
        tail = (tail + text)[-4096:]
    code = process.wait()
    if code == EXIT_PRUNED:
        raise TrialPruned(tail.strip().splitlines()[-1].removeprefix("rcatune: "))
    if code != 0 or not result.exists():
        last = tail.strip().splitlines()[-1:] or ["no output"]
        raise RcatuneError(f"training in its own process failed (exit {code}): {last[0][:300]}")
    return TrainedModel.model_validate_json(result.read_text(encoding="utf-8"))
