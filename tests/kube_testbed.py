"""A one-node Kubernetes control plane for the deployer tests, on 127.0.0.1, from the binaries
`scripts/kube-build.sh` builds (Debian's kubernetes 1.20.2 source and etcd).

etcd, kube-apiserver (TLS with a self-signed certificate, a static admin token) and kube-controller-manager
(deployment, replicaset and garbage-collector controllers) are real. There is no scheduler and no kubelet:
a stand-in registers a Node, binds pods to it and reports them Running and Ready, as a kubelet whose
containers pass their readiness probes would, except pods whose image contains `never-ready` (a rollout
that never becomes ready). So Deployments get ReplicaSets, revisions, rolling updates and rollout status as
on a cluster; nothing runs in the pods.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from rcatune.processes import free_port, spawn, stop_group, tail

NODE = "rcatune-standin"
NEVER_READY = "never-ready"


def binaries() -> Optional[Path]:
    """The folder with kube-apiserver and kube-controller-manager, when built (and etcd installed)."""
    folder = Path(os.environ.get("RCATUNE_KUBE_CACHE") or Path.home() / ".cache" / "rcatune" / "kube") / "bin"
    ok = all((folder / name).exists() for name in ("kube-apiserver", "kube-controller-manager"))
    return folder if ok and shutil.which("etcd") else None


class Testbed:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.kubeconfig = folder / "kubeconfig"
        self._stop = threading.Event()
        self._kubelet: Optional[threading.Thread] = None

    def start(self, timeout_s: float = 90.0) -> "Testbed":
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("the Kubernetes binaries are not built: scripts/kube-build.sh (make kube)")
        self.folder.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self.processes.append(spawn(
            ["etcd", "--data-dir", str(self.folder / "etcd"), "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}"], self.folder / "etcd.log"))
        token = secrets.token_hex(16)
        (self.folder / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
        key = self.folder / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        certs = self.folder / "certs"
        self.processes.append(spawn(
            [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
             "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
             "--insecure-port=0", f"--cert-dir={certs}", f"--token-auth-file={self.folder / 'tokens.csv'}",
             "--authorization-mode=RBAC", f"--service-account-key-file={key}",
             f"--service-account-signing-key-file={key}", "--service-account-issuer=https://kubernetes.default.svc",
             "--service-cluster-ip-range=10.96.0.0/16", "--disable-admission-plugins=ServiceAccount",
             "--allow-privileged=true"], self.folder / "apiserver.log"))
        self.url = f"https://127.0.0.1:{api_port}"
        ca = certs / "apiserver.crt"
        deadline = time.monotonic() + timeout_s
        while not ca.exists():
            self._check(deadline, "kube-apiserver wrote no certificate")
        self.kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: testbed, cluster: {{server: "{self.url}", certificate-authority: "{ca}"}}}}]
users: [{{name: admin, user: {{token: "{token}"}}}}]
contexts: [{{name: testbed, context: {{cluster: testbed, user: admin, namespace: default}}}}]
current-context: testbed
""")
        while not self._healthy():
            self._check(deadline, "kube-apiserver did not become healthy")
        while not self._has_default_namespace():  # the API server's bootstrap controller makes it
            self._check(deadline, "the default namespace did not appear")
        self.processes.append(spawn(
            [str(bin_dir / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig}",
             "--controllers=deployment,replicaset,garbagecollector", "--leader-elect=false",
             "--port=0", "--secure-port=0", "--use-service-account-credentials=false",
             f"--service-account-private-key-file={key}"], self.folder / "controller-manager.log"))
        self._kubelet = threading.Thread(target=self._stand_in_kubelet, daemon=True)
        self._kubelet.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for process in reversed(self.processes):
            stop_group(process.pid, timeout_s=10)

    def api(self):
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))

    def _healthy(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.url}/healthz", verify=False, timeout=2).status_code in (200, 401, 403)
        except requests.RequestException:
            return False

    def _has_default_namespace(self) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api().read_namespace("default")
            return True
        except ApiException:
            return False

    def _check(self, deadline: float, what: str) -> None:
        for process in self.processes:
            if process.poll() is not None:
                logs = "\n".join(tail(log, 10) for log in self.folder.glob("*.log"))
                raise RuntimeError(f"{what}: a control-plane process exited\n{logs}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} in time")
        time.sleep(0.2)

    # ------------------------------------------------------------------------------ the stand-in kubelet
    def _stand_in_kubelet(self) -> None:
        from kubernetes.client.exceptions import ApiException

        core = self.api()
        now = datetime.now(timezone.utc).isoformat()
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now,
                 "lastTransitionTime": now}
        core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                          "status": {"conditions": [ready], "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                                     "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}}})
        while not self._stop.wait(0.2):
            try:
                for pod in core.list_pod_for_all_namespaces().items:
                    self._tend(core, pod)
            except ApiException:
                continue
            except Exception:  # the API server is going away with the test session
                if self._stop.is_set():
                    return

    def _tend(self, core, pod) -> None:
        meta, namespace = pod.metadata, pod.metadata.namespace
        if meta.deletion_timestamp is not None:
            core.delete_namespaced_pod(meta.name, namespace, grace_period_seconds=0)
            return
        if not pod.spec.node_name:
            core.create_namespaced_binding(namespace, {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta.name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}}, _preload_content=False)
            return
        if pod.status.phase == "Running":
            return
        image = pod.spec.containers[0].image
        is_ready = "True" if NEVER_READY not in image else "False"
        now = datetime.now(timezone.utc).isoformat()
        conditions = [{"type": t, "status": s, "lastTransitionTime": now} for t, s in
                      (("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", is_ready),
                       ("Ready", is_ready))]
        statuses = [{"name": c.name, "image": c.image, "imageID": c.image, "ready": is_ready == "True",
                     "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}}}
                    for c in pod.spec.containers]
        core.patch_namespaced_pod_status(meta.name, namespace, {"status": {
            "phase": "Running", "conditions": conditions, "containerStatuses": statuses, "hostIP": "127.0.0.1",
            "podIP": "10.244.0.10", "startTime": now}})
