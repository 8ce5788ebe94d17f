"""``converters.import_mtcnn``: OpenSphere's ``.npy`` and facenet-pytorch's ``.pt`` weight files (random weights in
the published layouts) into a detector checkpoint whose networks compute what the PyTorch ones do."""

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from converters import import_mtcnn
from converters.mtcnn_weights import mtcnn_import, npy_objects
from jsphere import cli
from jsphere.detect import Detector, weights
from tests.detect import fixtures


def _outputs_match(nets: dict, model, mode: str = "channel") -> None:
    """jsphere's three networks against the PyTorch ones on random inputs. float32 on both sides: outputs of
    order one, sums of at most ~1000 products, so rounding differences stay below 1e-5; a wrong permutation of
    a kernel or of the flatten order changes them by order one."""
    rng = np.random.default_rng(0)
    for name, shape in (("pnet", (2, 3, 31, 40)), ("rnet", (5, 3, 24, 24)), ("onet", (5, 3, 48, 48))):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        with torch.no_grad():
            ref = [t.numpy() for t in nets[name](torch.from_numpy(x))]
        got = [np.asarray(t) for t in getattr(model, name)(jnp.asarray(x.transpose(0, 2, 3, 1)))]
        if name == "pnet":
            got = [g.transpose(0, 3, 1, 2) for g in got]
        got[-1] = np.asarray(jax.nn.softmax(jnp.asarray(got[-1]), axis=1 if name == "pnet" else -1))
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, atol=2e-5)


def test_opensphere_npy_weights_compute_what_opensphere_nets_do(tmp_path):
    nets = fixtures.opensphere_nets(seed=0)
    folder = fixtures.write_npy(nets, tmp_path / "weights")
    assert np.load(folder / "rnet.npy", allow_pickle=True).shape == ()  # a 0-d object array, as OpenSphere's
    params, layout = mtcnn_import.convert(folder)
    assert layout == "opensphere"
    _outputs_match(nets, weights.to_model(params))


def test_facenet_pt_state_dicts_compute_what_facenet_nets_do(tmp_path):
    nets = fixtures.facenet_nets(seed=1)
    params, layout = mtcnn_import.convert(fixtures.write_pt(nets, tmp_path / "weights"))
    assert layout == "facenet"
    _outputs_match(nets, weights.to_model(params))


def test_cli_writes_the_default_location_that_the_detector_reads(tmp_path, monkeypatch, capsys):
    folder = fixtures.write_npy(fixtures.opensphere_nets(seed=2), tmp_path / "weights")
    monkeypatch.setenv(weights.ENV, str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="converters.import_mtcnn"):
        Detector.from_checkpoint()
    assert import_mtcnn.main(["--weights", str(folder)]) == 0
    assert "opensphere layout" in capsys.readouterr().err
    assert (tmp_path / "cache" / weights.FILENAME).exists()
    detector = Detector.from_checkpoint()
    np.testing.assert_array_equal(np.asarray(detector._state["pnet"]["conv1"]["bias"][...]),
                                  np.load(folder / "pnet.npy", allow_pickle=True)[()]["features.conv1.bias"])


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


def test_a_pickle_that_runs_code_is_refused_before_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = fixtures.write_npy(fixtures.opensphere_nets(seed=0), tmp_path / "weights")
    np.save(folder / "onet.npy", np.array({"features.conv1.weight": _Exploit()}, dtype=object), allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system|refusing to load nt.system"):
        mtcnn_import.convert(folder)
    assert not (tmp_path / "owned.txt").exists()
    with pytest.raises(SystemExit) as e:
        cli.run("converters.import_mtcnn", import_mtcnn.main, ["--weights", str(folder), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and not (tmp_path / "o").exists()


def test_bad_weight_folders_are_named(tmp_path):
    folder = fixtures.write_npy(fixtures.opensphere_nets(seed=0), tmp_path / "weights")
    (folder / "rnet.npy").unlink()
    with pytest.raises(FileNotFoundError, match="no rnet.npy"):
        mtcnn_import.convert(folder)
    fixtures.write_pt(fixtures.facenet_nets(seed=0), tmp_path / "pt")
    (tmp_path / "pt" / "rnet.pt").rename(folder / "rnet.pt")
    with pytest.raises(ValueError, match="different layouts"):
        mtcnn_import.convert(folder)
    folder = fixtures.write_npy(fixtures.opensphere_nets(seed=0), tmp_path / "again")
    state = np.load(folder / "pnet.npy", allow_pickle=True)[()]
    state["features.conv2.weight"] = state["features.conv2.weight"][:8]
    np.save(folder / "pnet.npy", state)
    with pytest.raises(ValueError, match=r"pnet.conv2.kernel has shape \(3, 3, 10, 8\)"):
        mtcnn_import.convert(folder)
    (folder / "pnet.npy").write_bytes((folder / "pnet.npy").read_bytes()[:300])
    with pytest.raises(ValueError, match="pnet.npy: corrupt pickled"):
        mtcnn_import.convert(folder)


def test_plain_npy_arrays_load_without_pickle(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(npy_objects.load(tmp_path / "a.npy"), np.arange(6).reshape(2, 3))
    np.save(tmp_path / "d.npy", {"w": np.ones((2, 2), ">f4")})
    assert npy_objects.load(tmp_path / "d.npy")["w"].dtype == np.dtype(">f4")
