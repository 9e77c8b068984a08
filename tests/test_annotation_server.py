"""The review loop against a real Label Studio server started by this test session.

Two annotators signed up through the organisation's invite link annotate with their own tokens;
faults (5xx, timeouts, a lost response after the server stored an import) come from a real HTTP
proxy in front of the real server.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from rcatune.annotation import loop, server
from rcatune.annotation.client import LabelStudioClient, LabelStudioError
from rcatune.annotation.templates import KEY_FIELD
from rcatune.config.annotation import LabelStudioAnnotationConfig
from rcatune.errors import RcatuneError
from rcatune.schema import TrainingExample
from rcatune.sources import SampleSource
from tests.test_pipeline import TINY_OVERRIDES, run_py

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SIZE = 30
FIX = {1: "cartservice Redis connection pool exhausted by a retry storm after a deploy",
       2: "productcatalogservice answers slowly because its catalogue reload flag is on",
       3: "paymentservice rejects charges: the payment failure flag makes it fail half the calls"}
BETTER_SQL = ("SELECT ServiceName, count() AS errors FROM otel_traces WHERE StatusCode = 'Error' "
              "GROUP BY ServiceName ORDER BY errors DESC")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(state_home):
    try:
        server.find_binary()
    except RcatuneError as error:
        if os.environ.get("RCATUNE_REQUIRE_LABEL_STUDIO"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    info = server.start(port=free_port(), quiet=True)
    print(f"Label Studio started in {info['seconds']} s at {info['url']}")
    yield info
    server.stop()


@pytest.fixture(scope="module")
def examples() -> list[TrainingExample]:
    return [TrainingExample.model_validate(r.data) for r in SampleSource(size=SIZE, seed=7).records()]


def admin(url: str) -> LabelStudioClient:
    return LabelStudioClient(url, server.admin_token())


def choice(value, name="validation", to="ai_root_cause"):
    return {"from_name": name, "to_name": to, "type": "choices", "value": {"choices": [value]}}


def text(name, value, to="ai_root_cause"):
    return {"from_name": name, "to_name": to, "type": "textarea", "value": {"text": [value]}}


def rating(name, value, to="ai_root_cause"):
    return {"from_name": name, "to_name": to, "type": "rating", "value": {"rating": value}}


def test_push_review_sync_and_train_on_the_merged_dataset(label_studio, examples, tmp_path):
    url = label_studio["url"]
    started = time.perf_counter()
    # push twice: the second imports nothing
    first = json.loads(_run(tmp_path / "push1", "pipeline=annotation", f"data.size={SIZE}").read_text())
    assert [(p["template"], p["tasks"], p["imported"]) for p in first["review"]["projects"]] == [
        ("root_cause", SIZE, SIZE), ("query_quality", SIZE, SIZE)]
    # fine-tuning with review pushes (nothing new) and stops, saying how to continue
    second = json.loads(_run(tmp_path / "push2", "annotation=label_studio", f"data.size={SIZE}").read_text())
    assert second["pipeline"] == "annotation" and "train_loss" not in second["metrics"]
    assert [(p["tasks"], p["imported"], p["already_there"]) for p in second["review"]["projects"]] == [
        (SIZE, 0, SIZE), (SIZE, 0, SIZE)]
    assert f"python run.py annotation=label_studio data.size={SIZE}" in second["decisions"]["next"]
    assert "annotation.action=sync" in second["decisions"]["next"]

    boss = admin(url)
    root = boss.find_project("rcatune review / root_cause")["id"]
    query = boss.find_project("rcatune review / query_quality")["id"]
    tasks = boss.task_keys(root, KEY_FIELD)
    qtasks = boss.task_keys(query, KEY_FIELD)
    assert set(tasks) == {e.id for e in examples}
    exported = boss.export(root)[0]
    assert exported["predictions"] and exported["data"]["ai_root_cause"]  # the AI's answer is pre-filled

    one, two = (server.add_annotator(f"{name}@rcatune.test") for name in ("ann1", "ann2"))
    ann1, ann2 = LabelStudioClient(url, one["token"]), LabelStudioClient(url, two["token"])
    assert ann1.check()["id"] == one["id"] != two["id"]
    e = examples
    t = [tasks[x.id] for x in e]
    ann1.create_annotation(t[0], [choice("correct"), rating("diagnostic_quality", 4)])
    ann2.create_annotation(t[0], [choice("correct"), rating("diagnostic_quality", 5)])
    ann1.create_annotation(t[1], [choice("incorrect"), text("correct_root_cause", FIX[1]),
                                  text("evidence", "pool wait spans in trace 42"), rating("diagnostic_quality", 2)])
    ann2.create_annotation(t[1], [choice("incorrect"), text("correct_root_cause", FIX[1]),
                                  rating("diagnostic_quality", 2)])
    ann1.create_annotation(t[2], [choice("partially_correct"), text("correct_root_cause", FIX[2])])
    ann2.create_annotation(t[2], [choice("partially_correct")])
    ann1.create_annotation(t[3], [choice("correct")])  # the one disagreement
    disputed = ann2.create_annotation(t[3], [choice("incorrect"), text("correct_root_cause", FIX[3])])
    ann1.create_annotation(t[4], [choice("incorrect")])
    ann2.create_annotation(t[4], [choice("incorrect"), text("correct_root_cause", e[4].root_cause)])
    ann1.create_annotation(t[5], [choice("correct")])
    ann1.create_annotation(t[6], [choice("maybe")])  # the server takes it; sync must not
    ann2.create_annotation(t[7], [], was_cancelled=True)
    foreign = {"telemetry_summary": "x", "service_topology": "x", "symptoms": "x", "ai_root_cause": "x",
               "confidence": "0.5"}
    foreign_id = boss.request("POST", f"/api/projects/{root}/import", params={"return_task_ids": "true"},
                              json=[{"data": foreign}])["task_ids"][0]
    ann1.create_annotation(foreign_id, [choice("correct")])
    q0 = qtasks[e[0].id]
    ann1.create_annotation(q0, [text("improved_query", BETTER_SQL, "generated_query"),
                                rating("relevance", 4, "generated_query"),
                                {**choice("missing_filters", "issues", "generated_query")}])
    ann2.create_annotation(q0, [text("improved_query", e[0].diagnostic_query, "generated_query"),
                                rating("relevance", 4, "generated_query")])
    ann1.create_annotation(qtasks[e[1].id], [text("improved_query", "SELEC * FRM", "generated_query")])

    run_dir = tmp_path / "sync"
    summary = json.loads(_run(run_dir, "pipeline=annotation", "annotation.action=sync",
                              f"data.size={SIZE}").read_text())
    review = summary["review"]
    assert (review["annotations_read"], review["annotations_rejected"], review["annotations_skipped"]) == (17, 2, 1)
    assert (review["validated"], review["root_causes_corrected"], review["queries_improved"]) == (4, 2, 1)
    assert review["examples_out"] == SIZE - 1 and review["unreviewed"] == SIZE - 6
    report = json.loads((run_dir / "annotation" / "review_report.json").read_text())
    assert report["dropped"] == [e[4].id] and report["held"] == [e[3].id]
    assert [(f["task_id"], f["held"], f["decided_by"]) for f in report["flagged"]] == [(t[3], True, "pending")]
    assert review["decisions"]["root_cause"] == {"agreement": 4, "pending": 1, "single_review": 1}
    assert _adjudication_rows(run_dir) == [[str(t[3]), e[3].id]]
    reasons = {p["task_id"]: p["reason"] for p in report["problems"]}
    assert "unknown choice(s) ['maybe']" in reasons[t[6]]
    assert "not one of this dataset's examples" in reasons[foreign_id]
    assert reasons[qtasks[e[1].id]] == "improved query does not parse as a ClickHouse query"
    # Hand calculation. Validation, tasks with two reviews: (c,c) (i,i) (p,p) (c,i) (i,i).
    #   percent agreement = 4/5. Coincidences: o_cc=2, o_ii=4, o_pp=2, o_ci=o_ic=1 -> n_c=3, n_i=5, n_p=2, n=10;
    #   D_o = 2, D_e = 2 (3*5 + 3*2 + 5*2) = 62; alpha = 1 - 9 * 2 / 62 = 22/31.
    # Diagnostic quality: (4,5) (2,2): percent 1/2; interval: o_45=o_54=1, o_22=2, n=4;
    #   D_o = 2, D_e = 2 (1*1*1 + 1*2*4 + 1*2*9) = 54; alpha = 1 - 3 * 2 / 54 = 8/9.
    validation = review["agreement"]["root_cause"]["validation"]
    assert validation["units"] == 5 and validation["percent_agreement"] == pytest.approx(0.8)
    assert validation["alpha"] == pytest.approx(22 / 31) and validation["meets_target"] is False
    quality = review["agreement"]["root_cause"]["diagnostic_quality"]
    assert quality["percent_agreement"] == pytest.approx(0.5) and quality["alpha"] == pytest.approx(8 / 9)
    lines = (run_dir / "annotation" / "merged.jsonl").read_text().splitlines()
    merged = {x["id"]: x for x in map(json.loads, lines)}
    fixed = merged[e[1].id]
    assert fixed["root_cause"] == FIX[1]
    # the label scored against follows the correction: a pool exhaustion is no fault of the built-in catalog
    assert fixed["corrections"] == {"root_cause": e[1].root_cause, "scenario": e[1].scenario}
    assert fixed.get("scenario") is None and review["labels_reinferred"] == 2
    assert fixed["expert_notes"].endswith("pool wait spans in trace 42") and fixed["human_validated"]
    assert merged[e[2].id]["root_cause"] == FIX[2] and merged[e[0].id]["diagnostic_query"] == BETTER_SQL
    assert merged[e[0].id]["quality_ratings"] == {"diagnostic_quality": 4.5, "query_relevance": 4.0}
    assert merged[e[3].id]["root_cause"] == e[3].root_cause and e[4].id not in merged
    assert merged[e[3].id]["human_validated"] is False  # held: the disagreement is not a validation
    assert review["human_validated_out"] == sum(x["human_validated"] for x in merged.values())

    # sync needs none of the push's data settings: it merges into what was pushed
    plain = json.loads(_run(tmp_path / "sync_plain", "pipeline=annotation", "annotation.action=sync").read_text())
    assert plain["review"]["examples_in"] == SIZE and plain["review"]["unreviewed"] == SIZE - 6
    assert plain["data_hash"] == summary["data_hash"] and "data" not in plain["counts"]  # no source was read
    # ... or into this run's data (2000 sessions, of which the first SIZE were pushed), never-pushed apart
    wider = json.loads(_run(tmp_path / "sync_wider", "pipeline=annotation", "annotation.action=sync",
                            "annotation.merge_into=source").read_text())
    assert (wider["review"]["unreviewed"], wider["review"]["never_pushed"]) == (SIZE - 6, 2000 - SIZE)
    print(f"review loop (push twice, 2 annotators, sync) took {time.perf_counter() - started:.1f} s")

    # adjudicate the disagreement (Label Studio's ground-truth star), then sync and train in one run
    boss.update_annotation(disputed["id"], ground_truth=True)
    train_dir = tmp_path / "train"
    trained = json.loads(_run(train_dir, "annotation=label_studio", "annotation.action=sync", f"data.size={SIZE}",
                              "trainer.epochs=1", *TINY_OVERRIDES).read_text())
    assert trained["pipeline"] == "fine_tuning" and trained["status"] == "succeeded"
    assert trained["review"]["validated"] == 5 and trained["review"]["root_causes_corrected"] == 3
    assert trained["review"]["decisions"]["root_cause"] == {"agreement": 4, "ground_truth": 1, "single_review": 1}
    assert _adjudication_rows(train_dir) == []  # nothing left to decide
    report = json.loads((train_dir / "annotation" / "review_report.json").read_text())
    assert [(f["task_id"], f["decided_by"]) for f in report["flagged"]] == [(t[3], "ground_truth")]
    assert trained["metrics"]["train_loss"] > 0 and trained["counts"]["splits"]["train"] > 0
    assert sum(trained["counts"]["splits"].values()) == SIZE - 1  # trained on the merged dataset
    exported_splits = "".join(f.read_text() for f in Path(trained["artifacts"]["format_dataset"]).glob("*.jsonl"))
    assert FIX[3] in exported_splits and e[4].id not in exported_splits  # adjudicated in, rejected out

    # the merged dataset is a versioned artifact any pipeline can read
    again = json.loads(_run(tmp_path / "annotated", "pipeline=prepare", "data=annotated").read_text())
    assert again["counts"]["data"]["accepted"] == SIZE - 1 and again["data_hash"] == trained["data_hash"]


def _adjudication_rows(run_dir: Path) -> list[list[str]]:
    import csv

    with open(run_dir / "annotation" / "adjudication.csv", newline="") as handle:
        return [[row["task_id"], row["example_id"]] for row in csv.DictReader(handle)]


def _run(run_dir: Path, *args: str) -> Path:
    run_py(*args, "progress=false", f"hydra.run.dir={run_dir}")
    return run_dir / "run_summary.json"


# ------------------------------------------------------------------------------------------------ faults
def _one_line_error(result) -> str:
    """An expected failure: exit 2, one line on stderr, no traceback anywhere, the summary's error that line."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rcatune: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    message = lines[0].removeprefix("rcatune: error: ")
    assert not message.endswith(".."), message
    return message


