"""`data=clickhouse`: sessions returned by a SQL query, from a server or an embedded chdb database.

Each result row is one session; columns are named like `TrainingExample` fields (alias them in the
query). Nested fields may be native ClickHouse arrays/maps or JSON text (docs/data.md).
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional

from rcatune.errors import DataError
from rcatune.sources.base import RawRecord, clip
from rcatune.sources.flat import CellError, check_columns, decode_flat


class ClickHouseSource:
    """Run `query` on a ClickHouse server (`url`, via clickhouse-connect) or a chdb folder (`database_path`)."""

    def __init__(self, query: str, url: Optional[str] = None, database_path: Optional[str] = None,
                 username_env: str = "CLICKHOUSE_USER", password_env: str = "CLICKHOUSE_PASSWORD") -> None:
        if bool(url) == bool(database_path):
            raise DataError("data=clickhouse needs exactly one of data.url (a server) or data.database_path (chdb).")
        self.query = query
        self.url = url
        self.database_path = database_path
        self.username_env = username_env
        self.password_env = password_env

    def describe(self) -> str:
        where = self.url or f"chdb:{self.database_path}"
        return f"ClickHouse query on {where}"

    def _rows(self) -> Iterator[dict[str, Any]]:
        if self.database_path:
            from chdb import session as chdb_session

            sess = chdb_session.Session(self.database_path)
            try:
                result = sess.query(self.query + "\nSETTINGS output_format_json_quote_64bit_integers = 0",
                                    "JSONEachRow")
            except Exception as error:  # chdb raises its own RuntimeError subclasses
                raise DataError(f"ClickHouse query failed on {self.describe()}: {error}") from None
            finally:
                sess.close()
            for line in result.bytes().decode("utf-8").splitlines():
                if line.strip():
                    yield json.loads(line)
            return
        import os

        import clickhouse_connect

        try:
            client = clickhouse_connect.get_client(
                dsn=self.url,
                username=os.environ.get(self.username_env) or None,
                password=os.environ.get(self.password_env) or "",
            )
            result = client.query(self.query)
        except Exception as error:
            raise DataError(f"ClickHouse query failed on {self.url}: {error}. Check data.url and the "
                            f"{self.username_env}/{self.password_env} environment variables.") from None
        yield from result.named_results()

    def records(self) -> Iterator[RawRecord]:
        checked = False
        for index, row in enumerate(self._rows(), start=1):
            if not checked:
                check_columns(list(row), self.describe())
                checked = True
            record = RawRecord(self.describe(), f"row {index}", raw=clip(json.dumps(row, default=str)))
            try:
                record.data = decode_flat(row)
            except CellError as error:
                record.problem = (error.field, "bad_cell", str(error))
            yield record
