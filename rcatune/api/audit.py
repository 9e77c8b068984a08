"""The audit log: every state-changing call (who, what, when, result), one JSON line each, appended to
`<state>/api/audit.jsonl` (opened for appending only, under a lock, flushed to disk before the answer goes)."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional


class AuditLog:
    def __init__(self, path: Optional[Path] = None) -> None:
        from rcatune.api.db import api_dir

        self.path = path or api_dir() / "audit.jsonl"

    def append(self, who: str, action: str, target: dict[str, Any], status: int, result: str) -> None:
        line = json.dumps({"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "who": who,
                           "action": action, "target": target, "status": status, "result": result[:500]},
                          default=str) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            os.write(descriptor, line.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def read(self, limit: int = 100) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in lines if line]