def test_server_not_running_says_how_to_start_it_in_one_line(label_studio, tmp_path):
    for action in ("push", "sync"):
        run_dir = tmp_path / action
        result = run_py("pipeline=annotation", f"annotation.action={action}", "data.size=5", "progress=false",
                        f"annotation.url=http://127.0.0.1:{free_port()}", f"hydra.run.dir={run_dir}", check=False)
        message = _one_line_error(result)
        assert "Label Studio is not answering at http://127.0.0.1:" in message and "make labelstudio-start" in message
        summary = json.loads((run_dir / "run_summary.json").read_text())
        assert summary["error"] == message and summary["traceback"] is None


def test_a_wrong_token_is_named_as_such_in_one_line(label_studio, monkeypatch, tmp_path):
    monkeypatch.setenv(loop.TOKEN_ENV, "not-a-token")
    config = LabelStudioAnnotationConfig(url=label_studio["url"])
    with pytest.raises(LabelStudioError, match=r"rejected the API token \(\$LABEL_STUDIO_API_KEY\): HTTP 401"):
        loop.connect(config)
    result = run_py("pipeline=annotation", "annotation.action=sync", "progress=false",
                    f"annotation.url={label_studio['url']}", f"hydra.run.dir={tmp_path}", check=False)
    assert "rejected the API token ($LABEL_STUDIO_API_KEY): HTTP 401" in _one_line_error(result)


