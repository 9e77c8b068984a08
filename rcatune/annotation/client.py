"""A small client for Label Studio's REST API (1.23), with retries and errors that say what to do.

`label-studio-sdk` 2.x cannot join rcatune's pinned set (its opencv dependency needs numpy<2.3), and
the few calls the review loop needs are plain REST, so this talks HTTP directly with `requests`.
Timeouts, connection drops, 429 and 5xx are retried with exponential backoff; other errors are not.
Requests that create things (imports) are never retried blindly: the caller re-reads what exists.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import requests

from rcatune.errors import RcatuneError

log = logging.getLogger("rcatune.annotation")
START_HINT = "start it with `make labelstudio-start` (installs with `make labelstudio`), or set annotation.url"
RETRY_STATUS = {429, 500, 502, 503, 504}


class LabelStudioError(RcatuneError):
    """Label Studio refused a request, or could not be reached."""


class Transient(Exception):
    """A failure worth retrying (timeout, dropped connection, 429/5xx)."""


@dataclass
class RetryPolicy:
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.retries):
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
            yield delay * (0.8 + 0.4 * random.random())


class LabelStudioClient:
    def __init__(self, url: str, token: str, *, token_source: str = "the token", timeout_s: float = 30.0,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/")
        self.token_source = token_source
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})
        self.retried = 0  # how many retries this client made (reported by push/sync)

    # ---------------------------------------------------------------------------------------- plumbing
    def _once(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, f"{self.url}{path}", timeout=self.timeout_s, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as error:
            raise Transient(f"{type(error).__name__}") from error
        if response.status_code in RETRY_STATUS:
            raise Transient(f"HTTP {response.status_code}")
        if response.status_code in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {self.url} rejected the API token ({self.token_source}): HTTP "
                f"{response.status_code} ({_detail(response).rstrip('.')}). Use the token of a user of this server: "
                "`make labelstudio-start` writes the admin's to the state folder; or set LABEL_STUDIO_API_KEY.")
        if response.status_code >= 400:
            raise LabelStudioError(f"Label Studio refused {method} {path}: HTTP {response.status_code} "
                                   f"{_detail(response)}")
        return response

    def request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        """One API call; JSON back. Retryable failures are retried when `retry`, else raised as Transient."""
        delays = self.retry.delays() if retry else iter(())
        while True:
            try:
                response = self._once(method, path, **kwargs)
                return response.json() if response.content else None
            except Transient as error:
                delay = next(delays, None)
                if delay is None:
                    if not retry:
                        raise
                    raise LabelStudioError(f"Label Studio at {self.url} kept failing on {method} {path} ({error}) "
                                           f"after {self.retry.retries} retries") from error
                self.retried += 1
                log.warning("Label Studio %s %s: %s; retrying in %.1f s", method, path, error, delay)
                self._sleep(delay)

    def check(self) -> dict[str, Any]:
        """Is the server up, and does it accept the token? Returns the current user."""
        try:
            health = self._session.get(f"{self.url}/health", timeout=min(self.timeout_s, 10))
        except requests.RequestException as error:
            raise LabelStudioError(f"Label Studio is not answering at {self.url} ({type(error).__name__}): "
                                   f"{START_HINT}") from None
        if health.status_code != 200:
            raise LabelStudioError(f"{self.url}/health answered HTTP {health.status_code}: is this Label Studio? "
                                   f"{START_HINT}")
        return self.request("GET", "/api/current-user/whoami")

    # ---------------------------------------------------------------------------------------- projects
    def find_project(self, title: str) -> dict[str, Any] | None:
        page = self.request("GET", "/api/projects/", params={"title": title, "page_size": 100})
        matches = [p for p in page.get("results", []) if p.get("title") == title]
        return matches[0] if matches else None

    def create_project(self, title: str, label_config: str, description: str = "") -> dict[str, Any]:
        return self.request("POST", "/api/projects/", json={
            "title": title, "label_config": label_config, "description": description,
            "show_instruction": True, "show_skip_button": True, "show_annotation_history": True,
            "enable_empty_annotation": False, "show_collab_predictions": True})

    def project(self, project_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/projects/{project_id}")

    def validate_config(self, label_config: str) -> None:
        self.request("POST", "/api/projects/validate/", json={"label_config": label_config})

    # ---------------------------------------------------------------------------------------- tasks
    def task_keys(self, project_id: int, key: str, page_size: int = 500) -> dict[str, int]:
        """{task data[key]: task id} for every task of the project."""
        keys: dict[str, int] = {}
        page, seen = 1, 0
        while True:
            body = self.request("GET", "/api/tasks/", params={"project": project_id, "page": page,
                                                             "page_size": page_size, "include": "id,data"})
            tasks = body.get("tasks", [])
            for item in tasks:
                value = (item.get("data") or {}).get(key)
                if value is not None:
                    keys[str(value)] = item["id"]
            seen += len(tasks)
            if not tasks or seen >= body.get("total", 0):
                return keys
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Import once, no retry: a timed-out import may still have landed (the caller re-reads keys)."""
        body = self.request("POST", f"/api/projects/{project_id}/import", retry=False,
                            params={"return_task_ids": "true"}, json=tasks)
        return list(body.get("task_ids", []))

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task with its annotations (JSON export, including tasks nobody annotated yet)."""
        return self.request("GET", f"/api/projects/{project_id}/export",
                            params={"exportType": "JSON", "download_all_tasks": "true"})

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, **extra})

    def update_annotation(self, annotation_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/annotations/{annotation_id}/", json=fields)


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        parts = [str(body.get("detail", ""))]
        if body.get("validation_errors"):
            parts.append(str(body["validation_errors"]))
        elif "detail" not in body:
            parts.append(str(body)[:300])
        return " ".join(p for p in parts if p)
    return str(body)[:300]
