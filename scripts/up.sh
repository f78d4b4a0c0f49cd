#!/usr/bin/env bash
# The README's quick start: installs classtrace into .venv and runs the whole embedded stack with
# simulated classrooms (default 20). Extra arguments go to `classtrace up`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
if [ "$#" -eq 0 ]; then set -- --simulate 20; fi
exec .venv/bin/classtrace up "$@"