def test_status_of_a_stopped_server_is_a_report_not_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RCATUNE_HOME", str(tmp_path))
    assert server.main(["status"]) == 0
    assert "Label Studio not running" in capsys.readouterr().out


class FaultProxy:
    """A real HTTP proxy to Label Studio that fails chosen requests once each.

    kinds: 'before' answers 502 without forwarding; 'after' forwards (the server acts) then answers 503;
    'slow' waits `delay` seconds (past the client's timeout) before forwarding.
    """

    def __init__(self, upstream: str, faults: list[tuple[str, str, str]], delay: float = 2.0) -> None:
        self.upstream, self.faults, self.delay, self.hits = upstream, list(faults), delay, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = proxy._fault(self.command, self.path)
                if kind == "before":
                    return self._reply(502, b'{"detail": "injected"}')
                if kind == "slow":
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                response = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                            timeout=60)
                if kind == "after":
                    return self._reply(503, b'{"detail": "injected after the server acted"}')
                self._reply(response.status_code, response.content)

            def _reply(self, status, content):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            do_GET = do_POST = do_PATCH = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _fault(self, method: str, path: str) -> str | None:
        for index, (m, fragment, kind) in enumerate(self.faults):
            if m == method and fragment in path:
                del self.faults[index]
                self.hits.append((method, path.split("?")[0], kind))
                return kind
        return None

    def close(self):
        self.httpd.shutdown()


