"""PyTorch <-> jsphere: every layout imports, outputs agree (cos >= 0.99999, max |Δ| <= 1e-4, CPU fp32), exports
load strictly into the reference classes, round trips are bit-exact, and bad files are refused clearly."""

import pickle
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from converters import check
from converters.core import mapping
from converters.pth_format import pth_export, pth_file, pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference import heads as torch_heads
from converters.torch_reference.random_weights import D, random_torch_model
from converters.torch_reference.random_weights import images as _images
from converters.torch_reference.random_weights import torch_embed as _torch_embed
from jsphere import checkpoint, heads, models
from jsphere.inference import Embedder
from tests.converters.agreement import agree as _agree

CHEAP = ["sfnet4", "sfnet4_bn", "sfnet4_deprecated", "iresnet18", "mobilefacenet"]


@pytest.mark.parametrize(("name", "kwargs"), [(n, {}) for n in CHEAP] + [("sfnet4_bn", {"width": 0.5})])
def test_torch_to_jsphere_embeddings_agree_and_jsphere_to_torch_to_jsphere_is_bit_exact(tmp_path, name, kwargs):
    reference = random_torch_model(name, **kwargs)
    torch.save(reference.state_dict(), tmp_path / "backbone.pth")
    pth_import.import_checkpoint(name, str(tmp_path / "backbone.pth"), str(tmp_path / "ckpt"))
    assert checkpoint.load_meta(tmp_path / "ckpt")["model"]["kwargs"] == kwargs  # the width read off the file
    images = _images()
    ours = Embedder.from_checkpoint(tmp_path / "ckpt", batch_size=len(images)).embed(images, flip="none")
    _agree(ours, _torch_embed(reference, images))
    # export in every layout; the reference class loads it strictly and computes the same function
    pth_export.export(str(tmp_path / "ckpt"), "insightface", str(tmp_path / "out.pth"))
    fresh = torch_backbones.build(name, D, **checkpoint.load_meta(tmp_path / "ckpt")["model"]["kwargs"])
    fresh.load_state_dict(torch.load(tmp_path / "out.pth", weights_only=True), strict=True)
    assert list(fresh.state_dict()) == list(reference.state_dict())
    np.testing.assert_array_equal(_torch_embed(fresh.eval(), images), _torch_embed(reference, images))
    pth_import.import_checkpoint(name, str(tmp_path / "out.pth"), str(tmp_path / "again"))
    a, b = checkpoint.load_weights(tmp_path / "ckpt"), checkpoint.load_weights(tmp_path / "again")
    for x, y in zip(jax.tree.leaves(a.backbone), jax.tree.leaves(b.backbone), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skipif(
    not torch_backbones.has_definition(n), reason=f"{n} has no PyTorch definition")) for n in models.names()])
def test_every_architecture_maps_every_reference_key_with_matching_shapes(name):
    model = nnx.eval_shape(lambda: models.build(name, rngs=nnx.Rngs(0)))
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation
        built = torch_backbones.build(name)
    reference = {k: tuple(v.shape) for k, v in built.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = dict(nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, models.FrozenParam, nnx.BatchStat))))
    rows = mapping.leaf_table(model)
    assert {k for _, k, _ in rows} == set(reference)
    for path, key, module_type in rows:
        dummy = np.zeros(state[path].shape, np.float32)
        assert mapping.to_torch(module_type, path[-1], dummy).shape == reference[key], key


def test_opensphere_layouts_v1_prefix_v2_dict_and_safetensors_import_the_same_weights(tmp_path):
    from safetensors.numpy import save_file

    reference = random_torch_model("sfnet4_bn", seed=1)
    sd = reference.state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "backbone_70000.pth")
    torch.save({"backbone": sd, "head": {}}, tmp_path / "model_240000.pth")
    torch.save({"model": {"backbone": sd, "head": {}}, "step": 5}, tmp_path / "ckpt_5.pth")
    save_file({k: v.numpy() for k, v in sd.items()}, str(tmp_path / "m.safetensors"))
    weights = []
    for f in ("backbone_70000.pth", "model_240000.pth", "ckpt_5.pth", "m.safetensors"):
        out = pth_import.import_checkpoint("sfnet4_bn", str(tmp_path / f), str(tmp_path / f"out_{f}"))
        weights.append(checkpoint.load_weights(out))
    assert [w.step for w in weights] == [70000, 240000, 5, 0]
    assert (
        weights[0].meta["source"]["layout"] == "opensphere-v1"
        and weights[1].meta["source"]["layout"] == "opensphere-v2"
    )
    for w in weights[1:]:
        for x, y in zip(jax.tree.leaves(weights[0].backbone), jax.tree.leaves(w.backbone), strict=True):
            np.testing.assert_array_equal(x, y)


def test_fp16_checkpoints_are_upcast(tmp_path):
    reference = random_torch_model("sfnet4", seed=2)
    torch.save({k: v.half() for k, v in reference.state_dict().items()}, tmp_path / "half.pth")
    out = pth_import.import_checkpoint("sfnet4", str(tmp_path / "half.pth"), str(tmp_path / "ckpt"))
    w = checkpoint.load_weights(out)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(w.backbone))


