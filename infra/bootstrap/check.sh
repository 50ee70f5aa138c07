#!/usr/bin/env bash
# The one check script: format, lint, strict types. Used by `make check`, `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
$PY -m ruff format --check .
$PY -m ruff check .
$PY -m mypy
