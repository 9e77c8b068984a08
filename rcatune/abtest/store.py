"""Where an A/B test's outcomes live: every routed request (experiment, arm, unit, request id, latency, tokens,
the parsed answer) and the feedback that arrives later by request id. SQLite under the state folder by default;
a team points `ab_test.store_url` at PostgreSQL (one SQLAlchemy URL). Writes are idempotent by request id: a
retried request or feedback is stored once, and a process killed between two writes leaves whole rows only."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rcatune.errors import RcatuneError
from rcatune.sqldb import engine_for

OUTCOME_FIELDS = ("request_id", "experiment", "arm", "unit", "version", "at", "latency_ms", "status",
                  "prompt_tokens", "completion_tokens", "root_cause", "query_parses")
FEEDBACK_FIELDS = ("request_id", "experiment", "root_cause_correct", "human_prompts", "time_to_identification")


def default_url(state: Optional[Path] = None) -> str:
    from rcatune.state import state_dir

    folder = (state or state_dir()) / "abtests"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'outcomes.db'}"


def _tables():
    from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

    meta = MetaData()
    experiments = Table("ab_experiments", meta, Column("id", String(128), primary_key=True),
                        Column("control", String(64), nullable=False), Column("treatment", String(64), nullable=False),
                        Column("config", Text, nullable=False), Column("started_at", Float, nullable=False),
                        Column("state", String(16), nullable=False), Column("decision", String(32)),
                        Column("reason", Text), Column("decided_at", Float))
    outcomes = Table("ab_outcomes", meta, Column("request_id", String(128), primary_key=True),
                     Column("experiment", String(128), nullable=False, index=True),
                     Column("arm", String(16), nullable=False), Column("unit", String(256), nullable=False),
                     Column("version", String(64)), Column("at", Float, nullable=False), Column("latency_ms", Float),
                     Column("status", Integer), Column("prompt_tokens", Integer), Column("completion_tokens", Integer),
                     Column("root_cause", Text), Column("query_parses", Boolean))
    feedback = Table("ab_feedback", meta, Column("request_id", String(128), primary_key=True),
                     Column("experiment", String(128), nullable=False, index=True),
                     Column("root_cause_correct", Boolean), Column("human_prompts", Float),
                     Column("time_to_identification", Float), Column("at", Float, nullable=False))
    looks = Table("ab_looks", meta, Column("id", Integer, primary_key=True, autoincrement=True),
                  Column("experiment", String(128), nullable=False, index=True), Column("at", Float, nullable=False),
                  Column("analysis", Text, nullable=False))
    return meta, experiments, outcomes, feedback, looks


@dataclass(frozen=True)
class Written:
    """What a write did: stored now, already stored the same (a retry), or refused (another value was there)."""

    status: str  # stored | duplicate | conflict
    existing: Optional[dict] = None


class OutcomeStore:
    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url or default_url()
        self.engine = engine_for(self.url)
        self.meta, self.experiments, self.outcomes, self.feedback, self.looks_table = _tables()
        try:
            self.meta.create_all(self.engine)
        except Exception as error:  # a server that does not answer, a URL that is wrong
            raise RcatuneError(f"the A/B outcome store {self.safe_url} cannot be opened: "
                               f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None

    @property
    def safe_url(self) -> str:
        """The URL without its password (for messages and logs)."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def _insert(self, table, row: dict) -> bool:
        """INSERT that does nothing when the key is there; True when this call stored it."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        key = list(table.primary_key.columns)[0]
        statement = insert(table).values(**row).on_conflict_do_nothing().returning(key)  # a row back: stored now
        with self.engine.begin() as connection:
            return connection.execute(statement).first() is not None

    def start(self, experiment: str, control: str, treatment: str, config: dict[str, Any]) -> Written:
        row = {"id": experiment, "control": control, "treatment": treatment, "config": json.dumps(config),
               "started_at": time.time(), "state": "running"}
        if self._insert(self.experiments, row):
            return Written("stored")
        return Written("duplicate", self.experiment(experiment))

    def experiment(self, experiment: str) -> Optional[dict]:
        from sqlalchemy import select

        with self.engine.connect() as connection:
            row = connection.execute(select(self.experiments).where(self.experiments.c.id == experiment)).first()
        if row is None:
            return None
        found = dict(row._mapping)
        found["config"] = json.loads(found["config"])
        return found

    def finish(self, experiment: str, state: str, decision: Optional[str], reason: str) -> None:
        from sqlalchemy import update

        with self.engine.begin() as connection:
            connection.execute(update(self.experiments).where(self.experiments.c.id == experiment).values(
                state=state, decision=decision, reason=reason, decided_at=time.time()))

    def record(self, outcome: dict[str, Any]) -> Written:
        """One routed request (idempotent by request id)."""
        row = {k: outcome.get(k) for k in OUTCOME_FIELDS}
        row["at"] = row["at"] or time.time()
        return Written("stored") if self._insert(self.outcomes, row) else Written("duplicate")

    def outcome(self, request_id: str) -> Optional[dict]:
        from sqlalchemy import select

        with self.engine.connect() as connection:
            row = connection.execute(select(self.outcomes).where(self.outcomes.c.request_id == request_id)).first()
        return dict(row._mapping) if row is not None else None

    def feedback_for(self, request_id: str) -> Optional[dict]:
        from sqlalchemy import select

        with self.engine.connect() as connection:
            row = connection.execute(select(self.feedback).where(self.feedback.c.request_id == request_id)).first()
        return dict(row._mapping) if row is not None else None

    def give_feedback(self, request_id: str, experiment: str, **values: Any) -> Written:
        """Feedback on one request, idempotent by request id: the same again is a duplicate; a different value
        for a request that has one is a conflict (the first stays)."""
        row = {"request_id": request_id, "experiment": experiment, "at": time.time(),
               **{k: values.get(k) for k in FEEDBACK_FIELDS[2:]}}
        if self._insert(self.feedback, row):
            return Written("stored")
        existing = self.feedback_for(request_id)
        same = existing is not None and all(existing[k] == row[k] for k in FEEDBACK_FIELDS[2:])
        return Written("duplicate" if same else "conflict", existing)

    def rows(self, experiment: str) -> list[dict]:
        """Every outcome of `experiment` with its feedback (None where none came yet), oldest first."""
        from sqlalchemy import select

        o, f = self.outcomes, self.feedback
        query = (select(o, f.c.root_cause_correct, f.c.human_prompts, f.c.time_to_identification)
                 .select_from(o.outerjoin(f, o.c.request_id == f.c.request_id))
                 .where(o.c.experiment == experiment).order_by(o.c.at))
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def add_look(self, experiment: str, analysis: dict[str, Any]) -> None:
        """One analysis, kept: the report plots each metric over the looks."""
        from sqlalchemy import insert

        with self.engine.begin() as connection:
            connection.execute(insert(self.looks_table).values(experiment=experiment, at=time.time(),
                                                               analysis=json.dumps(analysis, default=str)))

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """The latest experiments, newest first (the control API's status page)."""
        from sqlalchemy import select

        query = select(self.experiments).order_by(self.experiments.c.started_at.desc()).limit(limit)
        with self.engine.connect() as connection:
            return [{k: v for k, v in r._mapping.items() if k != "config"} for r in connection.execute(query)]

    def looks(self, experiment: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        query = select(self.looks_table).where(self.looks_table.c.experiment == experiment).order_by(
            self.looks_table.c.id)
        with self.engine.connect() as connection:
            return [{"at": r.at, **json.loads(r.analysis)} for r in connection.execute(query)]

    def counts(self, experiment: str) -> dict[str, int]:
        from sqlalchemy import func, select

        with self.engine.connect() as connection:
            return {name: int(connection.execute(select(func.count()).where(table.c.experiment == experiment))
                              .scalar_one()) for name, table in (("outcomes", self.outcomes),
                                                                 ("feedback", self.feedback))}
