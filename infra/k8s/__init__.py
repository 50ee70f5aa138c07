"""Kubernetes manifests of the serving image: base YAML, typed overlays, renderer, schemas.

    from infra.k8s.values import load_overlay
    from infra.k8s.render import render_release
    from infra.k8s.validate import validate_all
    validate_all(render_release(load_overlay("gpu"), variant))

    python -m infra.k8s.render --overlay gpu --image IMAGE --model-version 1 --rbac \
        | kubectl apply --server-side --field-manager canaryflow -f -

base/       one variant's Deployment, Service, HPA, PDB, ServiceMonitor; the HTTPRoute; the
            KServe InferenceService alternative; RBAC for the pods and the release job
overlays/   values per cluster kind (gpu, cpu for kind, gpu-kserve)
schemas/    vendored JSON schemas of the custom resources (HTTPRoute, InferenceService,
            ServiceMonitor); built-in kinds use kubernetes-validate's bundled schemas
"""