def test_retries_through_5xx_and_timeouts_and_never_import_twice(label_studio, examples, monkeypatch):
    monkeypatch.setenv(loop.TOKEN_ENV, server.admin_token())
    proxy = FaultProxy(label_studio["url"], [
        ("GET", "/api/projects/?", "before"),  # 502 on the project lookup
        ("POST", "/import", "after"),  # first batch stored, response lost
        ("GET", "/api/tasks/", "slow"),  # the re-read after it times out once
        ("POST", "/import", "before"),  # second batch refused once
    ])
    try:
        config = LabelStudioAnnotationConfig(url=proxy.url, project="fault drill", templates=["root_cause"],
                                             batch_size=5, timeout_s=1.0, retries=4, backoff_s=0.05)
        client = loop.connect(config)
        report = loop.push(client, config, examples[:12], progress=False)
        assert not proxy.faults, f"faults not triggered: {proxy.faults}"
        assert report.projects[0].tasks == 12 and report.projects[0].imported == 12
        assert report.retries >= 4
        direct = admin(label_studio["url"])
        project = direct.find_project("fault drill / root_cause")["id"]
        exported = direct.export(project)
        assert sorted(t["data"][KEY_FIELD] for t in exported) == sorted(e.id for e in examples[:12])
        again = loop.push(client, config, examples[:12], progress=False)
        assert again.projects[0].imported == 0 and again.projects[0].tasks == 12
    finally:
        proxy.close()


