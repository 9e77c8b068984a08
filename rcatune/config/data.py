"""`data=`: where sessions come from. Each option's `_target_` is the source class it builds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from rcatune.config._require import require


@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 13
    min_examples: int = 20
    # Sessions in this phrasing (the generator's `phrasing` label) never train: they are the phrasing-shift
    # split, scored beside the test split. null: no shift split. Data without the label has none either.
    shift_phrasing: Optional[str] = "d"

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"data.split.{name}", f"must be within [0, 1], got {value}")
        total = self.train + self.val + self.test
        require(math.isclose(total, 1.0, abs_tol=1e-6), "data.split",
                f"train + val + test must sum to 1, got {self.train} + {self.val} + {self.test} = {total:g}")
        require(self.train > 0, "data.split.train", "must be above 0")
        require(self.min_examples >= 1, "data.split.min_examples", f"must be at least 1, got {self.min_examples}")

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
    limit: Optional[int] = None  # read only the first N records (every source; patches like experiment=quick)

    def __post_init__(self) -> None:
        require(0.0 <= self.max_rejected_fraction <= 1.0, "data.max_rejected_fraction",
                f"must be within [0, 1], got {self.max_rejected_fraction}")
        require(self.max_record_bytes > 0, "data.max_record_bytes", "must be positive")
        require(self.limit is None or self.limit > 0, "data.limit", f"must be positive or null, got {self.limit}")

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
    size: int = 2000
    seed: int = 7

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.size > 0, "data.size", f"must be positive, got {self.size}")


@dataclass
class FileDataConfig(DataConfig):
    path: str = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        require(Path(self.path).is_file(), "data.path", f"no such file: {self.path!r}")

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
        require(bool(self.url) != bool(self.database_path), "data.url / data.database_path",
                "set exactly one: a server URL (clickhouse-connect) or a chdb database folder")
        require("@" not in (self.url or "").split("//")[-1].split("/")[0], "data.url",
                "must not carry credentials; put them in the environment variables named by "
                "data.username_env / data.password_env")


@dataclass
class AnnotatedDataConfig(DataConfig):
    """The reviewed dataset from `annotation.action=sync`: the latest version, or `version`."""

    _target_: str = "rcatune.sources.AnnotatedSource"
    version: Optional[str] = None


SCHEMAS = {"sample": SampleDataConfig, "jsonl": JsonlDataConfig, "csv": CsvDataConfig,
           "clickhouse": ClickHouseDataConfig, "annotated": AnnotatedDataConfig}
