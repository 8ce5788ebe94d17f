"""Every shipped recipe builds a valid config: a known model and head, hyper-parameters the head accepts, an
optimizer, and (for OpenSphere recipes) OpenSphere's step count."""

import importlib.util
from pathlib import Path

import pytest

from jsphere import config_check

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
    config_check.check_values(c)
    if "opensphere" in path.parts or "papers" in path.parts:
        assert c.total_steps == max(c.optim.milestones)
        assert set(c.checkpoint.save_steps) <= set(range(c.total_steps + 1))


# Files that resolve to the same config on purpose: OpenSphere v1 ships each of the first three recipes under two
# names (in its config/train and config/papers), and ms1m_iresnet100.py picks one of v2's files' heads by argument.
SAME_RECIPE = {
    frozenset({"opensphere/v1/vggface2_sfnet20_sphereface.py",
               "papers/SphereFace2/sec31/vggface2_sfnet20_sphereface.py"}),
    frozenset({"opensphere/v1/vggface2_sfnet64_sphereface2.py",
               "papers/SphereFace2/sec32/vggface2_sfnet64_sphereface2.py"}),
    frozenset({"papers/SphereFace2/sec31/vggface2_sfnet20_sphereface2.py",
               "papers/SphereFace2/appendix/vggface2_sfnet20_sphereface2_C.py"}),
    frozenset({"ms1m_iresnet100.py", "opensphere/v2/ms1m_iresnet100_arcface.py"}),
}


def test_each_recipe_has_one_file():
    files_of = {}
    for path in TRAIN_CONFIGS:
        files_of.setdefault(_load(path).to_json_best_effort(sort_keys=True), set()).add(
            str(path.relative_to(ROOT / "configs")))
    assert {frozenset(files) for files in files_of.values() if len(files) > 1} == SAME_RECIPE


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


@pytest.mark.parametrize(("key", "value", "message"), [
    ("optim.lr", -0.1, "must be >= 0"),
    ("optim.weight_decay", -1e-4, "must be >= 0"),
    ("optim.momentum", 1.0, "must be in \\[0, 1\\)"),
    ("optim.head_lr", -1.0, "must be >= 0"),
    ("optim.milestones", (5, 500), "must be steps in \\[1, config.total_steps=100\\]"),
    ("optim.milestones", (50, 20), "strictly increasing"),
    ("optim.warmup_steps", 100, "must be in \\[0, config.total_steps=100\\)"),
    ("optim.clip_grad_norm", 0.0, "must be > 0"),
    ("batch_size", 0, "positive integer"),
    ("total_steps", -5, "positive integer"),
    ("data.flip", 1.5, "probability"),
    ("data.on_corrupt", "ignore", "is not one of"),
    ("data.sampler.type", "balanced", "is not one of"),
    ("head.sample_rate", 0.0, "must be in \\(0, 1\\]"),
    ("checkpoint.keep", 0, "must be >= 1"),
    ("checkpoint.save_steps", (200,), "must be steps in"),
    ("model.embed_dim", 0, "positive integer"),
    ("log_every", 0, "positive integer"),
])
def test_values_that_cannot_be_right_are_named_by_key(key, value, message):
    from configs.quickstart import get_config

    c = get_config()
    c.total_steps = 100
    c.optim.schedule = "multistep"
    c.optim.milestones = (60, 85)
    config_check.check_values(c)
    *parents, leaf = key.split(".")
    node = c
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ValueError, match=f"config.{key}=.* {message}"):
        config_check.check_values(c)
