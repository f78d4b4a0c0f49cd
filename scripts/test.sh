#!/usr/bin/env bash
# The README's test command: installs classtrace with its dev extras into .venv, checks lint and
# types, and runs the whole test suite against a real Tansu broker and chDB that the fixtures start.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The dashboard's browser test drives Debian's Chromium (nothing downloads a browser); the CJK font
# makes Chinese render in its screenshots.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# The experimental disk log of the embedded broker runs s3rver (Node.js): pinned in scripts/objectstore.
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix scripts/objectstore --silent --no-audit --no-fund
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
.venv/bin/python -m pytest -q "$@"
