"""A backbone of your own, end to end: register it, train it, evaluate it, export it to ``.pth`` and ONNX.

    python examples/new_backbone.py --workdir runs/tinycnn [--steps 40]

1. ``TinyCNN`` is the backbone: a ``jsphere.models.Backbone`` built from jsphere's PyTorch-semantics layers
   (``layers.conv``, ``layers.BatchNorm``, ``layers.linear``), registered by name with ``@models.register``.
2. ``TorchTinyCNN`` is its PyTorch twin: the same layers under the same attribute names (so its state_dict keys
   are the jsphere module paths), registered under the same name; the exporters fill it with trained weights.
3. ``main`` writes a small synthetic identity set, trains a few steps through the config path that
   ``python -m jsphere.main`` runs (validation included), evaluates the checkpoint, exports it with both
   exporters and reads the ONNX file back, where it is recognised as ``tinycnn``.

On the command line, a config file that imports this module trains it (``--config.model.name=tinycnn``), and the
converters take ``--import examples/new_backbone.py`` (or a module name) to know it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import torch
from flax import nnx
from torch import nn

from configs.base import get_base_config
from converters.onnx_format import onnx_export, onnx_import
from converters.pth_format import pth_export
from converters.torch_reference import backbones as torch_backbones
from jsphere import models, train
from jsphere.data import synthetic
from jsphere.eval.run import evaluate
from jsphere.models import layers
from jsphere.models.base import flatten_channel_major

NAME = "tinycnn"


@models.register(NAME)
class TinyCNN(models.Backbone):
    """Two stride-2 conv -> BN -> ReLU stages, then Linear + BatchNorm1d: [N, 112, 112, 3] -> [N, embed_dim]."""

    def __init__(self, *, embed_dim: int = 512, width: int = 8, dtype=jnp.float32, rngs: nnx.Rngs):
        self.embed_dim, self.dtype = embed_dim, dtype
        self.conv1 = layers.conv(3, width, 3, stride=2, padding=1, dtype=dtype, rngs=rngs)  # 112 -> 56
        self.bn1 = layers.BatchNorm(width, dtype=dtype)
        self.conv2 = layers.conv(width, 2 * width, 3, stride=4, padding=1, dtype=dtype, rngs=rngs)  # 56 -> 14
        self.bn2 = layers.BatchNorm(2 * width, dtype=dtype)
        self.fc = layers.linear(2 * width * 14 * 14, embed_dim, dtype=dtype, rngs=rngs)
        self.features = layers.BatchNorm(embed_dim, dtype=dtype)

    def forward(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.bn1(self.conv1(x.astype(self.dtype))))
        x = jax.nn.relu(self.bn2(self.conv2(x)))
        return self.features(self.fc(flatten_channel_major(x)))  # flattened in PyTorch's NCHW order


@torch_backbones.register(NAME)
class TorchTinyCNN(nn.Module):
    """The same network in PyTorch: attribute names = jsphere's, so the state_dict keys are the module paths."""

    def __init__(self, embed_dim: int = 512, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=4, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * 14 * 14, embed_dim)
        self.features = nn.BatchNorm1d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.features(self.fc(torch.flatten(x, 1)))


def config(data: Path, steps: int) -> ml_collections.ConfigDict:
    """A small recipe for ``tinycnn`` on the synthetic set: what a config file for ``jsphere.main`` returns."""
    c = get_base_config()
    c.model.name = NAME
    c.model.embed_dim = 32
    c.model.kwargs = ml_collections.ConfigDict(dict(width=8))
    c.head.name = "arcface"
    c.head.hparams = ml_collections.ConfigDict(dict(s=16.0, m=0.2))
    c.data.source = str(data / "train_list.txt")
    c.data.data_dir = str(data)
    c.data.workers = 0
    c.data.threads = 1
    c.batch_size = 16
    c.total_steps = steps
    c.optim.lr = 0.05
    c.optim.milestones = (steps,)
    c.checkpoint.every_steps = steps
    c.log_every = max(1, steps // 4)
    c.progress_bar = False
    pairs = dict(name="synthetic", type="pairs", path=str(data / "val_pairs.txt"), data_dir=str(data))
    c.val = [pairs]
    c.val_every = steps
    c.eval = ml_collections.ConfigDict(dict(sets=[pairs], last_k=1, batch_size=32))
    return c


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a new folder for the data, the run and the exports")
    p.add_argument("--steps", type=int, default=40)
    a = p.parse_args(argv)
    out = Path(a.workdir)
    data = synthetic.generate(out / "data", identities=16, images_per_identity=6, holdout_identities=6,
                              holdout_images=4, pairs=60)
    run = out / "run"
    cfg = config(data, a.steps)
    train.train_and_evaluate(cfg, str(run))  # what python -m jsphere.main --config=... --workdir=... does
    results = evaluate(cfg, str(run))  # what --mode=eval does
    pth_export.export(str(run), "insightface", str(out / "tinycnn.pth"))
    figures = onnx_export.export(str(run), str(out / "tinycnn.onnx"))  # checked in onnxruntime against jsphere
    found = []
    onnx_import.import_onnx(str(out / "tinycnn.onnx"), str(out / "from_onnx"), report=lambda f, _: found.append(f))
    print(f"exported {out / 'tinycnn.pth'} and {out / 'tinycnn.onnx'} (onnxruntime vs jsphere: min cosine "
          f"{figures['min_cosine']:.7f}); the ONNX file reads back as {found[0].arch}")
    return {"eval": results["synthetic"], "onnx": figures, "detected": found[0]}


if __name__ == "__main__":
    main()
