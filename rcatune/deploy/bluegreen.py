"""Blue/green behind a stable port, for deployers whose instances run on this machine (processes, containers).

A router (`rcatune.deploy.router`) holds the endpoint (`deployer.port`). A deploy starts the new version
beside the active one; it must pass the smoke test (ready, then one real diagnosis that parses) before the
router switches to it. The version it replaced stays warm, so a rollback is a switch of the router's
target (milliseconds), not a model load; the one before that is stopped. State, pids, ports and logs live
under `<state>/deployments/<target>/<name>/`. Subclasses say how an instance starts, stops and lives.

A deploy killed half way is finished by the next action on the deployment (`_recover`): the new instance is
written into the state as `pending` before its smoke test, so it is never left running unknown; if the router
had already switched to it, it becomes the active one and the missing record is written; if not, it is stopped
and the previous version, which never stopped serving, stays.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, Optional

from rcatune.config.serving import LIMITS, ServingConfig
from rcatune.config.specs import to_spec
from rcatune.deploy.base import Deployer, DeploymentError
from rcatune.deploy.records import DeploymentRecord, Release, deployments_dir, history, recorded
from rcatune.deploy.router import VERSION_HEADER, Target, write_target
from rcatune.deploy.smoke import SmokeTestFailed, smoke_test, wait_ready
from rcatune.pause import pause_point
from rcatune.processes import alive, port_free, spawn, stop_group, tail

Instance = dict[str, Any]  # version, model, folder, registry_name, url, log, and what the subclass needs


SERVERS = 2  # a blue/green deployment runs the active instance and the warm previous side by side


class BlueGreenDeployer(Deployer):
    def __init__(self, config, serving: ServingConfig) -> None:
        super().__init__(config, serving)
        self.folder = deployments_dir() / self.target / self.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file, self.target_file = self.folder / "state.json", self.folder / "active.json"
        self.endpoint = f"http://{config.host}:{config.port}"

    # ------------------------------------------------------------------------------ what subclasses provide
    @abstractmethod
    def start_instance(self, release: Release) -> Instance:
        """Start `release` (not yet receiving traffic); its `url` answers once it is ready."""

    @abstractmethod
    def stop_instance(self, instance: Instance) -> None:
        """Stop it and free what it holds."""

    @abstractmethod
    def instance_running(self, instance: Instance) -> bool:
        """Whether it still runs (it may not be ready yet)."""

    def instance_log(self, instance: Instance) -> str:
        return tail(Path(instance["log"]), 8) if instance.get("log") else ""

    # ------------------------------------------------------------------------------------------ actions
    # Each action holds the deployment's lock: two people (or the control API and a pipeline) acting on one
    # deployment take turns instead of interleaving their changes to its state.
    def deploy(self, release: Release) -> DeploymentRecord:
        with self._lock():
            try:
                return self._deploy(release)
            except DeploymentError:
                self._stop_idle_router()
                raise

    def rollback(self) -> DeploymentRecord:
        with self._lock():
            return self._rollback()

    def status(self) -> dict[str, Any]:
        with self._lock():
            return self._status()

    def stop(self) -> DeploymentRecord:
        with self._lock():
            return self._stop()

    def _stop_idle_router(self) -> None:
        """A first deploy that failed leaves no router listening with nothing behind it."""
        state = self._state()
        if not state.get("active") and not state.get("pending") and state.get("router"):
            stop_group(state["router"].get("pid"))
            write_target(self.target_file, None)
            state.pop("router")
            self._save(state)

    def _lock(self):
        from rcatune.state import state_lock

        return state_lock(f"deploy-{self.target}-{self.name}")

    def _deploy(self, release: Release) -> DeploymentRecord:
        started = time.perf_counter()
        state = self._recover(self._state())
        _refuse_during_experiment(state, "deploy")
        auth, auth_changes = self._auth_for(state)
        active, previous = state.get("active"), state.get("previous")
        self._ensure_router(state)
        fields = {"endpoint": self.endpoint, "version": release.version, "model": release.served_name,
                  "registry_name": release.registry_name}
        if active and active["version"] == release.version and self._answers(active) and not auth_changes:
            told = history(self.target, self.name)
            if told and told[-1].version == release.version:
                return self.record("deploy", **fields, previous=previous and previous["version"], changed=False)
            return self.record("deploy", **fields, previous=previous and previous["version"], detail={
                "recovered": "it served already, but the deploy that switched to it was killed before it was "
                             "recorded: recorded now"})
        crashed = active is not None and not self._answers(active)
        if crashed:  # a crashed instance is nothing to come back to: replaced, the warm previous kept
            self.stop_instance(active)
            active = None
        warm = active if active is not None else (previous if previous and self._answers(previous) else None)
        if auth_changes:
            warm = None  # an instance with the old token source is not kept to roll back to
        instance = self._started(release, active, state)
        try:
            switch = self._switch(instance)
        except DeploymentError:
            self.stop_instance(instance)
            write_target(self.target_file, active and _target(active))
            state.pop("pending", None)
            self._save(state)
            raise
        pause_point("deploy.switched")
        for old in (active, previous):
            if old and old is not warm:
                self.stop_instance(old)  # only the last good one stays warm
        state.pop("pending", None)
        state.update(active=instance, previous=warm, auth=auth)
        self._save(state)
        self._write_target(state)
        return self.record("deploy", **fields, previous=warm and warm["version"],
                           seconds=round(time.perf_counter() - started, 2),
                           detail={"smoke": instance.pop("smoke"), "switch_seconds": switch,
                                   "instance": instance.get("url"), "previous_warm": bool(warm),
                                   "auth": _shown_auth(auth),
                                   **({"replaced_crashed": True} if crashed else {}),
                                   **({"auth_changed": True} if auth_changes else {}),
                                   **({"forced": release.forced} if release.forced else {})})

    def _write_target(self, state: dict[str, Any]) -> None:
        """The router's target: the active instance, the warm previous it fails over to, and the A/B test it
        splits traffic for (a kill switch the router threw itself is kept)."""
        active, previous = state.get("active"), state.get("previous")
        target = active and {**_target(active), "standby": previous and _target(previous)}
        experiment = state.get("experiment")
        if target and experiment:
            thrown = ((Target(self.target_file).current() or {}).get("experiment") or {})
            if thrown.get("id") == experiment["id"] and thrown.get("killed") and not experiment.get("killed"):
                experiment.update({k: thrown.get(k) for k in ("killed", "killed_reason", "killed_at")})
            target["experiment"] = {**{k: v for k, v in experiment.items() if k != "treatment"},
                                    "treatment": _target(experiment["treatment"])}
        write_target(self.target_file, target)

    # ------------------------------------------------------------------------------------------ A/B tests
    def ab_start(self, treatment: Release, spec: dict[str, Any]) -> DeploymentRecord:
        """Serve `treatment` beside the active version (control) and split traffic by unit; nothing is promoted."""
        with self._lock():
            started = time.perf_counter()
            state = self._recover(self._state())
            active = state.get("active")
            if not active or not self._answers(active):
                raise DeploymentError(f"an A/B test needs a version serving as control: deploy one first "
                                      f"(deployment {self.name!r} on {self.target})")
            if state.get("experiment"):
                raise DeploymentError(f"A/B test {state['experiment']['id']!r} runs already on {self.name!r}: "
                                      "deployment.action=ab_stop ends it")
            if treatment.version == active["version"]:
                raise DeploymentError(f"v{treatment.version} serves already as control: pick another treatment")
            self._ensure_router(state)
            state["auth"], _ = self._auth_for(state)
            instance = self._started(treatment, active, state)
            smoke = instance.pop("smoke")
            state.pop("pending", None)
            state["experiment"] = {**spec, "started_at": time.time(), "killed": False, "treatment": instance}
            self._save(state)
            self._write_target(state)
            return self.record("ab_start", endpoint=self.endpoint, version=active["version"], model=active["model"],
                               registry_name=active["registry_name"], changed=False,
                               seconds=round(time.perf_counter() - started, 2),
                               detail={"experiment": spec["id"], "control": active["version"],
                                       "treatment": treatment.version, "treatment_share": spec["treatment_share"],
                                       "ramp": spec.get("ramp"), "smoke": smoke, "instance": instance["url"]})

    def ab_state(self) -> Optional[dict[str, Any]]:
        """The running experiment as the router sees it (its kill switch included), or None."""
        with self._lock():
            state = self._recover(self._state())
            if not state.get("experiment"):
                return None
            self._write_target(state)  # takes up a kill switch the router threw
            self._save(state)
            return {**state["experiment"], "control": state["active"]["version"],
                    "treatment_answers": self._answers(state["experiment"]["treatment"])}

    def ab_switch_off(self, reason: str) -> None:
        """Every unit to control from now on; the treatment stays up for a look at what went wrong."""
        with self._lock():
            state = self._state()
            experiment = state.get("experiment")
            if experiment and not experiment.get("killed"):
                from datetime import datetime, timezone

                experiment.update(killed=True, killed_reason=reason,
                                  killed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                self._save(state)
                self._write_target(state)

    def ab_stop(self, reason: str, promote: bool = False) -> DeploymentRecord:
        """End the experiment. `promote`: the treatment becomes the active version (control stays warm as the
        previous, for a rollback in seconds) and the record moves the registry; else the treatment is stopped."""
        with self._lock():
            started = time.perf_counter()
            state = self._recover(self._state())
            experiment = state.pop("experiment", None)
            if not experiment:
                raise DeploymentError(f"no A/B test runs on {self.name!r}")
            active, treatment, previous = state["active"], experiment["treatment"], state.get("previous")
            if not promote:
                self.stop_instance(treatment)
                self._save(state)
                self._write_target(state)
                return self.record("ab_stop", endpoint=self.endpoint, version=active["version"], model=active["model"],
                                   registry_name=active["registry_name"], changed=False,
                                   seconds=round(time.perf_counter() - started, 2),
                                   detail={"experiment": experiment["id"], "reason": reason,
                                           "treatment": treatment["version"], "kept": active["version"]})
            if not self._answers(treatment):
                self.stop_instance(treatment)
                self._save(state)
                self._write_target(state)
                raise DeploymentError(f"v{treatment['version']} no longer answers: not promoted; "
                                      f"v{active['version']} keeps serving")
            switch = self._switch(treatment)
            if previous and previous.get("url") != active.get("url"):
                self.stop_instance(previous)
            state.update(active=treatment, previous=active)
            self._save(state)
            self._write_target(state)
            return self.record("deploy", endpoint=self.endpoint, version=treatment["version"],
                               model=treatment["model"], registry_name=treatment["registry_name"],
                               previous=active["version"], seconds=round(time.perf_counter() - started, 2),
                               detail={"ab_test": experiment["id"], "reason": reason, "switch_seconds": switch,
                                       "instance": treatment["url"], "previous_warm": True})

    def _auth_for(self, state: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The token source this action's instances get, and whether it changes the deployment's; refused when
        it would change without deployer.change_auth=true."""
        now = auth_source(self.serving)
        recorded = state.get("auth")
        if recorded is None or recorded == now:
            return now, False
        if not getattr(self.config, "change_auth", False):
            raise DeploymentError(
                f"this would change deployment {self.name}'s auth from {_shown_auth(recorded)} to "
                f"{_shown_auth(now)}; all its instances use one (rollback and failover included): use the same "
                "token source, or deployer.change_auth=true to change it (the warm previous version is then stopped)")
        return now, True

    def _rollback(self) -> DeploymentRecord:
        started = time.perf_counter()
        state = self._recover(self._state())
        _refuse_during_experiment(state, "roll back")
        active, previous = state.get("active"), state.get("previous")
        if not previous:
            now = f"only v{active['version']} was deployed" if active else "nothing is deployed"
            raise DeploymentError(f"nothing to roll back to: {now} (deployment {self.name!r} on {self.target})")
        if active and previous["version"] == active["version"]:
            raise DeploymentError(f"nothing to roll back to: the previous instance serves v{active['version']} too "
                                  f"(deployment {self.name!r} on {self.target}); deploy the version you want")
        self._ensure_router(state)
        warm = self._answers(previous)
        if not warm:  # stopped since (or the machine restarted): start it again, smoke-test it, then switch
            state["auth"], _ = self._auth_for(state)  # restarted with the deployment's token source, or refused
            self.stop_instance(previous)
            previous = self._started(Release(registry_name=previous["registry_name"], version=previous["version"],
                                             served_name=previous["model"], folder=previous["folder"]), active, state)
            previous.pop("smoke")
        switch = self._switch(previous)
        state.pop("pending", None)
        state.update(active=previous, previous=active if active and self._answers(active) else None)
        if active and state["previous"] is None:
            self.stop_instance(active)  # it no longer answers: nothing to come back to
        self._save(state)
        self._write_target(state)
        return self.record("rollback", endpoint=self.endpoint, version=previous["version"], model=previous["model"],
                           previous=active and active["version"], registry_name=previous["registry_name"],
                           seconds=round(time.perf_counter() - started, 2),
                           detail={"switch_seconds": switch, "warm": warm, "instance": previous.get("url")})

    def _status(self) -> dict[str, Any]:
        state = self._recover(self._state())
        router = state.get("router") or {}
        instances = {role: {**state[role], "answers": self._answers(state[role])}
                     for role in ("active", "previous") if state.get(role)}
        serving = Target(self.target_file).current()
        answers = self._endpoint_answers() if serving else False
        return {"target": self.target, "name": self.name, "endpoint": self.endpoint if serving else None,
                "version": serving and serving["version"], "answers": answers,
                "auth": self._auth() if answers else "unknown",
                "router": {"pid": router.get("pid"), "port": router.get("port"),
                           "running": alive(router.get("pid"))}, **instances}

    def _endpoint_answers(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.endpoint}/ready", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _auth(self) -> str:
        """'on' when the endpoint refuses a request without the bearer token, 'off' when it answers it."""
        import requests

        try:
            code = requests.get(f"{self.endpoint}/v1/models", timeout=5).status_code
        except requests.RequestException:
            return "unknown"
        return {401: "on", 200: "off"}.get(code, "unknown")

    def _stop(self) -> DeploymentRecord:
        state = self._recover(self._state())
        active = state.get("active")
        for role in ("active", "previous"):
            if state.get(role):
                self.stop_instance(state[role])
        if state.get("experiment"):
            self.stop_instance(state["experiment"]["treatment"])
        stop_group((state.get("router") or {}).get("pid"))
        write_target(self.target_file, None)
        self._save({})
        return self.record("stop", endpoint=None, version=None, previous=active and active["version"],
                           registry_name=active["registry_name"] if active else "rcatune-rca")

    # ------------------------------------------------------------------------------------------ pieces
    def _started(self, release: Release, active: Optional[Instance], state: dict[str, Any]) -> Instance:
        """`release` started (written into the state as pending at once) and smoke-tested (stopped again, with
        the reason, when it fails the test)."""
        instance = self.start_instance(release)
        state["pending"] = instance
        self._save(state)
        pause_point("deploy.started")
        try:
            instance["smoke"] = smoke_test(instance["url"], self.serving.ready_timeout_s, self.serving.token(),
                                           release.served_name, alive=lambda: self.instance_running(instance))
        except SmokeTestFailed as error:
            log = self.instance_log(instance)
            self.stop_instance(instance)
            state.pop("pending", None)
            self._save(state)
            serving = f"still serving v{active['version']} at {self.endpoint}" if active else "nothing serves"
            raise DeploymentError(f"v{release.version} failed its smoke test: {error}; {serving}"
                                  + (f". The last lines it wrote:\n{log}" if log else "")) from None
        return instance

    def _recover(self, state: dict[str, Any]) -> dict[str, Any]:
        """Finish what a killed action left, and account for a failover the router made: a pending instance the
        router already sends traffic to becomes the active one (and its deploy is recorded); one it does not is
        stopped; the warm previous the router failed over to becomes the active one (recorded as an automatic
        rollback). The router's target follows the state."""
        state = self._account_failover(state)
        pending = state.pop("pending", None)
        if pending is None:
            return state
        serving = Target(self.target_file).current()
        active, previous = state.get("active"), state.get("previous")
        if serving and serving.get("url") == pending["url"] and self.instance_running(pending):
            if previous and previous.get("url") not in (pending["url"], active and active.get("url")):
                self.stop_instance(previous)
            state.update(active=pending, previous=active if active and active["url"] != pending["url"] else previous)
            self._save(state)
            self._write_target(state)
            recorded(self.record("deploy", endpoint=self.endpoint, version=pending["version"],
                                 model=pending["model"], registry_name=pending["registry_name"],
                                 previous=state["previous"] and state["previous"]["version"],
                                 detail={"recovered": "the router had switched when the deploy was interrupted; "
                                                      "completed by the next action"}))
            return state
        self.stop_instance(pending)
        self._write_target(state)
        self._save(state)
        print(f"{self.target} deployment {self.name!r}: an interrupted deploy of v{pending['version']} was "
              f"cleaned up (its instance stopped); {'v' + active['version'] if active else 'nothing'} serves",
              flush=True)
        return state

    def _account_failover(self, state: dict[str, Any]) -> dict[str, Any]:
        serving = Target(self.target_file).current()
        active, previous = state.get("active"), state.get("previous")
        if not (serving and active and previous and serving.get("url") == previous.get("url")
                and serving.get("url") != active.get("url")):
            return state
        failed = serving.get("failed_over_from") or {}
        self.stop_instance(active)  # it stopped answering: what is left of it goes
        state.update(active=previous, previous=None)
        self._save(state)
        self._write_target(state)
        recorded(self.record("rollback", endpoint=self.endpoint, version=previous["version"], model=previous["model"],
                             previous=active["version"], registry_name=previous["registry_name"],
                             detail={"automatic": f"failover: v{active['version']} stopped answering; the router "
                                                  f"switched to the warm v{previous['version']}",
                                     "failed_at": failed.get("at"), "switch_seconds": failed.get("seconds")}))
        return state

    def _state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text(encoding="utf-8")) if self.state_file.exists() else {}

    def _save(self, state: dict[str, Any]) -> None:
        if state:
            state["deployer"] = to_spec("deployer", self.config).model_dump()
            state["serving"] = {**dataclasses.asdict(self.serving), "engine": self.serving.engine.value}
        staged = self.state_file.with_suffix(".tmp")
        staged.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(staged, self.state_file)

    def _ensure_router(self, state: dict[str, Any]) -> None:
        """The router on the stable port: ours if it runs, else started (a port taken by another program fails)."""
        import requests

        router = state.get("router") or {}
        if alive(router.get("pid")) and router.get("port") == self.config.port:
            return
        if not port_free(self.config.port, self.config.host):
            raise DeploymentError(f"port {self.config.port} on {self.config.host} is in use by another program: stop "
                                  f"it or deploy on another port (deployer.port=...)")
        log = self.folder / "router.log"
        process = spawn([sys.executable, "-m", "rcatune.deploy.router", "--host", self.config.host, "--port",
                         str(self.config.port), "--target-file", str(self.target_file)], log, child_env())
        state["router"] = {"pid": process.pid, "port": self.config.port, "log": str(log)}
        self._save(state)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DeploymentError(f"the router exited while starting; {log}:\n{tail(log, 8)}")
            try:
                requests.get(f"{self.endpoint}/router/status", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise DeploymentError(f"the router did not answer on {self.endpoint} within 60 s; see {log}")

    def _switch(self, instance: Instance) -> float:
        """Point the router at `instance`; the seconds until a request through the endpoint reaches it."""
        import requests

        started = time.perf_counter()
        write_target(self.target_file, _target(instance))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                reply = requests.get(f"{self.endpoint}/ready", timeout=5)
                if reply.status_code == 200 and reply.headers.get(VERSION_HEADER) == instance["version"]:
                    return round(time.perf_counter() - started, 4)
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise DeploymentError(f"the router at {self.endpoint} did not switch to v{instance['version']} within 30 s")

    def _answers(self, instance: Optional[Instance]) -> bool:
        if not instance or not self.instance_running(instance):
            return False
        try:
            wait_ready(instance["url"], 2.0)
            return True
        except SmokeTestFailed:
            return False


def _refuse_during_experiment(state: dict[str, Any], what: str) -> None:
    experiment = state.get("experiment")
    if experiment:
        raise DeploymentError(f"A/B test {experiment['id']!r} runs on this deployment: it decides what serves; to "
                              f"{what} now, end it first (deployment.action=ab_stop)")


def _target(instance: Instance) -> dict[str, Any]:
    return {"url": instance["url"], "version": instance["version"], "model": instance["model"]}


def auth_source(serving: ServingConfig) -> dict[str, Any]:
    """Where the bearer token comes from (never the value): a file, an environment variable, or nowhere; with a
    short fingerprint so a different token from the same place is a change too."""
    import hashlib

    from rcatune.config.serving import TOKEN_ENV

    token = serving.token()
    if serving.token_file:
        source = f"file:{Path(serving.token_file).expanduser().resolve()}"
    else:
        source = f"env:{TOKEN_ENV}" if token else "none"
    return {"source": source, "fingerprint": hashlib.sha256(token.encode()).hexdigest()[:12] if token else None}


def _shown_auth(auth: dict[str, Any]) -> str:
    if auth["source"] == "none":
        return "no token (the API is open)"
    kind, _, where = auth["source"].partition(":")
    place = f"the file {where}" if kind == "file" else f"${where}"
    return f"a token from {place} (fingerprint {auth['fingerprint']})"


def reconcile_folder(folder: Path) -> dict[str, Any]:
    """Act on the deployment whose files are in `folder` from another process (the router, after a failover):
    its status, which accounts for what changed."""
    from rcatune.config import load_spec
    from rcatune.config.serving import Engine
    from rcatune.deploy import deployer_for

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    serving = ServingConfig(**{**state["serving"], "engine": Engine(state["serving"]["engine"])})
    return deployer_for(load_spec(state["deployer"]), serving).status()


def child_env() -> dict[str, str]:
    """A child's environment: this one (the serve token travels here, never on a command line)."""
    return dict(os.environ, PYTHONUNBUFFERED="1")


def serve_args(release: Release, serving: ServingConfig, host: str, port: int, model_dir: str,
               servers: int = 1) -> list[str]:
    """`python -m rcatune.serving` arguments that serve `release` from `model_dir` with the configured caps and
    threads (`servers`: how many servers share the machine's cores: a blue/green deployment keeps two)."""
    args = ["--model", f"{release.served_name}={model_dir}", "--alias", release.registry_name, "--host", host,
            "--port", str(port), "--no-base", "--threads", serving.threads, "--servers", str(servers),
            "--engine", serving.engine.value]
    for key in LIMITS:
        args += [f"--{key.replace('_', '-')}", str(getattr(serving, key))]
    return args
