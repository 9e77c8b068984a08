"""Hostile clients against the model server: each abuse case with the answers it got, an ordinary request's latency
while it ran, and the next ordinary request's latency right after it.

    python bench/serving_abuse.py [--smoke] [--model-dir DIR] [--out bench/results]

The server is the real one (`python -m rcatune.serving`, a bearer token, `--max-queue 8`) on 127.0.0.1, serving
the tiny model's shape. Every case is bounded in count and time; tests/test_serving_abuse.py runs the same cases
and holds their outcomes. An answer is an HTTP status, or what the connection did: `closed` (the server closed
it), `left` (the client left on purpose).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import statistics
import string
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, markdown_table, write  # noqa: E402

TOKEN = "abuse-bench-token"
QUEUE = 8
HEADER_TIMEOUT_S, BODY_TIMEOUT_S = 2.0, 2.0
ORDINARY = {"messages": [{"role": "user", "content": "checkout fails"}], "max_tokens": 4}
CHAT = "/v1/chat/completions"


@dataclass
class Server:
    url: str
    process: object
    context: int
    max_request_bytes: int = 262_144

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def post(self, body, timeout: float = 60, headers: Optional[dict] = None, **kwargs):
        import requests

        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return requests.post(self.url + CHAT, data=data, timeout=timeout,
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                      **(headers or {})}, **kwargs)

    def metric(self, name: str) -> float:
        import requests

        for line in requests.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def start_server(model_dir: str, folder: Path) -> Server:
    """The real server on a free port, with a token and the bench's bounds, once it is ready."""
    from rcatune.deploy.smoke import wait_ready
    from rcatune.processes import free_port, spawn

    token_file = folder / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    process = spawn([sys.executable, "-m", "rcatune.serving", "--model", f"tiny={model_dir}", "--port", str(port),
                     "--device", "cpu", "--token-file", str(token_file), "--max-queue", str(QUEUE),
                     "--header-timeout-s", str(HEADER_TIMEOUT_S), "--body-timeout-s", str(BODY_TIMEOUT_S),
                     "--max-generation-s", "60"], folder / "server.log",
                    dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, 300, alive=lambda: process.poll() is None, what="the abuse bench's server")
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return Server(url, process, context=int(config["max_position_embeddings"]))


def _status(reply) -> str:
    return str(reply.status_code)


# --- raw connections: what no polite client library will send ----------------------------------------------------

