"""The control API's HTTP service (FastAPI), versioned under /api/v1, OpenAPI at /api/v1/openapi.json and its
docs at /api/v1/docs. Errors have one shape, the model server's: `{"error": {"message", "type", "param", "code"}}`,
401 when no valid token comes (with `WWW-Authenticate: Bearer`), 403 when the token lacks the scope."""

from __future__ import annotations

import json
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, Optional

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from rcatune.api import jobs as jobs_lib
from rcatune.api.audit import AuditLog
from rcatune.api.db import Database
from rcatune.api.tokens import Caller, TokenStore
from rcatune.config.api import ApiConfig
from rcatune.errors import ConfigError, RcatuneError

PREFIX = "/api/v1"
VERSION_PATTERN = r"^([0-9]{1,9}|production|staging|latest)$"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,40}$"
EXPERIMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$"
Target = Literal["local", "docker", "kubernetes"]
DeploymentName = Annotated[str, Path(pattern=NAME_PATTERN)]
VersionRef = Annotated[str, Path(pattern=VERSION_PATTERN)]
JobId = Annotated[str, Path(pattern=jobs_lib.JOB_ID.pattern)]


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error",
                 param: Optional[str] = None, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.kind, self.param = status, message, code, kind, param
        self.headers = headers or {}


def error_body(message: str, kind: str, code: str, param: Optional[str] = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# ------------------------------------------------------------------------------------------ request and answer shapes
class ErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"pipeline": "fine_tuning", "overrides": ["data.size=200", "method=lora", "trainer.epochs=2"]},
        {"pipeline": "prepare", "overrides": ["data=jsonl", "data.path=data/sessions.jsonl"]}]})
    pipeline: Literal["fine_tuning", "prepare", "evaluate", "annotation"] = "fine_tuning"
    overrides: list[Annotated[str, Field(max_length=1000, pattern=jobs_lib.OVERRIDE.pattern)]] = Field(
        default_factory=list, max_length=64,
                                 description="KEY=VALUE, as after `python run.py` (validated before the job queues)")


class JobProgress(BaseModel):
    steps_done: int
    steps: Optional[int] = None
    current: Optional[str] = None
    zenml_run: Optional[str] = None


class JobView(BaseModel):
    id: str
    pipeline: str
    overrides: list[str]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    submitted_by: str
    created_at: float
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    exit_code: Optional[int] = None
    pid: Optional[int] = None  # the job's process (its process group) while it runs
    error: Optional[str] = None
    cancelled_by: Optional[str] = None
    run_dir: str
    progress: Optional[JobProgress] = None
    log_tail: list[str] = Field(default_factory=list)
    summary: Optional[dict[str, Any]] = None


class JobList(BaseModel):
    jobs: list[JobView]


class StageChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"stage": "production", "reason": "beat v3 on the hand-written set"}]})
    stage: Optional[Literal["production", "staging", "archived", "none"]] = None
    reason: str = Field(min_length=1, max_length=500)


class VersionView(BaseModel):
    model: str
    number: str
    stage: Optional[str] = None
    aliases: list[str]
    metrics: dict[str, float]
    data_hash: str
    commit: str
    run: Optional[str] = None
    mlflow_version: Optional[str] = None
    gate_passed: Optional[bool] = None
    registration: Optional[str] = None
    base_model: Optional[str] = None
    method: Optional[str] = None
    created: str
    stage_history: list[dict[str, Any]] = Field(default_factory=list)


class VersionList(BaseModel):
    model: str
    versions: list[VersionView]


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"version": "4", "target": "local", "name": "rcatune"},
        {"version": "staging", "target": "kubernetes", "name": "rca", "force": True, "reason": "hotfix"}]})
    version: str = Field(pattern=VERSION_PATTERN, description="a version number or a stage")
    target: Target = "local"
    name: str = Field("rcatune", pattern=NAME_PATTERN)
    force: bool = False
    reason: Optional[str] = Field(None, max_length=500)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Optional[str] = Field(None, max_length=500)


class DeploymentView(BaseModel):
    status: dict[str, Any]
    history: list[dict[str, Any]]


