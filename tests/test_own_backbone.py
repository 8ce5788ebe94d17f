"""A backbone of one's own through ``jsphere.models.register``: its name is checked, it trains a step through the
config path (the one ``jsphere.main`` runs), and its checkpoint embeds; ``build`` says what a factory must return."""

import numpy as np
import pytest
from flax import nnx

from jsphere import checkpoint, models, train
from jsphere.inference import Embedder
from tests import train_config
from tests.own_backbone import NAME, registered


@pytest.mark.parametrize(("name", "message"), [
    ("iresnet50", "is one of jsphere's own backbones"),
    ("auto", "other than auto"),
    ("Tiny Net", "use lowercase letters"),
    ("", "use lowercase letters"),
])
def test_register_refuses_built_in_reserved_and_malformed_names(name, message):
    with pytest.raises(ValueError, match=message):
        models.register(name)


def test_a_factory_that_returns_no_backbone_is_refused_naming_the_base_class():
    with registered(jax_side=False, torch_side=False):
        models.register("not_a_backbone")(lambda **kw: nnx.Linear(2, 2, rngs=kw["rngs"]))
        with pytest.raises(TypeError, match="not a jsphere.models.Backbone"):
            models.build("not_a_backbone")
    assert "not_a_backbone" not in models.names()


def test_an_unknown_name_says_how_a_backbone_of_ones_own_becomes_known():
    with pytest.raises(ValueError, match=r"unknown model 'tinynet'.*import it in your config file"):
        models.build(NAME)


def test_a_registered_backbone_trains_checkpoints_and_embeds(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.model.name = NAME
    config.total_steps = 2
    config.checkpoint.every_steps = 2
    config.optim.milestones = (2,)
    with registered(torch_side=False):
        assert NAME in models.names() and not models.is_built_in(NAME)
        before = models.pure_state(models.build(NAME, embed_dim=16, rngs=nnx.Rngs(config.seed)))
        result = train.train_and_evaluate(config, str(tmp_path))
        weights = checkpoint.load_weights(tmp_path)
        faces = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
        embeddings = Embedder.from_checkpoint(tmp_path, batch_size=3).embed(faces, flip="none")
    assert weights.meta["model"]["name"] == NAME and weights.step == 2
    assert result["step"] == 2 and np.isfinite(result["train/loss"])
    assert not np.array_equal(weights.backbone["fc"]["kernel"], before["fc"]["kernel"])  # the step changed it
    assert embeddings.shape == (3, 16) and np.all(np.isfinite(embeddings))
