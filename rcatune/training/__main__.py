"""`python -m rcatune.training run training_job.json --result training_result.json`: run a serialised training
job's recipe (setup, fit, save) in this process. Under a distributed launcher each rank runs it; its rank comes
from the environment (WORLD_SIZE, RANK, LOCAL_RANK) and only rank 0 writes folders, metrics and the result.

`python -m rcatune.training manifest training_job.json --name NAME --out DIR`: the same job as a Kubernetes
PyTorchJob (trainer.distributed.cluster.*), with the job rewritten for the cluster's shared volume."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcatune.training", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ran = commands.add_parser("run", help="run a training job")
    ran.add_argument("job", help="a training_job.json (written by the training step)")
    ran.add_argument("--result", help="where rank 0 writes the TrainedModel (JSON)")
    manifest = commands.add_parser("manifest", help="write the job as a Kubernetes PyTorchJob")
    manifest.add_argument("job", help="a training_job.json of a distributed run (distributed=ddp|deepspeed_*)")
    manifest.add_argument("--name", required=True, help="the PyTorchJob's name (and its folder on the volume)")
    manifest.add_argument("--out", default=".", help="where pytorchjob.yaml and training_job.json go")
    args = parser.parse_args(argv)
    if args.command == "manifest":
        return _manifest(args)
    _die_with_launcher()

    from rcatune import atomic
    from rcatune.config import instantiate
    from rcatune.errors import RcatuneError, TrialPruned
    from rcatune.runtime import Runtime
    from rcatune.training.launch import EXIT_PRUNED, read_job

    try:
        trainer_cfg, job = read_job(args.job)
        job.runtime = runtime = Runtime.detect(job.runtime.device, job.runtime.progress)  # this rank's
        trained = instantiate(trainer_cfg).train(job)
    except TrialPruned as error:
        print(f"rcatune: {error}", file=sys.stderr)
        return EXIT_PRUNED
    except RcatuneError as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2
    if args.result and runtime.is_main:
        from pathlib import Path

        atomic.write_text(Path(args.result), trained.model_dump_json())
    _leave_process_group()
    return 0


def _die_with_launcher() -> None:
    """A rank under torchrun lives in a session of its own (torch's elastic agent starts it so), so killing the
    job's process group (a cancelled job, kill -9, the out-of-memory killer) misses it, and it would train on, or
    wait forever at a collective. So it asks Linux to kill it when its launcher dies."""
    import os

    if sys.platform != "linux" or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the launcher died before the line above
        os._exit(1)


def _manifest(args) -> int:
    from pathlib import Path

    from rcatune.errors import RcatuneError
    from rcatune.training.cluster import run_paths, write

    try:
        files = write(Path(args.job), args.name, Path(args.out))
    except (RcatuneError, OSError, KeyError, ValueError) as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2
    paths = run_paths(args.name)
    print(f"wrote {files[0]} and {files[1]}\nnext: copy {files[1].name} to {paths['job']} on the shared volume "
          f"(trainer.distributed.cluster.volume_claim), then kubectl apply -f {files[0]}; the model lands in "
          f"{paths['output']}/model")
    return 0


def _leave_process_group() -> None:
    """Under torchrun: wait for every rank, then take the process group down before the interpreter does (a rank
    that exits with gloo's threads still up can abort with "terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
