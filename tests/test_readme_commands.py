"""The README's commands run as written, in order, and again: every command that writes a fixed path replaces what
an earlier run wrote (``--overwrite``) or resumes it; the released-model chain runs twice from a folder that holds
only the files it names (built here: a random-weight arcface_torch ``backbone.pth``, aligned faces, an ``lfw.bin``)."""

from __future__ import annotations

import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Commands whose output folder is filled as they go and resumed by a rerun (their docstrings say so).
RESUMED = {"jsphere.align", "benchmarks.gpu_check", "benchmarks.real_faces"}


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.DOTALL)


def _commands(block: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, comments dropped, ``&&`` chains split."""
    text = block.replace("\\\n", " ")
    lines = [line.split(" #")[0].strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [part.strip() for line in lines if line for part in line.split("&&")]


def _python_commands() -> list[tuple[str, list[str]]]:
    found = []
    for block in _blocks():
        for command in _commands(block):
            words = shlex.split(command.replace("[", "").replace("]", ""))
            if "python" in words and "-m" in words:
                found.append((words[words.index("-m") + 1], words))
    return found


def test_the_readme_has_commands_to_check():
    modules = {module for module, _ in _python_commands()}
    assert {"jsphere.main", "jsphere.embed", "converters.import_torch", "jsphere.data.pack"} <= modules


@pytest.mark.parametrize(("module", "words"), _python_commands(), ids=[" ".join(w)[:90] for _, w in _python_commands()])
def test_a_readme_command_that_writes_a_fixed_path_runs_again(module, words):
    if module in RESUMED or not {"--out", "--output"} & set(words):
        return
    assert "--overwrite" in words, f"{' '.join(words)}: a second run stops at 'already exists'; add --overwrite"


def _released_chain() -> str:
    block = next(b for b in _blocks() if "converters.import_torch --backbone ms1mv3_arcface_r100_fp16" in b)
    return next(c for c in block.replace("\\\n", " ").splitlines() if "&&" in c).strip()


@pytest.fixture
def released_files(tmp_path, synthetic_data):
    """A folder holding what the released-model chain reads: the backbone.pth, my_aligned_faces/, data/val/lfw.bin
    (stand-ins of the same form: arcface_torch's MobileFaceNet layout with random weights, synthetic faces)."""
    import torch

    from converters.torch_reference.random_weights import random_torch_model

    (tmp_path / "ms1mv3_arcface_r100_fp16").mkdir()
    torch.save(random_torch_model("mobilefacenet").state_dict(), tmp_path / "ms1mv3_arcface_r100_fp16" / "backbone.pth")
    faces = sorted((synthetic_data / "val").rglob("*.jpg"))
    (tmp_path / "my_aligned_faces").mkdir()
    for face in faces[:4]:
        (tmp_path / "my_aligned_faces" / f"{face.parent.name}_{face.name}").write_bytes(face.read_bytes())
    blobs = [f.read_bytes() for f in faces[:len(faces) // 2 * 2]]  # pairs are images (2i, 2i + 1)
    (tmp_path / "data" / "val").mkdir(parents=True)
    issame = [i % 2 == 0 for i in range(len(blobs) // 2)]
    (tmp_path / "data" / "val" / "lfw.bin").write_bytes(pickle.dumps((blobs, issame), protocol=2))
    return tmp_path


@pytest.mark.slow
def test_the_released_model_chain_runs_as_written_twice(released_files):
    bin_dir = released_files / "bin"
    bin_dir.mkdir()
    # a script, not a link: a link to the venv's python outside the venv would not find the venv's packages
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    env.pop("JSPHERE_DEBUG", None)
    chain = _released_chain()
    for attempt in (1, 2):
        proc = subprocess.run(["bash", "-c", chain], cwd=released_files, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"run {attempt}: {chain}\n{proc.stderr[-3000:]}"
    assert (released_files / "feats.npy").is_file()
    assert (released_files / "runs" / "r100" / "eval" / "LFW.txt").is_file()
