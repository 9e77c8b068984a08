"""Typed schemas of every config group, registered in Hydra's ConfigStore.

Each option YAML in `conf/<group>/` starts from one of these (`/schema/<group>/<name>@_here_`), so
an unknown key or a wrong type fails at composition, and `__post_init__` (run when `run.py` converts
the config with `OmegaConf.to_object`) rejects values that cannot work, naming the key.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

from omegaconf import MISSING

from rcatune.errors import ConfigError
from rcatune.formats import Format
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


# --------------------------------------------------------------------------------------------- data
@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 13
    min_examples: int = 20

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, f"data.split.{name}", f"must be within [0, 1], got {value}")
        total = self.train + self.val + self.test
        _require(math.isclose(total, 1.0, abs_tol=1e-6), "data.split",
                 f"train + val + test must sum to 1, got {self.train} + {self.val} + {self.test} = {total:g}")
        _require(self.train > 0, "data.split.train", "must be above 0")
        _require(self.min_examples >= 1, "data.split.min_examples", f"must be at least 1, got {self.min_examples}")

    @property
    def fractions(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


@dataclass
class DataConfig:
    """Settings every source shares; `_target_` and the fields a subclass adds build the source."""

    _target_: str = MISSING
    split: SplitConfig = field(default_factory=SplitConfig)
    max_rejected_fraction: float = 0.1
    max_record_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        _require(0.0 <= self.max_rejected_fraction <= 1.0, "data.max_rejected_fraction",
                 f"must be within [0, 1], got {self.max_rejected_fraction}")
        _require(self.max_record_bytes > 0, "data.max_record_bytes", "must be positive")

    def source_args(self) -> dict[str, Any]:
        """Arguments for `_target_`: the fields this option adds to the shared ones."""
        shared = {f.name for f in fields(DataConfig)}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in shared}

    def source_spec(self) -> dict[str, Any]:
        """`{"_target_": ..., **args}`: plain JSON that builds the source (see `rcatune.config.build`)."""
        return {"_target_": self._target_, **self.source_args()}


@dataclass
class SampleDataConfig(DataConfig):
    _target_: str = "rcatune.sources.SampleSource"
    size: int = 300
    seed: int = 7

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.size > 0, "data.size", f"must be positive, got {self.size}")


@dataclass
class FileDataConfig(DataConfig):
    path: str = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        from pathlib import Path

        _require(Path(self.path).is_file(), "data.path", f"no such file: {self.path!r}")

    def source_args(self) -> dict[str, Any]:
        return {"path": self.path, "max_record_bytes": self.max_record_bytes}


@dataclass
class JsonlDataConfig(FileDataConfig):
    _target_: str = "rcatune.sources.JsonlSource"


@dataclass
class CsvDataConfig(FileDataConfig):
    _target_: str = "rcatune.sources.CsvSource"


@dataclass
class ClickHouseDataConfig(DataConfig):
    _target_: str = "rcatune.sources.ClickHouseSource"
    query: str = MISSING
    url: Optional[str] = None
    database_path: Optional[str] = None
    username_env: str = "CLICKHOUSE_USER"
    password_env: str = "CLICKHOUSE_PASSWORD"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(bool(self.url) != bool(self.database_path), "data.url / data.database_path",
                 "set exactly one: a server URL (clickhouse-connect) or a chdb database folder")
        _require("@" not in (self.url or "").split("//")[-1].split("/")[0], "data.url",
                 "must not carry credentials; put them in the environment variables named by "
                 "data.username_env / data.password_env")


@dataclass
class AnnotatedDataConfig(DataConfig):
    """The reviewed dataset from `annotation.action=sync`: the latest version, or `version`."""

    _target_: str = "rcatune.sources.AnnotatedSource"
    version: Optional[str] = None


# --------------------------------------------------------------------------------------------- model
class Dtype(str, enum.Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class ModelConfig:
    name_or_path: str = MISSING
    family: str = MISSING  # llama | mistral | qwen2 | phi3: the architecture, for per-family details
    chat_template: str = "tokenizer"  # 'tokenizer' uses the model's own template
    llama_factory_template: str = "default"  # LLaMA-Factory's template name (trainer=llama_factory)
    lora_target_modules: List[str] = field(default_factory=list)
    context_length: int = 2048
    dtype: Dtype = Dtype.bfloat16
    trust_remote_code: bool = False
    revision: Optional[str] = None

    def __post_init__(self) -> None:
        _require(self.context_length > 0, "model.context_length", "must be positive")
        _require(bool(self.lora_target_modules), "model.lora_target_modules", "name at least one module")


@dataclass
class TinyModelConfig(ModelConfig):
    """A Llama-architecture model built and cached under the state folder (no hub needed)."""

    name_or_path: str = "tiny-llama"
    family: str = "llama"
    chat_template: str = "chatml"
    llama_factory_template: str = "chatml"
    lora_target_modules: List[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    context_length: int = 1024
    dtype: Dtype = Dtype.float32
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    vocab_size: int = 4096


# --------------------------------------------------------------------------------------------- method
class Quantisation(str, enum.Enum):
    none = "none"
    nf4 = "nf4"
    fp4 = "fp4"
    int8 = "int8"


@dataclass
class MethodConfig:
    name: str = MISSING


@dataclass
class LoraMethodConfig(MethodConfig):
    name: str = "lora"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Optional[List[str]] = None  # None: the model config's lora_target_modules

    def __post_init__(self) -> None:
        _require(self.rank > 0, "method.rank", f"must be positive, got {self.rank}")
        _require(self.alpha > 0, "method.alpha", f"must be positive, got {self.alpha}")
        _require(0.0 <= self.dropout < 1.0, "method.dropout", f"must be within [0, 1), got {self.dropout}")


@dataclass
class QloraMethodConfig(LoraMethodConfig):
    name: str = "qlora"
    quantisation: Quantisation = Quantisation.nf4
    double_quant: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.quantisation is not Quantisation.none, "method.quantisation",
                 "qlora needs one of nf4, fp4, int8 (use method=lora for no quantisation)")


@dataclass
class FullMethodConfig(MethodConfig):
    name: str = "full"


@dataclass
class FreezeMethodConfig(MethodConfig):
    name: str = "freeze"
    trainable_layers: int = 2  # the last N decoder layers
    trainable_modules: Optional[List[str]] = None  # or name modules explicitly

    def __post_init__(self) -> None:
        _require(self.trainable_layers > 0 or bool(self.trainable_modules), "method.trainable_layers",
                 "train at least one layer, or name method.trainable_modules")


# --------------------------------------------------------------------------------------------- trainer
class Scheduler(str, enum.Enum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant"
    constant_with_warmup = "constant_with_warmup"


TRAINER_BACKENDS = ("hf", "llama_factory")


@dataclass
class TrainerConfig:
    name: str = "hf"  # the backend: hf (transformers Trainer, in-process) | llama_factory (llamafactory-cli)
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
    template: Optional[str] = None  # llama_factory: its template name (None: model.llama_factory_template)

    def __post_init__(self) -> None:
        _require(self.name in TRAINER_BACKENDS, "trainer.name", f"{self.name!r} is not one of {list(TRAINER_BACKENDS)}")
        _require(self.learning_rate > 0, "trainer.learning_rate", f"must be positive, got {self.learning_rate}")
        _require(0.0 <= self.warmup_ratio < 1.0, "trainer.warmup_ratio",
                 f"must be within [0, 1), got {self.warmup_ratio}")
        _require(self.epochs > 0, "trainer.epochs", f"must be positive, got {self.epochs}")
        _require(self.batch_size > 0, "trainer.batch_size", f"must be positive, got {self.batch_size}")
        _require(self.gradient_accumulation_steps > 0, "trainer.gradient_accumulation_steps", "must be positive")
        _require(self.max_length > 0, "trainer.max_length", "must be positive")
        _require(self.weight_decay >= 0, "trainer.weight_decay", "must be >= 0")
        _require(self.save_steps is None or self.save_steps > 0, "trainer.save_steps", "must be positive or null")


# --------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvaluationConfig:
    min_accuracy: float = 0.75
    max_perplexity: float = 10.0
    min_bleu: float = 0.3
    require_improvement: bool = True
    max_new_tokens: int = 384
    max_examples: Optional[int] = None  # evaluate on the first N test examples (None: all)
    compare_with_base: bool = True
    # Prompts generated together (left-padded, greedy). Above 1 it is faster (bench/NOTES.md: 2.4x the
    # tokens/s at 8 on a CPU), and latency_p50/p95 then measure a request's wait for its whole batch.
    batch_size: int = 1

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "evaluation.batch_size", f"must be at least 1, got {self.batch_size}")
        _require(0.0 <= self.min_accuracy <= 1.0, "evaluation.min_accuracy", "must be within [0, 1]")
        _require(self.max_perplexity > 0, "evaluation.max_perplexity", "must be positive")
        _require(0.0 <= self.min_bleu <= 1.0, "evaluation.min_bleu", "must be within [0, 1]")


# --------------------------------------------------------------------------------------------- stack, pipeline
@dataclass
class StackConfig:
    name: str = MISSING
    definition: str = MISSING  # a YAML file in stacks/
    remote: bool = False


class PipelineName(str, enum.Enum):
    prepare = "prepare"
    fine_tuning = "fine_tuning"
    evaluate = "evaluate"
    annotation = "annotation"


@dataclass
class PipelineConfig:
    name: PipelineName = MISSING
    enable_cache: bool = False


@dataclass
class EvaluatePipelineConfig(PipelineConfig):
    """Score a candidate on every valid example of the data source, without training."""

    name: PipelineName = PipelineName.evaluate
    model_version: str = "production"  # a stage (production, staging, latest) or a version number
    model_dir: Optional[str] = None  # or a model folder (export/merged, training/model): wins when set

    def __post_init__(self) -> None:
        stages = ("production", "staging", "latest", "archived")
        _require(self.model_version.isdigit() or self.model_version in stages, "pipeline.model_version",
                 f"{self.model_version!r} is neither a version number nor one of {list(stages)}")
        if self.model_dir is not None:
            from pathlib import Path

            _require((Path(self.model_dir) / "config.json").exists()
                     or (Path(self.model_dir) / "adapter_config.json").exists(),
                     "pipeline.model_dir", f"{self.model_dir!r} holds no model (no config.json)")


# --------------------------------------------------------------------------------------------- annotation
class AnnotationAction(str, enum.Enum):
    push = "push"  # send examples for review (idempotent), print the URL and progress
    sync = "sync"  # export reviews, check them, merge corrections, report agreement
    status = "status"  # progress of the review only


class MergeInto(str, enum.Enum):
    pushed = "pushed"  # what the pushes sent (recorded under the state folder), whatever this run's data is
    source = "source"  # this run's data source: examples never pushed are reported apart


class Unreviewed(str, enum.Enum):
    keep = "keep"  # examples nobody reviewed yet stay in the dataset, not human-validated
    drop = "drop"  # train only on reviewed examples


@dataclass
class AnnotationConfig:
    """`annotation=none`: no human review."""

    enabled: bool = False


@dataclass
class LabelStudioAnnotationConfig(AnnotationConfig):
    """Human review in Label Studio. The API token is never part of the config: it comes from
    $LABEL_STUDIO_API_KEY or `token_file` (default: the one `make labelstudio-start` keeps)."""

    enabled: bool = True
    action: AnnotationAction = AnnotationAction.push
    url: Optional[str] = None  # None: the server `make labelstudio-start` runs, else http://127.0.0.1:8200
    token_file: Optional[str] = None  # None: <state>/labelstudio/token
    project: str = "rcatune review"  # projects are '<project> / <template>'
    templates: List[str] = field(default_factory=lambda: ["root_cause", "query_quality"])
    pre_annotate: bool = True  # the AI's answer as an editable pre-annotation
    model_version: str = "session-ai"  # the label shown on pre-annotations
    batch_size: int = 200  # tasks per import request
    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 0.5
    wait: bool = False  # fine_tuning: push, wait for reviews, sync and train in one run
    wait_timeout_s: float = 3600.0
    poll_s: float = 15.0
    min_annotations: int = 1  # reviews per task before a task counts as done (wait) and may merge
    agreement_target: float = 0.9  # the original design's aim, reported against
    task_agreement_min: float = 0.9  # a task whose annotators agree less goes to adjudication
    rating_spread_max: int = 1  # ... or whose ratings differ by more than this
    merge_flagged: bool = False  # merge the majority of a flagged task without waiting for adjudication
    drop_rejected: bool = True  # 'incorrect' with no correction: the example leaves the training data
    unreviewed: Unreviewed = Unreviewed.keep
    merge_into: MergeInto = MergeInto.pushed  # sync: what the reviews are merged into

    def __post_init__(self) -> None:
        from rcatune.annotation.templates import TEMPLATES

        _require(bool(self.templates) and all(t in TEMPLATES for t in self.templates), "annotation.templates",
                 f"choose one or more of {list(TEMPLATES)}, got {list(self.templates)}")
        _require(len(self.project.strip()) >= 3, "annotation.project", "needs at least 3 characters")
        _require(self.batch_size > 0, "annotation.batch_size", "must be positive")
        _require(self.retries >= 0, "annotation.retries", "must be >= 0")
        _require(self.min_annotations >= 1, "annotation.min_annotations", "must be at least 1")
        for key in ("agreement_target", "task_agreement_min"):
            value = getattr(self, key)
            _require(0.0 <= value <= 1.0, f"annotation.{key}", f"must be within [0, 1], got {value}")
        _require(self.url is None or self.url.startswith(("http://", "https://")), "annotation.url",
                 f"must start with http:// or https://, got {self.url!r}")


@dataclass
class FormatsConfig:
    formats: List[Format] = field(default_factory=lambda: list(Format))
    openai_max_tokens: int = 65_536
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        _require(bool(self.formats), "formats.formats", f"name at least one of {[f.value for f in Format]}")
        _require(bool(self.system_prompt.strip()), "formats.system_prompt", "must not be empty")


@dataclass
class ExportConfig:
    quantisation: Quantisation = Quantisation.none  # int8 | nf4 | fp4: also write a quantised copy


@dataclass
class RunConfig:
    """The root: one option of each group plus run-wide settings."""

    pipeline: Any = MISSING
    data: Any = MISSING
    model: Any = MISSING
    method: Any = MISSING
    trainer: Any = MISSING
    evaluation: Any = MISSING
    stack: Any = MISSING
    annotation: Any = MISSING
    formats: FormatsConfig = field(default_factory=FormatsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 42
    progress: bool = True
    experiment_name: Optional[str] = None  # MLflow experiment; default: the pipeline name
    model_registry_name: str = "rcatune-rca"  # ZenML Model and MLflow registered model

    def __post_init__(self) -> None:
        expected = {"pipeline": PipelineConfig, "data": DataConfig, "model": ModelConfig, "method": MethodConfig,
                    "trainer": TrainerConfig, "evaluation": EvaluationConfig, "stack": StackConfig,
                    "annotation": AnnotationConfig}
        for key, kind in expected.items():
            value = getattr(self, key)
            _require(isinstance(value, kind), key, f"expected a {kind.__name__} option, got {type(value).__name__}")
        _require(self.trainer.max_length <= self.model.context_length, "trainer.max_length",
                 f"{self.trainer.max_length} is above the model's context length ({self.model.context_length}, "
                 f"model.context_length of {self.model.name_or_path})")
        _require(self.pipeline.name is not PipelineName.annotation or self.annotation.enabled, "annotation",
                 "pipeline=annotation needs a review tool: add annotation=label_studio")


GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "pipeline": {"base": PipelineConfig, "evaluate": EvaluatePipelineConfig},
    "data": {"sample": SampleDataConfig, "jsonl": JsonlDataConfig, "csv": CsvDataConfig,
             "clickhouse": ClickHouseDataConfig, "annotated": AnnotatedDataConfig},
    "model": {"base": ModelConfig, "tiny": TinyModelConfig},
    "method": {"lora": LoraMethodConfig, "qlora": QloraMethodConfig, "full": FullMethodConfig,
               "freeze": FreezeMethodConfig},
    "trainer": {"hf": TrainerConfig},
    "evaluation": {"base": EvaluationConfig},
    "stack": {"base": StackConfig},
    "annotation": {"none": AnnotationConfig, "label_studio": LabelStudioAnnotationConfig},
}


def register_configs() -> None:
    """Store the root schema and one schema per group option (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="rcatune_schema", node=RunConfig)
    for group, options in GROUP_SCHEMAS.items():
        for name, node in options.items():
            store.store(group=f"schema/{group}", name=name, node=node, package=group)
