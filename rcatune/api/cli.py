"""`rcatune`: the control API and its tokens.

    rcatune api [--host H] [--port P] [KEY=VALUE ...]   # start the control API (api.* settings as KEY=VALUE)
    rcatune token create --name ci --scope read,train     # prints a new token once; only its hash is kept
    rcatune token list                                    # ids, names, scopes, created, revoked (never a token)
    rcatune token revoke ID
The pipeline itself runs through `python run.py` (see its --help).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rcatune", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="start the control API")
    api.add_argument("--host", help="default 127.0.0.1 (api.host)")
    api.add_argument("--port", type=int, help="default 8400 (api.port)")
    api.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                     help="api.* settings: max_concurrent_jobs=2, allowed_roots=[/data/exports], cors_origins=[...]")
    token = commands.add_parser("token", help="create, list or revoke bearer tokens")
    verbs = token.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="a new token, printed once")
    create.add_argument("--name", required=True, help="who or what holds it (shown in the audit log)")
    create.add_argument("--scope", required=True, help="read, train, deploy, admin (comma-separated)")
    verbs.add_parser("list", help="the tokens (never their values)")
    revoke = verbs.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id")
    args = parser.parse_args(argv)

    from rcatune.errors import RcatuneError

    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    try:
        if args.command == "api":
            return _api(args)
        return _token(args)
    except RcatuneError as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2


def api_config(settings: list[str], host: str | None = None, port: int | None = None):
    """`ApiConfig` from KEY=VALUE settings, checked as a run's config is (an unknown key is named)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rcatune.config.api import ApiConfig
    from rcatune.errors import ConfigError

    try:
        merged = OmegaConf.merge(OmegaConf.structured(ApiConfig), OmegaConf.from_dotlist(
            [s.removeprefix("api.") for s in settings]))
        if host:
            merged.host = host
        if port:
            merged.port = port
        return OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"api settings: {' '.join(str(error).split())}") from None


def _api(args) -> int:
    import logging

    from rcatune.api.app import create_app
    from rcatune.logs import quiet_logs
    from rcatune.serving.http import serve
    from rcatune.state import configure_environment

    config = api_config(args.settings, args.host, args.port)
    configure_environment()
    quiet_logs(bars=False)
    logging.basicConfig(level=logging.WARNING, format="rcatune api: %(message)s")
    app = create_app(config)
    print(f"rcatune control API on http://{config.host}:{config.port} (docs: /api/v1/docs)", flush=True)
    serve(app, config.host, config.port)
    return 0


def _token(args) -> int:
    from rcatune.api.db import Database
    from rcatune.api.tokens import TokenStore, parse_scopes
    from rcatune.config.api import ApiConfig

    store = TokenStore(Database(os.environ.get(ApiConfig.db_url_env) or None))
    if args.verb == "create":
        token_id, token = store.create(args.name, parse_scopes(args.scope))
        print(token)
        print(f"token {token_id} for {args.name} ({args.scope}): shown once, keep it in a secret store",
              file=sys.stderr)
    elif args.verb == "list":
        from datetime import datetime

        for row in store.list():
            when = datetime.fromtimestamp(row["created_at"]).isoformat(timespec="seconds")
            revoked = "  revoked" if row["revoked_at"] else ""
            print(f"{row['id']}  {row['name']:<20} {row['scopes']:<24} {when}{revoked}")
    else:
        if not store.revoke(args.id):
            print(f"rcatune: error: no live token {args.id}", file=sys.stderr)
            return 2
        print(f"token {args.id} revoked", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
