"""One training run per workdir: a second run is refused in one line naming the PID and host holding the lock; a
lock left by a run killed with SIGKILL or SIGTERM is taken over; the lock is released when the run raises."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jsphere.checkpoint import workdir_lock
from tests.test_cli_errors import assert_one_error_line, run

ROOT = Path(__file__).resolve().parents[1]
HOLDER = ("import sys, time\nfrom jsphere.checkpoint import workdir_lock\nwith workdir_lock.WorkdirLock(sys.argv[1]):\n"
          "    print('locked', flush=True)\n    time.sleep(600)\n")


def _holder(workdir):
    """Another process holding ``workdir``'s lock the way a training run does, until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    return proc


def test_a_second_training_on_a_locked_workdir_is_refused_naming_the_pid_and_host(tmp_path, synthetic_data):
    workdir = tmp_path / "w"
    workdir.mkdir()
    holder = _holder(workdir)
    try:
        proc = run("jsphere.main", f"--config={ROOT}/tests/train_config.py:{synthetic_data}", f"--workdir={workdir}")
    finally:
        holder.kill()
        holder.wait()
    assert_one_error_line(proc, "jsphere.main", f"{workdir} is in use by another training run",
                          f"PID {holder.pid} on host {socket.gethostname()}", str(workdir / "train.lock"))
    assert sorted(p.name for p in workdir.iterdir()) == ["train.lock"]  # nothing written, nothing deleted


def test_a_held_lock_refuses_a_second_holder_and_is_free_again_after_release(tmp_path):
    first = workdir_lock.WorkdirLock(tmp_path)
    first.acquire()
    record = json.loads((tmp_path / "train.lock").read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    with pytest.raises(workdir_lock.WorkdirInUse, match=f"PID {os.getpid()} on host"):
        workdir_lock.WorkdirLock(tmp_path).acquire()
    first.release()
    assert (tmp_path / "train.lock").read_text() == ""
    with workdir_lock.WorkdirLock(tmp_path):
        pass


def test_the_lock_is_released_when_the_run_raises(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), workdir_lock.hold(tmp_path):
        raise RuntimeError("boom")
    with workdir_lock.WorkdirLock(tmp_path):
        pass


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog, sig):
    holder = _holder(tmp_path)
    holder.send_signal(sig)
    holder.wait()
    with workdir_lock.WorkdirLock(tmp_path):
        assert json.loads((tmp_path / "train.lock").read_text())["pid"] == os.getpid()
    assert f"from a run that ended without releasing it (PID {holder.pid} on host {socket.gethostname()}" in caplog.text