def test_wait_polls_until_every_task_is_reviewed_or_times_out(label_studio, examples, monkeypatch):
    monkeypatch.setenv(loop.TOKEN_ENV, server.admin_token())
    config = LabelStudioAnnotationConfig(url=label_studio["url"], project="wait drill", templates=["root_cause"],
                                         poll_s=0.3, wait_timeout_s=1.0)
    client = loop.connect(config)
    loop.push(client, config, examples[:3], progress=False)
    with pytest.raises(RcatuneError, match="reviews not finished after 1 s"):
        loop.wait(client, config, progress=False)
    project = client.find_project("wait drill / root_cause")["id"]
    task_ids = list(client.task_keys(project, KEY_FIELD).values())

    def review_later():
        time.sleep(1.0)
        for task_id in task_ids:
            client.create_annotation(task_id, [choice("correct")])

    worker = threading.Thread(target=review_later)
    worker.start()
    waited = time.perf_counter()
    done = loop.wait(client, LabelStudioAnnotationConfig(**{**config.__dict__, "wait_timeout_s": 60.0}),
                     progress=False)
    worker.join()
    assert time.perf_counter() - waited >= 1.0
    assert (done.projects[0].tasks, done.projects[0].finished) == (3, 3)


def test_server_script_reports_status_and_refuses_a_taken_port(label_studio):
    info = server.running()
    assert info and info["url"] == label_studio["url"]
    assert requests.get(f"{info['url']}/health", timeout=5).json() == {"status": "UP"}
    again = server.start(port=label_studio["port"], quiet=True)
    assert again["already_running"] and again["pid"] == info["pid"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        paths = server.ServerPaths(Path(os.environ["RCATUNE_HOME"]) / "other-labelstudio")
        with pytest.raises(RcatuneError, match=f"port {port} on 127.0.0.1 is taken"):
            server.start(port=port, paths=paths, quiet=True)
    token_file = server.ServerPaths.under().token
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    log = server.ServerPaths.under().log.read_text()
    assert token_file.read_text().strip() not in log



# ------------------------------------------------------------------------------------------------ leaks
def _scan(roots: list[Path], needles: dict[str, list[bytes]]) -> tuple[int, list[str]]:
    """Every file under `roots`: (how many were read, 'needle in path' for each hit, in any of its forms)."""
    files, hits = 0, []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            files += 1
            content = path.read_bytes()
            hits += [f"{name} in {path}" for name, forms in needles.items() if any(f in content for f in forms)]
    return files, hits


def _forms(value: str) -> list[bytes]:
    """A value as it may be written: plain, JSON-escaped (newlines, quotes), URL-encoded."""
    from urllib.parse import quote

    return list(dict.fromkeys(v.encode() for v in (value, json.dumps(value)[1:-1], quote(value, safe=""))))


def test_no_secret_and_no_planted_value_reaches_any_file_a_run_writes(label_studio, state_home, tmp_path,
                                                                        monkeypatch):
    """Unique values in every secret the project reads (hub token, Label Studio token, ClickHouse user and
    password, scrub key) and planted secrets/personal data in the sessions; train, push for review, fail a
    ClickHouse read; then every file the runs wrote (Hydra config, logs, run summaries, formats, model card,
    export, MLflow params/tags/artifacts, ZenML store and artifacts, the review server's database) holds none."""
    from rcatune.demo.generator import generate_sessions
    from tests.test_scrub import _plant

    token = server.ServerPaths.under().token.read_text().strip()  # the real server's real token
    secrets = {"HF_TOKEN": "hf_LeakScanHubToken7Q2w9", "CLICKHOUSE_USER": "leakscan-user-5k2",
               "CLICKHOUSE_PASSWORD": "LeakScan-Pa55-8rT", "RCATUNE_SCRUB_KEY": "leakscan-scrub-key-3vX",
               "LABEL_STUDIO_API_KEY": token}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "state"  # a state folder of its own, so every file in it was written by these runs
    monkeypatch.setenv("RCATUNE_HOME", str(home))
    for name in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH", "MLFLOW_TRACKING_URI", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)  # the runs derive them from the new state folder
    planted_examples, planted, _ = _plant()
    data = tmp_path / "input" / "sessions.jsonl"  # the input file is the user's: it holds the raw values
    data.parent.mkdir()
    extra = [TrainingExample.model_validate(r) for r in generate_sessions(40, seed=12)]
    data.write_text("".join(e.model_dump_json() + "\n" for e in [*planted_examples, *extra]))
    source = ["data=jsonl", f"data.path={data}"]

    trained = json.loads(_run(tmp_path / "train", *source, "trainer.epochs=1", *TINY_OVERRIDES).read_text())
    assert trained["status"] == "succeeded" and trained["counts"]["data"]["accepted"] == 60
    assert trained["scrub"]["replaced"] >= len(planted)
    pushed = json.loads(_run(tmp_path / "push", "pipeline=annotation", *source, "annotation.project=leak scan",
                             f"annotation.url={label_studio['url']}").read_text())
    assert [p["imported"] for p in pushed["review"]["projects"]] == [60, 60]
    failed = run_py("pipeline=prepare", "data=clickhouse", f"data.url=http://127.0.0.1:{free_port()}",
                    "data.query=SELECT 1", "progress=false", f"hydra.run.dir={tmp_path / 'clickhouse'}", check=False)
    assert "ClickHouse query failed" in _one_line_error(failed)

    needles = {f"${name}": _forms(value) for name, value in secrets.items()}
    needles.update({f"planted {value[:12]!r}": _forms(value) for value in planted})
    assert len(needles) == len(secrets) + len(planted)
    assert _scan([data.parent], needles)[1]  # the scan finds what is there: the raw input holds the planted values
    runs = [tmp_path / name for name in ("train", "push", "clickhouse")]
    files, hits = _scan([home, *runs], needles)
    # The review server's own folder keeps its token (that is where it lives); nothing else of ours may be there.
    review_files, review_hits = _scan([server.ServerPaths.under(state_home).root],
                                      {k: v for k, v in needles.items() if k != "$LABEL_STUDIO_API_KEY"})
    print(f"\nleak scan: {files} files written by the runs and {review_files} of the review server, "
          f"{len(needles)} needles, {len(hits) + len(review_hits)} hits")
    assert files > 100 and review_files > 0
    assert not hits and not review_hits, hits + review_hits


def test_push_and_sync_killed_half_way_lose_nothing_and_count_each_sync_once(label_studio, tmp_path):
    """kill -9 after the first import batch: every example was recorded before any import, the rerun imports
    the rest and none twice. kill -9 after a sync merged, before it saved: no version of the reviewed dataset
    appears for it; the rerun's is the next number, with the merge a sync never killed gives."""
    from zenml.client import Client

    from rcatune import constants
    from rcatune.annotation.pushed import load_pushed
    from tests.conftest import run_py_killed_at

    size, project = 12, "crash review"
    where = ["pipeline=annotation", f"data.size={size}", f"annotation.project={project}", "annotation.batch_size=4",
             "progress=false"]
    run_py_killed_at("annotation.imported:1", *where, f"hydra.run.dir={tmp_path / 'k1'}", pauses=tmp_path / "p1")
    boss = admin(label_studio["url"])
    root = boss.find_project(f"{project} / root_cause")["id"]
    assert len(boss.task_keys(root, KEY_FIELD)) == 4 and len(load_pushed(project)) == size

    again = json.loads(_run(tmp_path / "push", *where).read_text())
    assert [(p["tasks"], p["imported"], p["already_there"]) for p in again["review"]["projects"]] == [
        (size, size - 4, 4), (size, size, 0)]
    tasks = boss.task_keys(root, KEY_FIELD)
    assert len(tasks) == size and len(boss.export(root)) == size  # none imported twice
    first, second = list(tasks.values())[:2]
    boss.create_annotation(first, [choice("incorrect"), text("correct_root_cause", FIX[1])])
    boss.create_annotation(second, [choice("correct")])

    def versions() -> list[int]:
        try:
            found = Client().list_artifact_versions(artifact=constants.ANNOTATED_DATASET, size=1000)
        except KeyError:
            return []
        return sorted(int(v.version) for v in found)

    before = versions()
    sync = [*where, "annotation.action=sync"]
    run_py_killed_at("annotation.merged", *sync, f"hydra.run.dir={tmp_path / 'k2'}", pauses=tmp_path / "p2")
    assert versions() == before
    resumed = json.loads(_run(tmp_path / "sync", *sync).read_text())
    clean = json.loads(_run(tmp_path / "sync_again", *sync).read_text())
    after = versions()
    assert after[len(before):] == [max(before, default=0) + 1, max(before, default=0) + 2]  # no gap, no repeat
    assert resumed["data_hash"] == clean["data_hash"]
    assert (resumed["review"]["annotations_read"], resumed["review"]["root_causes_corrected"],
            resumed["review"]["examples_out"]) == (2, 1, size) == (
        clean["review"]["annotations_read"], clean["review"]["root_causes_corrected"], clean["review"]["examples_out"])


# ------------------------------------------------------------------------------------------------ issue 30
RETRAIN = ["pipeline.retrain_with=['pipeline=prepare','data.split.min_examples=8','formats.formats=[dataset]']"]


def test_drift_pushes_what_drifted_and_the_sync_after_its_review_starts_the_retraining(label_studio, tmp_path):
    """pipeline=drift with annotation=label_studio pipeline.push_for_review=true: a batch of fault families training
    never had passes the threshold and its drifted sessions, and only those, become review tasks; a familiar batch
    below the threshold pushes nothing. With pipeline.retrain_with, the sync that finds the last of them reviewed
    starts the job on that sync's reviewed dataset; a sync before that says how many it waits for."""
    from rcatune.demo.generator import generate_sessions

    held_out = {"emailMemoryLeak", "kafkaQueueProblems", "imageSlowLoad"}
    run = tmp_path / "run"  # the layout a fine_tuning run leaves; the sessions alone are compared
    (run / "training" / "model").mkdir(parents=True)
    (run / "formats" / "dataset").mkdir(parents=True)
    (run / "formats" / "dataset" / "train.jsonl").write_text("".join(
        json.dumps(r, default=str) + "\n" for r in generate_sessions(200, seed=3) if r["scenario"] not in held_out))
    new = list(generate_sessions(120, seed=98))
    project = "drift review"
    boss = admin(label_studio["url"])
    for name, rows in (("familiar", [r for r in new if r["scenario"] not in held_out][:30]),
                       ("shifted", [r for r in new if r["scenario"] in held_out])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        summary = json.loads(_run(tmp_path / name, "pipeline=drift", f"pipeline.model_dir={run / 'training' / 'model'}",
                                  "pipeline.model_signal=false", "pipeline.threshold=0.3", "annotation=label_studio",
                                  "pipeline.push_for_review=true", f"annotation.project={project}", "data=jsonl",
                                  f"data.path={tmp_path / (name + '.jsonl')}", *RETRAIN).read_text())
        found = boss.find_project(f"{project} / root_cause")
        tasks = set(boss.task_keys(found["id"], KEY_FIELD)) if found else set()
        if name == "familiar":
            assert not summary["decisions"]["drift"]["triggered"] and tasks == set(), summary["decisions"]["drift"]
    report = json.loads((tmp_path / "shifted" / "drift" / "drift.json").read_text())
    drifted = {s["id"] for s in report["per_session"] if s["reasons"]}
    assert summary["decisions"]["drift"]["triggered"], summary["decisions"]["drift"]
    assert tasks == drifted and len(drifted) > 0.5 * report["sessions"], (len(tasks), len(drifted))
    assert summary["decisions"]["retrain"]["requested"] == len(drifted)

    keys = boss.task_keys(found["id"], KEY_FIELD)
    last, *others = sorted(drifted)
    for key in others:
        boss.create_annotation(keys[key], [choice("correct")])
    sync = ["pipeline=annotation", "annotation.action=sync", f"annotation.project={project}"]
    early = json.loads(_run(tmp_path / "sync1", *sync).read_text())
    assert early["decisions"]["retrain"]["waiting_for"] == 1 and early["decisions"]["retrain"]["of"] == len(drifted)
    boss.create_annotation(keys[last], [choice("correct")])
    done = json.loads(_run(tmp_path / "sync2", *sync).read_text())
    started = done["decisions"]["retrain"]
    assert done["artifacts"]["annotated_dataset"].endswith(f" v{started['dataset_version']}")
    job_summary = Path(started["started"]) / "run_summary.json"
    deadline = time.monotonic() + 300
    while not job_summary.exists() and time.monotonic() < deadline:
        time.sleep(2)
    job = json.loads(job_summary.read_text())
    assert job["status"] == "succeeded" and job["pipeline"] == "prepare", job.get("error")
    assert job["counts"]["data"]["accepted"] == len(drifted) and job["data_hash"] == done["data_hash"]
    again = json.loads(_run(tmp_path / "sync3", *sync).read_text())
    assert "retrain" not in again["decisions"]  # started once, filed away


def test_a_scripted_review_round_turns_the_models_wrong_answers_into_preference_pairs(label_studio, tmp_path):
    """scripts/review_round.py against the real server: a trained model answers new sessions, the scripted reviewer
    (its own Label Studio user) judges each by the catalog fault, sync merges the verdicts, and the reviewed
    dataset gives a `review` preference pair for every corrected session of the training split, the model's own
    answer as the rejected one."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    trained = json.loads(_run(tmp_path / "model", "data.size=40", "trainer.epochs=1", *TINY_OVERRIDES).read_text())
    round_dir, size = tmp_path / "round", 12
    result = subprocess.run([sys.executable, "scripts/review_round.py", "--model-dir",
                             trained["artifacts"]["export_merged"], "--size", str(size), "--seed", "5",
                             "--max-new-tokens", "48", "--project", "scripted round", "--run-dir", str(round_dir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((round_dir / "review_round.json").read_text())
    verdicts = [json.loads(line) for line in (round_dir / "verdicts.jsonl").read_text().splitlines()]
    answers = {json.loads(line)["id"]: json.loads(line) for path in (round_dir / "answers" / "evaluation").glob(
        "answers_*_tuned.jsonl") for line in path.read_text().splitlines()}  # the data set, and the hidden phrasing
    assert len(verdicts) == len(answers) == size and report["correct"] + report["incorrect"] == size
    assert all((v["verdict"] == "correct") == (answers[v["id"]]["predicted_label"] == v["truth"]) for v in verdicts)
    assert report["synced"]["validated"] == size  # every verdict validates its session, corrected or not
    assert report["synced"]["root_causes_corrected"] == report["incorrect"]
    boss = admin(label_studio["url"])
    tasks = boss.export(boss.find_project("scripted round / root_cause")["id"])
    reviewer = server.add_annotator("scripted-reviewer@rcatune.local")["id"]
    assert len(tasks) == size and all([a["completed_by"] for a in t["annotations"]] == [reviewer] for t in tasks)

    exported = {json.loads(line)["id"]: json.loads(line) for line in
                (round_dir / "exported.jsonl").read_text().splitlines()}
    truth = {json.loads(line)["id"]: json.loads(line) for line in
             (round_dir / "sessions.jsonl").read_text().splitlines()}
    prepared = json.loads(_run(tmp_path / "prepare", "pipeline=prepare", "data=annotated",
                                 "data.split.min_examples=8", "formats.formats=[dataset,preferences]").read_text())
    place = Path(prepared["artifacts"]["format_preferences"])
    merged = {e["id"]: e for e in map(json.loads, (Path(prepared["artifacts"]["format_dataset"]) / "train.jsonl")
                                      .read_text().splitlines())}
    wrong = {v["id"] for v in verdicts if v["verdict"] == "incorrect"} & set(merged)
    for key in wrong:  # the expert's correction trains; the model's answer is kept as what it said
        assert merged[key]["root_cause"] == truth[key]["root_cause"]
        assert merged[key]["corrections"]["root_cause"] == exported[key]["root_cause"]
    pairs = [json.loads(line) for line in (place / "train_dpo.jsonl").read_text().splitlines()]
    review = [p for p in pairs if p["source"] == "review"]
    assert {p["example_id"] for p in review} == wrong and len(review) == len(wrong)
    for pair in review:
        assert exported[pair["example_id"]]["root_cause"] in pair["rejected"][-1]["content"]
        assert truth[pair["example_id"]]["root_cause"] in pair["chosen"][-1]["content"]
