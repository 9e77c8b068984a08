"""deployer=docker: the build context (Dockerfile linted by hadolint, pinned requirements with vendored wheels, a
non-root user, a HEALTHCHECK); without an engine, the context and the commands to build it; with podman's
Docker API (scripts/podman-setup.sh), a real build, run, smoke test, blue/green switch and rollback."""

from __future__ import annotations

import os
import socket

import pytest
import requests

from rcatune.config.deployer import DockerDeployerConfig
from rcatune.config.serving import ServingConfig
from rcatune.models import model_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_an_engine_the_context_is_written_linted_and_the_commands_printed(servable_versions, tmp_path):
    from rcatune.deploy import DeploymentError, release
    from rcatune.deploy.docker import DockerDeployer

    target = release("rcatune-rca", servable_versions[0]["number"])
    context_only = DockerDeployer(DockerDeployerConfig(name="ctx", build=False), ServingConfig())
    record = context_only.deploy(target)
    context = record.detail["context"]
    dockerfile = open(os.path.join(context, "Dockerfile")).read()
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile and "/ready" in dockerfile
    assert "--no-index --find-links /build/wheels" in dockerfile  # installs exactly the vendored, pinned wheels
    assert not [f for f in record.detail["hadolint"] if f["level"] == "error"]
    requirements = [line for line in open(os.path.join(context, "requirements.txt")) if not line.startswith("#")]
    assert all("==" in line for line in requirements) and any(line.startswith("torch==") for line in requirements)
    wheels = os.listdir(os.path.join(context, "wheels"))
    assert len(wheels) >= len(requirements) and all(w.endswith(".whl") for w in wheels)
    assert os.path.exists(os.path.join(context, "model", "config.json"))
    assert record.detail["commands"][0].startswith(f"docker build -t rcatune-serve:rcatune-rca-v{target.version}")

    nowhere = DockerDeployer(DockerDeployerConfig(name="ctx", docker_host=f"unix://{tmp_path}/none.sock"),
                             ServingConfig())
    with pytest.raises(DeploymentError, match=r"(?s)no Docker API answers at unix://.*docker build -t"):
        nowhere.deploy(target)


def test_build_run_smoke_switch_roll_back_ab_test_and_a_container_that_fails_its_smoke_test(engine, servable_versions,
                                                                                         tmp_path):
    from rcatune.config.model import TinyModelConfig
    from rcatune.deploy import DeploymentError, release
    from rcatune.deploy.docker import DockerDeployer
    from rcatune.deploy.podman import BASE_IMAGE
    from rcatune.deploy.records import Release

    port = _free_port()
    deployer = DockerDeployer(DockerDeployerConfig(name="boxes", port=port, docker_host=engine, base_image=BASE_IMAGE),
                              ServingConfig(ready_timeout_s=240))
    first, second = (release("rcatune-rca", v["number"]) for v in servable_versions)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        one = deployer.deploy(first)
        assert one.endpoint == endpoint and one.detail["image"] == f"rcatune-serve:rcatune-rca-v{first.version}"
        from rcatune.deploy.docker import FINGERPRINT_LABEL  # built from this code and this export, not reused stale

        assert deployer.client().images.get(one.detail["image"]).labels[FINGERPRINT_LABEL] == deployer.fingerprint(
            first)
        from openai import OpenAI

        client = OpenAI(base_url=endpoint + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="rcatune-rca", max_tokens=8,
                                               messages=[{"role": "user", "content": "cart errors"}])
        assert reply.model == first.served_name
        assert deployer.deploy(second).previous == first.version
        assert client.chat.completions.create(model="rcatune-rca", max_tokens=8, messages=[
            {"role": "user", "content": "cart errors"}]).model == second.served_name
        back = deployer.rollback()
        assert (back.version, back.detail["warm"]) == (first.version, True)
        assert requests.get(endpoint + "/ready", timeout=10).headers["x-rcatune-version"] == first.version

        # an A/B test on containers: the treatment in a container of its own, each unit on its arm, recorded
        from rcatune.abtest.routing import assignment
        from rcatune.abtest.store import OutcomeStore

        spec = {"id": "docker-exp", "salt": "s", "treatment_share": 0.5, "ramp": [], "unit_fields": ["user"],
                "store_url_env": "RCATUNE_TEST_NO_SUCH_VARIABLE", "store_url": f"sqlite:///{tmp_path / 'ab.db'}"}
        started = deployer.ab_start(second, spec)
        assert (started.detail["control"], started.detail["treatment"]) == (first.version, second.version)
        plan = assignment({**spec, "started_at": 0.0})
        units = {plan.arm(f"inc-{i}", 0.0): f"inc-{i}" for i in range(40)}
        for arm, version in (("control", first.version), ("treatment", second.version)):
            answer = requests.post(endpoint + "/v1/chat/completions", timeout=60,
                                   headers={"x-rcatune-unit": units[arm]},
                                   json={"model": "rcatune-rca", "max_tokens": 8,
                                         "messages": [{"role": "user", "content": "cart errors"}]})
            assert answer.status_code == 200, answer.text
            assert (answer.headers["x-rcatune-arm"], answer.headers["x-rcatune-version"]) == (arm, version)
        assert OutcomeStore(spec["store_url"]).counts("docker-exp")["outcomes"] == 2
        assert deployer.ab_stop("seen enough").detail["kept"] == first.version
        shown = deployer.client().containers.run(  # the image runs the router, as the Kubernetes A/B test's pods do
            one.detail["image"], entrypoint=["python3", "-c", "import psycopg, rcatune.deploy.router as r; r.main()"],
            command=["--port", "8000", "--target-file", "/tmp/t.json", "--help"], remove=True)
        assert b"--target-file" in shown
        assert requests.get(endpoint + "/ready", timeout=10).headers["x-rcatune-version"] == first.version

        untrained = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=1024)
        broken = Release(registry_name="rcatune-rca", version="901", served_name="rcatune-rca-v901",
                         folder=model_path(untrained))
        with pytest.raises(DeploymentError, match=rf"v901 failed its smoke test: .*still serving v{first.version}"):
            deployer.deploy(broken)
        assert requests.get(endpoint + "/ready", timeout=10).headers["x-rcatune-version"] == first.version
        running = deployer.client().containers.list(filters={"label": "rcatune.deployment=boxes"})
        assert sorted(c.labels["rcatune.version"] for c in running) == sorted([first.version, second.version])
    finally:
        deployer.stop()
    assert not deployer.client().containers.list(filters={"label": "rcatune.deployment=boxes"})
