"""Offline schema checks of rendered manifests, pinned to one Kubernetes version.

    validate(doc)                      # raises ManifestError naming the object and the field
    validate_all(render_release(...))

Built-in kinds are checked by kubernetes-validate in strict mode (unknown fields are errors)
against its bundled schemas for K8S_VERSION. Custom resources are checked with jsonschema
against the vendored schemas in infra/k8s/schemas/ (Gateway API HTTPRoute v1, KServe
InferenceService v1beta1, Prometheus Operator ServiceMonitor v1): faithful subsets of the
CRDs' openAPIV3Schema, where embedded core types (a predictor's containers, volumes) refer
to the same bundled core schemas, so they are as strict as a Deployment's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
from referencing import Registry, Resource

from infra.errors import SpecError

K8S_VERSION = "1.34.0"
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS: dict[tuple[str, str], str] = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
}


class ManifestError(SpecError):
    """A rendered manifest does not match its schema (a bug in a base file or the renderer)."""


def _name(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


@functools.cache
def _core_definitions() -> Resource[Any]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = root / f"v{K8S_VERSION}-local-strict" / "_definitions.json"
    return Resource.from_contents(json.loads(path.read_text()))


@functools.cache
def _crd_validator(filename: str) -> Any:
    schema = json.loads((SCHEMAS / filename).read_text())
    registry: Registry[Any] = _core_definitions() @ Registry()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


def validate(doc: dict[str, Any]) -> None:
    """Raise ManifestError unless `doc` is valid for K8S_VERSION (or its vendored CRD)."""
    key = (str(doc.get("apiVersion")), str(doc.get("kind")))
    if key in CRD_SCHEMAS:
        errors = sorted(_crd_validator(CRD_SCHEMAS[key]).iter_errors(doc), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path)
            raise ManifestError(f"{_name(doc)} at {where or '.'}: {errors[0].message}")
        return
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise ManifestError(f"{_name(doc)} at {where or '.'}: {exc.message}") from exc
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise ManifestError(f"{_name(doc)}: no schema for {key} ({exc})") from exc


def validate_all(docs: Iterable[dict[str, Any]]) -> int:
    """Validate every document; the number checked."""
    count = 0
    for doc in docs:
        validate(doc)
        count += 1
    return count
