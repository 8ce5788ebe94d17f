"""Every flag of every ``converters.*`` command that takes a number, a path or a name, given a bad value: one stderr
line ``converters.<name>: error: ...`` naming the flag or file at fault, exit code 2, nothing written — run
in-process (``jsphere.cli.run``, as ``__main__`` runs it), one table row per case.

The files are built as the real ones are laid out: a torch-saved sfnet4 state_dict, OpenSphere v2's
``model_<step>.pth`` with its head, MTCNN's ``.npy`` weights, an MXNet ``.params`` list, a torch.onnx export, a
converted checkpoint; the hostile ones change one field of them (a ``.npy`` header claiming 10^18 elements, an
MXNet array with a negative dimension).
"""

import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from converters import check, export_onnx, export_torch, import_mtcnn, import_mxnet, import_onnx, import_torch
from converters.pth_format import pth_import
from converters.torch_reference.random_weights import random_torch_model
from jsphere import cli
from tests.converters.mxnet_zoo import write_params
from tests.detect import fixtures as mtcnn_fixtures

MAINS = {"converters.import_torch": import_torch.main, "converters.import_mxnet": import_mxnet.main,
         "converters.import_onnx": import_onnx.main, "converters.import_mtcnn": import_mtcnn.main,
         "converters.export_torch": export_torch.main, "converters.export_onnx": export_onnx.main,
         "converters.check": check.main}


