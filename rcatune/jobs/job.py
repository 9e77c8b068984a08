"""A job is a value: the overrides a run was asked with, the config they compose to (resolved), the choices
made, where it writes, the git state and the state folder. It serialises to JSON, and a second process runs
it (`python -m rcatune.jobs run JOB.json`) to the same `run_summary.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from rcatune.errors import ConfigError

JOB_FILE = "job.json"


@dataclass
class Job:
    overrides: list[str]  # enough to compose it again
    resolved: dict[str, Any]  # the composed config, interpolations resolved (recorded, tracked)
    choices: dict[str, Any]  # group -> option, as Hydra chose them
    run_dir: str
    config_dir: str  # the conf/ folder it was composed from
    project_root: str
    state: str  # the state folder ($RCATUNE_HOME) it runs against
    git: dict[str, Any] = field(default_factory=dict)
    _config: Any = field(default=None, repr=False, compare=False)  # the typed RunConfig, when composed here

    def config(self):
        """The typed config (`RunConfig`). A job read from JSON is composed again from its overrides, and refused
        when that no longer gives the config it recorded (conf/ or the code changed since)."""
        if self._config is None:
            from rcatune.jobs.compose import compose

            again = compose(self.overrides, self.config_dir, self.run_dir, state=self.state)
            if again.resolved != self.resolved:
                changed = _first_difference(self.resolved, again.resolved)
                raise ConfigError(f"this job's configuration no longer composes to what it recorded ({changed}); "
                                  "conf/ or rcatune changed since it was made: compose it again")
            self._config = again._config
        return self._config

    @property
    def pipeline(self) -> str:
        return str(self.resolved.get("pipeline", {}).get("name", "?"))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Job":
        values = json.loads(text)
        unknown = set(values) - {k for k in cls.__dataclass_fields__ if not k.startswith("_")}
        if unknown:
            raise ConfigError(f"not a rcatune job: unknown fields {sorted(unknown)}")
        return cls(**values)

    def save(self, path: Optional[Path] = None) -> Path:
        """Written (atomically) as `job.json` in its run folder unless told otherwise."""
        from rcatune.atomic import write_text

        path = Path(path or Path(self.run_dir) / JOB_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: Path) -> "Job":
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"{path}: not a readable rcatune job ({error})") from None

    def environment(self) -> dict[str, str]:
        """The variables a process running this job needs besides its own."""
        return {**os.environ, "RCATUNE_HOME": self.state}


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}{key}.")
    return f"{path.rstrip('.') or 'the config'}: recorded {a!r}, now {b!r}"
