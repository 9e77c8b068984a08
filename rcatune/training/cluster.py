"""A distributed training run as a Kubernetes PyTorchJob (Kubeflow's training operator): one pod per node, each
running torchrun over `python -m rcatune.training run`, the same entry point a local `distributed=` run starts.

    python -m rcatune.training manifest RUN_DIR/training/training_job.json --name rca-llama3 --out k8s/

writes `k8s/pytorchjob.yaml` and `k8s/training_job.json` (the job with its output on the shared volume and
`trainer.resume_from=latest`, so a pod the operator restarts continues from the newest checkpoint). Copy the job
onto the volume, then `kubectl apply -f k8s/pytorchjob.yaml`. The operator sets MASTER_ADDR, MASTER_PORT and
RANK (the node's rank: the master 0, worker i i+1) in every pod; torchrun meets there.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from rcatune.errors import ConfigError

RUNS = "/runs"  # where every pod mounts the shared volume
API_VERSION = "kubeflow.org/v1"
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")


def run_paths(name: str) -> dict[str, str]:
    base = f"{RUNS}/{name}"
    return {"job": f"{base}/training_job.json", "result": f"{base}/training/training_result.json",
            "output": f"{base}/training"}


def torchrun_command(distributed: Any, paths: dict[str, str]) -> list[str]:
    """The pod's command: torchrun with the node count and processes from config, the node rank and the master's
    address from the operator's environment."""
    run = [f"--nproc_per_node={distributed.nproc_per_node}", f"--nnodes={distributed.nodes}",
           '--node_rank="$RANK"', '--master_addr="$MASTER_ADDR"', '--master_port="$MASTER_PORT"']
    rest = ["-m", "rcatune.training", "run", shlex.quote(paths["job"]), "--result", shlex.quote(paths["result"])]
    return ["/bin/sh", "-c", " ".join(["exec python -m torch.distributed.run", *run, *rest])]


def pod_template(name: str, distributed: Any, role: str) -> dict[str, Any]:
    """One node's pod: the rcatune image, the GPUs its processes use, the shared volume and a large /dev/shm."""
    cluster = distributed.cluster
    requests: dict[str, str] = {"cpu": cluster.cpu, "memory": cluster.memory}
    limits: dict[str, str] = {"memory": cluster.memory}
    if cluster.gpus:
        requests[cluster.gpu_resource] = limits[cluster.gpu_resource] = str(distributed.nproc_per_node)
    container = {
        "name": "pytorch",  # the training operator finds the container by this name
        "image": cluster.image, "imagePullPolicy": "IfNotPresent",
        "command": torchrun_command(distributed, run_paths(name)),
        "env": [{"name": "RCATUNE_HOME", "value": f"{RUNS}/.rcatune"},
                {"name": "TOKENIZERS_PARALLELISM", "value": "false"}]
               + ([{"name": "OMP_NUM_THREADS", "value": "1"}] if cluster.gpus else []),  # CPU ranks: torch decides
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [{"name": "runs", "mountPath": RUNS}, {"name": "shm", "mountPath": "/dev/shm"}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "runs", "persistentVolumeClaim": {"claimName": cluster.volume_claim}},
                    {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": cluster.shm_size}}],
    }
    if cluster.node_selector:
        spec["nodeSelector"] = dict(cluster.node_selector)
    if cluster.tolerations:
        spec["tolerations"] = [dict(t) for t in cluster.tolerations]
    labels = {"app.kubernetes.io/name": "rcatune-train", "app.kubernetes.io/instance": name, "rcatune.io/role": role}
    return {"metadata": {"labels": labels}, "spec": spec}


def pytorchjob(name: str, distributed: Any) -> dict[str, Any]:
    """The PyTorchJob: a Master replica (node rank 0) and `nodes - 1` Worker replicas, restarted on failure."""
    if not NAME.match(name):
        raise ConfigError(f"--name {name!r}: a Kubernetes name (lower-case letters, digits and '-', at most 42)")
    if distributed.strategy.value == "none":
        raise ConfigError("this training job runs in one process (distributed=none): choose distributed=ddp, "
                          "deepspeed_zero2 or deepspeed_zero3 when composing it")

    def replica(role: str, count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "OnFailure", "template": pod_template(name, distributed, role)}

    replicas = {"Master": replica("master", 1)}
    if distributed.nodes > 1:
        replicas["Worker"] = replica("worker", distributed.nodes - 1)
    cluster = distributed.cluster
    return {"apiVersion": API_VERSION, "kind": "PyTorchJob",
            "metadata": {"name": name, "namespace": cluster.namespace,
                         "labels": {"app.kubernetes.io/name": "rcatune-train", "app.kubernetes.io/instance": name}},
            "spec": {"runPolicy": {"backoffLimit": cluster.backoff_limit, "cleanPodPolicy": "None"},
                     "pytorchReplicaSpecs": replicas}}


def pods(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods a PyTorchJob implies (one per replica kind, as Pods): what the schema and an API server check."""
    out = []
    for role, replica in manifest["spec"]["pytorchReplicaSpecs"].items():
        template = replica["template"]
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"{manifest['metadata']['name']}-{role.lower()}-0",
                                 "namespace": manifest["metadata"]["namespace"], **template["metadata"]},
                    "spec": {**template["spec"], "restartPolicy": replica["restartPolicy"]}})
    return out


def cluster_job(job_file: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the PyTorchJob, the training job rewritten for the cluster) from a recorded training_job.json."""
    from rcatune.config import load_spec

    values = json.loads(Path(job_file).read_text(encoding="utf-8"))
    trainer = load_spec(values["trainer"])
    manifest = pytorchjob(name, trainer.distributed)
    paths = run_paths(name)
    values["job"]["output_dir"] = paths["output"]
    values["trainer"]["values"]["resume_from"] = "latest"  # a restarted pod continues from its newest checkpoint
    return manifest, values


def write(job_file: Path, name: str, out: Path) -> list[Path]:
    import yaml

    manifest, values = cluster_job(job_file, name)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "pytorchjob.yaml", out / "training_job.json"]
    files[0].write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    files[1].write_text(json.dumps(values), encoding="utf-8")
    return files
