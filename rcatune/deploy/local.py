"""`deployer=local`: the server as managed background processes, blue/green behind a stable port
(`rcatune.deploy.bluegreen`). Each instance is `python -m rcatune.serving` on a free port, in a process
group of its own, with its log under `<state>/deployments/local/<name>/logs/`."""

from __future__ import annotations

import sys
from pathlib import Path

from rcatune.deploy.base import DeploymentError
from rcatune.deploy.bluegreen import SERVERS, BlueGreenDeployer, Instance, child_env, serve_args
from rcatune.deploy.records import Release
from rcatune.models import holds_model
from rcatune.processes import alive, free_port, spawn, stop_group


class LocalDeployer(BlueGreenDeployer):
    target = "local"

    def start_instance(self, release: Release) -> Instance:
        folder = Path(release.folder)
        if not holds_model(folder):
            raise DeploymentError(f"v{release.version}: its export {release.folder} is missing or holds no model; "
                                  "re-run its fine_tuning pipeline, or deploy another version")
        port = free_port(self.config.host)
        log = self.folder / "logs" / f"v{release.version}-{port}.log"
        args = serve_args(release, self.serving, self.config.host, port, release.folder, SERVERS)
        if self.serving.token_file:
            args += ["--token-file", self.serving.token_file]
        process = spawn([sys.executable, "-m", "rcatune.serving", *args], log, child_env())
        return {"version": release.version, "model": release.served_name, "folder": release.folder,
                "registry_name": release.registry_name, "pid": process.pid, "port": port,
                "url": f"http://{self.config.host}:{port}", "log": str(log)}

    def stop_instance(self, instance: Instance) -> None:
        stop_group(instance.get("pid"))

    def instance_running(self, instance: Instance) -> bool:
        return alive(instance.get("pid"))
