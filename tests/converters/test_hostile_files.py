"""Crafted ``.pth`` (zip and legacy) and ``.safetensors`` files are refused in one line, before any storage is read
or allocated: views outside their storage, negative strides, element counts no file backs, compression bombs,
lying headers. Real files ``torch.save`` and safetensors write (shared storages, slices, transposes, fp16, bf16)
still load exactly as torch loads them."""

import json
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch

from converters import import_torch
from converters.pth_format import pth_file
from jsphere import cli
from tests.converters.hostile import Member, View, legacy_checkpoint, zeros_bomb, zip_checkpoint

ROOT = Path(__file__).resolve().parents[2]
PROG = "converters.import_torch"
FOUR = np.arange(4, dtype=np.float32).tobytes()  # a 16-byte storage


def refused(capsys, tmp_path: Path, backbone: Path) -> str:
    """The one stderr line ``import_torch`` answers ``backbone`` with (exit code 2, nothing written)."""
    with pytest.raises(SystemExit) as exit_:
        cli.run(PROG, import_torch.main, ["--backbone", str(backbone), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith(f"{PROG}: error: {backbone}: "), lines
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_a_400m_element_view_over_16_bytes_is_refused_by_the_command_not_a_segfault(tmp_path):
    bad = zip_checkpoint(tmp_path / "huge.pth", {"w": View("0", 4, (400_000_000,), (1,))}, {"0": FOUR})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("JSPHERE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", PROG, "--backbone", str(bad), "--out", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-2000:])
    assert lines[0] == (f"{PROG}: error: {bad}: a tensor over storage archive/data/0 (size (400000000,), stride (1,), "
                        "offset 0) reaches element 399999999, outside its storage of 4 float32 elements (16 bytes): "
                        "a crafted or corrupt file")


VIEWS = {  # name: (view over the 4-element storage "0", what the error line says)
    "negative stride": (View("0", 4, (4,), (-1,), offset=3), "has a negative stride (size (4,), stride (-1,)"),
    "huge stride": (View("0", 4, (4,), (1 << 20,)), "reaches element 3145728, outside its storage of 4 float32"),
    "huge offset": (View("0", 4, (4,), (1,), offset=1 << 40), "reaches element 1099511627779, outside its storage"),
    "negative offset": (View("0", 4, (2,), (1,), offset=-2), "has a negative size or offset"),
    "huge 2-d view": (View("0", 4, (1 << 29, 1 << 29), (1, 1)), "reaches element 1073741822, outside"),
    "size beyond any array": (View("0", 4, (0, 1 << 62), (1, 1)), "has size (0, 4611686018427387904): too large"),
    "sizes and strides disagree": (View("0", 4, (2, 2), (1,)), "has 2 sizes and 1 strides"),
    "broadcast of 400M elements": (View("0", 4, (400_000_000,), (0,)), "would take 1,600,000,000 bytes; only"),
    "unknown dtype": (View("0", 4, (4,), (1,), storage="ComplexFloatStorage"),
                      "storage type torch.ComplexFloatStorage is not supported"),
}


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("name", list(VIEWS))
def test_a_view_outside_its_storage_is_refused_in_one_line(tmp_path, capsys, fmt, name):
    view, message = VIEWS[name]
    write = zip_checkpoint if fmt == "zip" else legacy_checkpoint
    line = refused(capsys, tmp_path, write(tmp_path / f"{fmt}.pth", {"w": view}, {"0": FOUR}))
    assert message in line, line


def test_a_size_1_dimension_may_have_any_stride(tmp_path):
    ok = zip_checkpoint(tmp_path / "ok.pth", {"w": View("0", 4, (1, 4), (1 << 100, 1))}, {"0": FOUR})
    np.testing.assert_array_equal(pth_file.load(ok)["w"], np.arange(4, dtype=np.float32)[None])


def test_a_storage_member_that_inflates_to_gibs_is_refused_before_inflating(tmp_path, capsys):
    """The honest bomb: 3 MB of deflate that inflates to 3 GiB, as its records and the pickle both declare. It is
    refused from the central directory alone: nothing is inflated (its CRC is not even computed: never reached)."""
    stream, size = zeros_bomb(3 << 30)
    bad = zip_checkpoint(tmp_path / "bomb.pth", {"w": View("0", size // 4, (4,), (1,))},
                         {"0": Member("", stream, method=8, file_size=size, crc=0)})
    assert bad.stat().st_size < 4 << 20
    line = refused(capsys, tmp_path, bad)
    assert "its members inflate to 3,221,225,6" in line and "a compression bomb?" in line, line


def test_a_storage_member_larger_than_its_declared_storage_is_refused(tmp_path, capsys):
    stream, size = zeros_bomb(64 << 20)  # within the inflation bound, but the storage declares 4 elements
    bad = zip_checkpoint(tmp_path / "big.pth", {"w": View("0", 4, (4,), (1,))},
                         {"0": Member("", stream, method=8, file_size=size, crc=0)})
    line = refused(capsys, tmp_path, bad)
    assert "storage archive/data/0 declares 4 float32 elements (16 bytes) but its archive member inflates to " \
           "67,108,864 bytes" in line, line


def test_a_member_declaring_16_bytes_over_a_3_gib_stream_is_read_in_bounded_memory(tmp_path):
    """zipfile's read() inflates a whole compressed read at once; the reader asks for the declared bytes only, so
    the 3 GiB behind a 16-byte declaration are never inflated (Python's allocations peak far below 64 MiB)."""
    stream, _ = zeros_bomb(3 << 30)
    bad = zip_checkpoint(tmp_path / "liar.pth", {"w": View("0", 4, (4,), (1,))},
                         {"0": Member("", stream, method=8, file_size=16, crc=zlib.crc32(bytes(16)))})
    tracemalloc.start()
    try:
        state = pth_file.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(state["w"], np.zeros(4, np.float32))
    assert peak < 64 << 20, peak


def test_a_stored_member_declaring_gibs_and_unknown_compressions_are_refused(tmp_path, capsys):
    bad = zip_checkpoint(tmp_path / "liar.pth", {"w": View("0", 4, (4,), (1,))},
                         {"0": Member("", FOUR, method=0, file_size=3 << 30)})
    line = refused(capsys, tmp_path, bad)
    assert "stored (uncompressed) member archive/data/0 declares 3,221,225,472 bytes but holds 16" in line, line
    bad = zip_checkpoint(tmp_path / "bz2.pth", {"w": View("0", 4, (4,), (1,))},
                         {"0": Member("", FOUR, method=12, file_size=16)})
    assert "member archive/data/0 uses compression method 12" in refused(capsys, tmp_path, bad)


def test_legacy_storages_that_the_file_does_not_hold_are_refused(tmp_path, capsys):
    views = {"w": View("0", 4, (4,), (1,))}
    line = refused(capsys, tmp_path, legacy_checkpoint(tmp_path / "count.pth", views, {"0": FOUR},
                                                       counts={"0": 1 << 60}))
    assert "storage 0 holds 1,152,921,504,606,846,976 elements, the pickle declares 4" in line, line
    big = {"w": View("0", 1 << 30, (4,), (1,))}  # 4 GiB declared and counted, 16 bytes present
    line = refused(capsys, tmp_path, legacy_checkpoint(tmp_path / "short.pth", big, {"0": FOUR},
                                                       counts={"0": 1 << 30}))
    assert "storage 0 declares 4,294,967,296 bytes, only 16 remain in the file" in line, line
    data = legacy_checkpoint(tmp_path / "ok.pth", views, {"0": FOUR}).read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:-10])
    assert "storage 0 declares 16 bytes, only 6 remain" in refused(capsys, tmp_path, tmp_path / "cut.pth")


def _safetensors(path: Path, header: bytes | dict, data: bytes = b"", length: int | None = None) -> Path:
    raw = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


F32 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
SAFETENSORS = {  # name: (header, data, declared header length, what the error line says)
    "header too large": (b"{}", b"", 1 << 40, "header of 1,099,511,627,776 bytes, more than the format's 100,000,000"),
    "header past the end": (b"{}", b"", 1000, "the header length 1,000 runs past the end of the 10-byte file"),
    "non-UTF-8 header": (b'{"\xff\xfe": 1}', b"", None, "the header is not UTF-8 (byte 2)"),
    "non-JSON header": (b"{weights: 1}", b"", None, "the header is not valid JSON"),
    "not an object": (b"[1, 2]", b"", None, "the header is a JSON list, not an object"),
    "unknown dtype": ({"w": {**F32, "dtype": "Q7"}}, FOUR, None, "tensor 'w' has unknown dtype 'Q7'"),
    "huge shape": ({"w": {**F32, "shape": [1 << 40, 1 << 40]}}, FOUR, None,
                   "tensor 'w' has shape [1099511627776, 1099511627776]: too large for any array"),
    "shape larger than its span": ({"w": {**F32, "shape": [1 << 20]}}, FOUR, None,
                                   "needs 4,194,304 bytes, its data_offsets [0, 16] span 16"),
    "huge offsets": ({"w": {**F32, "shape": [1 << 59], "data_offsets": [0, 1 << 61]}}, FOUR, None,
                     "ends past the 16 bytes of data"),
    "negative offset": ({"w": {**F32, "data_offsets": [-16, 0]}}, FOUR, None, "not non-negative integers"),
    "overlapping tensors": ({"a": {**F32, "shape": [4], "data_offsets": [0, 16]},
                             "b": {**F32, "shape": [2], "data_offsets": [8, 16]}}, FOUR, None,
                            "tensor 'b' (data_offsets [8, 16]) overlaps the tensor before it"),
    "truncated data": ({"w": F32}, FOUR[:10], None, "ends past the 10 bytes of data: truncated"),
    "duplicate name": (b'{"w": 1, "w": 2}', b"", None, "key 'w' appears twice"),
}


@pytest.mark.parametrize("name", list(SAFETENSORS))
def test_a_malformed_safetensors_file_is_refused_in_one_line(tmp_path, capsys, name):
    header, data, length, message = SAFETENSORS[name]
    line = refused(capsys, tmp_path, _safetensors(tmp_path / "m.safetensors", header, data, length))
    assert message in line, line


def _torch_numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().numpy().astype(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


def _legitimate_state() -> dict:
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(10, 6, generator=g)
    return {
        "rows": shared[2:5], "column": shared[:, 3], "transposed": shared.t(), "whole": shared,
        "half": torch.randn(3, 4, generator=g).half(), "bf16": torch.randn(5, generator=g).bfloat16(),
        "long": torch.arange(7), "mask": torch.tensor([True, False, True]), "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3), "expanded": torch.randn(1, 3, generator=g).expand(4, 3),
        "nested": {"p": torch.nn.Parameter(torch.randn(2, 2, generator=g))}, "step": 5, "names": ["a", ("b", 1)],
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_real_torch_files_with_shared_storages_views_and_half_types_load_exactly_as_torch_loads_them(tmp_path,
                                                                                                   legacy):
    torch.save(_legitimate_state(), tmp_path / "m.pth", _use_new_zipfile_serialization=not legacy)
    expected = torch.load(tmp_path / "m.pth", weights_only=True)
    got = pth_file.load(tmp_path / "m.pth")
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            ours = got[key]
            assert ours.dtype == _torch_numpy(value).dtype and ours.shape == tuple(value.shape), key
            np.testing.assert_array_equal(ours, _torch_numpy(value))  # bit-exact copies: no arithmetic involved
    np.testing.assert_array_equal(got["nested"]["p"], expected["nested"]["p"].detach().numpy())
    assert got["step"] == 5 and got["names"] == ["a", ("b", 1)]


def test_real_safetensors_files_load_exactly(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone().contiguous() for k, v in _legitimate_state().items() if isinstance(v, torch.Tensor)}
    save_file(state, str(tmp_path / "m.safetensors"))
    got = pth_file.load(tmp_path / "m.safetensors")
    assert set(got) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(got[key], _torch_numpy(value))
        assert got[key].dtype == _torch_numpy(value).dtype


def test_a_malicious_pickle_in_a_legacy_file_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for part in ("magic", "object"):
        evil = legacy_checkpoint(tmp_path / "evil.pth", {"w": View("0", 4, (4,), (1,))}, {"0": FOUR},
                                 replace={part: pickle.dumps({"w": Payload()}, protocol=2)})
        line = refused(capsys, tmp_path, evil)
        assert "refusing to load io.open" in line, (part, line)
        assert not marker.exists()
