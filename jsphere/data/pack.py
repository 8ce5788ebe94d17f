"""``python -m jsphere.data.pack --source <list file|folder|train.rec> [--data-dir ROOT] --out DIR [--overwrite]``

Converts any training source to jsphere's packed ArrayRecord format (see ``arrayrecord``), checking that
every image decodes to an aligned 112x112 face; unreadable images are left out and listed in the summary.
``DIR`` follows :mod:`jsphere.outputs`' rule: created with its parents, written all-or-nothing, an existing
non-empty folder replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from array_record.python.array_record_module import ArrayRecordWriter

from jsphere import cli, errors, observe, outputs
from jsphere.data.arrayrecord import encode_record
from jsphere.data.decode import CorruptImageError, decode_aligned
from jsphere.data.sources import FORMATS, open_source


def pack(source_spec: str, out: str | Path, *, data_dir: str | None = None, fmt: str = "auto",
         images_per_shard: int = 100_000, verbose: bool = True, overwrite: bool = False) -> dict:
    """Write the packed copy of a source; return the summary (images, identities, bytes, bad files)."""
    if images_per_shard < 1:
        raise errors.UserError(f"--images-per-shard {images_per_shard}: must be >= 1")
    outputs.check_free(out, overwrite=overwrite)
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise errors.UserError(f"--data-dir {data_dir}: not a folder (the root of the list's relative paths)")
    source = open_source(source_spec, data_dir, fmt)
    with outputs.staged_dir(out, overwrite=overwrite) as tmp:
        return _write(source, source_spec, tmp, images_per_shard, verbose)


def _write(source, source_spec: str, out: Path, images_per_shard: int, verbose: bool) -> dict:
    n = len(source)
    shards = max(1, -(-n // images_per_shard))
    labels, bad, total_bytes = [], [], 0
    writer, shard = None, -1
    bar = observe.ImageProgress(n, "checked and packed", enabled=verbose)
    for i in range(n):
        if len(labels) // images_per_shard != shard or writer is None:
            if writer is not None:
                writer.close()
            shard = len(labels) // images_per_shard
            writer = ArrayRecordWriter(str(out / f"data-{shard:05d}-of-{shards:05d}.array_record"), "group_size:1")
        try:
            image, label = source[i]
            decode_aligned(image, what=source.describe(i))
        except (CorruptImageError, FileNotFoundError) as e:
            bad.append(str(e))
            bar.advance(1)
            continue
        writer.write(encode_record(image, label))
        labels.append(label)
        total_bytes += len(image)
        bar.advance(1)
    bar.close()
    if writer is not None:
        writer.close()
    if not labels:
        raise errors.UserError(f"--source {source_spec}: none of its {n} images decodes to an aligned 112x112 face "
                            f"(first: {bad[0]})")
    np.save(out / "labels.npy", np.asarray(labels, np.int64))
    summary = {"num_images": len(labels), "num_classes": int(source.num_classes),
               "class_names": list(source.class_names), "source": str(source_spec), "bytes": total_bytes,
               "bad_files": bad}
    (out / "meta.json").write_text(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="jsphere.data.pack", description=__doc__)
    p.add_argument("--source", required=True, help="list file, image folder, train.rec (or its folder)")
    p.add_argument("--data-dir", default=None, help="root of a list file's relative paths")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--out", required=True)
    p.add_argument("--images-per-shard", type=int, default=100_000)
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    s = pack(a.source, a.out, data_dir=a.data_dir, fmt=a.format, images_per_shard=a.images_per_shard,
             overwrite=a.overwrite)
    print(f"packed {s['num_images']:,} images of {s['num_classes']:,} identities ({s['bytes'] / 2**20:,.1f} MiB) "
          f"into {a.out}; {len(s['bad_files'])} bad files skipped")
    for line in s["bad_files"][:20]:
        print(f"  bad: {line}")
    return 0


if __name__ == "__main__":
    cli.run("jsphere.data.pack", main)
