"""A Docker API without Docker: Debian's podman serving it on a socket under the state folder.

    python -m rcatune.deploy.podman start     # prints the DOCKER_HOST to use (deployer.docker_host=...)
    python -m rcatune.deploy.podman stop | status

`scripts/podman-setup.sh` (make podman) installs podman and writes its settings and an offline base image
(Debian bookworm's Python 3.11, made by debootstrap) under ~/.cache/rcatune/podman; `start` serves the API
with those settings and imports the base image as `BASE_IMAGE` when the engine lacks it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from rcatune.errors import RcatuneError
from rcatune.processes import alive, spawn, stop_group, tail
from rcatune.state import state_dir

BASE_IMAGE = "localhost/rcatune-base:python3.11-bookworm"
SETUP_HINT = "make podman (scripts/podman-setup.sh: installs podman, runc and debootstrap; needs root)"


def cache_dir() -> Path:
    return Path(os.environ.get("RCATUNE_PODMAN_CACHE") or Path.home() / ".cache" / "rcatune" / "podman")


def _paths() -> dict[str, Path]:
    folder = state_dir() / "podman"
    return {"folder": folder, "socket": folder / "podman.sock", "info": folder / "service.json",
            "log": folder / "service.log"}


def docker_host() -> str:
    return f"unix://{_paths()['socket']}"


def _env() -> dict[str, str]:
    conf = cache_dir() / "containers.conf"
    if not conf.exists():
        raise RcatuneError(f"podman is not set up ({conf} is missing): {SETUP_HINT}")
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def running() -> Optional[dict]:
    paths = _paths()
    if not paths["info"].exists():
        return None
    info = json.loads(paths["info"].read_text(encoding="utf-8"))
    return info if alive(info["pid"]) and _answers(info["docker_host"]) else None


def _answers(host: str) -> bool:
    import docker
    from docker.errors import DockerException

    try:
        docker.DockerClient(base_url=host, timeout=5).ping()
        return True
    except (DockerException, OSError):
        return False


def start(timeout_s: float = 60.0) -> dict:
    """Serve the Docker API from podman (or find it serving); import the base image if the engine lacks it."""
    info = running()
    if info is None:
        if shutil.which("podman") is None:
            raise RcatuneError(f"podman is not installed: {SETUP_HINT}")
        paths = _paths()
        paths["folder"].mkdir(parents=True, exist_ok=True)
        paths["socket"].unlink(missing_ok=True)
        process = spawn(["podman", "system", "service", "--time=0", docker_host()], paths["log"], _env())
        info = {"pid": process.pid, "docker_host": docker_host()}
        paths["info"].write_text(json.dumps(info), encoding="utf-8")
        deadline = time.monotonic() + timeout_s
        while not _answers(info["docker_host"]):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RcatuneError(f"podman's API service did not start; {paths['log']}:\n{tail(paths['log'], 8)}")
            time.sleep(0.3)
    ensure_base_image(info["docker_host"])
    return info


def ensure_base_image(host: str) -> None:
    """Import the debootstrapped root filesystem as BASE_IMAGE, once."""
    import docker
    from docker.errors import ImageNotFound

    client = docker.DockerClient(base_url=host)
    try:
        client.images.get(BASE_IMAGE)
        return
    except ImageNotFound:
        pass
    rootfs = cache_dir() / "base-python3.11-bookworm.tar"
    if not rootfs.exists():
        raise RcatuneError(f"no base image and no root filesystem to make one ({rootfs}): {SETUP_HINT}")
    result = subprocess.run(["podman", "import", "--change", 'CMD ["python3"]', str(rootfs), BASE_IMAGE],
                            env=_env(), capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RcatuneError(f"podman import failed: {result.stderr[-500:]}")


def stop() -> bool:
    paths = _paths()
    if not paths["info"].exists():
        return False
    was = stop_group(json.loads(paths["info"].read_text(encoding="utf-8"))["pid"])
    paths["info"].unlink(missing_ok=True)
    return was


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcatune.deploy.podman", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            info = start()
            print(f"podman serves the Docker API at {info['docker_host']} (pid {info['pid']}); deploy with:\n"
                  f"  python run.py pipeline=deployment deployer=docker deployer.docker_host={info['docker_host']} "
                  f"deployer.base_image={BASE_IMAGE}")
        elif args.action == "stop":
            print("stopped" if stop() else "not running")
        else:
            info = running()
            print(f"serving at {info['docker_host']} (pid {info['pid']})" if info else "not running")
    except RcatuneError as error:
        print(f"rcatune podman: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
