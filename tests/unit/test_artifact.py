"""check_artifact against real model directories, each broken on disk the way it breaks in life."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.errors import (
    ChecksumMismatchError,
    ConfigError,
    MissingFileError,
    SafetensorsError,
    TokenizerError,
    UnsupportedModelError,
)
from tests.fixtures import broken
from validation import manifest
from validation.artifact import SUPPORTED_ARCHITECTURES, check_artifact


def test_demo_model_passes_with_a_full_report(untrained_model: Path) -> None:
    report = check_artifact(untrained_model, "cpu")

    config = json.loads((untrained_model / "config.json").read_text())
    assert report.architecture == "LlamaForCausalLM"
    assert report.head_dim == 64
    assert report.shape.num_layers == config["num_hidden_layers"]
    assert report.tensor_dtypes == ["F32"]
    assert report.weight_bytes == 4 * report.num_params
    assert report.shapes_checked
    assert report.safetensors_files == ["model.safetensors"]
    assert report.chat_template_source == "chat_template.jinja"
    assert report.tokenizer_vocab_size <= config["vocab_size"]
    assert "golden.jsonl" in report.files
    assert report.manifest_digest is None


def test_chat_template_inside_tokenizer_config_is_accepted(untrained_model: Path) -> None:
    broken.move_template_into_tokenizer_config(untrained_model)

    assert check_artifact(untrained_model, "cpu").chat_template_source == "tokenizer_config.json"


def test_sharded_checkpoint_passes(untrained_model: Path) -> None:
    files = broken.shard(untrained_model)

    report = check_artifact(untrained_model, "cpu")

    assert report.safetensors_files == files
    assert report.shapes_checked


def test_missing_shard_is_named(untrained_model: Path) -> None:
    files = broken.shard(untrained_model)
    (untrained_model / files[1]).unlink()

    with pytest.raises(MissingFileError, match=files[1]):
        check_artifact(untrained_model, "cpu")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("config.json", "config.json"),
        ("tokenizer.json", "tokenizer.json"),
        ("tokenizer_config.json", "tokenizer_config.json"),
        ("generation_config.json", "generation_config.json"),
        ("model.safetensors", r"\*\.safetensors"),
    ],
)
def test_missing_required_file(untrained_model: Path, name: str, expected: str) -> None:
    (untrained_model / name).unlink()

    with pytest.raises(MissingFileError, match=expected) as e:
        check_artifact(untrained_model, "cpu")
    assert "save_pretrained" in str(e.value)  # says what to do


def test_unparsable_config(untrained_model: Path) -> None:
    (untrained_model / "config.json").write_text('{"architectures": ["LlamaForCausalLM"],')

    with pytest.raises(ConfigError, match=r"config\.json is not valid JSON"):
        check_artifact(untrained_model, "cpu")


def test_config_without_heads(untrained_model: Path) -> None:
    broken.edit_json(untrained_model / "config.json", lambda c: c.pop("num_attention_heads"))

    with pytest.raises(ConfigError, match="num_attention_heads"):
        check_artifact(untrained_model, "cpu")


def test_unparsable_generation_config(untrained_model: Path) -> None:
    (untrained_model / "generation_config.json").write_text("not json")

    with pytest.raises(ConfigError, match=r"generation_config\.json"):
        check_artifact(untrained_model, "gpu")


def test_unsupported_architecture(untrained_model: Path) -> None:
    broken.set_config(untrained_model, architectures=["MyFancyForCausalLM"])
    assert "MyFancyForCausalLM" not in SUPPORTED_ARCHITECTURES

    with pytest.raises(UnsupportedModelError, match="MyFancyForCausalLM") as e:
        check_artifact(untrained_model, "gpu")
    assert "LlamaForCausalLM" in str(e.value)  # lists what is supported


def test_head_dim_16_is_refused_on_cpu_only(untrained_model: Path, tmp_path: Path) -> None:
    model = broken.tiny_llama(tmp_path / "hd16", like=untrained_model, hidden=32, heads=2)

    with pytest.raises(UnsupportedModelError, match="head_dim 16") as e:
        check_artifact(model, "cpu")
    assert "64" in str(e.value)  # names the supported set
    assert check_artifact(model, "gpu").head_dim == 16


def test_tokenizer_json_does_not_load(untrained_model: Path) -> None:
    (untrained_model / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')

    with pytest.raises(TokenizerError, match=r"tokenizer\.json does not load"):
        check_artifact(untrained_model, "cpu")


def test_unparsable_tokenizer_config(untrained_model: Path) -> None:
    (untrained_model / "tokenizer_config.json").write_text("{")

    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json is not valid JSON"):
        check_artifact(untrained_model, "cpu")


def test_no_chat_template_anywhere(untrained_model: Path) -> None:
    broken.remove_chat_template(untrained_model)

    with pytest.raises(TokenizerError, match="no chat template"):
        check_artifact(untrained_model, "cpu")


def test_chat_template_that_does_not_compile(untrained_model: Path) -> None:
    (untrained_model / "chat_template.jinja").write_text("{% for m in messages %}{{ m }}")

    with pytest.raises(TokenizerError, match="does not compile"):
        check_artifact(untrained_model, "cpu")


def test_chat_template_with_generation_block_compiles(untrained_model: Path) -> None:
    template = "{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}"
    (untrained_model / "chat_template.jinja").write_text(template + "{% endfor %}")

    check_artifact(untrained_model, "cpu")


def test_tokenizer_larger_than_embedding(untrained_model: Path) -> None:
    broken.set_config(untrained_model, vocab_size=10)

    with pytest.raises(TokenizerError, match="vocab_size is 10"):
        check_artifact(untrained_model, "cpu")


def test_truncated_safetensors(untrained_model: Path) -> None:
    broken.truncate(untrained_model / "model.safetensors", drop=1000)

    with pytest.raises(SafetensorsError, match=r"truncated: tensor \S+ ends at data offset"):
        check_artifact(untrained_model, "cpu")


def test_garbled_safetensors_header(untrained_model: Path) -> None:
    broken.garble_header(untrained_model / "model.safetensors")

    with pytest.raises(SafetensorsError, match="header is not valid JSON"):
        check_artifact(untrained_model, "cpu")


def test_header_length_beyond_the_file(untrained_model: Path) -> None:
    path = untrained_model / "model.safetensors"
    raw = path.read_bytes()
    path.write_bytes((len(raw) * 2).to_bytes(8, "little") + raw[8:])

    with pytest.raises(SafetensorsError, match="exceeds the file"):
        check_artifact(untrained_model, "cpu")


def test_trailing_bytes(untrained_model: Path) -> None:
    with (untrained_model / "model.safetensors").open("ab") as f:
        f.write(b"\0" * 16)

    with pytest.raises(SafetensorsError, match="16 trailing bytes"):
        check_artifact(untrained_model, "cpu")


def _first(header: dict[str, Any]) -> dict[str, Any]:
    name = min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])
    entry: dict[str, Any] = header[name]
    return entry


def test_unknown_dtype(untrained_model: Path) -> None:
    broken.rewrite_header(
        untrained_model / "model.safetensors", lambda h: _first(h).update(dtype="F33")
    )

    with pytest.raises(SafetensorsError, match="unknown dtype 'F33'"):
        check_artifact(untrained_model, "cpu")


def test_dtype_that_disagrees_with_byte_span(untrained_model: Path) -> None:
    broken.rewrite_header(
        untrained_model / "model.safetensors", lambda h: _first(h).update(dtype="F16")
    )

    with pytest.raises(SafetensorsError, match="dtype F16 x shape"):
        check_artifact(untrained_model, "cpu")


def test_overlapping_offsets(untrained_model: Path) -> None:
    def overlap(header: dict[str, Any]) -> None:
        entries = sorted(
            (e for k, e in header.items() if k != "__metadata__"), key=lambda e: e["data_offsets"]
        )
        entries[1]["data_offsets"] = [o - 4 for o in entries[1]["data_offsets"]]

    broken.rewrite_header(untrained_model / "model.safetensors", overlap)

    with pytest.raises(SafetensorsError, match="overlaps the previous tensor"):
        check_artifact(untrained_model, "cpu")


def test_config_hidden_size_disagrees_with_weights(untrained_model: Path) -> None:
    broken.set_config(untrained_model, hidden_size=256)

    with pytest.raises(SafetensorsError, match=r"embed_tokens\.weight .* has shape") as e:
        check_artifact(untrained_model, "cpu")
    assert "hidden_size 256" in str(e.value)


def test_config_intermediate_size_disagrees_with_weights(untrained_model: Path) -> None:
    broken.set_config(untrained_model, intermediate_size=100)

    with pytest.raises(SafetensorsError, match=r"layers\.0\.mlp\.gate_proj\.weight"):
        check_artifact(untrained_model, "cpu")


def test_untied_config_without_lm_head(untrained_model: Path) -> None:
    broken.set_config(untrained_model, tie_word_embeddings=False)

    with pytest.raises(SafetensorsError, match=r"lm_head\.weight .* is not in the checkpoint"):
        check_artifact(untrained_model, "cpu")


def test_manifest_verified_when_present(untrained_model: Path) -> None:
    digest = manifest.write(untrained_model)

    assert check_artifact(untrained_model, "cpu").manifest_digest == digest


def test_file_changed_after_manifest(untrained_model: Path) -> None:
    manifest.write(untrained_model)
    broken.edit_json(untrained_model / "generation_config.json", lambda c: c.update(top_k=5))

    with pytest.raises(ChecksumMismatchError, match=r"changed=\['generation_config\.json'\]"):
        check_artifact(untrained_model, "cpu")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        check_artifact(tmp_path / "nope", "cpu")
