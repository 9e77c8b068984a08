"""A/B tests: sticky assignment, a durable outcome store that neither loses nor doubles, and an analysis whose
decision acts on the right evidence (simulated traffic with a known truth)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rcatune.abtest.analysis import analyse
from rcatune.abtest.assignment import Assignment, unit_of
from rcatune.abtest.store import OutcomeStore
from rcatune.config.abtest import ABTestConfig
from tests.conftest import ROOT


def test_a_unit_keeps_its_arm_the_split_holds_and_the_ramp_only_adds_units():
    plan = Assignment("exp", salt="s1", treatment_share=0.5, ramp=((0, 0.1), (3600, 0.5)), started_at=0.0)
    units = [f"incident-{i}" for i in range(4000)]
    early = {u: plan.arm(u, 10) for u in units}
    late = {u: plan.arm(u, 4000) for u in units}
    assert all(plan.arm(u, 10) == early[u] for u in units[:100])  # sticky
    assert 0.08 < sum(a == "treatment" for a in early.values()) / 4000 < 0.12
    assert 0.47 < sum(a == "treatment" for a in late.values()) / 4000 < 0.53
    assert all(late[u] == "treatment" for u in units if early[u] == "treatment")  # ramping never moves one back
    other = Assignment("exp", salt="s2", treatment_share=0.5)
    assert sum(other.arm(u, 0) != late[u] for u in units) > 1500  # a new salt re-draws
    killed = Assignment("exp", salt="s1", treatment_share=0.5, killed=True)
    assert all(killed.arm(u, 4000) == "control" for u in units[:200])
    assert unit_of({"x-rcatune-unit": "u1"}, {"user": "u2"}) == "u1"
    assert unit_of({}, {"session": {"id": "inc-7"}, "user": "u2"}) == "inc-7"
    assert unit_of({}, {"messages": [], "user": "alice"}) == "alice" and unit_of({}, {"messages": []}) is None


def _outcome(i: int, arm: str, **extra) -> dict:
    return {"request_id": f"r{i}", "experiment": "exp", "arm": arm, "unit": f"u{i}", "version": "1",
            "at": time.time(), "latency_ms": 100.0, "status": 200, "prompt_tokens": 10, "completion_tokens": 20,
            "root_cause": "x", "query_parses": True, **extra}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh store on each engine the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'o.db'}"
    url = request.getfixturevalue("postgres")
    store = OutcomeStore(url)
    store.meta.drop_all(store.engine)
    store.engine.dispose()
    return url


def test_outcomes_and_feedback_are_idempotent_under_concurrent_retries(store_url):
    store = OutcomeStore(store_url)
    assert store.record(_outcome(1, "control")).status == "stored"
    assert store.record(_outcome(1, "control")).status == "duplicate"

    def send(i: int) -> list[str]:  # each feedback three times, from many threads at once
        return [OutcomeStore(store.url).give_feedback(f"r{i % 40}", "exp", root_cause_correct=i % 2 == 0,
                                                      human_prompts=1).status for _ in range(3)]

    for i in range(40):
        store.record(_outcome(i, "control" if i % 2 else "treatment"))
    with ThreadPoolExecutor(8) as pool:
        results = [s for batch in pool.map(send, range(40)) for s in batch]
    assert results.count("stored") == 40 and results.count("duplicate") == 80
    assert store.counts("exp") == {"outcomes": 40, "feedback": 40}
    changed = store.give_feedback("r0", "exp", root_cause_correct=False, human_prompts=1)
    assert changed.status == "conflict" and changed.existing["root_cause_correct"] is True  # the first stays


WRITER = """
import sys, time
from rcatune.abtest.store import OutcomeStore
store = OutcomeStore(sys.argv[1])
i = 0
while True:
    store.record({"request_id": f"k{i}", "experiment": "exp", "arm": "control", "unit": f"u{i}", "at": time.time(),
                  "latency_ms": 1.0, "status": 200})
    store.give_feedback(f"k{i}", "exp", root_cause_correct=True)
    print(i, flush=True)
    i += 1
"""


def test_a_writer_killed_mid_stream_leaves_whole_rows_and_a_retry_does_not_double(store_url):
    url = store_url
    OutcomeStore(url)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    for _ in range(30):
        writer.stdout.readline()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    store = OutcomeStore(url)
    rows = store.rows("exp")
    assert len(rows) >= 30 and len({r["request_id"] for r in rows}) == len(rows)
    done = [r for r in rows if r["root_cause_correct"] is not None]
    assert len(rows) - len(done) <= 1  # at most the last request lacks its feedback, and its feedback can come now
    for r in rows:  # the client retries every feedback it is unsure of
        assert store.give_feedback(r["request_id"], "exp", root_cause_correct=True).status in ("stored", "duplicate")
    assert store.counts("exp") == {"outcomes": len(rows), "feedback": len(rows)}
    if url.startswith("postgresql"):
        assert "***" in store.safe_url and url.split(":")[2].split("@")[0] not in store.safe_url  # no password shown


def _traffic(n_units: int, rate_c: float, rate_t: float, seed: int, latency_t: float = 1.0,
             split: float = 0.5) -> list[dict]:
    rng = np.random.default_rng(seed)
    plan = Assignment("exp", salt=f"salt{seed}", treatment_share=split)
    rows = []
    for i in range(n_units):
        arm = plan.arm(f"u{i}", 0)
        right = rng.random() < (rate_t if arm == "treatment" else rate_c)
        latency = rng.lognormal(5.0, 0.3) * (latency_t if arm == "treatment" else 1.0)
        rows.append({**_outcome(i, arm, latency_ms=latency, query_parses=bool(rng.random() < 0.5)),
                     "root_cause_correct": right, "human_prompts": float(rng.poisson(2)),
                     "time_to_identification": None})
    return rows


def test_a_truly_better_treatment_is_deployed_and_a_slow_one_switched_off():
    cfg = ABTestConfig(treatment="2", min_effect=0.1)
    better = analyse("exp", _traffic(1600, 0.60, 0.75, seed=1), cfg)
    assert better.decision == "deploy_treatment" and not better.switch_off, better.reasons
    assert better.primary["low"] > 0 and better.primary["p_value"] is None  # the always-valid interval decided
    slow = analyse("exp", _traffic(1600, 0.60, 0.75, seed=2, latency_t=1.6), cfg)
    assert slow.decision == "keep_control" and slow.switch_off and "latency_p95_ms" in slow.reasons[0]
    same = analyse("exp", _traffic(600, 0.60, 0.60, seed=3), cfg)
    assert same.decision == "continue" and same.units_still_needed > 0
    skewed = analyse("exp", _traffic(2000, 0.6, 0.6, seed=4, split=0.55), cfg)  # 55/45 where 50/50 is configured
    assert skewed.decision == "keep_control" and skewed.switch_off and "SAMPLE-RATIO MISMATCH" in skewed.reasons[0]


def test_the_config_refuses_what_cannot_work():
    from rcatune.errors import ConfigError

    with pytest.raises(ConfigError, match="ab_test.treatment_share"):
        ABTestConfig(treatment_share=1.0)
    with pytest.raises(ConfigError, match="ab_test.ramp"):
        ABTestConfig(ramp=[[3600, 0.5], [0, 0.1]])
