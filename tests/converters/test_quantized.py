"""EdgeFace's int8 checkpoints (``edgeface_xs_q.pt``, ``edgeface_xxs_q.pt``: ``torch.quantization.quantize_dynamic``
of the model's Linear layers, saved as a state_dict) are refused naming what is unsupported, quantized tensors, with
advice that works: the README's dequantization, run here on a file of the same structure, gives a float file that
imports and computes what the float model with the dequantized weights computes."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from converters import import_torch
from converters.pth_format import pth_file
from converters.torch_reference.random_weights import images, normalised_nchw, random_torch_model
from jsphere import cli
from jsphere.inference import Embedder
from tests.converters.agreement import agree

ROOT = Path(__file__).resolve().parents[2]
PROG = "converters.import_torch"


def _quantized(model: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch announces the move of eager quantization to torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _refusal(capsys, path: Path, out: Path) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.run(PROG, import_torch.main, ["--backbone", str(path), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and not out.exists(), lines
    return lines[0]


def _readme_dequantization() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Quantized checkpoints**"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_an_int8_checkpoint_is_refused_as_quantized_and_the_readme_dequantization_imports(tmp_path, capsys,
                                                                                         monkeypatch):
    float_model = random_torch_model("sfnet4_bn", seed=4).eval()  # its fc is a Linear, as EdgeFace's layers are
    quantized = _quantized(float_model)
    state = quantized.state_dict()
    assert {"fc.scale", "fc.zero_point", "fc._packed_params.dtype", "fc._packed_params._packed_params"} <= set(state)
    assert state["fc._packed_params._packed_params"][0].dtype == torch.qint8  # EdgeFace's packed Linear weights
    torch.save(state, tmp_path / "edgeface_xxs_q.pt")
    line = _refusal(capsys, tmp_path / "edgeface_xxs_q.pt", tmp_path / "out")
    assert line.startswith(f"{PROG}: error: {tmp_path / 'edgeface_xxs_q.pt'}: holds quantized tensors (torch.qint8")
    assert "re-saving the file keeps them quantized" in line and "dequantize it with torch" in line
    assert "re-save its state_dict" not in line  # before: advice that gave the same error again
    # torch reads it (weights_only), and re-saving what it reads is refused the same way
    torch.save(torch.load(tmp_path / "edgeface_xxs_q.pt", weights_only=True), tmp_path / "resaved.pt")
    assert "holds quantized tensors" in _refusal(capsys, tmp_path / "resaved.pt", tmp_path / "out")

    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_dequantization(), "README.md", "exec"), {})
    floats = pth_file.load(tmp_path / "edgeface_xxs_float.pth")
    assert list(floats) == list(float_model.state_dict())  # the float model's keys, in its order
    assert import_torch.main(["--backbone", "edgeface_xxs_float.pth", "--out", "ckpt"]) == 0
    weight = state["fc._packed_params._packed_params"][0].dequantize()
    with torch.no_grad():
        float_model.fc.weight.copy_(weight)
        faces = images(2)
        theirs = float_model(torch.from_numpy(normalised_nchw(faces))).numpy()
    agree(Embedder.from_checkpoint(tmp_path / "ckpt", batch_size=2).embed(faces, flip="none"), theirs)
    np.testing.assert_array_equal(floats["fc.weight"], weight.numpy())


def test_per_channel_quantized_weights_are_named_too(tmp_path, capsys):
    """A statically quantized layer pickles its weight as a per-channel qint8 tensor (torch._utils._rebuild_qtensor)
    without the dtype entry first: still named as quantized, never as an unsafe global."""
    weight = torch.quantize_per_channel(torch.randn(4, 3), torch.rand(4) + 0.1, torch.zeros(4, dtype=torch.long), 0,
                                        torch.qint8)
    torch.save({"fc.weight": weight}, tmp_path / "static_q.pth")
    line = _refusal(capsys, tmp_path / "static_q.pth", tmp_path / "out")
    assert "holds quantized tensors (torch." in line and "refusing to load" not in line
