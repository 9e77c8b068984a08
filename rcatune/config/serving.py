"""`serving.*`: how a model is served (the engine, caps, queue and time bounds), for `python -m rcatune.serving`
and every deployer. The bearer token is never a config value: it comes from $RCATUNE_SERVE_TOKEN or `token_file`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Optional

from rcatune.config._require import require

TOKEN_ENV = "RCATUNE_SERVE_TOKEN"


class Engine(str, enum.Enum):
    transformers = "transformers"  # rcatune's own server over the inference layer (CPU or GPU)
    vllm = "vllm"  # vLLM's OpenAI server with the versions as LoRA modules (GPU only)
    onnx = "onnx"  # rcatune's server; greedy completions generated alone decode through the export's ONNX graph


@dataclass
class ServingConfig:
    engine: Engine = Engine.transformers
    host: str = "127.0.0.1"
    max_queue: int = 16  # requests waiting to generate; beyond: 429
    max_batch: int = 8  # concurrent prompts generated together
    max_tokens: int = 512  # cap on a request's max_tokens
    max_request_bytes: int = 262_144  # a body over it is refused (413) while it streams in
    max_n: int = 4
    max_stop: int = 4  # stop sequences per request (as OpenAI), each at most max_stop_chars
    max_stop_chars: int = 256
    max_generation_s: float = 120.0  # one generation stops here (finish_reason length); beyond it the worker is stuck
    header_timeout_s: float = 10.0  # a connection that has not sent a whole request head by then is closed
    body_timeout_s: float = 30.0  # a body that has not arrived by then is refused (408)
    # Threads one server computes with: a number, or auto (the cores it may use, from its affinity and a
    # container's CPU limit, divided by the servers a deployment runs side by side): rcatune/serving/threads.py
    threads: str = "auto"
    token_file: Optional[str] = None  # a file holding the bearer token (else $RCATUNE_SERVE_TOKEN; none: open)
    ready_timeout_s: float = 300.0  # how long a new instance may take to load, check and warm up

    def __post_init__(self) -> None:
        for key in LIMITS:
            require(getattr(self, key) > 0, f"serving.{key}", "must be positive")
        require(self.ready_timeout_s > 0, "serving.ready_timeout_s", "must be positive")
        self.threads = str(self.threads).strip().lower()
        require(self.threads == "auto" or (self.threads.isdigit() and int(self.threads) > 0), "serving.threads",
                f"must be auto or a positive number, got {self.threads!r}")

    def token(self) -> Optional[str]:
        """The bearer token, from `token_file` or the environment (None: the API is open)."""
        import os
        from pathlib import Path

        from rcatune.errors import ConfigError

        if self.token_file:
            path = Path(self.token_file).expanduser()
            if not path.is_file():
                raise ConfigError(f"serving.token_file: no such file {self.token_file!r}")
            return path.read_text(encoding="utf-8").strip() or None
        return os.environ.get(TOKEN_ENV) or None


# The server's caps and time bounds: each is a `python -m rcatune.serving --<key>` option, and every deployer
# passes them on.
LIMITS = tuple(f.name for f in fields(ServingConfig)
               if (f.name.startswith("max_") or f.name.endswith("timeout_s")) and f.name != "ready_timeout_s")


def limit_type(key: str) -> type:
    return float if key.endswith("_s") else int