def test_opensphere_v1_and_v2_heads_convert_and_give_the_original_loss(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(6, D)
    y = torch.tensor([0, 3, 5, 9, 2, 2])
    cases = [
        ("sphereface2", dict(magn_type="C", alpha=0.7, r=40.0, m=0.4, t=3.0, lw=10.0)),
        ("arcface", dict(s=30.0, m=0.5)),
        ("cosface", dict(s=30.0, m=0.35)),
        ("sphereface", dict(s=30.0, m=1.5)),
        ("cocoloss", dict(s=30.0)),
    ]
    reference = random_torch_model("sfnet4", seed=3)
    for v2 in (False, True):
        for name, hp in cases:
            torch_head = torch_heads.HEADS[name](D, 10, v2=v2, **hp)
            ref_loss = float(torch_head(x, y).detach())  # projects w in place first, like a training step
            head_sd = torch_head.state_dict()
            if v2:
                torch.save({"backbone": reference.state_dict(), "head": head_sd}, tmp_path / "model_1.pth")
                out = pth_import.import_checkpoint(
                    "sfnet4",
                    str(tmp_path / "model_1.pth"),
                    str(tmp_path / f"{name}_v2"),
                    head_name=name,
                    head_hparams=hp,
                    num_classes=10,
                )
            else:
                torch.save(reference.state_dict(), tmp_path / "backbone_1.pth")
                torch.save({f"module.{k}": v for k, v in head_sd.items()}, tmp_path / "head_1.pth")
                out = pth_import.import_checkpoint(
                    "sfnet4",
                    str(tmp_path / "backbone_1.pth"),
                    str(tmp_path / f"{name}_v1"),
                    head=str(tmp_path / "head_1.pth"),
                    head_name=name,
                    head_hparams=hp,
                )
            w = checkpoint.load_weights(out)
            head = heads.build(name, **hp)
            loss, _, _ = head.loss(
                jax.tree.map(jnp.asarray, w.head["params"]),
                w.head["state"],
                jnp.asarray(x.numpy()),
                jnp.asarray(y.numpy()),
                0,
            )
            assert float(loss) == pytest.approx(ref_loss, rel=1e-5), (name, v2)
            exported = pth_export.export(
                out, "opensphere-v2" if v2 else "opensphere-v1", str(tmp_path / f"e_{name}_{v2}")
            )
            saved = torch.load(exported[-1], weights_only=True)
            saved_head = saved["head"] if v2 else {k[len("module.") :]: v for k, v in saved.items()}
            torch_head.load_state_dict(saved_head, strict=True)


def test_head_class_count_mismatch_is_refused(tmp_path):
    reference = random_torch_model("sfnet4", seed=4)
    torch.save(
        {"backbone": reference.state_dict(), "head": torch_heads.CosFace(D, 10, v2=True).state_dict()},
        tmp_path / "model_1.pth",
    )
    with pytest.raises(ValueError, match="the head has 10 classes but --num-classes is 12"):
        pth_import.import_checkpoint(
            "sfnet4", str(tmp_path / "model_1.pth"), str(tmp_path / "o"), head_name="cosface", num_classes=12
        )


def test_state_dict_of_another_architecture_names_keys_and_suggests_the_arch(tmp_path):
    torch.save(random_torch_model("sfnet4").state_dict(), tmp_path / "b.pth")
    with pytest.raises(ValueError, match="not a iresnet18 state_dict: .*missing keys.*fit: sfnet4, sfnet4_deprecated"):
        pth_import.import_checkpoint("iresnet18", str(tmp_path / "b.pth"), str(tmp_path / "o"))


def test_check_agrees_with_torch_and_flags_the_deprecated_sfnet_ambiguity(tmp_path, capsys, monkeypatch):
    torch.save(random_torch_model("sfnet10_deprecated").state_dict(), tmp_path / "b.pth")  # sfnet4 has no blocks
    np.save(tmp_path / "img.npy", _images(4))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: the progress bars draw
    assert (
        check.main(
            ["--arch", "sfnet10_deprecated", "--pth", str(tmp_path / "b.pth"), "--images", str(tmp_path / "img.npy")]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "min cosine = 1.0000000" in captured.out or "min cosine = 0.99999" in captured.out
    assert "also fits sfnet10 (same keys), which computes different embeddings" in captured.err
    for side in ("jsphere", "torch"):  # the progress bar of each embedding run
        assert f"] 4/4 images {side} sfnet10_deprecated: " in captured.err


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": Payload()}, protocol=2))
    with pytest.raises(pth_file.UnsafeCheckpointError, match="refusing to load .*open"):
        pth_file.load(tmp_path / "evil.pth")
    assert not marker.exists()


def test_truncated_zip_is_reported(tmp_path):
    torch.save(random_torch_model("sfnet4").state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pth: not a readable .pth zip archive.*truncated"):
        pth_file.load(tmp_path / "cut.pth")