def _head(server: Server, extra: str = "", method: str = "POST") -> bytes:
    return (f"{method} {CHAT} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def _answer(sock: socket.socket, timeout: float) -> str:
    """The status of the response on `sock`, or `closed` when the server closed it without one."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"


def _send_until_answered(server: Server, head: bytes, chunks, timeout: float = 20) -> str:
    """Send `head`, then each of `chunks` while the server has not answered; then read its answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # it answered already (a refusal before the whole body)
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        return _answer(sock, timeout)


# --- the cases ------------------------------------------------------------------------------------------------------

def body_over_cap(server: Server) -> list[str]:
    """A declared Content-Length over the cap, and a chunked body (no length) that keeps coming past it."""
    size = server.max_request_bytes + 1
    declared = _send_until_answered(server, _head(server, f"Content-Length: {size}\r\n"),
                                    [b"x" * 65536] * (size // 65536 + 1))
    piece = b"x" * 65536
    chunked = _send_until_answered(server, _head(server, "Transfer-Encoding: chunked\r\n"),
                                   [b"10000\r\n" + piece + b"\r\n"] * 32)  # 2 MB unless refused
    return [declared, chunked]


def deep_json(server: Server) -> list[str]:
    deepest = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"  # 200 kB, past the parser's recursion
    nested = {"messages": [{"role": "user", "content": "x"}], "metadata": json.loads("[" * 60 + "]" * 60)}
    return [_status(server.post(deepest)), _status(server.post(nested))]


def bad_encoding(server: Server) -> list[str]:
    invalid_utf8 = b'{"messages": [{"role": "user", "content": "\xff\xfe\xfa"}]}'
    lone_surrogate = '{"messages": [{"role": "user", "content": "ab\\ud800cd"}]}'
    return [_status(server.post(invalid_utf8)), _status(server.post(lone_surrogate))]


WRONG_TYPES = [{"model": ["tiny"]}, {"model": 7}, {"temperature": "hot"}, {"temperature": True}, {"stop": [1, 2]},
               {"stop": {"a": 1}}, {"seed": "x"}, {"seed": 1.5}, {"response_format": "json"},
               {"response_format": {"type": "xml"}}, {"stream_options": 5, "stream": True}, {"n": "2"},
               {"max_tokens": "8"}, {"messages": "hi"}, {"messages": [{"role": "robot", "content": "x"}]},
               {"messages": [{"role": "user", "content": 5}]}, {"messages": [{"role": "user", "content": None}]},
               {"top_p": [1]}, {"stream": "yes"}, {"tools": [{"type": "function"}]}]
OUT_OF_RANGE = [{"temperature": -1}, {"temperature": 1e9}, {"top_p": 5}, {"top_p": -1, "temperature": 1},
                {"n": 0}, {"max_tokens": 0}, {"max_tokens": -5}, {"seed": 2**70}, {"stop": [""]},
                {"stop": ["x" * 300]}, {"stop": [f"s{i}" for i in range(1000)]}, {"presence_penalty": 9}]


def wrong_types(server: Server) -> list[str]:
    replies = []
    for extra in WRONG_TYPES:
        replies.append(_status(server.post({**ORDINARY, **extra})))
    return replies


def out_of_range(server: Server) -> list[str]:
    replies = [_status(server.post({**ORDINARY, **extra})) for extra in OUT_OF_RANGE]
    not_finite = json.dumps(ORDINARY)[:-1] + ', "temperature": NaN}'
    infinite = json.dumps(ORDINARY)[:-1] + ', "top_p": Infinity}'
    return replies + [_status(server.post(not_finite)), _status(server.post(infinite))]


def caps(server: Server) -> list[str]:
    return [_status(server.post({**ORDINARY, "max_tokens": 10_000})), _status(server.post({**ORDINARY, "n": 99})),
            _status(server.post({**ORDINARY, "max_completion_tokens": 10_000}))]


def _words(tokens: int) -> str:
    """Text of roughly `tokens` tokens of random short words (a word and its space: about two tokens)."""
    rng = random.Random(tokens)
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=3)) for _ in range(tokens // 2))


def prompt_over_context(server: Server) -> list[str]:
    """A prompt 1.5x the context, and one that fits but asks for more tokens than the context leaves."""
    over = {**ORDINARY, "messages": [{"role": "user", "content": _words(int(server.context * 1.5))}]}
    near = {"messages": [{"role": "user", "content": _words(int(server.context * 0.9))}], "max_tokens": 500}
    return [_status(server.post(over)), _status(server.post(near))]


def prompt_75x_context(server: Server) -> list[str]:
    content = _words(server.context * 75)[: server.max_request_bytes - 200]
    return [_status(server.post({**ORDINARY, "messages": [{"role": "user", "content": content}]}))]


def failing_streams(server: Server) -> list[str]:
    """The streams that used to kill the generate thread and wedge the worker: each is refused before its 200."""
    streams = [{"stop": [1, 2]}, {"temperature": 1, "top_p": -1}, {"temperature": 1, "top_p": 5}]
    replies = [_status(server.post({**ORDINARY, "stream": True, **extra})) for extra in streams]
    nan = json.dumps({**ORDINARY, "stream": True})[:-1] + ', "temperature": NaN}'
    return replies + [_status(server.post(nan))]


def burst(server: Server) -> list[str]:
    """Ten times the queue bound at once, plain and streamed."""
    def one(i: int) -> str:
        body = {**ORDINARY, "max_tokens": 32, "stream": i % 4 == 0}
        try:
            reply = server.post(body, timeout=120)
            text = reply.text
            if reply.status_code == 200 and body["stream"] and not text.rstrip().endswith("[DONE]"):
                return "200-broken-stream"
            return _status(reply)
        except Exception as error:  # noqa: BLE001 (reported as the answer)
            return type(error).__name__

    with ThreadPoolExecutor(10 * QUEUE) as pool:
        return list(pool.map(one, range(10 * QUEUE)))


def slowloris(server: Server, clients: int = 50) -> list[str]:
    """50 connections that send their request head one byte a second: each is closed by the server."""
    head = _head(server, "Content-Length: 20\r\n")
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(clients)]
    for sock in socks:
        sock.setblocking(False)
    answers: dict[int, str] = {}
    deadline = time.monotonic() + HEADER_TIMEOUT_S + 20
    position = 0
    while len(answers) < clients and time.monotonic() < deadline:
        for i, sock in enumerate(socks):
            if i in answers:
                continue
            try:
                if select.select([sock], [], [], 0)[0]:
                    data = sock.recv(4096)
                    answers[i] = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"
                    continue
                sock.send(head[position:position + 1])
            except (BrokenPipeError, ConnectionResetError):
                answers[i] = "closed"
        position = min(position + 1, len(head) - 1)
        time.sleep(1.0)
    for sock in socks:
        sock.close()
    return [answers.get(i, "still-open") for i in range(clients)]


def never_speaks(server: Server) -> list[str]:
    """A connection that sends nothing at all."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        return [_answer(sock, HEADER_TIMEOUT_S + 10)]


def slow_body(server: Server) -> list[str]:
    """A whole head, then a body that drips a byte a second: refused when the body bound runs out."""
    body = json.dumps(ORDINARY).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT_S + 10) as sock:
        sock.sendall(_head(server, f"Content-Length: {len(body)}\r\n"))
        for i in range(int(BODY_TIMEOUT_S) + 5):
            if select.select([sock], [], [], 1.0)[0]:
                break
            try:
                sock.send(body[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
        return [_answer(sock, BODY_TIMEOUT_S + 10)]


def left_mid_stream(server: Server) -> list[str]:
    """Three clients that read the first streamed chunk of a long answer and hang up."""
    import requests

    answers = []
    for _ in range(3):
        with server.post({**ORDINARY, "max_tokens": 500, "stream": True}, stream=True) as reply:
            for line in reply.iter_lines():
                if line.startswith(b"data: "):
                    break
            answers.append(_status(reply))
        requests.get(server.url + "/health", timeout=10)
    return answers + ["left"]


def left_plain(server: Server) -> list[str]:
    """Three clients that ask for a long plain answer and give up after 0.2 s."""
    import requests

    answers = []
    for _ in range(3):
        try:
            server.post({**ORDINARY, "max_tokens": 500, "temperature": 0.7, "seed": 1}, timeout=0.2)
            answers.append("200-before-leaving")
        except requests.exceptions.Timeout:
            answers.append("left")
    return answers


def not_http(server: Server) -> list[str]:
    """Bytes that are not an HTTP request, and a head over h11's 16 kB limit: a 400 in the error shape."""
    answers = []
    for raw in (b"GARBAGE / NOT-HTTP\r\n\r\n", _head(server, "X-Padding: " + "a" * 20_000 + "\r\n")):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw)
            sock.settimeout(10)
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        head, _, body = data.partition(b"\r\n\r\n")
        shaped = body.startswith(b'{"error"') and b"application/json" in head
        answers.append(head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/1.1 ") and shaped else "unshaped")
    return answers


def auth(server: Server) -> list[str]:
    """A lowercase scheme is accepted (RFC 9110: schemes are case-insensitive); a wrong or missing token is not."""
    import requests

    url = server.url + CHAT
    lower = requests.post(url, json=ORDINARY, headers={"Authorization": f"bearer {TOKEN}"}, timeout=60)
    wrong = requests.post(url, json=ORDINARY, headers={"Authorization": "Bearer nope"}, timeout=60)
    missing = requests.post(url, json=ORDINARY, timeout=60)
    return [_status(lower), _status(wrong), _status(missing)]


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Server], list[str]]
    expected: frozenset  # every answer must be one of these
    what: str = ""


