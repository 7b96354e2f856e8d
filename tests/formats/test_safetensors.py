"""The safetensors header reader on real files and on hostile bytes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from registry.errors import InvalidAdapter
from registry.formats.safetensors import parse_header, read_header_file


def _raw(header: dict[str, object], data: bytes = b"") -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def _parse(raw: bytes, cap: int = 1 << 20):  # type: ignore[no-untyped-def]
    return parse_header(lambda o, n: raw[o : o + n], len(raw), name="w", max_header_bytes=cap)


def test_reads_names_dtypes_shapes_of_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(
        {"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.bfloat16)},
        path,
        metadata={"format": "pt"},
    )
    h = read_header_file(path)
    assert {n: (t.dtype, t.shape) for n, t in h.tensors.items()} == {
        "a": ("F32", (2, 3)),
        "b": ("BF16", (4,)),
    }
    assert h.metadata == {"format": "pt"}
    raw = path.read_bytes()
    a = h.tensors["a"]
    assert raw[h.data_offset + a.start : h.data_offset + a.end] == bytes(24)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"1234", "shorter than 8 bytes"),
        (struct.pack("<Q", 1 << 40) + b"{}", "over the"),
        (struct.pack("<Q", 100) + b"{}", "past the end"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not valid JSON"),
        (_raw([1, 2]), "not a JSON object"),  # type: ignore[arg-type]
        (
            _raw({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
            "unknown dtype",
        ),
        (
            _raw({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
            "invalid shape",
        ),
        (_raw({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(4)), "need 8"),
        (_raw({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 40]}}, bytes(4)), "outside"),
        (
            _raw(
                {
                    "t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "u": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                bytes(12),
            ),
            "overlap",
        ),
        (
            _raw({"t": {"dtype": "F32", "shape": [1], "data_offsets": "x"}}, bytes(4)),
            "data_offsets",
        ),
    ],
)
def test_hostile_headers_are_refused(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidAdapter, match=words):
        _parse(raw)


def test_cap_is_configurable() -> None:
    raw = _raw({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"x")
    assert _parse(raw).tensors["t"].shape == (1,)
    with pytest.raises(InvalidAdapter, match="cap"):
        _parse(raw, cap=10)


def _huge_dims_header(dims: int = 600, digits: int = 4200) -> bytes:
    """The header from issue 12: hundreds of dimensions of thousands of digits each."""
    dim = "9" * digits
    body = (
        '{"t": {"dtype": "F32", "shape": [' + ",".join([dim] * dims) + '], "data_offsets": [0, 4]}}'
    ).encode()
    return struct.pack("<Q", len(body)) + body + bytes(4)


def test_a_shape_of_huge_numbers_is_refused_as_a_bad_header() -> None:
    # Before the bounds, math.prod ran for ~20 s and the message's str() of the product
    # raised ValueError (a 500 on the server); now the integer parser refuses it.
    raw = _huge_dims_header()
    assert len(raw) > 2_500_000
    with pytest.raises(InvalidAdapter, match="integer over 20 digits"):
        _parse(raw, cap=4 << 20)


def _one(shape: list[int], offsets: list[int], data: int = 4) -> bytes:
    return _raw({"t": {"dtype": "F32", "shape": shape, "data_offsets": offsets}}, bytes(data))


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_one([1] * 9, [0, 4]), "at most 8 dimensions"),
        (_one([2**40, 1], [0, 4]), "from 0 to 2"),
        (
            _one([2**20] * 8, [0, 4]),
            "has 4 bytes but",
        ),  # 2**160 elements: bounded, so cheap to compare
        (_one([10**19], [0, 4]), "from 0 to 2"),
        (_one([10**21], [0, 4]), "integer over 20 digits"),
        (_one([1], [0, 10**25]), "integer over 20 digits"),
        (_raw({"t" * 1025: {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"x"), "cap"),
        (
            _raw(
                {f"t{i}": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]} for i in range(3)}
            ),
            "over the 2 cap",
        ),
    ],
)
def test_shapes_and_counts_are_bounded_before_use(
    raw: bytes, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registry.formats.safetensors as st

    monkeypatch.setattr(st, "MAX_TENSORS", 2)
    with pytest.raises(InvalidAdapter, match=words):
        _parse(raw)


def test_eight_dimensions_and_empty_tensors_still_parse() -> None:
    raw = _raw(
        {
            "t": {"dtype": "U8", "shape": [1] * 8, "data_offsets": [0, 1]},
            "z": {"dtype": "F32", "shape": [2**39, 0], "data_offsets": [1, 1]},
        },
        b"x",
    )
    h = _parse(raw)
    assert h.tensors["t"].shape == (1,) * 8 and h.tensors["z"].numel == 0
