"""Serving: latency p50/p95 and throughput of `/v1/chat/completions` at concurrency 1, 4 and 16, time to first
token of a streamed chat, for rcatune's server with cross-request batching (max_batch 8), the same with
serving.engine=onnx (greedy completions decoded by the model's ONNX export in onnxruntime), against the same
server generating one request at a time (max_batch 1, the baseline) and LLaMA-Factory's own OpenAI-compatible server
(`llamafactory-cli api` from `make llamafactory`'s venv; left out, with the reason, where it is missing),
interleaved, greedy, on the same model folder; serving.threads=auto against
torch's default (every core) for a blue/green deployment's two servers beside other work; then deploy and
rollback seconds of the local deployer (blue/green behind its router).

    python bench/serving.py [--smoke] [--model-dir DIR] [--export DIR]

Without --model-dir the tiny model's shape with its initial weights serves (speed depends on the shape;
random weights never stop early, so every answer runs to max_tokens). The deploy timing needs a model that
passes the smoke test: --export DIR (an export/merged folder, e.g. from `make run`), or a quick one trained
here (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, llamafactory_missing, markdown_table, write  # noqa: E402

# name: (max_batch, serving engine)
CONTENDERS = {"batched (max_batch 8)": (8, "transformers"), "one at a time (max_batch 1)": (1, "transformers"),
              "batched, engine=onnx (max_batch 8)": (8, "onnx")}
PEER = "LLaMA-Factory API (llamafactory-cli api)"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _start_server(model_dir: str, max_batch: int, log: Path, threads: str = "auto",
                  servers: int = 1, engine: str = "transformers") -> tuple[subprocess.Popen, str]:
    from rcatune.processes import free_port, spawn

    port = free_port()
    process = spawn([sys.executable, "-m", "rcatune.serving", "--model", f"tiny={model_dir}", "--port", str(port),
                     "--max-batch", str(max_batch), "--max-queue", "64", "--device", "cpu", "--threads", threads,
                     "--servers", str(servers), "--engine", engine], log, dict(os.environ, PYTHONUNBUFFERED="1"))
    from rcatune.deploy.smoke import wait_ready

    url = f"http://127.0.0.1:{port}"
    wait_ready(url, 300, alive=lambda: process.poll() is None, what="the bench server")
    return process, url


def _start_llama_factory(model_dir: str, log: Path, threads: int) -> tuple[subprocess.Popen, str]:
    """`llamafactory-cli api` as shipped (its HuggingFace engine, MAX_CONCURRENT 1) on the same model folder, with
    the template LLaMA-Factory trains the tiny family with, and the same torch threads as rcatune's server."""
    from rcatune.config.trainer import LLAMA_FACTORY_TEMPLATES
    from rcatune.deploy.smoke import SmokeTestFailed, wait_ready
    from rcatune.processes import free_port, spawn
    from rcatune.training.llama_factory import find_cli

    port = free_port()
    env = dict(os.environ, API_HOST="127.0.0.1", API_PORT=str(port), OMP_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1", DISABLE_VERSION_CHECK="1")
    process = spawn([find_cli(), "api", "--model_name_or_path", model_dir, "--template",
                     LLAMA_FACTORY_TEMPLATES["tiny"], "--infer_backend", "huggingface"], log, env)
    url = f"http://127.0.0.1:{port}"
    try:  # it has no /ready: its model list answers once the model is loaded
        wait_ready(url, 300, alive=lambda: process.poll() is None, what="llamafactory-cli api", path="/v1/models")
    except SmokeTestFailed as error:
        raise RuntimeError(f"{error}; its log ends:\n{log.read_text()[-2000:]}") from None
    return process, url


async def _load(url: str, sessions: list[dict], concurrency: int, requests_: int, max_tokens: int) -> dict:
    import httpx

    latencies: list[float] = []
    tokens = 0
    queue = list(range(requests_))

    async def user(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            index = queue.pop()
            started = time.perf_counter()
            reply = await client.post(f"{url}/v1/chat/completions", json={
                "messages": [{"role": "user", "content": json.dumps(sessions[index % len(sessions)])[:1500]}],
                "max_tokens": max_tokens, "temperature": 0, "model": "tiny"})
            reply.raise_for_status()
            latencies.append(time.perf_counter() - started)
            tokens += reply.json()["usage"]["completion_tokens"]

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*[user(client) for _ in range(concurrency)])
    wall = time.perf_counter() - started
    return {"latency_p50_ms": round(1000 * _percentile(latencies, 0.5), 1),
            "latency_p95_ms": round(1000 * _percentile(latencies, 0.95), 1),
            "requests_per_second": round(requests_ / wall, 3), "tokens_per_second": round(tokens / wall, 1),
            "requests": requests_}


def _ttft(url: str, max_tokens: int, repeats: int) -> float:
    import requests

    firsts = []
    for _ in range(repeats):
        started = time.perf_counter()
        with requests.post(f"{url}/v1/chat/completions", stream=True, timeout=600, json={
                "messages": [{"role": "user", "content": "checkout returns 500"}], "max_tokens": max_tokens,
                "stream": True, "temperature": 0, "model": "tiny"}) as reply:
            for line in reply.iter_lines():
                data = line[len(b"data:"):].strip() if line.startswith(b"data:") else b""
                if data and data != b"[DONE]" and json.loads(data)["choices"][0]["delta"].get("content"):
                    firsts.append(time.perf_counter() - started)  # the first chunk that carries text
                    break
    return round(1000 * statistics.median(firsts), 1)


def onnx_layout(model_dir: str, folder: Path) -> str:
    """`model_dir` laid out as an export with its ONNX graph (EXPORT/merged, EXPORT/onnx), as export.onnx=true
    writes it, for the onnx engine: the merged folder's path."""
    import shutil

    from rcatune.onnx_export import FOLDER, export_onnx

    merged = folder / "export" / "merged"
    shutil.copytree(model_dir, merged)
    export_onnx(merged, folder / "export" / FOLDER)
    return str(merged)


def serving_figures(model_dir: str, levels: list[int], per_level: int, max_tokens: int, rounds: int,
                    with_peer: bool, onnx_dir: str) -> list[dict]:
    import requests

    from rcatune.demo.generator import generate_sessions
    from rcatune.processes import stop_group

    sessions = [{k: s[k] for k in ("symptoms", "affected_services", "error_signatures")}
                for s in generate_sessions(32, seed=5)]
    rows = []
    threads = 1
    contenders = [*CONTENDERS, *([PEER] if with_peer else [])]
    with tempfile.TemporaryDirectory() as logs:
        for round_ in range(rounds):
            for name in contenders:  # interleaved: drift hits all alike
                if name == PEER:
                    process, url = _start_llama_factory(model_dir, Path(logs) / "peer.log", threads)
                else:
                    max_batch, engine = CONTENDERS[name]
                    process, url = _start_server(onnx_dir if engine == "onnx" else model_dir, max_batch,
                                                 Path(logs) / f"{max_batch}-{engine}.log", engine=engine)
                    threads = requests.get(f"{url}/health", timeout=10).json()["threads"]
                try:
                    ttft = _ttft(url, max_tokens, 3)
                    for level in levels:
                        figures = asyncio.run(_load(url, sessions, level, max(per_level, level), max_tokens))
                        rows.append({"contender": name, "round": round_ + 1, "concurrency": level,
                                     "threads": threads, "ttft_ms": ttft, **figures})
                        print(f"  {name} c={level}: {figures}", flush=True)
                finally:
                    stop_group(process.pid)
    return rows


THREAD_CONTENDERS = {"serving.threads=auto": "auto", "torch's default (every core)": str(os.cpu_count() or 1)}


def thread_figures(model_dir: str, rounds: int, sequential: int, concurrent: int, max_tokens: int) -> list[dict]:
    """A blue/green deployment's two servers (the active one under load, the warm previous idle) on a machine
    with other work running (one busy process): 64-token greedy completions one after another (p50, p95) and
    `concurrent` at once (wall seconds), with serving.threads=auto against torch's default, interleaved."""
    import requests

    from rcatune.processes import stop_group

    # the other work on the machine; it ends with this process, even one killed before its `finally`
    burner = subprocess.Popen([sys.executable, "-c", f"import os\nwhile os.getppid() == {os.getpid()}: pass"])
    rows = []
    try:
        with tempfile.TemporaryDirectory() as logs:
            for round_ in range(rounds):
                for name, threads in THREAD_CONTENDERS.items():
                    servers = [_start_server(model_dir, 8, Path(logs) / f"{threads}-{i}.log", threads, servers=2)
                               for i in range(2)]
                    try:
                        url = servers[0][1]
                        body = {"messages": [{"role": "user", "content": "checkout returns 500 since 14:02"}],
                                "max_tokens": max_tokens}
                        latencies = []
                        for _ in range(sequential):
                            started = time.perf_counter()
                            requests.post(f"{url}/v1/chat/completions", json=body, timeout=600).raise_for_status()
                            latencies.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        asyncio.run(_load(url, [{"symptoms": ["checkout returns 500"]}], concurrent, concurrent,
                                          max_tokens))
                        burst = time.perf_counter() - started
                        used = requests.get(f"{url}/health", timeout=10).json()["threads"]
                        rows.append({"contender": name, "round": round_ + 1, "threads": used,
                                     "p50_ms": round(1000 * _percentile(latencies, 0.5), 1),
                                     "p95_ms": round(1000 * _percentile(latencies, 0.95), 1),
                                     f"concurrent_{concurrent}_s": round(burst, 2)})
                        print(f"  {name}: {rows[-1]}", flush=True)
                    finally:
                        for process, _ in servers:
                            stop_group(process.pid)
    finally:
        burner.kill()
    return rows


def quick_export(folder: Path) -> str:
    """A quick tiny model that answers in the trained format (what the deploy smoke test asks)."""
    overrides = ["data.size=40", "trainer.epochs=24", "trainer.learning_rate=1e-2", "trainer.prompt_dropout=0",
                 "model.hidden_size=64", "model.intermediate_size=128", "model.num_layers=2",
                 "model.vocab_size=1024", "data.split.min_examples=5", "progress=false",
                 "evaluation.max_new_tokens=48", "evaluation.max_examples=4", "seed=1"]
    env = dict(os.environ, RCATUNE_HOME=str(folder / "state"))
    for key in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH", "MLFLOW_TRACKING_URI", "HF_HOME"):
        env.pop(key, None)
    run_dir = folder / "run"
    subprocess.run([sys.executable, "run.py", *overrides, f"hydra.run.dir={run_dir}"], cwd=Path(__file__).parent.parent,
                   env=env, check=True, capture_output=True, timeout=1800)
    return str(run_dir / "export" / "merged")


def deploy_figures(export: str, repeats: int) -> dict:
    """Seconds of a first deploy, a blue/green deploy beside it, and rollbacks (each a switch to the warm one)."""
    from rcatune.config.deployer import LocalDeployerConfig
    from rcatune.config.serving import ServingConfig
    from rcatune.deploy.local import LocalDeployer
    from rcatune.deploy.records import Release
    from rcatune.processes import free_port

    deployer = LocalDeployer(LocalDeployerConfig(name="bench", port=free_port()), ServingConfig())
    releases = [Release(registry_name="bench", version=str(n), served_name=f"bench-v{n}", folder=export)
                for n in (1, 2)]
    try:
        first = deployer.deploy(releases[0])
        second = deployer.deploy(releases[1])
        rollbacks = [deployer.rollback() for _ in range(repeats)]
    finally:
        deployer.stop()
    return {"first_deploy_seconds": first.seconds, "blue_green_deploy_seconds": second.seconds,
            "smoke_ready_seconds": second.detail["smoke"]["ready_seconds"],
            "smoke_diagnosis_seconds": second.detail["smoke"]["diagnosis_seconds"],
            "rollback_seconds_median": statistics.median(r.seconds for r in rollbacks),
            "rollback_switch_seconds_median": statistics.median(r.detail["switch_seconds"] for r in rollbacks),
            "rollbacks": len(rollbacks)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--model-dir")
    parser.add_argument("--export")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from rcatune.config.model import TinyModelConfig
    from rcatune.models import model_path
    from rcatune.state import configure_environment

    configure_environment()
    model_dir = args.model_dir or model_path(TinyModelConfig())
    levels, per_level, max_tokens, rounds = ([1, 4], 4, 8, 1) if args.smoke else ([1, 4, 16], 32, 64, 2)
    skipped = llamafactory_missing()
    if skipped:
        print(f"  {PEER} left out: {skipped}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        rows = serving_figures(model_dir, levels, per_level, max_tokens, rounds, with_peer=skipped is None,
                               onnx_dir=onnx_layout(model_dir, Path(folder)))
    concurrent = 4 if args.smoke else 16
    threads = thread_figures(model_dir, rounds, 3 if args.smoke else 20, concurrent, max_tokens)
    deploy = None
    if not args.smoke:
        with tempfile.TemporaryDirectory() as folder:
            export = args.export or quick_export(Path(folder))
            deploy = deploy_figures(export, repeats=5)
    table_rows, summary = [], {}
    for name in [*CONTENDERS, *([] if skipped else [PEER])]:
        for level in levels:
            mine = [r for r in rows if r["contender"] == name and r["concurrency"] == level]
            figures = {k: statistics.median(r[k] for r in mine) for k in
                       ("latency_p50_ms", "latency_p95_ms", "requests_per_second", "tokens_per_second", "ttft_ms")}
            summary[f"{name} c={level}"] = figures
            table_rows.append([name, level, figures["latency_p50_ms"], figures["latency_p95_ms"],
                               figures["requests_per_second"], figures["tokens_per_second"], figures["ttft_ms"]])
    batched, alone, onnx = list(CONTENDERS)
    speedups = {f"c={level}": round(summary[f"{batched} c={level}"]["tokens_per_second"]
                                    / summary[f"{alone} c={level}"]["tokens_per_second"], 2) for level in levels}
    table = [f"# Serving (`/v1/chat/completions`, {max_tokens} new tokens per request, tiny model shape, CPU)", "",
             *markdown_table(["server", "concurrency", "p50 ms", "p95 ms", "requests/s", "tokens/s", "TTFT ms"],
                             table_rows), "",
             "Throughput ratio batched / one at a time: " + ", ".join(f"{k} {v}x" for k, v in speedups.items())]
    engines = {level: summary[f"{onnx} c={level}"]["tokens_per_second"]
               / summary[f"{batched} c={level}"]["tokens_per_second"] for level in levels}
    table += ["", "Throughput ratio engine=onnx / transformers, both batched: "
              + ", ".join(f"c={level} {ratio:.2f}x" for level, ratio in engines.items())]
    over_peer = over_peer_onnx = None
    if skipped:
        table += ["", f"{PEER}: left out ({skipped})"]
    else:
        def over(ours: str, level: int, key: str) -> float:  # throughput ours / theirs; latency theirs / ours
            mine, theirs = summary[f"{ours} c={level}"][key], summary[f"{PEER} c={level}"][key]
            return round(mine / theirs if key == "tokens_per_second" else theirs / mine, 2)

        def against(ours: str) -> dict:
            return {f"c={level}": {"tokens_per_second": over(ours, level, "tokens_per_second"),
                                   "p50": over(ours, level, "latency_p50_ms"),
                                   "p95": over(ours, level, "latency_p95_ms")} for level in levels}

        over_peer, over_peer_onnx = against(batched), against(onnx)
        for label, figures in (("rcatune batched", over_peer), ("rcatune batched with engine=onnx", over_peer_onnx)):
            table += ["", f"{label} against {PEER} (its HuggingFace engine, as shipped: one generation at a "
                          "time), same model, same requests and threads, greedy: throughput "
                      + ", ".join(f"{k} {v['tokens_per_second']}x" for k, v in figures.items())
                      + "; p50 " + ", ".join(f"{k} {v['p50']}x" for k, v in figures.items())
                      + "; p95 " + ", ".join(f"{k} {v['p95']}x" for k, v in figures.items())
                      + " (latency ratios: the peer's over rcatune's). Goal: >= 1.5x throughput at c=1, >= 3x at "
                        "c=16."]
    thread_summary = {name: {key: statistics.median(r[key] for r in threads if r["contender"] == name)
                             for key in ("threads", "p50_ms", "p95_ms", f"concurrent_{concurrent}_s")}
                      for name in THREAD_CONTENDERS}
    auto, default = list(THREAD_CONTENDERS)
    table += ["", f"## Threads: a deployment's two servers on {os.cpu_count()} cores, one busy process beside them",
              "", *markdown_table(["server threads", "threads", "p50 ms", "p95 ms", f"{concurrent} at once, s"],
                                  [[name, *figures.values()] for name, figures in thread_summary.items()]), "",
              f"p50 ratio default / auto: {thread_summary[default]['p50_ms'] / thread_summary[auto]['p50_ms']:.2f}x; "
              f"p95 {thread_summary[default]['p95_ms'] / thread_summary[auto]['p95_ms']:.2f}x"]
    if deploy:
        table += ["", "## Local deployer (blue/green behind the router)", "",
                  *markdown_table(["figure", "seconds"], [[k, v] for k, v in deploy.items() if k != "rollbacks"])]
    name = "serving_smoke" if args.smoke else "serving"
    print(write(name, {"rows": rows, "summary": summary, "batched_over_one_at_a_time": speedups,
                       "batched_over_llama_factory": over_peer, "onnx_over_llama_factory": over_peer_onnx,
                       "llama_factory_skipped": skipped,
                       "threads": threads, "threads_summary": thread_summary,
                       "deploy": deploy, "max_tokens": max_tokens}, table, args.out))
    print("\n".join(table))


if __name__ == "__main__":
    main()
