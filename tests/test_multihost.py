"""Two processes (2 CPU devices each) train together through jax.distributed and follow the training curves of
one process with 4 devices (in float64); SIGTERM to one process checkpoints once and stops both."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jsphere import checkpoint
from tests.curves import assert_same_training, read_curves

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, data, devices, *extra, process=None, port=None, float64=False):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    if float64:  # train_config's comparison recipe
        env["JAX_ENABLE_X64"] = "1"
        data = f"{data},float64"
    cmd = [sys.executable, "-m", "jsphere.main", f"--config={ROOT}/tests/train_config.py:{data}",
           f"--workdir={workdir}", "--config.log_every=1", *extra]
    if process is not None:
        cmd += [f"--coordinator=127.0.0.1:{port}", "--num_processes=2", f"--process_id={process}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, synthetic_data):
    """Each process reads its slice of every global batch; gradients and BatchNorm statistics are global, so the
    two processes (2 devices each) follow the curve of one process with 4 devices, step after step: loss, global
    and per-module gradient norms of an unclipped BatchNorm net (the first gradient norm is in the hundreds).
    Why ``curves.RTOL`` holds on any CPU: float64 (``train_config.comparison``), see tests/curves.py; that a
    fault would show is checked by test_train's eight-device test, which shares the recipe and the assertion."""
    steps = 4
    extra = (f"--config.total_steps={steps}", f"--config.optim.milestones=({steps},)")
    port = _port()
    procs = [_launch(tmp_path / "single", synthetic_data, 4, *extra, float64=True)]
    procs += [_launch(tmp_path / "multi", synthetic_data, 2, *extra, process=i, port=port, float64=True)
              for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert_same_training(read_curves(tmp_path / "multi"), read_curves(tmp_path / "single"), steps=steps)
    assert checkpoint.list_steps(tmp_path / "multi")[-1] == steps
    assert sorted(p.name for p in (tmp_path / "multi" / "checkpoints" / str(steps) / "data").glob("process_*")) == [
        "process_0-of-2.json", "process_1-of-2.json"]


def test_sigterm_to_one_process_checkpoints_once_and_stops_both(tmp_path, synthetic_data):
    port = _port()
    procs = [_launch(tmp_path, synthetic_data, 2, "--config.total_steps=100000",
                     "--config.checkpoint.every_steps=100000", process=i, port=port) for i in range(2)]
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [143, 143], outs
    steps = checkpoint.list_steps(tmp_path)
    assert len(steps) == 1 and steps[0] > 0
