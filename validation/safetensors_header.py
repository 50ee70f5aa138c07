"""Read and validate safetensors headers without loading any tensor data.

A header is 8 bytes of little-endian length, then JSON: {name: {dtype, shape, data_offsets}}.
Truncated files, garbled headers, unknown dtypes and gaps or overlaps in the data all raise
SafetensorsError naming the file, tensor and offset.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from infra.errors import MissingFileError, SafetensorsError

SAFETENSORS_INDEX = "model.safetensors.index.json"
# safetensors dtype name -> bits per element (as the safetensors library defines them).
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}  # fmt: skip
_MAX_HEADER = 100_000_000  # the safetensors library's own limit


def read_json_object(path: Path, error: type[Exception]) -> dict[str, Any]:
    """The JSON object in `path`, or `error` saying why not and what to do."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is not valid JSON ({e}); re-save or re-download it") from e
    if not isinstance(data, dict):
        raise error(f"{path} holds a {type(data).__name__}, not a JSON object; re-save it")
    return data


class TensorInfo(BaseModel):
    """One tensor as its safetensors header describes it."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    nbytes: int


def read_safetensors(model_dir: Path) -> dict[str, TensorInfo]:
    """Every tensor of the (possibly sharded) checkpoint, from validated headers."""
    index_path = model_dir / SAFETENSORS_INDEX
    if not index_path.is_file():
        tensors: dict[str, TensorInfo] = {}
        for path in sorted(model_dir.glob("*.safetensors")):
            _merge(tensors, read_header(path))
        return tensors
    index = read_json_object(index_path, SafetensorsError)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise SafetensorsError(
            f"{index_path} has no weight_map; re-save the model with save_pretrained"
        )
    tensors = {}
    for shard in sorted(set(map(str, weight_map.values()))):
        if not (model_dir / shard).is_file():
            raise MissingFileError(
                f"shard {shard} named in {SAFETENSORS_INDEX} is missing; re-download the model"
            )
        _merge(tensors, read_header(model_dir / shard))
    for name, shard in weight_map.items():
        if name not in tensors or tensors[name].file != shard:
            raise SafetensorsError(
                f"{SAFETENSORS_INDEX} maps tensor {name} to {shard} but that shard does not "
                f"hold it; the index and shards come from different saves, re-download"
            )
    return tensors


def _merge(into: dict[str, TensorInfo], new: dict[str, TensorInfo]) -> None:
    for name, info in new.items():
        if name in into:
            raise SafetensorsError(
                f"tensor {name} appears in both {into[name].file} and {info.file}; remove the "
                f"stale file from the model directory"
            )
        into[name] = info


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse and validate one safetensors header without reading tensor data.

    Layout: 8-byte little-endian header length N, N bytes of JSON, then the data buffer.
    Every tensor's [begin, end) must tile the buffer exactly and match dtype x shape.
    """
    size = path.stat().st_size
    where = f"{path.name}"
    fix = "re-download or re-save the weights"
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{where} is {size} bytes, too short for a header; {fix}")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            raise SafetensorsError(
                f"{where} header length {n} exceeds the file ({size} bytes): garbled or "
                f"truncated header; {fix}"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where} header is not valid JSON ({e}); {fix}") from e
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where} header is not a JSON object; {fix}")
    header.pop("__metadata__", None)
    tensors = [_tensor(name, entry, path.name) for name, entry in header.items()]
    data_size = size - 8 - n
    expected_start = 0
    for t, (begin, end) in sorted(tensors, key=lambda te: (te[1], te[0].name)):
        if begin != expected_start:
            kind = "overlaps the previous tensor" if begin < expected_start else "leaves a gap"
            raise SafetensorsError(
                f"{where} tensor {t.name} starts at data offset {begin}, expected "
                f"{expected_start}: it {kind}; {fix}"
            )
        if end > data_size:
            raise SafetensorsError(
                f"{where} is truncated: tensor {t.name} ends at data offset {end} but the file "
                f"holds only {data_size} data bytes ({size} bytes in all); {fix}"
            )
        expected_start = end
    if expected_start != data_size:
        raise SafetensorsError(
            f"{where} is {size} bytes but its header accounts for {8 + n + expected_start} "
            f"({data_size - expected_start} trailing bytes); {fix}"
        )
    return {t.name: t for t, _ in tensors}


def _tensor(name: str, entry: object, file: str) -> tuple[TensorInfo, tuple[int, int]]:
    fix = "re-download or re-save the weights"
    if not isinstance(entry, dict):
        raise SafetensorsError(f"{file} header entry for {name} is not an object; {fix}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise SafetensorsError(
            f"{file} tensor {name} has unknown dtype {dtype!r} (known: {sorted(DTYPE_BITS)}); {fix}"
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise SafetensorsError(f"{file} tensor {name} has invalid shape {shape!r}; {fix}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise SafetensorsError(f"{file} tensor {name} has invalid data_offsets {offsets!r}; {fix}")
    bits = math.prod(shape) * DTYPE_BITS[str(dtype)]
    nbytes = offsets[1] - offsets[0]
    if bits % 8 or bits // 8 != nbytes:
        raise SafetensorsError(
            f"{file} tensor {name}: dtype {dtype} x shape {shape} is {bits / 8:g} bytes but "
            f"data_offsets {offsets} span {nbytes}; {fix}"
        )
    info = TensorInfo(name=name, dtype=str(dtype), shape=tuple(shape), file=file, nbytes=nbytes)
    return info, (offsets[0], offsets[1])