def _npy_claiming(path: Path, shape: tuple[int, ...]) -> None:
    """A float32 ``.npy`` whose header claims ``shape`` over 64 bytes of data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(bytes(64))


def _params_with_a_negative_dimension(path: Path) -> None:
    """``mx.nd.save``'s layout with array 0's first dimension written as -4 (its 16 float32 values follow)."""
    write_params(path, {"arg:conv0_weight": np.ones((4, 4), np.float32)})
    data = bytearray(path.read_bytes())
    shape_at = 24 + 8 + 4  # list header, count, array magic + storage type, ndim
    assert struct.unpack_from("<i", data, shape_at - 4)[0] == 2
    struct.pack_into("<q", data, shape_at, -4)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("flags")
    sd = random_torch_model("sfnet4_bn").state_dict()  # 32-d, no sfnet4_deprecated twin
    torch.save(sd, d / "sfnet4.pth")
    torch.save({"backbone": sd, "head": {"w": torch.randn(7, 32)}}, d / "model_100.pth")  # OpenSphere v2, 7 classes
    (d / "text.pth").write_text("not weights\n")
    (d / "full").mkdir()
    (d / "full" / "keep.txt").write_text("the user's file\n")
    pth_import.import_checkpoint("auto", str(d / "sfnet4.pth"), str(d / "ckpt"))
    mtcnn_fixtures.write_npy(mtcnn_fixtures.opensphere_nets(seed=0), d / "mtcnn")
    mtcnn_fixtures.write_npy(mtcnn_fixtures.opensphere_nets(seed=0), d / "huge_npy")
    _npy_claiming(d / "huge_npy" / "pnet.npy", (10**18,))
    _params_with_a_negative_dimension(d / "negative-0000.params")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(random_torch_model("sfnet4").eval(), (torch.zeros(1, 3, 112, 112),), str(d / "m.onnx"),
                          dynamo=False, opset_version=13)
    return d


NEW = "{d}/new"  # a path free to write
CASES = [
    # import_torch: --backbone, --arch, --model-kwargs, --head, --head-name, --head-hparams, --embed-dim,
    # --num-classes, --out, --input-convention
    ("converters.import_torch", ["--backbone", "{d}/nothing.pth", "--out", NEW], ["nothing.pth does not exist"]),
    ("converters.import_torch", ["--backbone", "{d}/text.pth", "--out", NEW], ["text.pth", "not a torch checkpoint"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--arch", "resnet9", "--out", NEW],
     ["--arch", "resnet9"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--model-kwargs", "[1]", "--out", NEW],
     ["--model-kwargs must be a JSON object"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--model-kwargs", '{"depth": 3}', "--out", NEW],
     ["cannot build sfnet4_bn", '"depth": 3']),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--head", "{d}/nohead.pth", "--out", NEW],
     ["nohead.pth does not exist"]),
    ("converters.import_torch", ["--backbone", "{d}/model_100.pth", "--head-name", "nohead", "--out", NEW],
     ["unknown head 'nohead'"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--head-hparams", '{"m": 0.5}', "--out", NEW],
     ["--head-hparams given", "sfnet4.pth holds no head", "--head head_<iter>.pth"]),
    ("converters.import_torch", ["--backbone", "{d}/model_100.pth", "--head-hparams", '{"m": 0.5}', "--out", NEW],
     ["--head-hparams given without --head-name", "sphereface2"]),
    ("converters.import_torch", ["--backbone", "{d}/model_100.pth", "--head-name", "cosface", "--head-hparams",
                                 '{"bogus": 1}', "--out", NEW], ["head 'cosface': unknown hyper-parameter(s) bogus"]),
    ("converters.import_torch", ["--backbone", "{d}/model_100.pth", "--head-hparams", "{m:", "--out", NEW],
     ["--head-hparams", "not valid JSON"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--embed-dim", "0", "--out", NEW],
     ["--embed-dim 0: must be >= 1"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--embed-dim", "x", "--out", NEW],
     ["--embed-dim", "invalid int value"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--embed-dim", "128", "--out", NEW],
     ["--embed-dim 128", "sfnet4.pth holds a 32-d embedding"]),
    ("converters.import_torch", ["--backbone", "{d}/model_100.pth", "--head-name", "cosface", "--num-classes", "-1",
                                 "--out", NEW], ["--num-classes -1: must be >= 1"]),
    ("converters.import_torch", ["--backbone", "{d}/model_100.pth", "--head-name", "cosface", "--num-classes", "8",
                                 "--out", NEW], ["the head has 7 classes but --num-classes is 8"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--num-classes", "7", "--out", NEW],
     ["--num-classes given", "holds no head"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--out", "{d}/full"],
     ["--out {d}/full: already exists and is not empty", "--overwrite"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--out", "{d}/text.pth"],
     ["--out {d}/text.pth: is a file"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--out", ""], ["--out is empty"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--input-convention", "yuv", "--out", NEW],
     ["--input-convention 'yuv'", "rgb, bgr, imagenet"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--input-convention", '{"alignment": "dlib"}',
                                 "--out", NEW], ["--input-convention", "alignment must be one of arcface, opensphere"]),
    # import_mxnet: --params, --symbol, --arch, --model-kwargs, --out
    ("converters.import_mxnet", ["--params", "{d}/nothing-0000.params", "--out", NEW],
     ["nothing-0000.params does not exist"]),
    ("converters.import_mxnet", ["--params", "{d}/text.pth", "--out", NEW], ["text.pth is not an MXNet .params file"]),
    ("converters.import_mxnet", ["--params", "{d}/negative-0000.params", "--out", NEW],
     ["negative-0000.params: array 0 has shape (-4, 4): a negative dimension"]),
    ("converters.import_mxnet", ["--params", "{d}/negative-0000.params", "--symbol", "{d}/none-symbol.json",
                                 "--out", NEW], ["none-symbol.json does not exist"]),
    ("converters.import_mxnet", ["--params", "{d}/negative-0000.params", "--arch", "resnet9", "--out", NEW],
     ["--arch", "resnet9"]),
    ("converters.import_mxnet", ["--params", "{d}/negative-0000.params", "--model-kwargs", "{", "--out", NEW],
     ["--model-kwargs", "not valid JSON"]),
    ("converters.import_mxnet", ["--params", "{d}/negative-0000.params", "--out", "{d}/full"],
     ["--out {d}/full: already exists and is not empty"]),
    # import_onnx: --onnx, --arch, --model-kwargs, --out, --input-convention
    ("converters.import_onnx", ["--onnx", "{d}/nothing.onnx", "--out", NEW], ["nothing.onnx does not exist"]),
    ("converters.import_onnx", ["--onnx", "{d}/text.pth", "--out", NEW], ["text.pth is not a readable ONNX model"]),
    ("converters.import_onnx", ["--onnx", "{d}/m.onnx", "--arch", "resnet9", "--out", NEW], ["--arch", "resnet9"]),
    ("converters.import_onnx", ["--onnx", "{d}/m.onnx", "--arch", "iresnet18", "--out", NEW],
     ["m.onnx", "the graph does not match iresnet18"]),
    ("converters.import_onnx", ["--onnx", "{d}/m.onnx", "--model-kwargs", '"x"', "--out", NEW],
     ["--model-kwargs must be a JSON object"]),
    ("converters.import_onnx", ["--onnx", "{d}/m.onnx", "--out", "{d}/full"], ["--out {d}/full: already exists"]),
    ("converters.import_onnx", ["--onnx", "{d}/m.onnx", "--input-convention", '{"std": [1, 0, 1]}', "--out", NEW],
     ["--input-convention", "std must be positive"]),
    # import_mtcnn: --weights, --out
    ("converters.import_mtcnn", ["--weights", "{d}/nothing", "--out", NEW], ["--weights", "nothing"]),
    ("converters.import_mtcnn", ["--weights", "{d}/text.pth", "--out", NEW], ["--weights", "not a folder"]),
    ("converters.import_mtcnn", ["--weights", "{d}/huge_npy", "--out", NEW],
     ["pnet.npy: the .npy header says shape (1000000000000000000,) of float32", "the file holds 64 bytes"]),
    ("converters.import_mtcnn", ["--weights", "{d}/mtcnn", "--out", "{d}/full"],
     ["--out {d}/full: already exists and is not empty", "--overwrite"]),
    # export_torch: --ckpt, --layout, --out, --step
    ("converters.export_torch", ["--ckpt", "{d}/no_ckpt", "--layout", "insightface", "--out", "{d}/x.pth"],
     ["no_ckpt"]),
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "caffe", "--out", "{d}/x.pth"],
     ["--layout", "invalid choice: 'caffe'"]),
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "insightface", "--out", "{d}/text.pth"],
     ["--out {d}/text.pth: already exists", "--overwrite"]),
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "insightface", "--out", "{d}/x.pth", "--step",
                                 "9"], ["no checkpoint for step 9"]),
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "insightface", "--out", "{d}/x.pth", "--step",
                                 "-1"], ["no checkpoint for step -1; available steps: [0]"]),
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "opensphere-v2", "--out", "{d}/x.pth", "--step",
                                 "one"], ["--step", "invalid int value"]),
    # export_onnx: --ckpt, --out, --step, --opset
    ("converters.export_onnx", ["--ckpt", "{d}/no_ckpt", "--out", "{d}/x.onnx"], ["no_ckpt"]),
    ("converters.export_onnx", ["--ckpt", "{d}/ckpt", "--out", "{d}/text.pth"], ["--out {d}/text.pth: already exists"]),
    ("converters.export_onnx", ["--ckpt", "{d}/ckpt", "--out", "{d}/x.onnx", "--step", "9"],
     ["no checkpoint for step 9"]),
    ("converters.export_onnx", ["--ckpt", "{d}/ckpt", "--out", "{d}/x.onnx", "--step", "-2"],
     ["no checkpoint for step -2; available steps: [0]"]),
    ("converters.export_onnx", ["--ckpt", "{d}/ckpt", "--out", "{d}/x.onnx", "--opset", "6"], ["--opset 6"]),
    ("converters.export_onnx", ["--ckpt", "{d}/ckpt", "--out", "{d}/x.onnx", "--opset", "x"],
     ["--opset", "invalid int value"]),
    # check: --pth, --arch, --model-kwargs, --images, --pairs, --data-dir, --input-convention
    ("converters.check", ["--pth", "{d}/nothing.pth"], ["nothing.pth does not exist"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--arch", "vit_t"], ["--arch", "vit_t"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--model-kwargs", "{"], ["--model-kwargs", "not valid JSON"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--images", "{d}/no_images"], ["--images", "no_images"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--pairs", "{d}/no_pairs.txt"], ["no_pairs.txt"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--data-dir", "{d}/no_dir"], ["--data-dir goes with --pairs"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--input-convention", "cmyk"], ["--input-convention 'cmyk'"]),
    # --import MODULE (a backbone of one's own) on every command that takes it
    ("converters.import_torch", ["--import", "{d}/none.py", "--backbone", "{d}/sfnet4.pth", "--out", NEW],
     ["--import {d}/none.py: no such file"]),
    ("converters.import_onnx", ["--import", "no_such_module_x", "--onnx", "{d}/m.onnx", "--out", NEW],
     ["--import no_such_module_x: "]),
    ("converters.export_onnx", ["--import", "{d}/none.py", "--ckpt", "{d}/ckpt", "--out", "{d}/new.onnx"],
     ["--import {d}/none.py: no such file"]),
    ("converters.export_torch", ["--import", "{d}/none.py", "--ckpt", "{d}/ckpt", "--out", "{d}/new.pth"],
     ["--import {d}/none.py: no such file"]),
]


@pytest.mark.parametrize(("command", "args", "fragments"), CASES,
                         ids=[f"{c[0].split('.')[1]}:{'_'.join(a for a in c[1] if a.startswith('--'))}:{i}"
                              for i, c in enumerate(CASES)])
def test_each_bad_flag_value_is_one_line_naming_it_and_nothing_is_written(d, capsys, command, args, fragments):
    argv = [a.replace("{d}", str(d)) for a in args]
    before = sorted(p.name for p in d.iterdir())
    with pytest.raises(SystemExit) as exit_:
        cli.run(command, MAINS[command], argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith(f"{command}: error: "), lines
    for fragment in fragments:
        assert fragment.replace("{d}", str(d)) in lines[0], lines[0]
    assert sorted(p.name for p in d.iterdir()) == before
    assert [p.name for p in (d / "full").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("command", MAINS)
def test_the_table_covers_every_flag_that_takes_a_value(capsys, command):
    """Every flag of the command's own --help that takes a value (a metavar follows it) has a bad-value row."""
    with pytest.raises(SystemExit):
        MAINS[command](["--help"])
    flags = set(re.findall(r"(--[a-z][\w-]*) (?=[A-Z{])", capsys.readouterr().out))
    covered = {a for c, args, _ in CASES if c == command for a in args if a.startswith("--")}
    assert flags and not flags - covered, f"{command}: add a bad value of {sorted(flags - covered)} to CASES"