class RecordView(BaseModel):
    record: dict[str, Any]


class ABTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"treatment": "5", "target": "local", "name": "rcatune", "experiment": "v4-vs-v5",
         "settings": {"treatment_share": 0.5, "min_effect": 0.05}}]})
    treatment: str = Field(pattern=VERSION_PATTERN)
    target: Target = "local"
    name: str = Field("rcatune", pattern=NAME_PATTERN)
    experiment: Optional[str] = Field(None, pattern=EXPERIMENT_PATTERN)
    settings: dict[str, float | int | bool | str] = Field(
        default_factory=dict, max_length=20, description="ab_test.* settings (treatment_share, min_effect, ...)")


class ABTestView(BaseModel):
    result: dict[str, Any]


# ------------------------------------------------------------------------------------------ who calls
def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    found = request.app.state.tokens.verify(token.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        raise ApiError(401, "a valid bearer token is needed (rcatune token create makes one)",
                       "invalid_token" if header else "missing_token", "authentication_error",
                       headers={"WWW-Authenticate": 'Bearer realm="rcatune"'
                                + (', error="invalid_token"' if header else "")})
    return found


def need(scope: str):
    """A dependency: the caller, who must hold `scope` (403 otherwise, audited for a change)."""
    def check(request: Request, who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not who.may(scope):
            if request.method != "GET":
                request.app.state.audit.append(who.who, f"{request.method} {request.url.path}", {}, 403,
                                               f"needs scope {scope}")
            raise ApiError(403, f"this token lacks the {scope!r} scope", "insufficient_scope", "permission_error",
                           headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
        return who
    return check


Reader = Annotated[Caller, Depends(need("read"))]
Trainer = Annotated[Caller, Depends(need("train"))]
Shipper = Annotated[Caller, Depends(need("deploy"))]


# ------------------------------------------------------------------------------------------ the app
def _open_registry(name: str) -> None:
    """Open the registry's stores before the first request: creating a fresh ZenML store and MLflow database
    takes about 10 s on 2 cores, longer than a client's read timeout. One that cannot be reached now is reported
    by the requests that need it."""
    import logging

    from rcatune.registry import list_versions

    try:
        list_versions(name)
    except Exception as error:  # noqa: BLE001 - the server starts all the same
        logging.getLogger(__name__).warning("the model registry could not be opened at start-up: %s", error)


def create_app(config: Optional[ApiConfig] = None, run_jobs: bool = True) -> FastAPI:
    from prometheus_client import CollectorRegistry, Counter

    from rcatune.state import configure_environment

    config = config or ApiConfig()
    configure_environment()
    db = Database(os.environ.get(config.db_url_env) or None)
    tokens, table, audit = TokenStore(db), jobs_lib.JobTable(db), AuditLog()
    runner = jobs_lib.JobRunner(table, config)
    acting = threading.Lock()  # the registry and the deployers: one change at a time from this process
    metrics = CollectorRegistry()
    requests_total = Counter("rcatune_api_requests", "Requests by route and status", ["method", "route", "status"],
                             registry=metrics)
    metrics.register(_JobCollector(table))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        import asyncio

        await asyncio.to_thread(_open_registry, config.registry_name)
        if run_jobs:
            runner.start()
        yield
        runner.stop()

    app = FastAPI(title="rcatune control API", version="1", lifespan=lifespan, openapi_url=f"{PREFIX}/openapi.json",
                  docs_url=f"{PREFIX}/docs", redoc_url=None,
                  description="Start fine-tuning and other jobs, list and promote registered versions, deploy, roll "
                              "back and run A/B tests. Bearer tokens with scopes (read, train, deploy, admin) come "
                              "from `rcatune token create`.",
                  responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                             409: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
                             422: {"model": ErrorResponse}})
    app.state.runner, app.state.table, app.state.db = runner, table, db
    app.state.tokens, app.state.audit = tokens, audit
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)

    @app.middleware("http")
    async def count(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        requests_total.labels(request.method, getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError):
        return JSONResponse(error_body(error.message, error.kind, error.code, error.param), status_code=error.status,
                            headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse(error_body(f"{where or 'request'}: {first.get('msg', 'invalid')}",
                                       "invalid_request_error", "invalid_request", where or None), status_code=422)

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(error_body(str(error.detail), "invalid_request_error", code),
                            status_code=error.status_code)

    @app.exception_handler(Exception)
    async def bug(_: Request, error: Exception):  # never a traceback to the caller
        import logging

        logging.getLogger("rcatune.api").exception("unhandled error")
        return JSONResponse(error_body(f"internal error ({type(error).__name__}); the API's log has the details",
                                       "server_error", "internal_error"), status_code=500)

    def act(who: Caller, action: str, target: dict[str, Any], do):
        """Run a state change under the lock and audit it, whatever its outcome."""
        try:
            with acting:
                result = do()
        except ApiError as error:
            audit.append(who.who, action, target, error.status, error.message)
            raise
        except ConfigError as error:
            audit.append(who.who, action, target, 422, str(error))
            raise _config_error(error) from None
        except RcatuneError as error:
            audit.append(who.who, action, target, 409, str(error))
            raise ApiError(409, str(error), "conflict") from None
        except Exception as error:  # a bug: still audited, then the 500 handler answers
            audit.append(who.who, action, target, 500, f"{type(error).__name__}: {error}")
            raise
        audit.append(who.who, action, target, 200, "ok")
        return result

    def job_view(job: dict[str, Any], full: bool) -> JobView:
        view = {k: job.get(k) for k in JobView.model_fields if k in job}
        if full:
            view["log_tail"] = jobs_lib.log_tail(job["run_dir"], config.log_tail_lines)
            if job["state"] == "running":
                with acting:
                    view["progress"] = jobs_lib.progress(job)
            summary = FilePath(job["run_dir"]) / "run_summary.json"
            if job["state"] in jobs_lib.FINAL and summary.exists():
                view["summary"] = json.loads(summary.read_text(encoding="utf-8"))
        return JobView(**view)

    def deployer_config(target: str, name: str, extra: tuple[str, ...] = ()):
        from rcatune.jobs import compose

        configured = list(config.deployers.get(target, ()))
        try:
            with jobs_lib.COMPOSE_LOCK:
                return compose(["pipeline=deployment", f"deployer={target}", f"deployer.name={name}", *configured,
                                *extra]).config()
        except ConfigError as error:
            raise _config_error(error) from None

    # -------------------------------------------------------------------------------------- the service itself
    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["service"], responses={503: {"model": ErrorResponse}})
    def ready():
        database, jobs_running = db.answers(), (runner.alive or not run_jobs)
        if database and jobs_running:
            return {"ready": True}
        return JSONResponse(error_body(f"not ready: database {'answers' if database else 'does not answer'}, job "
                                       f"runner {'runs' if jobs_running else 'stopped'}", "service_unavailable",
                                       "not_ready"), status_code=503)

    @app.get("/metrics", tags=["service"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    # -------------------------------------------------------------------------------------- the status page
    from fastapi.responses import HTMLResponse, RedirectResponse

    from rcatune.api import page

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def status_page(request: Request):
        """The page for people (sign in once with a read token; it lives in an HttpOnly cookie)."""
        who = tokens.verify(request.cookies.get(page.COOKIE, ""))
        if who is None or not who.may("read"):
            return HTMLResponse(page.login_page())
        from rcatune.deploy.records import history
        from rcatune.registry import list_versions

        with acting:
            versions = [v.as_dict() for v in list_versions(config.registry_name)]
            shown = []
            for job in table.list(limit=20):
                view = job_view(job, full=False).model_dump()
                if job["state"] == "running":
                    view["progress"] = jobs_lib.progress(job)
                shown.append(view)
        try:
            experiments = page.experiments_with_plots()
        except RcatuneError:
            experiments = []
        records = [r.model_dump() for r in history()]
        return HTMLResponse(page.status_page(who.who, config.registry_name, versions, records, shown, experiments))

    @app.post("/login", include_in_schema=False, response_class=HTMLResponse)
    async def login(request: Request):
        from urllib.parse import parse_qs

        token = (parse_qs((await request.body()).decode("utf-8", "replace")).get("token") or [""])[0].strip()
        who = tokens.verify(token)
        if who is None or not who.may("read"):
            return HTMLResponse(page.login_page("That token is not valid, revoked, or lacks the read scope."),
                                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="rcatune"'})
        back = RedirectResponse("/", status_code=303)
        back.set_cookie(page.COOKIE, token, max_age=8 * 3600, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
        return back

    @app.post("/logout", include_in_schema=False)
    def logout():
        back = RedirectResponse("/", status_code=303)
        back.delete_cookie(page.COOKIE, path="/")
        return back

    # -------------------------------------------------------------------------------------- jobs
    @app.post(f"{PREFIX}/jobs", status_code=202, response_model=JobView, tags=["jobs"])
    def start_job(body: JobRequest, who: Trainer) -> JobView:
        """Queue a run of a pipeline from overrides, composed and validated now (a bad one is a 422 naming the
        key; for a group, the options it has)."""
        job = act(who, "POST /jobs", {"pipeline": body.pipeline, "overrides": body.overrides},
                  lambda: jobs_lib.submit(table, body.pipeline, body.overrides, who.who, config))
        return job_view(job, full=False)

    @app.get(f"{PREFIX}/jobs", response_model=JobList, tags=["jobs"])
    def list_jobs(who: Reader, state: Optional[Literal["queued", "running", "succeeded", "failed", "cancelled"]] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
        return JobList(jobs=[job_view(j, full=False) for j in table.list(state, limit)])

    @app.get(f"{PREFIX}/jobs/{{job_id}}", response_model=JobView, tags=["jobs"],
             responses={404: {"model": ErrorResponse}})
    def get_job(job_id: JobId, who: Reader) -> JobView:
        """A job with its progress (steps of its ZenML run), the tail of its log, and its run summary when done."""
        return job_view(_job(table, job_id), full=True)

    @app.post(f"{PREFIX}/jobs/{{job_id}}/cancel", response_model=JobView, tags=["jobs"],
              responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}})
    def cancel_job(job_id: JobId,
                   who: Trainer) -> JobView:
        """A queued job is cancelled at once; a running one is ended (SIGINT, then SIGKILL after
        api.cancel_grace_s) and says so."""
        def do():
            job = _job(table, job_id)
            if job["state"] in jobs_lib.FINAL:
                raise ApiError(409, f"job {job_id} has ended already ({job['state']})", "job_ended")
            return jobs_lib.cancel(table, job_id, who.who)
        return job_view(act(who, "POST /jobs/cancel", {"job": job_id}, do), full=False)

    # -------------------------------------------------------------------------------------- models
    @app.get(f"{PREFIX}/models", response_model=VersionList, tags=["models"])
    def list_models(who: Reader) -> VersionList:
        """Every registered version with metrics, stage, aliases, data hash, commit and lineage."""
        from rcatune.registry import list_versions

        with acting:
            found = list_versions(config.registry_name)
        return VersionList(model=config.registry_name, versions=[VersionView(**v.as_dict()) for v in found])

    @app.get(f"{PREFIX}/models/{{version}}", response_model=VersionView, tags=["models"],
             responses={404: {"model": ErrorResponse}})
    def get_model(version: VersionRef, who: Reader) -> VersionView:
        return VersionView(**_version(acting, config.registry_name, version).as_dict())

    def change_stage(version: str, body: StageChange, who: Caller, default: str, allowed: tuple[str, ...]):
        from rcatune.registry import set_stage

        stage = body.stage or default
        if stage not in allowed:
            raise ApiError(422, f"stage {stage!r}: here one of {', '.join(allowed)}", "invalid_stage", param="stage")
        _version(acting, config.registry_name, version)  # 404 before anything changes
        changed = act(who, f"POST /models/{stage}", {"version": version, "stage": stage, "reason": body.reason},
                      lambda: set_stage(config.registry_name, version, stage, body.reason, by=who.who))
        return VersionView(**changed.as_dict())

    @app.post(f"{PREFIX}/models/{{version}}/promote", response_model=VersionView, tags=["models"],
              responses={404: {"model": ErrorResponse}})
    def promote(body: StageChange, version: VersionRef,
                who: Shipper) -> VersionView:
        """To production (default) or staging, with a reason recorded in both registries."""
        return change_stage(version, body, who, "production", ("production", "staging"))

    @app.post(f"{PREFIX}/models/{{version}}/demote", response_model=VersionView, tags=["models"],
              responses={404: {"model": ErrorResponse}})
    def demote(body: StageChange, version: VersionRef,
               who: Shipper) -> VersionView:
        """To archived (default) or none, with a reason recorded in both registries."""
        return change_stage(version, body, who, "archived", ("archived", "none", "staging"))

    # -------------------------------------------------------------------------------------- deployments
    @app.post(f"{PREFIX}/deployments", response_model=RecordView, tags=["deployments"],
              responses={409: {"model": ErrorResponse}})
    def deploy(body: DeployRequest, who: Shipper) -> RecordView:
        """Deploy a registered version to a configured target; traffic moves only after its smoke test."""
        from rcatune.deploy import act as deploy_act
        from rcatune.deploy import release

        if body.force and not (body.reason or "").strip():
            raise ApiError(422, "a forced deploy needs a reason", "reason_required", param="reason")

        def do():
            cfg = deployer_config(body.target, body.name)
            return deploy_act("deploy", cfg.deployer, cfg.serving, release(
                config.registry_name, body.version, body.force, body.reason))
        record = act(who, "POST /deployments", body.model_dump(), do)
        return RecordView(record=record.model_dump())

    @app.get(f"{PREFIX}/deployments/{{target}}/{{name}}", response_model=DeploymentView, tags=["deployments"])
    def deployment(target: Target, name: DeploymentName,
                   who: Reader) -> DeploymentView:
        """What serves (endpoint, version, health) and the deployment's history."""
        from rcatune.deploy import status
        from rcatune.deploy.records import history

        cfg = deployer_config(target, name)
        with acting:
            try:
                now = status(cfg.deployer, cfg.serving).status
            except RcatuneError as error:
                raise ApiError(409, str(error), "unavailable") from None
        return DeploymentView(status=now, history=[r.model_dump() for r in history(target, name)[-50:]])

    def change_deployment(action: str, target: str, name: str, who: Caller) -> RecordView:
        from rcatune.deploy import act as deploy_act

        def do():
            cfg = deployer_config(target, name)
            return deploy_act(action, cfg.deployer, cfg.serving)
        return RecordView(record=act(who, f"POST /deployments/{action}", {"target": target, "name": name},
                                     do).model_dump())

    @app.post(f"{PREFIX}/deployments/{{target}}/{{name}}/rollback", response_model=RecordView, tags=["deployments"],
              responses={409: {"model": ErrorResponse}})
    def rollback(target: Target, name: DeploymentName,
                 who: Shipper) -> RecordView:
        """Serve the version that served before (a switch to the warm previous on the local deployers)."""
        return change_deployment("rollback", target, name, who)

    @app.post(f"{PREFIX}/deployments/{{target}}/{{name}}/stop", response_model=RecordView, tags=["deployments"],
              responses={409: {"model": ErrorResponse}})
    def stop(target: Target, name: DeploymentName,
             who: Shipper) -> RecordView:
        return change_deployment("stop", target, name, who)

    # -------------------------------------------------------------------------------------- A/B tests
    def ab_config(target: str, name: str, settings: dict[str, Any], extra: tuple[str, ...] = ()):
        from dataclasses import fields

        from rcatune.config.abtest import ABTestConfig

        known = {f.name for f in fields(ABTestConfig)} - {"store_url_env", "treatment", "name", "control"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ApiError(422, f"settings {unknown}: ab_test has {', '.join(sorted(known))}", "unknown_setting",
                           param="settings")
        overrides = tuple(f"ab_test.{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in settings.items())
        return deployer_config(target, name, (*overrides, *extra))

    @app.post(f"{PREFIX}/abtests", response_model=ABTestView, tags=["abtests"],
              responses={409: {"model": ErrorResponse}})
    def ab_start(body: ABTestRequest, who: Shipper) -> ABTestView:
        """Serve the treatment beside what serves (the control) and split traffic by unit; nothing is promoted."""
        from rcatune.deploy import abtest

        extra = (f"ab_test.treatment={body.treatment}",) + ((f"ab_test.name={body.experiment}",)
                                                            if body.experiment else ())

        def do():
            cfg = ab_config(body.target, body.name, body.settings, extra)
            return abtest.start(cfg.deployer, cfg.serving, cfg.ab_test, config.registry_name)
        return ABTestView(result=act(who, "POST /abtests", body.model_dump(), do))

    @app.get(f"{PREFIX}/abtests/{{target}}/{{name}}", response_model=ABTestView, tags=["abtests"],
             responses={409: {"model": ErrorResponse}})
    def ab_status(target: Target, name: DeploymentName,
                  who: Reader) -> ABTestView:
        """The running experiment's counts and its analysis now (nothing acts)."""
        from rcatune.deploy import abtest

        cfg = ab_config(target, name, {})
        with acting:
            try:
                return ABTestView(result=abtest.look(cfg.deployer, cfg.serving, cfg.ab_test, act=False))
            except RcatuneError as error:
                raise ApiError(409, str(error), "no_experiment") from None

    @app.post(f"{PREFIX}/abtests/{{target}}/{{name}}/analyse", response_model=ABTestView, tags=["abtests"],
              responses={409: {"model": ErrorResponse}})
    def ab_analyse(target: Target, name: DeploymentName,
                   who: Shipper) -> ABTestView:
        """The analysis, and its decision carried out (promote, switch off, or continue)."""
        from rcatune.deploy import abtest

        def do():
            cfg = ab_config(target, name, {})
            return abtest.look(cfg.deployer, cfg.serving, cfg.ab_test, act=True)
        return ABTestView(result=act(who, "POST /abtests/analyse", {"target": target, "name": name}, do))

    @app.post(f"{PREFIX}/abtests/{{target}}/{{name}}/stop", response_model=ABTestView, tags=["abtests"],
              responses={409: {"model": ErrorResponse}})
    def ab_stop(body: Reason, target: Target, name: DeploymentName,
                who: Shipper) -> ABTestView:
        """End the experiment, keeping control."""
        from rcatune.deploy import abtest

        def do():
            cfg = ab_config(target, name, {})
            return abtest.stop(cfg.deployer, cfg.serving, body.reason)
        return ABTestView(result=act(who, "POST /abtests/stop", {"target": target, "name": name}, do))

    return app


def _job(table, job_id: str) -> dict[str, Any]:
    job = table.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}", "unknown_job")
    return job


def _version(lock, registry_name: str, version: str):
    from rcatune.registry import describe_version

    with lock:
        try:
            return describe_version(registry_name, version)
        except ConfigError as error:
            raise ApiError(404, str(error), "unknown_version", param="version") from None


def _config_error(error: ConfigError) -> ApiError:
    """A 422 naming the key, as the command line does."""
    import re

    message = str(error).removeprefix("invalid configuration: ")
    head = message.split(":", 1)[0].strip()
    group = re.search(r"Could not find '([^/']+)/", message)
    param = group.group(1) if group else (head if head and " " not in head else None)
    return ApiError(422, message, "invalid_override", param=param)


class _JobCollector:
    """Jobs by state, read from the table when Prometheus scrapes."""

    def __init__(self, table) -> None:
        self.table = table

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("rcatune_api_jobs", "Jobs by state", labels=["state"])
        for state, count in self.table.counts().items():
            family.add_metric([state], count)
        yield family


class _BodyLimit:
    """413 for a body over the limit, by its Content-Length or as it arrives."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = JSONResponse(error_body(f"the body is over {self.limit} bytes", "invalid_request_error",
                                          "body_too_large"), status_code=413)
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await too_big(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooBig()
            return message

        try:
            return await self.app(scope, limited, send)
        except _TooBig:
            return await too_big(scope, receive, send)


class _TooBig(Exception):
    pass


__all__ = ["ApiError", "create_app"]
