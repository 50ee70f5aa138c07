"""prefect.yaml's parameters (deployment defaults and trigger parameters) validate against their
flow's spec models, and a bad parameter to a deployment is refused before the flow body runs.

A deployment run's parameters are checked twice, both before any task:
1. by the Prefect server when the run is created (`prefect deployment run`, an automation),
   against the deployment's JSON schema (`enforce_parameter_schema`, on by default): wrong
   types, bounds, unknown fields → HTTP 409, no flow run at all;
2. by `Flow.validate_parameters` when the run starts (pydantic: the spec models' own
   validators too, e.g. steps that must increase) → the run fails, no task has run.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.exceptions import ParameterTypeError, PrefectHTTPStatusError
from prefect.testing.utilities import prefect_test_harness
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools import ValidationError as SchemaError
from prefect.utilities.schema_tools import validate

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
NAMES = [d["name"] for d in DEPLOYMENTS]
# What the triggers' events carry (infra/githook/event.py, infra/monitor/drift_watch.py).
PAYLOADS = {
    "canaryflow.git.push": {"repo": "/srv/git/app.git", "ref": "refs/heads/main",
                            "sha": "1a2b3c4d", "spec": "release.yaml"},
    "canaryflow.drift.detected": {"model": "tiny-chat", "champion_version": "2",
                                  "drift_share": 0.75, "drifted_columns": ["prompt_len"]},
}  # fmt: skip
URI = "models:/tiny-chat@challenger"
# Per flow: (parameters the JSON schema already refuses, parameters only pydantic refuses).
BAD: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "release": ({"spec": {"model": URI, "load": {"users": 0}}},
                {"spec": {"model": URI, "canary": {"steps": [50, 10]}}}),
    "drift-check": ({"spec": {"window_s": -1}}, {"spec": {"window_s": float("inf")}}),
    "retrain": ({"spec": {"model_nmae": "tiny-chat"}},
                {"spec": {"release_spec": {"canary": {"steps": [50, 10]}}}}),
}  # fmt: skip


def flow_of(deployment: dict[str, Any]) -> Flow[..., Any]:
    path, name = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    return flow


def schema_of(flow: Flow[..., Any]) -> dict[str, Any]:
    """The schema `prefect deploy` stores and the server enforces."""
    return parameter_schema(flow.fn).model_dump_for_openapi()


def render(parameters: dict[str, Any], name: str, payload: dict[str, Any]) -> Any:
    """A trigger's parameters as the Prefect server renders them for an event `name`
    (prefect.server.events.actions.RunDeployment: v1 templates wrapped in `| tojson`, then
    hydrated with the event in the Jinja context): a template Prefect cannot render (an
    event field that is no JSON value, e.g. the UUID `event.id`) fails here as it fails
    the automation."""
    from prefect.server.events.actions import RunDeployment
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    params = copy.deepcopy(parameters)
    RunDeployment._upgrade_v1_templates(params)
    event = ReceivedEvent(event=name, resource={"prefect.resource.id": "canaryflow.x.y"},
                          payload=payload, occurred=datetime.now(UTC), id=uuid4())  # fmt: skip
    context = HydrationContext(raise_on_error=True, render_jinja=True,
                               jinja_context={"event": event, "events": [event]})  # fmt: skip
    rendered = hydrate(params, context)
    assert isinstance(rendered, dict), rendered
    return rendered


def test_every_deployment_runs_a_flow_of_this_repo_and_enforces_its_schema() -> None:
    assert set(NAMES) >= {"release", "drift-check", "retrain", "release-k8s"}
    for dep in DEPLOYMENTS:
        flow_of(dep)
        assert dep.get("enforce_parameter_schema", True) is not False, dep["name"]


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=NAMES)
def test_deployment_parameters_validate_against_the_flow(dep: dict[str, Any]) -> None:
    flow = flow_of(dep)
    params = dep.get("parameters") or {}
    validate(params, schema_of(flow), raise_on_error=True)
    flow.validate_parameters(params)  # the spec models, with every validator


@pytest.mark.parametrize("dep", [d for d in DEPLOYMENTS if d.get("triggers")],
                         ids=[d["name"] for d in DEPLOYMENTS if d.get("triggers")])  # fmt: skip
def test_trigger_parameters_validate_once_the_event_fills_them(dep: dict[str, Any]) -> None:
    flow = flow_of(dep)
    for trigger in dep["triggers"]:
        (event,) = trigger["expect"]
        filled = render(trigger["parameters"], event, PAYLOADS[event])
        params = {**(dep.get("parameters") or {}), **filled}
        validate(params, schema_of(flow), raise_on_error=True)
        checked = flow.validate_parameters(params)
        if flow.name == "release":  # exactly one of spec and git (tasks.release_steps.load_spec)
            assert (checked["spec"] is None) != (checked["git"] is None), trigger["name"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_parameters_are_refused_by_the_schema_or_the_flow(name: str) -> None:
    flow = flow_of(next(d for d in DEPLOYMENTS if d["name"] == name))
    schema_bad, model_bad = BAD[name]
    with pytest.raises(SchemaError, match=r"spec"):
        validate(schema_bad, schema_of(flow), raise_on_error=True)
    for bad in (schema_bad, model_bad):
        with pytest.raises(ParameterTypeError, match=r"spec\."):
            flow.validate_parameters(bad)


# --- on a real (temporary) Prefect server ------------------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_server_refuses_a_run_with_a_bad_parameter(harness: None, name: str) -> None:
    """What `prefect deployment run NAME --params …` meets: a 409 and no flow run."""
    dep = next(d for d in DEPLOYMENTS if d["name"] == name)
    flow = flow_of(dep)
    with get_client(sync_client=True) as client:
        dep_id = client.create_deployment(
            flow_id=client.create_flow(flow), name=f"{name}-params",
            parameters=dep.get("parameters") or {}, entrypoint=dep["entrypoint"],
            parameter_openapi_schema=schema_of(flow), enforce_parameter_schema=True,
        )  # fmt: skip
        before = len(client.read_flow_runs())
        with pytest.raises(PrefectHTTPStatusError, match="409") as refused:
            client.create_flow_run_from_deployment(dep_id, parameters=BAD[name][0])
        assert "spec" in json.dumps(refused.value.response.json())
        assert len(client.read_flow_runs()) == before


@pytest.mark.parametrize("name", ["drift-check", "retrain"])
def test_a_flow_run_with_a_bad_spec_fails_before_any_task(harness: None, name: str) -> None:
    flow = flow_of(next(d for d in DEPLOYMENTS if d["name"] == name))
    with pytest.raises(ParameterTypeError, match=r"spec\."):
        flow(**BAD[name][1])
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.state and r.state.is_failed()]
        flow_id = client.read_flow_by_name(flow.name).id
        (failed,) = [r for r in runs if r.flow_id == flow_id]
        assert "validation of flow parameters failed" in (failed.state.message or "").lower()
        assert all(t.flow_run_id != failed.id for t in client.read_task_runs())
