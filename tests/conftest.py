"""Test session set-up: 8 simulated CPU devices (before JAX starts), parsed absl flags for Grain, and a tiny
synthetic identity set shared by the tests that need images."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole session, inherited by the tests' subprocesses (the resume,
# kill -9 and multi-process tests compile the same train step in every process they start).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax"))

import pytest  # noqa: E402
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """12 training identities x 6 images, 4 held-out identities x 4 images, 40 pairs."""
    from jsphere.data import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("synthetic"), identities=12, images_per_identity=6,
                              holdout_identities=4, holdout_images=4, pairs=40, seed=1)
