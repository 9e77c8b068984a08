"""Bearer tokens with scopes, stored hashed.

A token is `rct_<id>_<secret>`: the id finds its row, the secret is checked against a bcrypt hash (bcrypt, the
maintained hasher the pinned set already carries). Only `rcatune token create` makes one, and prints it once;
no token lives in a config file or on a command line. Scopes: `read` (list and look), `train` (start and
cancel jobs), `deploy` (deploy, roll back, stop, A/B tests, promote and demote), `admin` (all of them);
`train` and `deploy` include `read`. A verified secret is remembered for a minute by its SHA-256 (bcrypt is
slow on purpose); revocation is read from the table on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional

from rcatune.api.db import Database
from rcatune.errors import ConfigError

SCOPES = ("read", "train", "deploy", "admin")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN = re.compile(r"^rct_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
VERIFIED_FOR_S = 60.0


@dataclass(frozen=True)
class Caller:
    token_id: str
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes or (
            scope == "read" and bool(self.scopes & {"train", "deploy"}))

    @property
    def who(self) -> str:
        return f"{self.name} ({self.token_id})"


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ConfigError(f"scopes {text!r}: use one or more of {', '.join(SCOPES)}, comma-separated")
    return scopes


class TokenStore:
    def __init__(self, db: Optional[Database] = None) -> None:
        self.db = db or Database()
        self._verified: dict[str, tuple[str, float]] = {}  # sha256(token) -> (token id, until)
        self._lock = threading.Lock()

    def create(self, name: str, scopes: tuple[str, ...]) -> tuple[str, str]:
        """(token id, the token): the token is shown once and never stored."""
        import bcrypt

        if not NAME.match(name):
            raise ConfigError(f"token name {name!r}: letters, digits and _.@- only, up to 64 characters")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=12)).decode()
        with self.db.engine.begin() as connection:
            connection.execute(self.db.tokens.insert().values(id=token_id, name=name, scopes=",".join(scopes),
                                                              hash=hashed, created_at=time.time()))
        return token_id, f"rct_{token_id}_{secret}"

    def revoke(self, token_id: str) -> bool:
        from sqlalchemy import update

        with self.db.engine.begin() as connection:
            done = connection.execute(update(self.db.tokens).where(self.db.tokens.c.id == token_id,
                                                                    self.db.tokens.c.revoked_at.is_(None))
                                      .values(revoked_at=time.time())).rowcount
        return bool(done)

    def list(self) -> list[dict]:
        from sqlalchemy import select

        with self.db.engine.connect() as connection:
            rows = connection.execute(select(self.db.tokens).order_by(self.db.tokens.c.created_at)).all()
        return [{k: v for k, v in row._mapping.items() if k != "hash"} for row in rows]

    def verify(self, token: str) -> Optional[Caller]:
        """The caller a token names, or None (unknown, malformed, wrong or revoked)."""
        import bcrypt
        from sqlalchemy import select

        found = TOKEN.match(token or "")
        if not found:
            return None
        token_id, secret = found.groups()
        with self.db.engine.connect() as connection:
            row = connection.execute(select(self.db.tokens).where(self.db.tokens.c.id == token_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            remembered = self._verified.get(digest)
        if not (remembered and remembered[0] == token_id and remembered[1] > time.monotonic()):
            if not bcrypt.checkpw(secret.encode(), row.hash.encode()):
                return None
            with self._lock:
                self._verified[digest] = (token_id, time.monotonic() + VERIFIED_FOR_S)
        return Caller(token_id, row.name, frozenset(row.scopes.split(",")))
