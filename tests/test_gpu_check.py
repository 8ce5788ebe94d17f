"""The GPU check (``python -m benchmarks.gpu_check``) cannot rot between GPU loans: its CPU dry run (``--smoke``)
passes every stage and writes every figure; a stage past its budget costs only that stage; a GPU check on a
host without a GPU stops after the environment stage with one line."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu_check import profiles
from benchmarks.gpu_check.runner import Runner

ROOT = Path(__file__).resolve().parents[1]


def _check(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_smoke_run_passes_every_stage_and_leaves_json_log_and_table(tmp_path):
    done = _check("--smoke", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["complete"] and doc["profile"] == "smoke"
    assert [s["name"] for s in doc["stages"]] == profiles.ORDER
    assert {s["name"]: s["status"] for s in doc["stages"]} == dict.fromkeys(profiles.ORDER, "ok"), doc["stages"]
    r = {s["name"]: s["result"] for s in doc["stages"]}
    assert r["environment"]["jax_platform"] == "cpu" and r["environment"]["versions"]["jax"]
    assert set(r["heads"]["heads"]) == set(profiles.SMOKE.head_names)
    assert "highest_vs_torch_float64" in r["heads"]["heads"]["combined_margin"]  # the suite's PyTorch reference
    assert r["convert"]["cos_min_fp32"] >= 0.9999 and r["convert"]["cos_min_bf16"] >= 0.999
    assert len(r["train5"]["losses"]) == 5 and r["train5"]["img_per_s"] > 0
    assert r["loop"]["windows"]["steps"][-1] == profiles.SMOKE.loop_steps
    assert r["loop"]["loop_img_per_s"] > 0 and r["loop"]["step_img_per_s"] > 0
    classes, batch, _, rate = profiles.SMOKE.sharded
    per_device = classes // profiles.SMOKE_DEVICES  # Partial FC keeps max(rate x classes, batch) rows per device
    kept = profiles.SMOKE_DEVICES * max(int(rate * per_device), min(batch, per_device))
    assert r["sharded"]["rows_touched"] == r["sharded"]["rows_expected"] == kept
    for name in ("speed_r100_b512", "speed_r100_b128", "speed_sfnet20"):
        assert set(r[name]["runners"]) == {"jsphere", "torch_nchw", "torch_channels_last"}
        assert r[name]["flops_per_step"] > 0 and r[name]["runners"]["jsphere"]["mfu_measured_peak"] > 0
    for name in ("embed_r100", "embed_mbf"):
        assert set(r[name]["fp32"]["img_per_s"]) == set(r[name]["bf16"]["img_per_s"]) == {
            "jsphere", "torch_nchw", "torch_channels_last"}
    table = (tmp_path / "gpu_check.md").read_text()
    assert done.stdout.rstrip().splitlines()[-1].startswith("{")  # the statuses, after the table
    assert table.strip() in done.stdout
    assert all(f"| {name} | ok |" in table for name in profiles.ORDER)
    assert "== loop: ok" in (tmp_path / "gpu_check.log").read_text()


def test_a_stage_past_its_budget_is_a_timeout_and_the_next_stage_runs_in_a_fresh_process(tmp_path):
    stages = [profiles.Stage("heads", 0.2), profiles.Stage("environment", 120)]
    profile = dataclasses.replace(profiles.SMOKE, stages=tuple(stages))
    (tmp_path / "work").mkdir()
    doc = Runner(profile, stages, tmp_path, tmp_path / "work", 300, str(tmp_path / "cache"), {}).run()
    assert [(s["name"], s["status"]) for s in doc["stages"]] == [("heads", "timeout"), ("environment", "ok")]
    assert "killed after 0.2 s (its budget)" in doc["stages"][0]["error"]
    assert json.loads((tmp_path / "gpu_check.json").read_text())["stages"] == doc["stages"]


def test_gpu_check_where_jax_sees_no_gpu_stops_after_the_environment_with_one_line(tmp_path):
    done = _check("--out", str(tmp_path), timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "benchmarks.gpu_check: error: JAX sees no GPU here (its platform: cpu); on a GPU host install jax with its "
        "CUDA plugin, or run --smoke for the CPU dry run"]
    stages = json.loads((tmp_path / "gpu_check.json").read_text())["stages"]
    assert stages[0]["name"] == "environment" and stages[0]["status"] == "failed"
    assert {s["status"] for s in stages[1:]} == {"skipped"} and len(stages) == len(profiles.ORDER)


def test_bad_requests_are_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    for args, message in [(("--stages", "heads", "warp"), "--stages: unknown stage(s) warp; valid: environment"),
                          (("--deadline", "0"), "--deadline 0.0: must be > 0 seconds"),
                          ((), "--out " + str(tmp_path / "file") + ": is a file")]:
        out = ("--out", str(tmp_path / "file")) if not args else ("--out", str(tmp_path / "o"))
        done = _check(*out, *args, timeout=60)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"benchmarks.gpu_check: error: {message}"), done.stderr
    assert not (tmp_path / "o").exists()
