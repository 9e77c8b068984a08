"""Serve models over an OpenAI-compatible API: `python -m rcatune.serving --help`.

    python -m rcatune.serving --version production                  # the production version of rcatune-rca
    python -m rcatune.serving --version production --version 2      # two versions from one process
    python -m rcatune.serving --model tuned=RUN_DIR/export/merged --port 8400

Versions are served as `<registry name>-v<N>` (adapters over one shared base, which is listed too);
the first model also answers to the registry name (or to each `--alias`). The bearer token, if any,
comes from $RCATUNE_SERVE_TOKEN or --token-file, never from the command line.
"""

from __future__ import annotations

import argparse
import socket
import sys

from rcatune.config.serving import LIMITS, Engine, ServingConfig, limit_type
from rcatune.errors import RcatuneError


def parser() -> argparse.ArgumentParser:
    defaults = ServingConfig()
    p = argparse.ArgumentParser(prog="python -m rcatune.serving", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--version", action="append", default=[], metavar="N|STAGE",
                   help="a registered version to serve (a number, production, staging or latest); repeatable")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="a model folder to serve under NAME (a trained model or an export); repeatable")
    p.add_argument("--registry-name", default="rcatune-rca", help="the registered model (default: %(default)s)")
    p.add_argument("--alias", action="append", default=None, metavar="NAME",
                   help="another name the first model answers to (default: the registry name with --version)")
    p.add_argument("--no-base", action="store_true", help="do not list the base that adapters share")
    p.add_argument("--host", default=defaults.host)
    p.add_argument("--port", type=int, default=8400)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--engine", choices=[e.value for e in Engine], default=defaults.engine.value,
                   help="transformers: this server; onnx: this server, greedy completions generated alone decoded "
                        "by the export's ONNX graph in onnxruntime (export.onnx=true; CPU); vllm: launch vLLM's "
                        "OpenAI server (GPU only)")
    for key in LIMITS:
        p.add_argument(f"--{key.replace('_', '-')}", type=limit_type(key), default=getattr(defaults, key),
                       metavar=limit_type(key).__name__.upper(), help="(default: %(default)s)")
    p.add_argument("--threads", default=defaults.threads, metavar="auto|N",
                   help="threads to compute with (auto: the cores this process may use / --servers)")
    p.add_argument("--servers", type=int, default=1, metavar="K",
                   help="servers sharing these cores (a blue/green deployment runs 2); for --threads auto")
    p.add_argument("--token-file", default=None, help="a file holding the bearer token")
    return p


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.version and not args.model:
        parser().error("name something to serve: --version N|STAGE or --model NAME=DIR")
    try:
        return serve(args)
    except RcatuneError as error:
        print(f"rcatune serve: error: {error}", file=sys.stderr)
        return 2


def serve(args: argparse.Namespace) -> int:
    from rcatune.serving.pool import parse_source, registry_source

    config = ServingConfig(engine=Engine(args.engine), host=args.host, token_file=args.token_file, threads=args.threads,
                           **{key: getattr(args, key) for key in LIMITS})
    if not _port_free(args.host, args.port):
        raise RcatuneError(f"port {args.port} on {args.host} is in use: stop what listens there or pick --port")
    sources = [parse_source(text) for text in args.model]
    if args.version:
        from rcatune.state import configure_environment

        configure_environment()
        sources += [registry_source(args.registry_name, version) for version in args.version]
    aliases = args.alias if args.alias is not None else ([args.registry_name] if args.version else [])
    token = config.token()
    if config.engine is Engine.vllm:
        from rcatune.serving.vllm import run_vllm

        return run_vllm(sources, config, args.port, aliases, token)
    from rcatune.runtime import Runtime
    from rcatune.serving.app import create_app
    from rcatune.serving.http import serve as run_server
    from rcatune.serving.threads import apply_threads, resolve_threads

    threads = resolve_threads(config.threads, args.servers)
    apply_threads(threads)
    from rcatune.serving.pool import check_signatures, load_pool

    pool = load_pool(sources, Runtime.detect(args.device, progress=False), serve_base=not args.no_base,
                     onnx=config.engine is Engine.onnx)
    check_signatures(pool)  # refuse before listening, naming what differs
    names = ", ".join(m.name + (f" (over {m.parent})" if m.loaded.is_adapter else "") for m in pool)
    print(f"rcatune serve: {names} on http://{args.host}:{args.port}/v1 ({threads} threads, engine "
          f"{config.engine.value})", flush=True)
    app = create_app(pool, config, aliases={alias: pool[0].name for alias in aliases}, token=token, threads=threads)
    run_server(app, args.host, args.port, config.header_timeout_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
