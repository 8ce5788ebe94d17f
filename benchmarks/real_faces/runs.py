"""Where the benchmark's files live under ``--out`` and what a finished run records.

    OUT/split/                          train_list.txt, heldout_pairs.txt, split.json (benchmarks.real_faces.split)
    OUT/runs/<recipe>/<framework>/seed<k>/
        metrics.jsonl                   both frameworks, jsphere's keys: 'train/loss', 'train/lr' every log_every
                                        steps, 'val/heldout/ACC', ... every val_every steps (and at step 0)
        run.log                         the run's console output
        result.json                     written last: a run without it is unfinished (rerun: jsphere resumes from
                                        its checkpoint, PyTorch starts again)
        (jsphere: its whole workdir, checkpoints included; PyTorch: model.pt, the final state_dict)
    OUT/report/                         table.md, summary.json, real_faces.png (benchmarks.real_faces.report)
    OUT/timing.json                     --time-steps (benchmarks.real_faces.timing)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

FRAMEWORKS = ("jsphere", "torch")
RESULT = "result.json"
METRICS = "metrics.jsonl"
VAL_PREFIX = "val/heldout/"
REPORTED = ("ACC", "std_acc", "EER", "TPR@FPR=0.001", "AUC")


def split_dir(out: Path) -> Path:
    return out / "split"


def run_dir(out: Path, recipe: str, framework: str, seed: int) -> Path:
    return out / "runs" / recipe / framework / f"seed{seed}"


def report_dir(out: Path) -> Path:
    return out / "report"


def read_metrics(path: Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (none if it does not exist yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curves(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of the training loss and of every held-out metric, in step order (a resumed run's repeated
    steps keep their last value)."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if key == "train/loss" or key.startswith(VAL_PREFIX):
                out.setdefault(key, {})[int(row["step"])] = float(value)
    return {key: sorted(values.items()) for key, values in out.items()}


def write_json(path: Path, value: dict) -> None:
    """Write atomically: ``result.json`` marks a finished run, so it is never half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def read_result(path: Path) -> dict | None:
    path = path / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def machine() -> dict:
    """The CPU (model, ISA extensions that matter here, cores) and the library versions of a run."""
    import jax
    import torch

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("cpu family", "model") and value.strip().isdigit():
                flags.add(f"{key.strip().replace(' ', '_')}={value.strip()}")
            elif key.strip() == "flags":
                flags |= {f for f in value.split() if f in ("avx2", "avx512f", "avx512_bf16", "amx_tile")}
    return {"cpu": model, "cpu_features": sorted(flags), "cores": os.cpu_count(), "load_avg": os.getloadavg(),
            "jax": jax.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def median_step_time(rows: list[dict], batch_size: int) -> float | None:
    """Median seconds per step over a run's logging windows (``train/img_per_s``, the data pipeline included;
    robust to the few windows that also held compilation or a validation)."""
    rates = [row["train/img_per_s"] for row in rows if row.get("train/img_per_s")]
    return batch_size / statistics.median(rates) if rates else None


def val_set(out: Path, lfw: Path) -> dict:
    """The held-out pair set, as jsphere's validation and both frameworks' final evaluation read it."""
    from benchmarks.real_faces import recipes, split

    return dict(name=recipes.HELDOUT_NAME, type="pairs", path=str(split_dir(out) / split.HELDOUT_PAIRS),
                data_dir=str(lfw))


def final_metrics(embedder, out: Path, lfw: Path) -> dict[str, float]:
    """Held-out metrics of a finished model (a jsphere ``Embedder`` or a ``TorchEmbedder``), with jsphere's
    evaluator: flip-summed embeddings, OpenSphere's best-threshold ACC, EER, AUC, TPR@FPR and the standard
    10-fold accuracy."""
    from jsphere.eval.evaluators import PairEvaluator

    return PairEvaluator(val_set(out, lfw))(embedder).metrics