def _unwritable_place() -> Path | None:
    """A folder this process cannot create files in (sysfs refuses even root), or None."""
    try:
        with open("/sys/.jsphere_probe", "wb"):
            pass
    except OSError:
        return Path("/sys")
    Path("/sys/.jsphere_probe").unlink()
    return None


@pytest.mark.parametrize(("command", "args"), [
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "insightface", "--out", "{ro}/backbone.pth"]),
    ("converters.export_torch", ["--ckpt", "{d}/ckpt", "--layout", "opensphere-v1", "--out", "{ro}/v1"]),
    ("converters.export_onnx", ["--ckpt", "{d}/ckpt", "--out", "{ro}/m.onnx", "--no-verify"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--out", "{ro}/imported"]),
])
def test_an_output_place_that_cannot_be_written_is_named_by_its_flag(d, capsys, command, args):
    """torch.save's own writer raised ``RuntimeError: ... open file failed`` (a traceback); the staged outputs
    named their hidden temporary path."""
    ro = _unwritable_place()
    if ro is None:
        pytest.skip("no unwritable folder on this machine")
    argv = [a.replace("{d}", str(d)).replace("{ro}", str(ro)) for a in args]
    with pytest.raises(SystemExit) as exit_:
        cli.run(command, MAINS[command], argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2
    assert line.startswith(f"{command}: error: --out {argv[-1] if command != 'converters.export_onnx' else argv[3]}: "
                           "cannot write there ("), line
