"""`serving.*`: how a model is served (the engine, caps and queue), for `python -m rcatune.serving` and every
deployer. The bearer token is never a config value: it comes from $RCATUNE_SERVE_TOKEN or `token_file`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from rcatune.config._require import require


class Engine(str, enum.Enum):
    transformers = "transformers"  # rcatune's own server over the inference layer (CPU or GPU)
    vllm = "vllm"  # vLLM's OpenAI server with the versions as LoRA modules (GPU only)


@dataclass
class ServingConfig:
    engine: Engine = Engine.transformers
    host: str = "127.0.0.1"
    max_queue: int = 16  # requests waiting to generate; beyond: 429
    max_batch: int = 8  # concurrent prompts generated together
    max_tokens: int = 512  # cap on a request's max_tokens
    max_request_bytes: int = 262_144
    max_n: int = 4
    token_file: Optional[str] = None  # a file holding the bearer token (else $RCATUNE_SERVE_TOKEN; none: open)
    ready_timeout_s: float = 300.0  # how long a new instance may take to load, check and warm up

    def __post_init__(self) -> None:
        for key in ("max_queue", "max_batch", "max_tokens", "max_request_bytes", "max_n"):
            require(getattr(self, key) >= 1, f"serving.{key}", "must be at least 1")
        require(self.ready_timeout_s > 0, "serving.ready_timeout_s", "must be positive")

    def limits(self):
        from rcatune.serving.app import ServeLimits

        return ServeLimits(max_queue=self.max_queue, max_batch=self.max_batch, max_tokens=self.max_tokens,
                           max_request_bytes=self.max_request_bytes, max_n=self.max_n)

    def token(self) -> Optional[str]:
        """The bearer token, from `token_file` or the environment (None: the API is open)."""
        import os
        from pathlib import Path

        from rcatune.errors import ConfigError
        from rcatune.serving.app import TOKEN_ENV

        if self.token_file:
            path = Path(self.token_file).expanduser()
            if not path.is_file():
                raise ConfigError(f"serving.token_file: no such file {self.token_file!r}")
            return path.read_text(encoding="utf-8").strip() or None
        return os.environ.get(TOKEN_ENV) or None
