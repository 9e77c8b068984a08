"""`rcatune api`'s settings (`api.*`): where the control API listens, how many jobs run at once, which paths an
override may name. Given as `KEY=VALUE` arguments (`rcatune api max_concurrent_jobs=2`); the database URL and
tokens never: the URL comes from the variable `db_url_env` names, tokens from `rcatune token create`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from rcatune.config._require import require


@dataclass
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8400
    max_concurrent_jobs: int = 1  # jobs beyond it wait, queued, in order
    db_url_env: str = "RCATUNE_API_DB_URL"  # a SQLAlchemy URL (a team's PostgreSQL); unset: SQLite under the state
    registry_name: str = "rcatune-rca"  # the registered model the models and deployments endpoints act on
    # Paths an override may name, besides the state folder and the project's data/ folder (`data.path=...`).
    allowed_roots: List[str] = field(default_factory=list)
    # Per deployer target, the overrides its deployments take (`{local: [deployer.port=8310]}`): a request names
    # a target and a deployment name, never a port or a host.
    deployers: Dict[str, List[str]] = field(default_factory=dict)
    cors_origins: List[str] = field(default_factory=list)  # CORS is off unless origins are listed
    max_body_bytes: int = 64 * 1024
    cancel_grace_s: float = 20.0  # a cancelled job gets SIGINT (it stops and says so), then SIGKILL
    poll_s: float = 0.5  # how often the job runner looks at the table and the processes
    log_tail_lines: int = 40

    def __post_init__(self) -> None:
        require(0 < self.port < 65536, "api.port", f"{self.port} is not a TCP port")
        require(self.max_concurrent_jobs >= 1, "api.max_concurrent_jobs", "must be at least 1")
        require(self.max_body_bytes >= 1024, "api.max_body_bytes", "must be at least 1024")
        require(self.cancel_grace_s >= 0 and self.poll_s > 0, "api.cancel_grace_s", "must be >= 0 (poll_s > 0)")
