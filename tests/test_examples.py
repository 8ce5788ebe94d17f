"""The examples a researcher copies (``examples/``) run, at tiny size, as the README tells them to be run, so they
cannot rot: a new loss with its parity test, jsphere as a library in a hand-written loop, an EMA trainer hook."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("example", "expected"), [
    ("new_loss.py", ("parity: li_arcface", "class-sharded the same", "trained 4 steps", "held-out ACC")),
    ("library_loop.py", ("step 4: loss", "held-out pairs: ACC")),
    ("trainer_hook.py", ("step 4: loss", "ema/distance", "the checkpoint's backbone: eval_weights of trainer 'ema'")),
])
def test_example_runs_at_tiny_size(example, expected):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / example), "--tiny"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for fragment in expected:
        assert fragment in proc.stdout, proc.stdout


def test_the_readme_shows_the_trainer_hook_example_as_it_runs():
    """The README's "Add a trainer hook" code is the example's, between its markers, verbatim."""
    source = (ROOT / "examples" / "trainer_hook.py").read_text(encoding="utf-8")
    block = source.split('# --- README "Add a trainer hook"')[1].split("\n", 1)[1].split("# --- end")[0].strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert block in readme.split("### Add a trainer hook")[1]
