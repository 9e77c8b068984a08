"""The review loop against a Label Studio server: push, status, wait, sync.

One project per template, titled '<annotation.project> / <template>'. Every task carries the
example's id (`rcatune_id`) so pushing twice, or retrying an import that timed out after the
server had already stored it, never imports an example twice.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from rcatune.annotation.client import LabelStudioClient, LabelStudioError, RetryPolicy, Transient
from rcatune.annotation.merge import MergeOptions, MergeResult, merge_reviews
from rcatune.annotation.pushed import load_pushed, record_push
from rcatune.annotation.templates import KEY_FIELD, LabelSpec, label_config, lint, task
from rcatune.config.annotation import LabelStudioAnnotationConfig, MergeInto, Unreviewed
from rcatune.errors import RcatuneError
from rcatune.pause import pause_point
from rcatune.progress import bar
from rcatune.schema import TrainingExample

log = logging.getLogger("rcatune.annotation")
TOKEN_ENV = "LABEL_STUDIO_API_KEY"
TITLE_LIMIT = 50  # Label Studio's limit on project titles


class ProjectProgress(BaseModel):
    template: str
    project_id: int
    url: str
    tasks: int = 0
    imported: int = 0  # by this push
    already_there: int = 0  # skipped by this push: same example id already a task
    finished: int = 0  # tasks with at least one annotation
    annotations: int = 0


class PushReport(BaseModel):
    server: str
    examples: int
    projects: list[ProjectProgress] = Field(default_factory=list)
    retries: int = 0

    def lines(self) -> list[str]:
        out = []
        for p in self.projects:
            out.append(f"{p.template}: {p.url} - {p.tasks} tasks ({p.imported} imported now, {p.already_there} "
                       f"already there), {p.finished} reviewed, {p.annotations} annotations")
        if self.retries:
            out.append(f"({self.retries} requests retried after timeouts or server errors)")
        return out


def title(config: LabelStudioAnnotationConfig, template: str) -> str:
    return f"{config.project} / {template}"


def connect(config: LabelStudioAnnotationConfig, sleep: Callable[[float], None] = time.sleep) -> LabelStudioClient:
    """A checked client: the server answers and accepts the token, or a message says what to do."""
    from rcatune.annotation.server import ServerPaths, default_url

    url = config.url or default_url()
    token = os.environ.get(TOKEN_ENV)
    source = f"${TOKEN_ENV}"
    if not token:
        token_file = Path(config.token_file) if config.token_file else ServerPaths.under().token
        if not token_file.exists():
            raise RcatuneError(f"no Label Studio API token: set ${TOKEN_ENV}, or start the project's server with "
                               f"`make labelstudio-start` (it keeps its token in {token_file})")
        token, source = token_file.read_text(encoding="utf-8").strip(), f"the token file {token_file}"
    client = LabelStudioClient(url, token, token_source=source, timeout_s=config.timeout_s,
                               retry=RetryPolicy(config.retries, config.backoff_s), sleep=sleep)
    client.check()
    return client


def ensure_projects(client: LabelStudioClient, config: LabelStudioAnnotationConfig,
                    create: bool = True) -> dict[str, dict[str, Any]]:
    """{template: project} for every configured template, created (and validated by the server) when missing."""
    projects = {}
    for template in config.templates:
        name = title(config, template)
        if len(name) > TITLE_LIMIT:
            raise RcatuneError(f"annotation.project is too long: Label Studio titles hold {TITLE_LIMIT} characters "
                               f"and {name!r} has {len(name)}")
        project = client.find_project(name)
        if project is None:
            if not create:
                raise RcatuneError(f"no Label Studio project {name!r} at {client.url}: push first "
                                   "(python run.py pipeline=annotation)")
            xml = label_config(template)
            problems = lint(xml)
            if problems:
                raise RcatuneError(f"the {template} labeling config would not load: {'; '.join(problems)}")
            client.validate_config(xml)
            project = client.create_project(name, xml, description=f"rcatune {template} review")
            log.info("created Label Studio project %s (%s)", project["id"], name)
        projects[template] = project
    return projects


def project_url(client: LabelStudioClient, project: dict[str, Any]) -> str:
    return f"{client.url}/projects/{project['id']}/data"


def _progress(client: LabelStudioClient, template: str, project: dict[str, Any]) -> ProjectProgress:
    fresh = client.project(project["id"])
    return ProjectProgress(template=template, project_id=project["id"], url=project_url(client, project),
                           tasks=fresh.get("task_number") or 0, finished=fresh.get("num_tasks_with_annotations") or 0,
                           annotations=fresh.get("total_annotations_number") or 0)


def status(client: LabelStudioClient, config: LabelStudioAnnotationConfig, examples: int = 0) -> PushReport:
    projects = ensure_projects(client, config, create=False)
    report = PushReport(server=client.url, examples=examples)
    report.projects = [_progress(client, t, p) for t, p in projects.items()]
    return report


def _import_idempotent(client: LabelStudioClient, project_id: int, items: list[tuple[str, dict[str, Any]]],
                       retry: RetryPolicy, sleep: Callable[[float], None]) -> int:
    """Import one batch; after a failed attempt, re-read which keys landed and send only the rest."""
    delays = retry.delays()
    total = len(items)
    while True:
        try:
            client.import_tasks(project_id, [payload for _key, payload in items])
            return total
        except Transient as error:
            delay = next(delays, None)
            if delay is None:
                raise LabelStudioError(f"importing into project {project_id} kept failing ({error}) after "
                                       f"{retry.retries} retries; run push again: it imports only what is missing"
                                       ) from error
            client.retried += 1
            log.warning("import into project %s failed (%s); checking what landed, retrying in %.1f s",
                        project_id, error, delay)
            sleep(delay)
            landed = client.task_keys(project_id, KEY_FIELD)
            items = [(key, payload) for key, payload in items if key not in landed]
            if not items:
                return total  # everything had landed: the failure came after the server stored the batch


def push(client: LabelStudioClient, config: LabelStudioAnnotationConfig, examples: list[TrainingExample],
         progress: bool = True, sleep: Callable[[float], None] = time.sleep, source: str = "unknown") -> PushReport:
    """Create the projects if needed, record what is pushed (`rcatune.annotation.pushed`, which sync merges
    into), then import every example not yet there, with its pre-annotation. The record comes first: a push
    killed half way leaves examples recorded but not imported (sync reports them unreviewed; the rerun imports
    them), never reviews of examples sync does not know."""
    projects = ensure_projects(client, config)
    report = PushReport(server=client.url, examples=len(examples))
    retry = RetryPolicy(config.retries, config.backoff_s)
    record_push(config.project, examples, source)
    batches = 0
    for template, project in projects.items():
        existing = client.task_keys(project["id"], KEY_FIELD)
        todo = [e for e in examples if e.id not in existing]
        imported = 0
        shown = bar(len(todo), f"push {template}", "tasks", progress and bool(todo))
        for start in range(0, len(todo), config.batch_size):
            batch = [(e.id, task(e, template, config.pre_annotate, config.model_version))
                     for e in todo[start:start + config.batch_size]]
            imported += _import_idempotent(client, project["id"], batch, retry, sleep)
            shown.update(len(batch))
            batches += 1
            pause_point("annotation.imported", batches)
        shown.close()
        state = _progress(client, template, project)
        state.imported, state.already_there = imported, len(examples) - len(todo)
        report.projects.append(state)
    report.retries = client.retried
    return report


def wait(client: LabelStudioClient, config: LabelStudioAnnotationConfig, progress: bool = True,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> PushReport:
    """Poll until every task of every project has `min_annotations` reviews, or time out with a message."""
    projects = ensure_projects(client, config, create=False)
    deadline = clock() + config.wait_timeout_s
    bars = {t: bar(None, f"reviews {t}", "tasks", progress) for t in projects}
    try:
        while True:
            done = True
            for template, project in projects.items():
                tasks = client.export(project["id"])  # one read gives both counts
                total, finished = len(tasks), _finished_tasks(tasks, config.min_annotations)
                shown = bars[template]
                shown.total = total
                shown.n = finished
                shown.refresh()
                done = done and finished >= total
            if done:
                return status(client, config)
            if clock() >= deadline:
                raise RcatuneError(
                    f"reviews not finished after {config.wait_timeout_s:.0f} s (annotation.wait_timeout_s). Nothing "
                    "is lost: run again later, or sync what is there with annotation.action=sync annotation.wait=false")
            sleep(config.poll_s)
    finally:
        for shown in bars.values():
            shown.close()


def _finished_tasks(tasks: list[dict[str, Any]], min_annotations: int) -> int:
    return sum(1 for t in tasks
               if sum(1 for a in t.get("annotations") or [] if not a.get("was_cancelled")) >= min_annotations)


def sync(client: LabelStudioClient, config: LabelStudioAnnotationConfig, examples: list[TrainingExample] | None,
         query_ok: Callable[[str], str | None]) -> MergeResult:
    """Export every project, check each annotation against its config, merge into the examples.

    `annotation.merge_into=pushed` (the default) merges into what the pushes sent, whatever the data
    settings of this run; `source` merges into `examples` (the configured data), reporting the ones
    never pushed apart from those pushed and not yet reviewed."""
    if config.merge_into is MergeInto.pushed or examples is None:
        examples = load_pushed(config.project)
    projects = ensure_projects(client, config, create=False)
    exports = {template: client.export(project["id"]) for template, project in projects.items()}
    specs = {template: LabelSpec.parse(label_config(template)) for template in projects}
    options = MergeOptions(min_annotations=config.min_annotations, task_agreement_min=config.task_agreement_min,
                           rating_spread_max=config.rating_spread_max, merge_flagged=config.merge_flagged,
                           drop_rejected=config.drop_rejected, drop_unreviewed=config.unreviewed is Unreviewed.drop,
                           agreement_target=config.agreement_target)
    return merge_reviews(examples, exports, specs, options, query_ok, _relabeller(config))


def _relabeller(config: LabelStudioAnnotationConfig) -> Callable[[str], str | None]:
    """The fault a corrected root cause names, by the catalog (built-in, or annotation.fault_catalog)."""
    from rcatune.evaluation.catalog import FaultCatalog

    catalog = FaultCatalog.load(config.fault_catalog)
    return lambda root_cause: catalog.infer([root_cause])[0].label
