#!/usr/bin/env bash
# The GPU check as one prepared command for a lent GPU machine (no network there; see README "Speed").
#
# Before the loan, in the checkout's root on a machine with network access:
#   put the wheels of grain, array-record, ml-collections, portpicker and tensorboardX in .whl/ (ignored by git):
#     the `pip download` command and versions are in the README, "Speed"
#   .venv/bin/python -m benchmarks.gpu_check --smoke --out /tmp/smoke    # the CPU dry run of every stage
# On the GPU machine, with .whl/ carried along, from the checkout's root:
#   bash benchmarks/gpu_run.sh [--stages NAME ...]      # figures in $OUT/gpu (or /tmp/gpu_check_out/gpu)
#
# It installs the carried wheels that the machine lacks into /tmp/site and runs `python3 -m benchmarks.gpu_check`
# under a hard time limit (GPU_CHECK_TIMEOUT, default 400 s: the check's own deadline is 360 s), so that a
# 15-minute loan leaves room for a second try. JAX's compilation cache stays in /tmp/jsphere_gpu_check_jax_cache:
# a second try on the same machine loads the compiled steps instead of compiling them again. The exit code is the
# check's (124: killed by the time limit).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu_check_out}/gpu"
mkdir -p "$out"
# Only the wheels of distributions the machine lacks: its own flax/optax/orbax match its jax (flax 0.12.8 and
# 0.12.9 fail to import under jax 0.11.2; 0.12.10 works). GPU_RUN_ALL_WHEELS=1 installs every carried wheel.
wheels=()
for w in .whl/*.whl; do
  [ -e "$w" ] || continue
  dist="$(basename "$w")"; dist="${dist%%-*}"
  if [ "${GPU_RUN_ALL_WHEELS:-0}" = 1 ] || ! python3 -c 'import importlib.metadata as m, sys; m.version(sys.argv[1])' \
      "$dist" 2>/dev/null; then
    wheels+=("$w")
  fi
done
if [ "${#wheels[@]}" -gt 0 ]; then
  echo "gpu_run.sh: installing ${wheels[*]}"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "${wheels[@]}" || { echo "gpu_run.sh: error: the wheels in .whl/ did not install" >&2; exit 3; }
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/jsphere_gpu_check_jax_cache}"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
timeout -k 15 "${GPU_CHECK_TIMEOUT:-400}" python3 -m benchmarks.gpu_check --out "$out" "$@" 2>&1 | tee "$out/run.log"
exit "${PIPESTATUS[0]}"
