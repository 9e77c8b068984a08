"""Where sessions come from. Each `data=` option builds one of these through `_target_`."""

from rcatune.sources.annotated import AnnotatedSource
from rcatune.sources.base import RawRecord, Source
from rcatune.sources.clickhouse import ClickHouseSource
from rcatune.sources.csv_source import CsvSource
from rcatune.sources.jsonl import JsonlSource
from rcatune.sources.sample import SampleSource

__all__ = ["AnnotatedSource", "ClickHouseSource", "CsvSource", "JsonlSource", "RawRecord", "SampleSource", "Source"]
