"""CI runs every benchmark at smoke size: they must run, interleave, and write figures and ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.common import interleave, medians, ratios
from rcatune.errors import RcatuneError
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_interleaving_medians_and_ratios():
    calls = []
    runs = interleave(["a", "b"], 3, lambda name, r: calls.append(name) or {"x": {"a": 2.0, "b": 1.0}[name] + r},
                      echo=False)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    per = medians(runs, ["x"])
    assert per == {"a": {"x": 3.0}, "b": {"x": 2.0}}
    assert ratios(per, "a", "x") == {"a/b": 1.5}
    calls.clear()
    once = interleave(["a", "b"], 3, lambda name, r: calls.append(name) or {"x": 1.0}, echo=False,
                      once=frozenset({"b"}))
    assert calls == ["a", "b", "a", "a"] and [r["round"] for r in once if r["contender"] == "b"] == [1]


def test_smoke_benchmarks_write_json_and_tables(tmp_path):
    from rcatune.training.llama_factory import find_cli

    try:
        find_cli()
        has_llamafactory = True
    except RcatuneError:
        if os.environ.get("RCATUNE_REQUIRE_LLAMAFACTORY"):
            raise
        has_llamafactory = False
    # a process of its own: the benchmarks point RCATUNE_HOME at their own stores
    result = subprocess.run([sys.executable, "bench/run_all.py", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = (tmp_path / "summary_smoke.md").read_text()
    for stem in ("train_throughput", "answer_logits", "data_path", "pipeline_overhead", "generation"):
        figures = json.loads((tmp_path / f"{stem}_smoke.json").read_text())
        assert figures["machine"]["cpus"] and figures["runs"], stem
        assert (tmp_path / f"{stem}_smoke.md").read_text() in text
    serving = json.loads((tmp_path / "serving_smoke.json").read_text())
    assert set(serving["batched_over_one_at_a_time"]) == {"c=1", "c=4"} and serving["rows"]
    if has_llamafactory:  # LLaMA-Factory's own API server on the same model and requests
        assert set(serving["batched_over_llama_factory"]) == {"c=1", "c=4"}
        assert all(v["tokens_per_second"] > 0 for v in serving["batched_over_llama_factory"].values())
    assert (tmp_path / "serving_smoke.md").read_text() in text
    abuse = json.loads((tmp_path / "serving_abuse_smoke.json").read_text())
    assert abuse["rows"] and all(r["as_expected"] and r["server_alive"] for r in abuse["rows"]), abuse["rows"]
    train = json.loads((tmp_path / "train_throughput_smoke.json").read_text())
    expected = {"rcatune", "rcatune_packed", "baseline"} | (
        {"llamafactory", "llamafactory_no_gc"} if has_llamafactory else set())
    assert set(train["medians"]) == expected
    for figures in train["medians"].values():
        assert figures["tokens_per_second"] > 0 and 0 < figures["eval_loss"] < 20 and 0 < figures["mfu"] < 1
    assert all(peak > 0 for peak in train["matmul_peak_gflops_by_threads"].values())
    generation = json.loads((tmp_path / "generation_smoke.json").read_text())
    assert set(generation["medians"]) == {"sequential", "sequential_generate", "sequential_onnx", "batched",
                                          "batched_generate", "batched_onnx"}
    assert generation["onnx"]["parity"]["passed"] and generation["onnx"]["bytes"] > 0
    assert 0 < generation["floor"]["ms_per_token"] < generation["medians"]["sequential"]["ms_per_token"]
    assert "## Goals (issue 32)" in text and "| training (lora): rcatune / LLaMA-Factory as shipped" in text
    assert "rcatune/baseline" in train["ratios"]
    logits = json.loads((tmp_path / "answer_logits_smoke.json").read_text())["shapes"]["tiny"]
    assert logits["medians"]["answer_logits"]["loss"] == pytest.approx(logits["medians"]["all_logits"]["loss"],
                                                                       rel=1e-4)  # the same loss, cheaper
    data = json.loads((tmp_path / "data_path_smoke.json").read_text())
    assert set(data["scaling"]) == {"200", "1000"}
    startup = json.loads((tmp_path / "startup_smoke.json").read_text())
    assert set(startup["medians"]) == {"now", "before"} and (tmp_path / "startup_smoke.md").read_text() in text
    assert startup["medians"]["before"]["imported_torch"] == 1  # the wrapper undoes the levers, or this is moot
    overhead = json.loads((tmp_path / "pipeline_overhead_smoke.json").read_text())
    assert overhead["medians"]["run.py"]["train_model_seconds"] > 0 and "added_seconds" in overhead
