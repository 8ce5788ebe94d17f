"""``examples/new_backbone.py`` runs as a researcher runs it, at tiny size, so it cannot rot: it registers its
backbone and PyTorch twin, trains, evaluates, exports to ``.pth`` and ONNX (onnxruntime agreeing with jsphere),
and the ONNX file reads back as its backbone."""

import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_new_backbone_example_trains_evaluates_and_exports(tmp_path):
    done = subprocess.run([sys.executable, "examples/new_backbone.py", "--workdir", str(tmp_path / "w"),
                           "--steps", "4"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert "the ONNX file reads back as tinycnn" in last, last
    assert float(re.search(r"min cosine ([0-9.]+)", last).group(1)) >= 0.99999, last
    assert "step 4" in done.stdout  # the evaluation table of the trained checkpoint
    state = torch.load(tmp_path / "w" / "tinycnn.pth", weights_only=True)
    assert list(state)[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
