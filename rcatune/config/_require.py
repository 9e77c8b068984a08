"""The one validation helper every schema uses: a failed check names the key."""

from __future__ import annotations

from rcatune.errors import ConfigError


def require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")
