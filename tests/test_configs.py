"""Every shipped recipe builds a valid config: a known model and head, hyper-parameters the head accepts, an
optimizer, and (for OpenSphere recipes) OpenSphere's step count."""

import importlib.util
from pathlib import Path

import pytest

from jsphere import heads, models, optim

ROOT = Path(__file__).resolve().parents[1]
HELPERS = {"__init__.py", "base.py", "opensphere_recipes.py", "arcface_torch_recipes.py", "common.py"}
TRAIN_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.py") if p.name not in HELPERS and "test" not in p.parts)
EVAL_CONFIGS = sorted(p for p in (ROOT / "configs" / "test").glob("*.py") if p.name not in HELPERS)


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_training_recipe_is_valid(path):
    c = _load(path)
    assert c.model.name in models.names()
    heads.build(c.head.name, **c.head.hparams.to_dict())
    optim.make_optimizer(c.optim, c.total_steps)
    assert c.total_steps > 0 and c.batch_size > 0
    if "opensphere" in path.parts or "papers" in path.parts:
        assert c.total_steps == max(c.optim.milestones)
        assert set(c.checkpoint.save_steps) <= set(range(c.total_steps + 1))


def test_mission_entry_point_selects_the_loss_by_argument():
    spec = importlib.util.spec_from_file_location("r100", ROOT / "configs" / "ms1m_iresnet100.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.get_config("sphereface2").head.name == "sphereface2"
    assert module.get_config().head.name == "arcface"
    with pytest.raises(ValueError, match="unknown OpenSphere v2 head 'foo'"):
        module.get_config("foo")


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.stem)
def test_evaluation_config_names_its_sets(path):
    c = _load(path)
    assert c.eval.sets and all({"name", "type", "path"} <= set(s) for s in c.eval.sets)
