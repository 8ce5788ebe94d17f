"""A RecordIO writer written from dmlc-core's byte layout (as ``jsphere.data.recordio`` describes it), for the
tests only."""

import struct

MAGIC = 0xCED7230A


def _chunk(payload: bytes, cflag: int) -> bytes:
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("<II", MAGIC, (cflag << 29) | len(payload)) + payload + b"\0" * pad


def record(payload: bytes) -> bytes:
    """dmlc splits a payload at every 4-byte-aligned magic word and drops those 4 bytes."""
    magic = struct.pack("<I", MAGIC)
    parts, start = [], 0
    for pos in range(0, len(payload) - 3, 4):
        if payload[pos:pos + 4] == magic and pos >= start:
            parts.append(payload[start:pos])
            start = pos + 4
    parts.append(payload[start:])
    if len(parts) == 1:
        return _chunk(parts[0], 0)
    flags = [1] + [2] * (len(parts) - 2) + [3]
    return b"".join(_chunk(p, f) for p, f in zip(parts, flags, strict=True))


def image_payload(image: bytes, label: float | list[float], key: int) -> bytes:
    if isinstance(label, list):
        return struct.pack("<IfQQ", len(label), 0.0, key, 0) + struct.pack(f"<{len(label)}f", *label) + image
    return struct.pack("<IfQQ", 0, float(label), key, 0) + image


def write_rec(folder, images_labels, *, meta=True, num_classes=None):
    """``train.rec``/``train.idx`` in insightface's layout (meta record 0 when ``meta``)."""
    rec, idx = bytearray(), []
    entries = []
    if meta:
        n = len(images_labels)
        entries.append((0, image_payload(b"", [n + 1.0, n + 1.0 + (num_classes or 1)], 0)))
        start = 1
    else:
        start = 0
    for i, (image, label) in enumerate(images_labels):
        entries.append((start + i, image_payload(image, label, start + i)))
    for key, payload in entries:
        idx.append(f"{key}\t{len(rec)}\n")
        rec += record(payload)
    (folder / "train.rec").write_bytes(bytes(rec))
    (folder / "train.idx").write_text("".join(idx))
