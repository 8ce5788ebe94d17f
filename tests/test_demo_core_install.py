"""``make demo`` installs jsphere's own dependencies only: the demo's whole path (generate or read the data, train,
evaluate, print the table) must run with every optional dependency absent, and it leaves JAX's compilation cache in
the workdir for the next run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from jsphere.data import synthetic

# The extras of pyproject.toml that `make demo` does not install, and the test tools.
OPTIONAL = ("torch", "onnx", "onnxruntime", "tensorflow_datasets", "pytest", "ruff")


def test_demo_runs_without_any_optional_dependency_and_caches_its_compilations(tmp_path):
    # one batch of the quickstart (64 images) and a few held-out pairs
    data = synthetic.generate(tmp_path / "data", identities=17, images_per_identity=4, holdout_identities=4,
                              holdout_images=4, pairs=40)
    workdir = tmp_path / "run"
    # A finder ahead of every other one answers for the optional packages as if they were not installed (a None
    # in sys.modules would not do: scipy looks modules up there by name and trips over the None).
    program = textwrap.dedent(f"""
        import sys

        class Absent:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {OPTIONAL!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Absent())
        from jsphere import demo
        demo.main(["--data", {str(data)!r}, "--workdir", {str(workdir)!r}, "--steps", "2"])
        leaked = sorted(name for name in {OPTIONAL!r} if sys.modules.get(name) is not None)
        assert not leaked, leaked
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained (step 2)" in proc.stdout
    assert any((workdir / "compilation_cache").iterdir()), "no compiled program was cached"
