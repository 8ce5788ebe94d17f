"""A truncated or corrupt ArrayRecord shard is named in one line (the shard file, and the record when one record
is bad) by training, by ``on_corrupt=skip`` and by repacking; a corrupt record is skipped like a corrupt image."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jsphere import cli, errors
from jsphere.data import pack, pipeline, sources
from jsphere.data.decode import CorruptImageError

ROOT = Path(__file__).resolve().parents[2]
SHARD = "data-00001-of-00003.array_record"  # samples 24..47


@pytest.fixture(scope="module")
def packed(tmp_path_factory, synthetic_data):
    out = tmp_path_factory.mktemp("packed") / "packed"
    pack.pack(str(synthetic_data / "train_list.txt"), out, images_per_shard=24, verbose=False)
    return out


def _damaged(packed: Path, tmp_path: Path, how: str) -> Path:
    """A copy of ``packed`` whose middle shard is cut in half, or has one record's bytes flipped."""
    copy = tmp_path / how
    shutil.copytree(packed, copy)
    data = bytearray((copy / SHARD).read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:  # the first record's chunk starts after the 64-byte file signature chunk: its hash no longer matches
        data[100:400] = bytes(b ^ 0xFF for b in data[100:400])
    (copy / SHARD).write_bytes(bytes(data))
    return copy


def _cfg(source: Path, on_corrupt: str) -> dict:
    return {"source": str(source), "workers": 0, "threads": 1, "on_corrupt": on_corrupt}


@pytest.mark.parametrize("on_corrupt", ["raise", "skip"])
def test_a_truncated_shard_is_refused_naming_it_with_either_policy(packed, tmp_path, on_corrupt):
    bad = _damaged(packed, tmp_path, "truncated")
    with pytest.raises(errors.UserError, match=f"^{bad / SHARD}: unreadable ArrayRecord shard .*truncated or corrupt"):
        pipeline.make_train_iterator(_cfg(bad, on_corrupt), global_batch_size=8, seed=0)


def test_training_on_a_truncated_shard_exits_with_one_line_naming_it(packed, tmp_path, synthetic_data):
    bad = _damaged(packed, tmp_path, "truncated")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("JSPHERE_DEBUG", None)
    command = [sys.executable, "-m", "jsphere.main", f"--config={ROOT}/tests/train_config.py:{synthetic_data}",
               f"--config.data.source={bad}", "--config.data.on_corrupt=skip", f"--workdir={tmp_path / 'run'}"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"jsphere.main: error: {bad / SHARD}: unreadable ArrayRecord shard ("), lines


def test_repacking_a_truncated_shard_exits_with_one_line_naming_it(packed, tmp_path, capsys):
    bad = _damaged(packed, tmp_path, "truncated")
    with pytest.raises(SystemExit) as exit_:
        cli.run("jsphere.data.pack", pack.main, ["--source", str(bad), "--out", str(tmp_path / "again")])
    lines = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"jsphere.data.pack: error: {bad / SHARD}: unreadable ArrayRecord shard (")


def test_a_corrupt_record_names_its_shard_and_record_is_skipped_and_left_out_when_repacking(packed, tmp_path):
    bad = _damaged(packed, tmp_path, "flipped")
    source = sources.open_source(bad)
    unreadable = []
    for i in range(len(source)):
        try:
            source[i]
        except CorruptImageError as e:
            unreadable.append(str(e))
    assert len(unreadable) == 1, unreadable
    assert unreadable[0].startswith(f"{bad / SHARD} record 0 (sample 24 of {bad}): unreadable (Corrupted Riegeli")
    it, _ = pipeline.make_train_iterator(_cfg(bad, "raise"), global_batch_size=72, seed=0)
    with pytest.raises(CorruptImageError, match=f"{SHARD} record 0 "):
        next(it)
    it, _ = pipeline.make_train_iterator(_cfg(bad, "skip"), global_batch_size=72, seed=0)
    assert int(next(it)["corrupt"].sum()) == 1  # one epoch: the bad record replaced once
    summary = pack.pack(str(bad), tmp_path / "again", verbose=False)
    assert summary["num_images"] == 71 and summary["bad_files"] == unreadable
