#!/usr/bin/env bash
# Installs Debian's chromium and chromedriver, the headless browser the control API's status page is tested in
# (tests/test_api_page.py drives it through selenium). Needs root for apt-get; a second run returns at once.
set -euo pipefail
if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
  echo "chromium: installed ($(chromium --version 2>/dev/null | head -1))"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium: installing needs root for apt-get (chromium chromium-driver); skipped" >&2; exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core > /dev/null
echo "chromium: installed ($(chromium --version 2>/dev/null | head -1))"
