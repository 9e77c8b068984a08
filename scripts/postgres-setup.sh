#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the A/B outcome store (what a team points RCATUNE_AB_STORE_URL at;
# the tests start it on 127.0.0.1 through `python -m rcatune.abtest.postgres`). Needs root for apt-get; a second
# run returns at once.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/postgres > /dev/null 2>&1; then
  echo "postgres: installed ($(ls -d /usr/lib/postgresql/*/ | tail -1))"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "postgres: installing needs root for apt-get (postgresql); skipped" >&2; exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql > /dev/null
echo "postgres: installed ($(ls -d /usr/lib/postgresql/*/ | tail -1))"
