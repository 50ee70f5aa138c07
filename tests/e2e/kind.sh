#!/usr/bin/env bash
# End-to-end test of the Kubernetes target on kind (Kubernetes in Docker), GPU-less.
#
# What it does, on a throwaway kind cluster (deleted at the end unless KEEP_CLUSTER=1):
#   1. creates the cluster, loads the cpu serving image twice (as v1 and v2 tags)
#   2. installs the Gateway API CRDs, the namespace, the API key Secret, RBAC and a Gateway
#   3. drives infra/targets/kubernetes.py with the cpu overlay through a release:
#      deploy v1 (stable) → /health through the Service → deploy v2 (canary) → weights 10, 50
#      → promote → a broken canary (image that cannot be pulled) → ImagePullError, cleaned
#      up: exactly one stable left, on 100 %
#   4. checks every step against the cluster with kubectl (labels, route weights, objects)
#
# It needs: kind, kubectl, a Docker engine, and a cpu serving image built beforehand:
#   python -m infra.image MODEL_DIR --flavor cpu        # prints the tag
#   CANARYFLOW_KIND_IMAGE=<that tag> tests/e2e/kind.sh
# Gateway API CRDs come from CANARYFLOW_GATEWAY_CRDS (a file or URL; default the upstream
# v1.3.0 standard-install.yaml). Without a Gateway controller the route is stored but not
# served: traffic checks go to the Services directly; the weights are checked on the route.
#
# Where something is missing it says what and exits 0 (skipped), so CI without kind passes.
set -euo pipefail

KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}
CLUSTER=${CANARYFLOW_KIND_CLUSTER:-canaryflow-e2e}
NAMESPACE=canaryflow
IMAGE=${CANARYFLOW_KIND_IMAGE:-}
CRDS=${CANARYFLOW_GATEWAY_CRDS:-https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}

skip() {
    echo "SKIP: $*"
    echo "(tests/e2e/kind.sh runs a full release on a local kind cluster; see its header)"
    exit 0
}

command -v "$KIND" >/dev/null 2>&1 || skip "kind is not installed ($KIND not on PATH): https://kind.sigs.k8s.io"
command -v "$KUBECTL" >/dev/null 2>&1 || skip "kubectl is not installed ($KUBECTL not on PATH)"
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || skip "no Docker engine answers (kind runs its nodes in Docker)"
[ -n "$IMAGE" ] || skip "CANARYFLOW_KIND_IMAGE is unset: build the cpu image (python -m infra.image MODEL_DIR --flavor cpu) and export its tag"
docker image inspect "$IMAGE" >/dev/null 2>&1 || skip "image $IMAGE is not in the local Docker engine"
[ -x "$PY" ] || skip "no project venv at $PY (run make setup)"

step() { echo; echo "== $*"; }
kc() { "$KUBECTL" --context "kind-$CLUSTER" "$@"; }

cleanup() {
    if [ "${KEEP_CLUSTER:-0}" != 1 ]; then "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step "cluster $CLUSTER"
"$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER" || "$KIND" create cluster --name "$CLUSTER" --wait 120s
V1=canaryflow/serving:kind-v1
V2=canaryflow/serving:kind-v2
docker tag "$IMAGE" "$V1"
docker tag "$IMAGE" "$V2"
"$KIND" load docker-image --name "$CLUSTER" "$V1" "$V2"

step "Gateway API CRDs, namespace, Secret, RBAC, Gateway"
kc apply --server-side -f "$CRDS"
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
kc -n "$NAMESPACE" create secret generic canaryflow-api-key \
    --from-literal=api-key="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" \
    --dry-run=client -o yaml | kc apply -f -
(cd "$ROOT" && "$PY" -m infra.k8s.render --overlay cpu --image "$V1" --model-name tiny-chat --model-version 0 --rbac) \
    | "$PY" -c 'import sys, yaml; print(yaml.safe_dump_all([d for d in yaml.safe_load_all(sys.stdin) if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]))' \
    | kc apply --server-side --field-manager canaryflow -f -
kc -n "$NAMESPACE" apply -f - <<'EOF'
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: canaryflow}
spec:
  gatewayClassName: canaryflow-e2e
  listeners: [{name: http, protocol: HTTP, port: 80}]
EOF

step "release through infra/targets/kubernetes.py"
cd "$ROOT"
CANARYFLOW_K8S_OVERLAY=cpu CANARYFLOW_K8S_CONTEXT="kind-$CLUSTER" \
CANARYFLOW_K8S_ROUTER_URL=http://gateway.invalid CANARYFLOW_K8S_DRAIN_S=2 \
V1="$V1" V2="$V2" PYTHONPATH="$ROOT" "$PY" - <<'EOF'
import os
from infra.errors import ImagePullError
from infra.targets import make_target
from infra.targets.base import Variant

def v(image: str, version: str) -> Variant:
    return Variant("canary", image, "tiny-chat", version, f"kind-e2e-{version}")

t = make_target("kubernetes")
assert t.deploy(v(os.environ["V1"], "1")).role == "stable"
assert t.deploy(v(os.environ["V2"], "2")).role == "canary"
for w in (10, 50):
    t.set_weights(w)
    assert t.status().canary_percent == w, t.status()
t.promote()
s = t.status()
assert s.settled and s.stable and s.stable.model_version == "2", s
try:
    t.deploy(v("canaryflow/serving:does-not-exist", "3"))
    raise SystemExit("a canary that cannot be pulled was deployed")
except ImagePullError as exc:
    print(f"expected: ImagePullError: {str(exc)[:160]}")
s = t.status()
assert s.settled and s.stable and s.stable.model_version == "2", s
print("release on kind: OK")
EOF

step "cluster state"
kc -n "$NAMESPACE" get deploy,svc,pdb,httproute -L canaryflow.io/role
[ "$(kc -n "$NAMESPACE" get deploy -o name | wc -l)" -eq 1 ] || { echo "FAIL: expected exactly one Deployment"; exit 1; }
kc -n "$NAMESPACE" get httproute canaryflow -o jsonpath='{.spec.rules[0].backendRefs[*].weight}' | grep -qx 100 \
    || { echo "FAIL: the route does not send 100 % to the stable"; exit 1; }
kc -n "$NAMESPACE" run probe --rm -i --restart=Never --image="$V1" --command -- \
    /opt/venv/bin/python -c "import urllib.request as u; print(u.urlopen('http://canaryflow-b:8000/health').status)" \
    | grep -q 200 || { echo "FAIL: the stable does not answer /health"; exit 1; }
echo "PASS: tests/e2e/kind.sh"
