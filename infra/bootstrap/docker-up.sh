#!/usr/bin/env bash
# Start canaryflow's own Docker engine if none answers on its socket. Idempotent.
# Prints the DOCKER_HOST to use. Never touches a system-wide dockerd.
set -euo pipefail

STATE="${CANARYFLOW_STATE:-/var/lib/canaryflow}"
SOCK="${CANARYFLOW_DOCKER_SOCK:-/run/canaryflow-docker.sock}"
export DOCKER_HOST="unix://$SOCK"

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if answers; then echo "$DOCKER_HOST"; exit 0; fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: dockerd not found; install it with: apt-get install -y docker.io" >&2
  exit 1
fi

mkdir -p "$STATE/docker" "$STATE/docker-exec" "$STATE/log"
# A stale socket or pid file from a killed engine blocks the start.
if [ -f "$STATE/dockerd.pid" ] && ! kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
  rm -f "$STATE/dockerd.pid" "$SOCK"
fi
# 9>&-: setup.sh holds its lock on fd 9; a daemon that inherited it would hold the lock for
# as long as it runs, and every later `make setup` would wait on it forever.
setsid dockerd --host "$DOCKER_HOST" --data-root "$STATE/docker" --exec-root "$STATE/docker-exec" \
  --pidfile "$STATE/dockerd.pid" >>"$STATE/log/dockerd.log" 2>&1 < /dev/null 9>&- &

for _ in $(seq 1 120); do
  if answers; then echo "$DOCKER_HOST"; exit 0; fi
  sleep 0.5
done
echo "docker-up: engine did not answer on $SOCK within 60 s; see $STATE/log/dockerd.log" >&2
tail -n 20 "$STATE/log/dockerd.log" >&2 || true
exit 1
