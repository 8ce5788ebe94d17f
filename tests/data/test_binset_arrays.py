"""insightface ``.bin`` sets whose images are numpy arrays (arcface_paddle's test data ``small_lfw.bin``: 20
JPEGs as the [n, 1] uint8 arrays ``cv2.imencode`` returned, 10 pair labels, pickled with protocol 3 by numpy 1) read
like the bytes form, through exactly the numpy reconstruction they need; anything else numpy can pickle is refused
before it runs and arrays whose state contradicts itself are refused before anything is allocated."""

import pickle

import cv2
import numpy as np
import pytest

from jsphere.data import binset


def _paddle_bin(path, count=20, numpy_module=b"numpy.core.multiarray"):
    """``pickle.dump((bins, issame_list), f)`` of ``cv2.imencode``'s arrays, written by numpy 1 as the real file."""
    rng = np.random.default_rng(0)
    jpegs = [cv2.imencode(".jpg", rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))[1].reshape(-1, 1)
             for _ in range(count)]
    data = pickle.dumps((jpegs, [True] * (count // 2)), protocol=3)
    data = data.replace(b"numpy._core.multiarray\n", numpy_module + b"\n")  # this numpy's name -> the file's
    path.write_bytes(data)
    return [j.tobytes() for j in jpegs]


@pytest.mark.parametrize("module", [b"numpy.core.multiarray", b"numpy._core.multiarray"])
def test_small_lfw_bin_of_uint8_arrays_reads_as_its_jpeg_bytes(tmp_path, module):
    """Before: "refusing to load numpy.core.multiarray._reconstruct ... not a valid (or not a safe) validation set"."""
    expected = _paddle_bin(tmp_path / "small_lfw.bin", numpy_module=module)
    assert module + b"\n_reconstruct" in (tmp_path / "small_lfw.bin").read_bytes()
    blobs, issame = binset.read_bin(tmp_path / "small_lfw.bin")
    assert blobs == expected and issame.tolist() == [True] * 10
    assert cv2.imdecode(np.frombuffer(blobs[0], np.uint8), cv2.IMREAD_COLOR).shape == (112, 112, 3)


def _arrays(*arrays, protocol=3):
    return pickle.dumps((list(arrays), [True] * (len(arrays) // 2)), protocol=protocol)


@pytest.mark.parametrize(("data", "match"), [
    (_arrays(np.zeros(4, np.float32), np.zeros(4, np.float32)), "an image array of dtype 'f4'"),
    (_arrays(np.zeros((2, 2, 2), np.uint8), np.zeros(8, np.uint8)), r"shape \(2, 2, 2\)"),
    (_arrays(np.zeros(4, object), np.zeros(4, object)), "dtype 'O8'"),
    (_arrays(np.uint8(3), np.uint8(4)), "refusing to load numpy.*scalar"),
    (_arrays(np.zeros(4, np.uint8), np.zeros(4, np.uint8), protocol=5), "refusing to load numpy.*_frombuffer"),
    (pickle.dumps(([np.ma.masked_array(np.zeros(2, np.uint8))] * 2, [True])), "refusing to load numpy.ma"),
])
def test_anything_but_a_uint8_vector_is_refused_before_it_runs(tmp_path, data, match):
    (tmp_path / "x.bin").write_bytes(data)
    with pytest.raises(binset.UnsafePickleError, match=match):
        binset.read_bin(tmp_path / "x.bin")


def test_an_array_claiming_more_bytes_than_it_holds_is_refused_without_allocating(tmp_path):
    data = _arrays(np.zeros(5, np.uint8), np.zeros(5, np.uint8))
    state = b"K\x01K\x05\x85"  # version 1, shape (5,)
    assert data.count(state) == 2
    (tmp_path / "x.bin").write_bytes(data.replace(state, b"K\x01J\x00\x00\x00\x40\x85", 1))  # shape (2**30,)
    with pytest.raises(binset.UnsafePickleError, match="an image array of 1073741824 bytes holding 5"):
        binset.read_bin(tmp_path / "x.bin")