CASES = [
    Case("body_over_cap", body_over_cap, frozenset({"413"}), "declared and chunked bodies over the byte cap"),
    Case("deep_json", deep_json, frozenset({"400"}), "JSON nested 100,000 and 60 deep"),
    Case("bad_encoding", bad_encoding, frozenset({"400"}), "invalid UTF-8, a lone surrogate"),
    Case("wrong_types", wrong_types, frozenset({"400"}), f"{len(WRONG_TYPES)} fields of the wrong type"),
    Case("out_of_range", out_of_range, frozenset({"400"}), f"{len(OUT_OF_RANGE) + 2} values out of range"),
    Case("caps", caps, frozenset({"400"}), "max_tokens and n beyond their caps"),
    Case("prompt_over_context", prompt_over_context, frozenset({"400"}), "1.5x the context; max_tokens past it"),
    Case("prompt_75x_context", prompt_75x_context, frozenset({"400"}), "a prompt 75x the context"),
    Case("failing_streams", failing_streams, frozenset({"400"}), "streams whose generation would fail"),
    Case("burst_10x_queue", burst, frozenset({"200", "429"}), f"{10 * QUEUE} requests at once, a quarter streamed"),
    Case("slowloris_50", slowloris, frozenset({"closed", "408"}), "50 clients sending one byte a second"),
    Case("never_speaks", never_speaks, frozenset({"closed"}), "a connection that sends nothing"),
    Case("slow_body", slow_body, frozenset({"408", "closed"}), "a body sent one byte a second"),
    Case("left_mid_stream", left_mid_stream, frozenset({"200", "left"}), "3 clients hang up after the first chunk"),
    Case("left_plain", left_plain, frozenset({"left"}), "3 clients give up on a long answer after 0.2 s"),
    Case("not_http", not_http, frozenset({"400"}), "bytes that are not HTTP; a 20 kB header"),
    Case("auth", auth, frozenset({"200", "401"}), "lowercase bearer; wrong and missing token"),
]


