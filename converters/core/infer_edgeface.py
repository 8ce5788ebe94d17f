"""Which EdgeFace a state_dict holds (``jsphere.models.edgeface``): the EdgeNeXt widths from the stem and the stage
downsamplings, the depths from the blocks per stage, the heads from ``xca.temperature`` (together they name the
variant), the embedding size from the head, and the LoRaLin rank ratio as the ratios that give every pair's rank
(max(2, int(min(in, out) * r)) = rank): the variant's own when it is among them, else the roundest one. An EdgeNeXt
outside EdgeFace's wrapper, or of widths no EdgeFace has, is refused naming what it is.
"""

from __future__ import annotations

from converters.core import keys
from converters.core.found import Found
from jsphere.models import edgeface

P = "model."  # EdgeFace's wrapper holds the timm model as ``model``


def _stages(sd: dict) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    dims = (keys.shape(sd, f"{P}stem.0.weight")[0],
            *(keys.shape(sd, f"{P}stages.{s}.downsample.1.weight")[0] for s in (1, 2, 3)))
    depths = tuple(keys.count(sd, f"{P}stages.{s}.blocks.{{}}.norm.weight") for s in range(4))
    heads = keys.shape(sd, f"{P}stages.1.blocks.{depths[1] - 1}.xca.temperature")[0]
    return depths, dims, heads


def _linear_pairs(sd: dict) -> list[tuple[int, int, int]]:
    """(in, out, rank) of every LoRaLin pair."""
    pairs = []
    for key in sd:
        if key.endswith(".linear1.weight"):
            rank, cin = keys.shape(sd, key)
            pairs.append((cin, keys.shape(sd, key.replace(".linear1.", ".linear2."))[0], rank))
    return pairs


def _rank_ratio(pairs: list[tuple[int, int, int]], default: float | None, where: str) -> float:
    low, high = 0.0, 1.0
    for cin, cout, rank in pairs:
        m = min(cin, cout)
        if rank > 2:
            low, high = max(low, rank / m), min(high, (rank + 1) / m)
        else:
            high = min(high, 3 / m)
    if low >= high:
        raise ValueError(f"{where}: an EdgeFace whose LoRaLin ranks follow no single rank ratio")
    for candidate in (default, round((low + high) / 2, 1), round((low + high) / 2, 2), (low + high) / 2):
        if candidate is not None and low <= candidate < high:
            return candidate
    return (low + high) / 2


def edgeface_found(sd: dict, where: str) -> Found:
    if f"{P}stem.0.weight" not in sd:
        raise ValueError(f"{where}: a timm EdgeNeXt without EdgeFace's wrapper (keys stem.0, stages.N ... instead of "
                         "model.stem.0 ...); prefix its keys with 'model.' as EdgeFace saves them")
    depths, dims, heads = _stages(sd)
    variant = next((n for n, (d, w, h, _) in edgeface.VARIANTS.items() if (d, w, h) == (depths, dims, heads)), None)
    if variant is None:
        raise ValueError(f"{where}: an EdgeNeXt with depths {depths}, widths {dims} and {heads} heads, which is no "
                         f"EdgeFace variant ({', '.join(edgeface.VARIANTS)})")
    default = edgeface.VARIANTS[variant][3]
    pairs = _linear_pairs(sd)
    ratio = _rank_ratio(pairs, default, where) if pairs else None
    low_rank = f"{P}head.fc.linear2.weight" in sd
    dim = keys.shape(sd, f"{P}head.fc.linear2.weight" if low_rank else f"{P}head.fc.weight")[0]
    kwargs = {} if ratio == default else {"rank_ratio": ratio}
    linears = f"LoRaLin rank ratio {ratio:g}" if ratio is not None else "full-rank Linears"
    return Found(variant, dim, kwargs, f"EdgeFace {variant} (EdgeNeXt {dims}, {linears}), {dim}-d embedding; input "
                                       "RGB (x - 127.5) / 127.5, EdgeFace's own", origin="edgeface")
