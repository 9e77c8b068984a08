"""ONNX export (issue 30, section 3): the merged model's graph with its KV cache, logits within tolerance of
PyTorch on sessions the check never saw, the same greedy answers through onnxruntime, and the fallbacks and
refusals when it cannot be so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rcatune.config.method import FullMethodConfig, Quantisation
from rcatune.demo.generator import generate_sessions
from rcatune.deploy.records import Release
from rcatune.inference import GenerationSettings, Generator, LoadedModel, load_folder, session_messages
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
from rcatune.schema import TrainingExample
from tests.test_training import CPU, TINY, _trainer, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sessions():
    return [TrainingExample.model_validate(r) for r in generate_sessions(20, seed=47)]


@pytest.fixture(scope="module")
def trained(sessions, tmp_path_factory):
    return train(sessions[:12], sessions[12:14], TINY, FullMethodConfig(), _trainer(epochs=2),
                 tmp_path_factory.mktemp("onnx") / "train")


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory):
    from rcatune.export import export_model

    return export_model(trained, tmp_path_factory.mktemp("onnx") / "export", Quantisation.none,
                        {"name": "rca", "base_model": trained.base_model, "method": "full"}, CPU, smoke_tokens=48,
                        onnx=True)


def test_the_export_decodes_from_its_cache_and_matches_pytorch_on_sessions_it_never_saw(bundle, sessions):
    import onnx
    import torch

    from rcatune.onnx_export import OnnxCausalLM, OnnxExportError

    report = bundle.onnx_report
    assert report["kv_cache"] and report["without_cache_because"] is None
    assert report["parity"]["passed"] and report["parity"]["greedy_tokens_equal"]
    assert report["parity"]["max_logit_difference"] <= report["parity"]["logit_tolerance"]
    assert json.loads((Path(bundle.onnx) / "rcatune_onnx.json").read_text()) == report
    graph = onnx.load(str(Path(bundle.onnx) / "model.onnx"), load_external_data=False)
    names = [i.name for i in graph.graph.input]
    assert names[:4] == ["input_ids", "attention_mask", "position_ids", "logits_positions"]
    assert names[4:6] == ["past.0.key", "past.0.value"]
    batch, length = graph.graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and length.dim_param, "batch and length are dynamic"

    # three sessions held out of training and of the export's own check, left-padded in one batch
    pytorch = load_folder(bundle.merged, CPU)
    ort = LoadedModel(OnnxCausalLM(bundle.onnx), pytorch.tokenizer, "onnx", pytorch.signature, CPU)
    conversations = [session_messages(e, DEFAULT_SYSTEM_PROMPT) for e in sessions[15:18]]
    inputs = Generator(pytorch)._inputs(conversations)
    assert (inputs["attention_mask"] == 0).any(), "the rows are of different lengths"
    positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = pytorch.model(**inputs, position_ids=positions).logits
    got = ort.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    position_ids=positions).logits
    real = inputs["attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=1e-4)
    last = ort.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], position_ids=positions,
                     logits_to_keep=1).logits  # what decoding asks for: the graph computes that position alone
    assert last.shape[1] == 1 and torch.allclose(last[:, 0], expected[:, -1], atol=1e-4)

    settings = GenerationSettings(max_new_tokens=40)
    assert [c.token_ids for c in Generator(ort).complete(conversations, settings)] == \
        [c.token_ids for c in Generator(pytorch).complete(conversations, settings)]
    with pytest.raises(OnnxExportError, match="greedily without stop sequences"):
        Generator(ort).complete(conversations[:1], GenerationSettings(max_new_tokens=4, stop=("Query",)))


def test_the_run_summary_names_the_onnx_folder_and_its_check(bundle):
    from rcatune.runinfo import RunSummary

    summary = RunSummary(pipeline="fine_tuning", run_dir="unused")
    bundle.summarise(summary)
    assert summary.artifacts["export_onnx"] == bundle.onnx
    assert "greedy tokens; with its KV cache" in summary.decisions["onnx_parity"]


def test_a_model_whose_cache_does_not_export_gets_a_graph_without_it_that_still_matches(bundle, monkeypatch,
                                                                                         tmp_path):
    from rcatune import onnx_export

    def refuses(model):
        raise RuntimeError("this cache does not trace")  # no tiny Llama refuses for real: the exporter takes it

    monkeypatch.setattr(onnx_export, "_with_cache", refuses)
    report = onnx_export.export_onnx(bundle.merged, tmp_path / "onnx", probe_tokens=24)
    assert not report["kv_cache"] and report["without_cache_because"] == "RuntimeError: this cache does not trace"
    assert report["parity"]["passed"] and report["parity"]["greedy_tokens"] == 24
    import onnx

    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx"), load_external_data=False)
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask", "position_ids", "logits_positions"]


def test_an_export_outside_the_tolerance_is_refused_not_shipped(bundle, monkeypatch, tmp_path):
    import shutil

    from rcatune import onnx_export

    def the_bundles_graph(model, path, with_cache):  # the same graph as the bundle's, without exporting it again
        for part in Path(bundle.onnx).glob("model.onnx*"):
            shutil.copy2(part, path.parent / part.name)

    monkeypatch.setattr(onnx_export, "_export", the_bundles_graph)
    monkeypatch.setattr(onnx_export, "LOGIT_TOLERANCE", -1.0)  # no difference is below it
    with pytest.raises(onnx_export.OnnxExportError, match="does not match PyTorch"):
        onnx_export.export_onnx(bundle.merged, tmp_path / "onnx", probe_tokens=8)
    written = json.loads((tmp_path / "onnx" / "rcatune_onnx.json").read_text())
    assert written["parity"]["passed"] is False and written["parity"]["greedy_tokens_equal"]


def test_the_onnx_engine_serves_the_same_greedy_answers_and_sends_the_rest_to_pytorch(bundle, sessions):
    import requests

    from rcatune.config.serving import ServingConfig
    from rcatune.serving.pool import ModelSource, load_pool
    from tests.test_serving import _serve

    pool = load_pool([ModelSource("tuned", Path(bundle.merged))], CPU, onnx=True)
    [served] = pool
    assert Generator(served.loaded).decoder is not None  # one request at a time: each decodes through the graph
    pytorch = Generator(load_folder(bundle.merged, CPU))
    url, stop = _serve(pool, ServingConfig(max_tokens=64))
    try:
        for session in sessions[14:17]:
            messages = session_messages(session, DEFAULT_SYSTEM_PROMPT)
            body = requests.post(url + "/v1/chat/completions", timeout=60, json={
                "model": "tuned", "messages": messages, "max_tokens": 32, "temperature": 0}).json()
            [expected] = pytorch.complete([messages], GenerationSettings(max_new_tokens=32))
            assert body["choices"][0]["message"]["content"] == expected.text
            assert body["usage"]["completion_tokens"] == expected.completion_tokens
        # what the graph's loop does not do goes through PyTorch: stop sequences, sampling, streams
        stopped = requests.post(url + "/v1/chat/completions", timeout=60, json={
            "model": "tuned", "messages": messages, "max_tokens": 32, "stop": ["Query"]})
        sampled = requests.post(url + "/v1/chat/completions", timeout=60, json={
            "model": "tuned", "messages": messages, "max_tokens": 8, "temperature": 0.8, "seed": 3})
        streamed = requests.post(url + "/v1/chat/completions", timeout=60, json={
            "model": "tuned", "messages": messages, "max_tokens": 8, "stream": True})
        assert stopped.status_code == sampled.status_code == streamed.status_code == 200
        assert "Query" not in stopped.json()["choices"][0]["message"]["content"]
        assert streamed.text.rstrip().endswith("data: [DONE]")
    finally:
        stop()


def test_the_onnx_engine_refuses_a_model_without_an_onnx_export_saying_how_to_make_one(trained):
    import subprocess
    import sys

    from tests.test_serving_engine import ROOT

    result = subprocess.run([sys.executable, "-m", "rcatune.serving", "--engine", "onnx", "--model",
                             f"x={trained.model_dir}", "--port", "0"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "has no ONNX export beside it" in result.stderr
    assert "export.onnx=true" in result.stderr and "Traceback" not in result.stderr


def test_a_local_deployment_starts_the_configured_engine_and_containers_refuse_onnx(bundle, tmp_path):
    """The local deployer runs `python -m rcatune.serving` with serve_args: with serving.engine=onnx that command
    serves the export through its graph (the server says so in its log). Container images carry the merged model
    alone, so deployer=docker with serving.engine=onnx is refused before anything starts."""
    import subprocess
    import sys
    import time

    import requests

    from rcatune.config.serving import Engine, ServingConfig
    from rcatune.deploy.bluegreen import serve_args
    from rcatune.processes import free_port
    from tests.conftest import ROOT, run_py

    port = free_port("127.0.0.1")
    release = Release(registry_name="rca", version="1", served_name="rca-v1", folder=str(bundle.merged))
    args = serve_args(release, ServingConfig(engine=Engine.onnx), "127.0.0.1", port, release.folder)
    log = tmp_path / "server.log"
    with open(log, "w") as handle:
        server = subprocess.Popen([sys.executable, "-m", "rcatune.serving", *args], cwd=ROOT, stdout=handle,
                                  stderr=subprocess.STDOUT)
    try:
        deadline, ready = time.monotonic() + 120, False
        while time.monotonic() < deadline and server.poll() is None and not ready:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except requests.ConnectionError:
                time.sleep(0.5)
        assert ready, log.read_text()[-2000:]
        assert "engine onnx" in log.read_text(), log.read_text()[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    refused = run_py("pipeline=deployment", "deployer=docker", "serving.engine=onnx", "progress=false",
                     f"hydra.run.dir={tmp_path / 'docker'}", check=False)
    assert refused.returncode == 2 and "deployed by deployer=local only" in refused.stderr, refused.stderr[-1000:]