@dataclass
class Prober:
    """Ordinary requests, one after another, while a case runs: their latencies and answers."""

    server: Server
    latencies: list[float] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                answer = _status(self.server.post(ORDINARY, timeout=60))
            except Exception as error:  # noqa: BLE001 (reported)
                answer = type(error).__name__
            if answer == "200":
                self.latencies.append(time.perf_counter() - started)
            self.answers[answer] += 1
            self._stop.wait(0.2)


def ordinary(server: Server) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        answer = _status(server.post(ORDINARY, timeout=60))
    except Exception as error:  # noqa: BLE001 (reported)
        answer = type(error).__name__
    return answer, time.perf_counter() - started


def run_case(server: Server, case: Case) -> dict:
    """One case with an ordinary prober beside it, then the next ordinary request."""
    started = time.perf_counter()
    with Prober(server) as prober:
        answers = case.run(server)
    seconds = time.perf_counter() - started
    after, after_s = ordinary(server)
    during = prober.latencies
    return {"case": case.name, "what": case.what, "answers": dict(Counter(answers)),
            "as_expected": bool(answers) and set(answers) <= case.expected, "seconds": round(seconds, 2),
            "ordinary_during": dict(prober.answers),
            "ordinary_during_p50_ms": round(1000 * statistics.median(during), 1) if during else None,
            "ordinary_during_max_ms": round(1000 * max(during), 1) if during else None,
            "next_ordinary": after, "next_ordinary_ms": round(1000 * after_s, 1),
            "server_alive": server.process.poll() is None}


def main(argv: list[str] | None = None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the same cases (they are already bounded)")
    parser.add_argument("--model-dir", help="a model folder to serve (default: the tiny model's shape)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from rcatune.config.model import TinyModelConfig
    from rcatune.models import model_path
    from rcatune.processes import stop_group
    from rcatune.state import configure_environment

    configure_environment()
    model_dir = args.model_dir or model_path(TinyModelConfig())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(model_dir, Path(folder))
        try:
            for case in CASES:
                row = run_case(server, case)
                rows.append(row)
                print(f"  {case.name}: {row['answers']} next {row['next_ordinary']} in {row['next_ordinary_ms']} ms",
                      flush=True)
        finally:
            stop_group(server.process.pid)
    table = ["# The model server under abuse (tiny model shape, `--max-queue 8`, a token, CPU)", "",
             *markdown_table(["case", "what", "answers", "ordinary during: answers", "p50 ms", "max ms",
                              "next ordinary ms"],
                             [[r["case"], r["what"], ", ".join(f"{k} x{v}" for k, v in r["answers"].items()),
                               ", ".join(f"{k} x{v}" for k, v in r["ordinary_during"].items()),
                               r["ordinary_during_p50_ms"], r["ordinary_during_max_ms"], r["next_ordinary_ms"]]
                              for r in rows]), "",
             f"Every case as expected: {all(r['as_expected'] for r in rows)}; the server stayed up: "
             f"{all(r['server_alive'] for r in rows)}."]
    name = "serving_abuse_smoke" if args.smoke else "serving_abuse"
    print(write(name, {"rows": rows, "queue": QUEUE, "header_timeout_s": HEADER_TIMEOUT_S,
                       "body_timeout_s": BODY_TIMEOUT_S}, table, args.out))
    print("\n".join(table))


if __name__ == "__main__":
    main()
