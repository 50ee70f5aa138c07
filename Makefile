# canaryflow: the two commands a newcomer types are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export DOCKER_HOST ?= unix:///run/canaryflow-docker.sock
export PYTHONPATH := $(CURDIR)
export MLFLOW_DISABLE_TELEMETRY := true
export CANARYFLOW_SERVING_PYTHON ?= $(CURDIR)/.venv-serving/bin/python
PY := $(CURDIR)/.venv/bin/python

.PHONY: help setup check test test-unit demo deploy bench clean image services services-stop status

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## environments, Docker engine, base image (idempotent; seconds when done)
	@infra/bootstrap/setup.sh

check: setup  ## ruff + mypy --strict, exactly as CI runs them
	@infra/bootstrap/check.sh

# The unit tier runs on two workers (pytest-xdist): it is pure CPU and independent per test,
# so that halves it on 2 cores. The e2e and integration tiers run serially: they measure
# latencies and start servers, and two at once would share the cores they measure.
test: setup  ## lint, types, then every test tier (unit on 2 workers, then e2e and integration)
	@infra/bootstrap/check.sh
	@rc=0; \
	  $(PY) -m pytest tests/unit -p no:cacheprovider -n 2 --durations=10 || rc=$$?; \
	  $(PY) -m pytest tests/e2e tests/integration -p no:cacheprovider --durations=40 || rc=$$?; \
	  exit $$rc

test-unit: setup  ## the fast tier only
	$(PY) -m pytest tests/unit -q -n 2

demo: setup  ## the demo: v1 → v2 promote → bad v3 rollback → drift → retrain → release; extract-json (ONLY=extract-json: that part alone)
	CANARYFLOW_DEMO_RESET=$(RESET) CANARYFLOW_DEMO_ONLY=$(ONLY) $(PY) -m infra.demo

bench: setup  ## benchmarks side by side (bench/RESULTS.md); ONLY=name,name QUICK=1
	$(PY) -m bench $(if $(ONLY),--only $(ONLY)) $(if $(QUICK),--quick)

image: setup  ## build + smoke-test the serving image: make image MODEL=dir
	$(PY) -m infra.image $(MODEL) --smoke

services: setup  ## start Prefect server + process worker + MLflow UI (idempotent)
	$(PY) -m infra.services start

deploy: services  ## register prefect.yaml's deployments (release, drift-check, retrain) + triggers
	$(PY) -m infra.services deploy

services-stop:  ## stop the services
	$(PY) -m infra.services stop

status:  ## what runs where
	$(PY) -m infra.services status

clean:  ## remove run state of this checkout (not the cached environments)
	rm -rf .cache runs mlruns mlflow.db
