"""Shared fixtures: one state folder per test session, sample records, file writers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
# No test needs the Hugging Face Hub (this machine cannot reach it): fail fast instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# `make test` runs the suite on pytest-xdist workers (`-n 2 --dist loadscope`), each with its own state folder,
# servers and ports. A module goes to one worker whole, so its module fixtures (a trained model, a server) are made
# once; the modules that use `servable_versions` or the container engine share one worker, so the two versions are
# trained once and one podman service builds the images. (xdist's own `loadgroup` cannot do it with pytest 9.2:
# it renames the nodeid through an attribute pytest no longer reads.)
SHARED_WORKER_FIXTURES = {"servable_versions", "engine"}
SHARED_WORKER_MODULES = {
    "tests/test_abtest_deploy.py", "tests/test_api.py", "tests/test_api_page.py", "tests/test_crash.py",
    "tests/test_deploy_docker.py", "tests/test_deploy_kubernetes.py", "tests/test_deploy_local.py",
    "tests/test_registry.py", "tests/test_stack_docker.py"}


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndSharedWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shared-worker" if module in SHARED_WORKER_MODULES else module

    return ModulesAndSharedWorker(config, log)


def pytest_collection_modifyitems(config, items):
    """A module that takes a shared worker's fixture must be listed, or its worker would train the versions (or
    start an engine) a second time."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if SHARED_WORKER_FIXTURES & set(getattr(item, "fixturenames", ())) and module not in SHARED_WORKER_MODULES:
            raise pytest.UsageError(f"{module} uses {sorted(SHARED_WORKER_FIXTURES)}: add it to SHARED_WORKER_MODULES "
                                    "in tests/conftest.py")


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory) -> Path:
    """Every test (and every run.py it starts) writes under this session's own state folder."""
    from rcatune.state import configure_environment

    home = tmp_path_factory.mktemp("rcatune_state")
    os.environ["RCATUNE_HOME"] = str(home)
    for key in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH", "MLFLOW_TRACKING_URI", "HF_HOME"):
        os.environ.pop(key, None)  # never the user's stores: everything under this session's folder
    configure_environment(home)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return home


@pytest.fixture(scope="session")
def postgres(tmp_path_factory, state_home):
    """Debian's PostgreSQL on 127.0.0.1, started by the project's own module (make postgres installs it)."""
    from rcatune.abtest import postgres as server
    from rcatune.errors import RcatuneError
    from rcatune.processes import free_port

    try:
        url = server.start(port=free_port())  # a port of its own: `make test` runs two workers, each with one
    except RcatuneError as error:
        if os.environ.get("RCATUNE_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL here ({error})")
    yield url
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real kube-apiserver and controller manager (tests/kube_testbed.py; `make kube` builds them)."""
    from tests.kube_testbed import Testbed, binaries

    if binaries() is None:
        reason = "the Kubernetes testbed is not built: scripts/kube-build.sh (make kube)"
        if os.environ.get("RCATUNE_REQUIRE_KUBE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    import urllib3

    urllib3.disable_warnings()
    testbed = Testbed(tmp_path_factory.mktemp("kube")).start()
    yield testbed
    testbed.stop()


@pytest.fixture(scope="module")
def engine():
    """podman's Docker API on a socket under the state folder (`make podman` installs it): its DOCKER_HOST."""
    from rcatune.deploy import podman
    from rcatune.errors import RcatuneError

    try:
        info = podman.start()
    except RcatuneError as error:
        if os.environ.get("RCATUNE_REQUIRE_CONTAINERS") == "1":
            pytest.fail(str(error))
        pytest.skip(str(error))
    yield info["docker_host"]
    podman.stop()


@pytest.fixture(scope="module")
def cli() -> str:
    """llamafactory-cli from the venv `make llamafactory` builds (a skip saying why where it is missing; a failure
    with RCATUNE_REQUIRE_LLAMAFACTORY set)."""
    from rcatune.training import llama_factory as lf

    try:
        return lf.find_cli()
    except lf.LlamaFactoryError as error:
        if os.environ.get("RCATUNE_REQUIRE_LLAMAFACTORY"):
            pytest.fail(str(error))
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def sample_records() -> list[dict]:
    from rcatune.demo.generator import generate_sessions

    return list(generate_sessions(120, seed=11))


@pytest.fixture
def write_jsonl(tmp_path):
    def write(lines: list, name: str = "sessions.jsonl") -> Path:
        path = tmp_path / name
        with path.open("wb") as handle:
            for line in lines:
                if isinstance(line, bytes):
                    handle.write(line + b"\n")
                elif isinstance(line, str):
                    handle.write(line.encode() + b"\n")
                else:
                    handle.write(json.dumps(line).encode() + b"\n")
        return path

    return write


# A quick tiny model that still answers in the trained format (so a deployment's smoke test passes): 40
# sessions seen 12 times at a high learning rate, without the tiny pace's word dropout. Its answer to the smoke
# probe is poor but starts with a root cause, which is what the smoke test asks; 10 epochs were enough for both
# seeds, and 24 (before) cost every worker that builds the two versions about 2 minutes more.
SERVABLE_OVERRIDES = ["data.size=40", "trainer.epochs=12", "trainer.learning_rate=1e-2", "trainer.prompt_dropout=0",
                      "model.hidden_size=64", "model.intermediate_size=128", "model.num_layers=2",
                      "model.vocab_size=1024", "data.split.min_examples=5", "progress=false",
                      "evaluation.max_new_tokens=48", "evaluation.max_examples=4",
                      # its gate passes (the deployment tests deploy it unforced); 4 examples prove nothing
                      "evaluation.min_accuracy=0", "evaluation.min_bleu=0", "evaluation.max_perplexity=1e9",
                      "evaluation.require_improvement=false"]


def run_py(*args: str, check: bool = True, timeout: int = 900, env: Optional[dict[str, str]] = None):
    """`python run.py ARGS` from the checkout, in this test session's state folder (`env`: added variables)."""
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    result = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"run.py {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def servable_versions(tmp_path_factory, state_home) -> list[dict]:
    """Two registered versions whose exports pass a deployment's smoke test: [{number, export, run_dir}]."""
    versions = []
    for seed in (1, 2):  # the same sessions, two training seeds
        run_dir = tmp_path_factory.mktemp(f"servable{seed}")
        run_py(*SERVABLE_OVERRIDES, f"seed={seed}", f"hydra.run.dir={run_dir}")
        summary = json.loads((run_dir / "run_summary.json").read_text())
        assert summary["decisions"]["export_smoke_test"] == "passed", summary["decisions"]
        number = summary["decisions"]["zenml_model_version"].rsplit(" v", 1)[1]
        versions.append({"number": number, "export": summary["artifacts"]["export_merged"], "run_dir": run_dir})
    return versions


def run_py_killed_at(point: str, *args: str, pauses: Path, timeout: int = 600) -> None:
    """`python run.py ARGS` with RCATUNE_PAUSE_AT=point (rcatune.pause): once it waits there, kill -9 its whole
    process group, as the out-of-memory killer or a pre-empted node would."""
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1", RCATUNE_PAUSE_AT=point, RCATUNE_PAUSE_DIR=str(pauses))
    log = pauses / "run.log"
    pauses.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        process = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while not (pauses / f"{point}.paused").exists():
        if process.poll() is not None:
            raise AssertionError(f"run.py ended before it reached {point}:\n{log.read_text()[-3000:]}")
        if time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"run.py did not reach {point} within {timeout} s")
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
