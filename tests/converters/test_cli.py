"""Every ``converters.*`` command, run as a user runs it, answers bad input with exit code 2 and exactly one
stderr line ``converters.<name>: error: ...`` naming the file or value — and leaves nothing in ``--out``."""

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from converters.torch_reference.random_weights import random_torch_model

ROOT = Path(__file__).resolve().parents[2]


def run(module, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("JSPHERE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    torch.save(random_torch_model("sfnet4").state_dict(), d / "sfnet4.pth")
    data = (d / "sfnet4.pth").read_bytes()
    (d / "truncated.pth").write_bytes(data[: len(data) // 2])
    (d / "text.pth").write_text("this is a README, not weights\n")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with zipfile.ZipFile(d / "evil.pth", "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": Payload()}, protocol=2))
    return d


CASES = [
    ("converters.import_torch", ["--arch", "resnet9", "--backbone", "{d}/sfnet4.pth"], ["--arch", "resnet9"]),
    ("converters.import_torch", ["--arch", "iresnet18", "--backbone", "{d}/sfnet4.pth"],
     ["sfnet4.pth is not a iresnet18 state_dict", "fit: sfnet4"]),
    ("converters.import_torch", ["--backbone", "{d}/truncated.pth"], ["truncated.pth", "truncated"]),
    ("converters.import_torch", ["--backbone", "{d}/text.pth"], ["text.pth", "not a torch checkpoint"]),
    ("converters.import_torch", ["--backbone", "{d}/evil.pth"], ["evil.pth", "refusing to load", "system"]),
    ("converters.import_torch", ["--backbone", "{d}/sfnet4.pth", "--model-kwargs", "{scale"],
     ["--model-kwargs", "not valid JSON"]),
    ("converters.export_torch", ["--ckpt", "{d}/no_such_ckpt", "--layout", "insightface", "--out", "{d}/x.pth"],
     ["no_such_ckpt"]),
    ("converters.check", ["--pth", "{d}/text.pth"], ["text.pth", "not a torch checkpoint"]),
    ("converters.check", ["--pth", "{d}/sfnet4.pth", "--arch", "vit_t"], ["--arch", "vit_t"]),
    ("converters.import_mxnet", ["--params", "{d}/text.pth"], ["text.pth is not an MXNet .params file"]),
    ("converters.import_onnx", ["--onnx", "{d}/truncated.pth"], ["truncated.pth is not a readable ONNX model"]),
    ("converters.export_onnx", ["--ckpt", "{d}/no_such_ckpt", "--out", "{d}/x.onnx"], ["no_such_ckpt"]),
]


@pytest.mark.parametrize(("command", "args", "fragments"), CASES, ids=[f"{c[0]}:{i}" for i, c in enumerate(CASES)])
def test_bad_input_ends_in_one_error_line_and_exit_code_2(files, command, args, fragments):
    out = files / f"out_{command}"
    needs_out = command in ("converters.import_torch", "converters.import_mxnet", "converters.import_onnx")
    argv = [a.replace("{d}", str(files)) for a in args] + (["--out", out] if needs_out else [])
    proc = run(command, *argv)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "pwned" not in proc.stdout
    assert not out.exists() and not list(files.glob(f".{out.name}*"))
