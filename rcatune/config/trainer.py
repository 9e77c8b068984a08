"""`trainer=`: the training backend. Every backend shares the hyper-parameters below (defaults: the
original design's for 7-8B models); `_target_` is the backend class, and a backend adds only its own
fields. `trainer/pace=` patches the hyper-parameters of whichever backend is chosen (model=tiny
picks `trainer/pace=tiny`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from rcatune.config._require import require


class Scheduler(str, enum.Enum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant"
    constant_with_warmup = "constant_with_warmup"


class TrainingLauncher(str, enum.Enum):
    inprocess = "inprocess"  # in the training step's own process
    subprocess = "subprocess"  # python -m rcatune.training run <job>: a process of its own (one per rank later)


class Strategy(str, enum.Enum):
    none = "none"  # one process
    ddp = "ddp"  # distributed data parallel: one process per device (CPU processes over gloo here)
    deepspeed_zero2 = "deepspeed_zero2"  # DeepSpeed ZeRO stage 2: optimizer state and gradients sharded
    deepspeed_zero3 = "deepspeed_zero3"  # ZeRO stage 3: the parameters too (gathered into one model on save)


@dataclass
class ClusterConfig:
    """`trainer.distributed.cluster`: the same run as a Kubernetes PyTorchJob (Kubeflow's training operator), one
    pod per node (`python -m rcatune.training manifest`). Every node mounts one ReadWriteMany volume at /runs: the
    training job, the checkpoints a restarted pod resumes from, the model rank 0 writes."""

    image: str = "rcatune-train:latest"  # rcatune and its pinned set (the serving image's base plus training)
    namespace: str = "default"
    gpus: bool = True  # one GPU per process: the node's pod asks for nproc_per_node of `gpu_resource`
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "8"  # requested per node
    memory: str = "64Gi"  # requested and limited per node
    shm_size: str = "16Gi"  # /dev/shm (NCCL and data loaders need more than the container default)
    volume_claim: str = "rcatune-runs"  # the ReadWriteMany PersistentVolumeClaim mounted at /runs
    node_selector: Dict[str, str] = field(default_factory=dict)  # {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}
    # [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    tolerations: List[Any] = field(default_factory=list)
    backoff_limit: int = 3  # restarts of a failed pod (each resumes from the newest checkpoint)


@dataclass
class DistributedConfig:
    """`distributed=`: how many processes train, where (torchrun starts them; each trains on its share of every
    batch, rank 0 alone writes). Set through the `distributed` group, which lands here as `trainer.distributed`."""

    strategy: Strategy = Strategy.none
    nproc_per_node: int = 2  # processes per node (GPUs per node on a GPU machine)
    nodes: int = 1
    node_rank: int = 0  # this node's rank (0 on the node whose address is master_addr)
    master_addr: str = "127.0.0.1"  # with nodes > 1: rank 0's node, reachable from every node
    master_port: int = 29500  # with nodes > 1 (one node: torchrun --standalone picks a free one)
    backend: Optional[str] = None  # gloo on CPU, nccl on GPU when not set
    offload_optimizer: bool = False  # DeepSpeed: the optimizer state in CPU memory (ZeRO-Offload)
    offload_params: bool = False  # DeepSpeed ZeRO-3: the parameters in CPU memory too (ZeRO-Infinity's CPU tier)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # the run as a Kubernetes PyTorchJob

    def __post_init__(self) -> None:
        self.strategy = Strategy(self.strategy)  # from Python as from YAML: a plain string is taken
        if isinstance(self.cluster, dict):  # from a recorded job's JSON
            self.cluster = ClusterConfig(**self.cluster)
        require(self.nproc_per_node >= 1, "trainer.distributed.nproc_per_node", "must be at least 1")
        require(self.nodes >= 1 and 0 <= self.node_rank < self.nodes, "trainer.distributed.node_rank",
                f"must be within [0, nodes={self.nodes})")
        require(0 < self.master_port < 65536, "trainer.distributed.master_port", "is not a TCP port")
        require(self.backend in (None, "gloo", "nccl"), "trainer.distributed.backend", "gloo, nccl or null")
        require(not self.offload_optimizer or self.deepspeed, "trainer.distributed.offload_optimizer",
                "offloading is DeepSpeed's: distributed=deepspeed_zero2 or deepspeed_zero3")
        require(not self.offload_params or self.strategy == Strategy.deepspeed_zero3,
                "trainer.distributed.offload_params",
                "only ZeRO-3 partitions the parameters: distributed=deepspeed_zero3")

    @property
    def deepspeed(self) -> bool:
        return self.strategy in (Strategy.deepspeed_zero2, Strategy.deepspeed_zero3)

    @property
    def zero_stage(self) -> int:
        return {Strategy.deepspeed_zero2: 2, Strategy.deepspeed_zero3: 3}.get(self.strategy, 0)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nodes if self.strategy != Strategy.none else 1


@dataclass
class TrainerConfig:
    _target_: str = MISSING
    name: str = MISSING
    learning_rate: float = 2e-4
    lr_scheduler: Scheduler = Scheduler.cosine
    warmup_ratio: float = 0.1
    epochs: float = 3.0
    batch_size: int = 4
    gradient_accumulation_steps: int = 4
    max_length: int = 2048
    gradient_checkpointing: bool = True
    weight_decay: float = 0.0
    group_by_length: bool = True  # batches of similar lengths: less padding
    packing: bool = False  # several examples per row, no attention across them: pays off only with a
    # variable-length attention kernel (flash-attention on GPU); with eager/SDPA it costs more (bench/NOTES.md)
    seed: int = 42
    logging_steps: int = 10
    save_steps: Optional[int] = None  # None: a checkpoint each epoch
    save_total_limit: int = 2
    resume_from: Optional[str] = None  # 'latest' (this run folder), a run folder, or a checkpoint folder
    # The root-cause section's tokens weigh this much in the loss (the rest of the answer 1): where the
    # diagnosis is decided is a few tokens among hundreds of SQL and remediation ones.
    root_cause_weight: float = 1.0
    # Its lead, the clause that names the fault (`Root Cause: <fault> in <service>:`), weighs this much
    # (null: as the rest of the root cause). The diagnosis is decided on these few tokens; what follows
    # them is mostly told given the fault.
    lead_weight: Optional[float] = None
    # Word dropout: each prompt token of a training batch is erased (made padding) with this probability,
    # afresh each epoch; the answer and the evaluation batches are never touched.
    prompt_dropout: float = 0.0
    # How the training recipe is started: in the step's process, or in a process of its own from the
    # serialised training job (the seam distributed launchers use: torchrun starts one per rank).
    launcher: TrainingLauncher = TrainingLauncher.inprocess
    distributed: DistributedConfig = field(default_factory=DistributedConfig)  # `distributed=` picks it

    def __post_init__(self) -> None:
        require(self.learning_rate > 0, "trainer.learning_rate", f"must be positive, got {self.learning_rate}")
        require(0.0 <= self.warmup_ratio < 1.0, "trainer.warmup_ratio",
                f"must be within [0, 1), got {self.warmup_ratio}")
        require(self.epochs > 0, "trainer.epochs", f"must be positive, got {self.epochs}")
        require(self.batch_size > 0, "trainer.batch_size", f"must be positive, got {self.batch_size}")
        require(self.gradient_accumulation_steps > 0, "trainer.gradient_accumulation_steps", "must be positive")
        require(self.max_length > 0, "trainer.max_length", "must be positive")
        require(self.weight_decay >= 0, "trainer.weight_decay", "must be >= 0")
        require(self.save_steps is None or self.save_steps > 0, "trainer.save_steps", "must be positive or null")
        require(self.root_cause_weight >= 1.0, "trainer.root_cause_weight", "must be at least 1")
        require(self.lead_weight is None or self.lead_weight >= 1.0, "trainer.lead_weight",
                "must be at least 1, or null for the root cause's weight")
        require(0.0 <= self.prompt_dropout < 1.0, "trainer.prompt_dropout",
                f"must be within [0, 1), got {self.prompt_dropout}")
        if isinstance(self.distributed, dict):  # dataclasses.asdict of another trainer's config
            self.distributed = DistributedConfig(**self.distributed)
        require(self.distributed.strategy == Strategy.none or self.name == "hf", "distributed",
                f"distributed={self.distributed.strategy.value} runs with trainer=hf (trainer={self.name} trains in "
                "one process here)")


@dataclass
class HfTrainerConfig(TrainerConfig):
    """transformers' Trainer + peft (+ bitsandbytes), in-process."""

    _target_: str = "rcatune.training.hf.HfTrainer"
    name: str = "hf"


LLAMA_FACTORY_TEMPLATES = {"llama3": "llama3", "llama2": "llama2", "mistral": "mistral", "qwen2": "qwen",
                           "phi3": "phi", "gemma3": "gemma3", "tiny": "chatml"}


@dataclass
class LlamaFactoryTrainerConfig(TrainerConfig):
    """LLaMA-Factory's CLI from its own venv (make llamafactory)."""

    _target_: str = "rcatune.training.llama_factory.LlamaFactoryTrainer"
    name: str = "llama_factory"
    template: Optional[str] = None  # its template name; None: `templates[model.family.name]`
    templates: Dict[str, str] = field(default_factory=lambda: dict(LLAMA_FACTORY_TEMPLATES))

    def template_for(self, family: str) -> str:
        if self.template:
            return self.template
        require(family in self.templates, "trainer.template",
                f"LLaMA-Factory has no template known for model family {family!r}: set trainer.template=NAME")
        return self.templates[family]


SCHEMAS = {"hf": HfTrainerConfig, "llama_factory": LlamaFactoryTrainerConfig}
