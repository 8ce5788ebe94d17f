"""The real-faces benchmark end to end on a small fake LFW of noise JPEGs: a shortened run of a recipe in both
frameworks (jsphere.main in its own process, the reference loop in PyTorch) from the same initial weights, the
report written from their results, and the step timing of both frameworks. It checks that the benchmark still
drives today's jsphere (its config, its step builder, its checkpoints), not what the numbers are: noise has no
identities to learn. No real data; the recipes' batch of 64 needs ~160 training images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks.real_faces.__main__ import main  # noqa: E402

FOLDS, PAIRS_PER_FOLD = 10, 10


@pytest.fixture(scope="module")
def noise_lfw(tmp_path_factory) -> tuple[Path, Path]:
    """Per fold: 10 matched pairs (people with 2 images) and 10 mismatched ones (people with 1 image each)."""
    root = tmp_path_factory.mktemp("lfw")
    rng = np.random.default_rng(0)

    def person(name: str, images: int) -> None:
        (root / "lfw" / name).mkdir(parents=True)
        for k in range(1, images + 1):
            noise = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "lfw" / name / f"{name}_{k:04d}.jpg"), noise)

    lines = [f"{FOLDS}\t{PAIRS_PER_FOLD}"]
    for fold in range(FOLDS):
        same = [f"Same_{fold}_{j}" for j in range(PAIRS_PER_FOLD)]
        for name in same:
            person(name, 2)
        lines += [f"{name}\t1\t2" for name in same]
        for j in range(PAIRS_PER_FOLD):
            person(f"A_{fold}_{j}", 1)
            person(f"B_{fold}_{j}", 1)
            lines.append(f"A_{fold}_{j}\t1\tB_{fold}_{j}\t1")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root / "lfw", root / "pairs.txt"


def test_a_shortened_run_trains_in_both_frameworks_from_the_same_weights_and_is_reported(noise_lfw, tmp_path,
                                                                                          capsys):
    lfw, pairs = noise_lfw
    out = tmp_path / "out"
    assert main(["--lfw", str(lfw), "--pairs", str(pairs), "--out", str(out), "--recipe", "sfnet_arcface",
                 "--seeds", "0", "--steps", "2"]) == 0
    results = {fw: json.loads((out / "runs" / "sfnet_arcface" / fw / "seed0" / "result.json").read_text())
               for fw in ("jsphere", "torch")}
    for result in results.values():
        assert result["steps"] == 2 and 0 <= result["final"]["ACC"] <= 100
    # the same initial weights: the untrained models verify the 40 held-out pairs alike (their embeddings differ by
    # float32 rounding only, which can move at most a pair lying at the best threshold: 2.5 points)
    assert results["jsphere"]["step0"]["ACC"] == pytest.approx(results["torch"]["step0"]["ACC"], abs=2.5)
    assert (out / "report" / "table.md").is_file() and (out / "report" / "real_faces.png").is_file()
    assert "sfnet_arcface | jsphere" in capsys.readouterr().out


def test_the_step_timing_runs_both_frameworks_on_a_real_batch(noise_lfw, tmp_path, capsys):
    lfw, pairs = noise_lfw
    assert main(["--lfw", str(lfw), "--pairs", str(pairs), "--out", str(tmp_path / "t"),
                 "--recipe", "sfnet_sphereface2", "--time-steps", "1"]) == 0
    timing = json.loads((tmp_path / "t" / "timing.json").read_text())["results"][0]
    assert timing["jsphere_s_per_step"] > 0 and timing["torch_s_per_step"] > 0
