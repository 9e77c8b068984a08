"""The status page at `/`: registered versions with their metrics and stages, what each deployment serves and its
history, running and recent jobs with their progress, and A/B tests with their current plot. Server-rendered
HTML (jinja2, escaped), no build step and no script. A browser signs in once with a token (`POST /login`, held
in an HttpOnly, SameSite=Strict cookie that only this page reads; the API itself takes bearer headers only)."""

from __future__ import annotations

import base64
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

COOKIE = "rcatune_page_token"
SHOWN_METRICS = ("rca_accuracy", "rca_semantic", "query_valid", "perplexity", "bleu", "rouge_l")

LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rcatune: sign in</title>
<style>body{font:15px system-ui,sans-serif;margin:3em auto;max-width:32em;color:#1d2733}
input{width:100%;padding:.5em;margin:.5em 0;font:inherit}button{padding:.5em 1.2em;font:inherit}
.err{color:#a31d1d}</style></head><body><h1>rcatune control API</h1>
<p>Sign in with a token that has the <code>read</code> scope (<code>rcatune token create --scope read</code>).</p>
{% if error %}<p class="err">{{ error }}</p>{% endif %}
<form method="post" action="/login"><label>Token <input name="token" type="password" autocomplete="off"
autofocus></label><button type="submit">Sign in</button></form></body></html>"""

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rcatune: status</title>
<meta http-equiv="refresh" content="30">
<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#1d2733}h1{margin:0 0 .2em}
h2{margin:1.4em 0 .4em;border-bottom:1px solid #d5dbe1}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eef1f4;vertical-align:top}
th{background:#f4f6f8}.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#6b7785}
.tag{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:12px;background:#e8edf2}
.production,.succeeded,.running-ok{background:#d6f0dc}.staging,.running{background:#dbe9fb}
.failed,.cancelled,.switched_off{background:#f8dcdc}.bar{background:#e8edf2;height:.6em;width:10em;
display:inline-block}.bar>span{display:block;height:100%;background:#3b7dd8}form{display:inline}</style>
</head><body><h1>rcatune</h1><p class="muted">{{ who }} &middot; {{ now }} &middot; model {{ model }}
&middot; <a href="/api/v1/docs">API docs</a> <form method="post" action="/logout"><button>Sign out</button></form></p>

<h2>Registered versions</h2>
{% if versions %}<table><tr><th>version</th><th>stage</th><th>aliases</th>{% for m in metrics %}<th class="num">{{ m }}
</th>{% endfor %}<th>data</th><th>commit</th><th>created</th></tr>
{% for v in versions %}<tr><td>v{{ v.number }}</td><td><span class="tag {{ v.stage or '' }}">{{ v.stage or "none" }}
</span></td><td>{{ v.aliases|join(", ") }}</td>{% for m in metrics %}<td class="num">{{ fmt(v.metrics.get(m)) }}</td>
{% endfor %}<td class="muted">{{ v.data_hash[:10] }}</td><td class="muted">{{ v.commit[:8] }}</td>
<td class="muted">{{ v.created[:16] }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">No version of {{ model }} is registered yet (start a fine_tuning job).</p>{% endif %}

<h2>Deployments</h2>
{% if deployments %}<table><tr><th>deployment</th><th>serving</th><th>endpoint</th><th>last action</th><th>when</th>
</tr>{% for d in deployments %}<tr><td>{{ d.target }}/{{ d.name }}</td><td>{{ "v" ~ d.version if d.version else
"nothing" }}</td><td class="muted">{{ d.endpoint or "" }}</td><td>{{ d.action }}{% if d.previous %} (from
v{{ d.previous }}){% endif %}</td><td class="muted">{{ d.at[:19] }}</td></tr>{% endfor %}</table>
<p class="muted">History (latest first):</p><table><tr><th>when</th><th>deployment</th><th>action</th><th>version</th>
<th>by</th></tr>{% for r in history %}<tr><td class="muted">{{ r.at[:19] }}</td><td>{{ r.target }}/{{ r.name }}</td>
<td>{{ r.action }}</td><td>{{ "v" ~ r.version if r.version else "" }}</td><td class="muted">{{ r.by or "" }}</td></tr>
{% endfor %}</table>{% else %}<p class="muted">Nothing deployed yet.</p>{% endif %}

<h2>Jobs</h2>
{% if jobs %}<table><tr><th>job</th><th>pipeline</th><th>state</th><th>progress</th><th>submitted by</th>
<th>started</th><th>took</th><th>error</th></tr>{% for j in jobs %}<tr><td>{{ j.id }}</td><td>{{ j.pipeline }}</td>
<td><span class="tag {{ j.state }}">{{ j.state }}</span></td><td>{% if j.progress and j.progress.steps %}
<span class="bar"><span style="width:{{ (100 * j.progress.steps_done / j.progress.steps)|round }}%"></span></span>
{{ j.progress.steps_done }}/{{ j.progress.steps }} {{ j.progress.current or "" }}{% endif %}</td>
<td class="muted">{{ j.submitted_by }}</td><td class="muted">{{ when(j.started_at) }}</td>
<td class="num">{{ took(j) }}</td><td class="muted">{{ (j.error or "")[:120] }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">No jobs yet (POST /api/v1/jobs).</p>{% endif %}

<h2>A/B tests</h2>
{% if experiments %}<table><tr><th>experiment</th><th>control</th><th>treatment</th><th>state</th><th>decision</th>
<th>reason</th></tr>{% for e in experiments %}<tr><td>{{ e.id }}</td><td>v{{ e.control }}</td><td>v{{ e.treatment }}
</td><td><span class="tag {{ e.state }}">{{ e.state }}</span></td><td>{{ e.decision or "" }}</td>
<td class="muted">{{ (e.reason or "")[:160] }}</td></tr>{% endfor %}</table>
{% for e in experiments if e.plot %}<p><b>{{ e.id }}</b>: each metric's difference (treatment &minus; control) over the
looks, with its interval<br><img alt="{{ e.id }} over time" src="data:image/png;base64,{{ e.plot }}"></p>{% endfor %}
{% else %}<p class="muted">No A/B test yet (POST /api/v1/abtests).</p>{% endif %}
</body></html>"""


def _env():
    from jinja2 import Environment

    env = Environment(autoescape=True)
    env.globals.update(fmt=_fmt, when=_when, took=_took)
    return env


def login_page(error: Optional[str] = None) -> str:
    return _env().from_string(LOGIN).render(error=error)


def status_page(who: str, model: str, versions: list[dict], records: list[dict], jobs: list[dict],
                experiments: list[dict]) -> str:
    latest: dict[tuple[str, str], dict] = {}
    for record in records:
        latest[(record["target"], record["name"])] = record
    deployments = sorted(latest.values(), key=lambda r: r["at"], reverse=True)
    return _env().from_string(PAGE).render(
        who=who, model=model, now=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        versions=list(reversed(versions)), metrics=[m for m in SHOWN_METRICS if any(m in v["metrics"]
                                                                                    for v in versions)],
        deployments=deployments, history=list(reversed(records))[:15], jobs=jobs, experiments=experiments)


def experiments_with_plots(limit: int = 6) -> list[dict[str, Any]]:
    """The latest experiments of the default store (and the team's, when its URL is set), each running one with
    its plot over the looks."""
    import os

    from rcatune.abtest.store import OutcomeStore
    from rcatune.config.abtest import ABTestConfig
    from rcatune.deploy.abtest import plot_looks

    url = os.environ.get(ABTestConfig.store_url_env) or None
    store = OutcomeStore(url)
    found = store.recent(limit)
    for experiment in found:
        experiment["plot"] = None
        if experiment["state"] != "running":
            continue
        with tempfile.TemporaryDirectory() as folder:
            path = plot_looks(store.looks(experiment["id"]), Path(folder) / "plot.png")
            if path:
                experiment["plot"] = base64.b64encode(path.read_bytes()).decode()
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _when(stamp: Optional[float]) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%m-%d %H:%M:%S") if stamp else ""


def _took(job: dict) -> str:
    if not job.get("started_at"):
        return ""
    seconds = (job.get("ended_at") or time.time()) - job["started_at"]
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
