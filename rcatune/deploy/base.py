"""One interface for every deployer: deploy a release, roll back, report status, stop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rcatune.config.serving import ServingConfig
from rcatune.deploy.records import DeploymentRecord, Release
from rcatune.errors import RcatuneError


class DeploymentError(RcatuneError):
    """A deployment action that could not be carried out; the message says what still serves."""


class Deployer(ABC):
    target: str

    def __init__(self, config: Any, serving: ServingConfig) -> None:
        self.config, self.serving = config, serving
        self.name = config.name

    @abstractmethod
    def deploy(self, release: Release) -> DeploymentRecord:
        """Serve `release`; traffic moves only after its smoke test passes."""

    @abstractmethod
    def rollback(self) -> DeploymentRecord:
        """Serve the version that served before the current one."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """What serves, where, and whether it answers."""

    @abstractmethod
    def stop(self) -> DeploymentRecord:
        """Stop serving; what was deployed stays in the records."""

    def record(self, action: str, **fields) -> DeploymentRecord:
        return DeploymentRecord(action=action, target=self.target, name=self.name, **fields)
