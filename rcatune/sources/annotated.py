"""`data=annotated`: the dataset a review sync produced (ZenML artifact `annotated_dataset`)."""

from __future__ import annotations

from typing import Iterator, Optional

from rcatune import constants
from rcatune.errors import DataError
from rcatune.sources.base import RawRecord


class AnnotatedSource:
    """The latest (or a given) version of the reviewed dataset, validated again like any source."""

    def __init__(self, version: Optional[str] = None) -> None:
        self.version = version
        self._resolved: str | None = None

    def describe(self) -> str:
        shown = self._resolved or self.version or "latest"
        return f"reviewed dataset (ZenML artifact {constants.ANNOTATED_DATASET} v{shown})"

    def records(self) -> Iterator[RawRecord]:
        from zenml.client import Client

        try:
            artifact = Client().get_artifact_version(constants.ANNOTATED_DATASET, self.version)
        except KeyError:
            which = f"version {self.version} of " if self.version else ""
            raise DataError(f"no {which}reviewed dataset yet: sync the reviews first with "
                            "`python run.py pipeline=annotation annotation.action=sync`") from None
        self._resolved = str(artifact.version)
        dataset = artifact.load()
        where = f"{constants.ANNOTATED_DATASET} v{artifact.version}"
        for index, example in enumerate(dataset.examples, start=1):
            yield RawRecord(source=where, location=f"record {index}", data=example.to_json_dict())
