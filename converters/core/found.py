"""A recognised backbone (``Found``) and the rules that name it from counted shapes, shared by every format's
detection: the depth from the blocks per stage (``depth_of``), SFNet's ``width`` from its four stage widths
(``sfnet_width``), MobileFaceNet's registry name from its blocks and scale (``mobilefacenet_name``). State_dicts use
them in ``infer`` and ``infer_ir``, ONNX graphs in ``converters.onnx_format.architecture``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jsphere.models import mobilefacenet, sfnet


@dataclass(frozen=True)
class Found:
    """A backbone name, its keyword arguments and embedding size, and a sentence saying what was seen."""

    arch: str
    embed_dim: int
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    origin: str = ""  # the toolkit whose layout it is, where that decides the input (conventions.for_origin)
    input: dict | None = None  # the input convention recorded at import (InputConvention.to_meta), None: jsphere's


def mobilefacenet_name(blocks: tuple[int, ...], scale: int) -> tuple[str, dict]:
    """The registry name and the keyword arguments that differ from its defaults."""
    for name, variant in mobilefacenet.VARIANTS.items():
        if tuple(variant["blocks"]) == tuple(blocks) and variant["scale"] == scale:
            return name, {}
    kwargs = {}
    if scale != mobilefacenet.VARIANTS["mobilefacenet"]["scale"]:
        kwargs["scale"] = scale
    if tuple(blocks) != mobilefacenet.VARIANTS["mobilefacenet"]["blocks"]:
        kwargs["blocks"] = list(blocks)
    return "mobilefacenet", kwargs


def depth_of(blocks: tuple[int, ...], depths: dict, family: str, where: str) -> int:
    """The depth whose blocks per stage (``depths``: a model family's table, depth -> blocks) are ``blocks``."""
    by_blocks = {tuple(v): k for k, v in depths.items()}
    if blocks not in by_blocks:
        known = ", ".join(f"{family}{d} {tuple(b)}" for d, b in sorted(depths.items()))
        raise ValueError(f"{where}: an {family} with {blocks} blocks per stage, which is no jsphere depth "
                         f"(known: {known})")
    return by_blocks[blocks]


def sfnet_width(channels: tuple[int, ...], where: str) -> float:
    """The SFNet ``width`` whose ``sfnet.stage_channels`` are the file's four stage ``channels``: the widest
    stage's ratio where it gives them all (an exact 0.5 stays 0.5), else the middle of the widths that round to
    every stage's channels (the stem's ratio alone misreads widths such as 0.3)."""
    low = max((c - 0.5) / base for c, base in zip(channels, sfnet.CHANNELS, strict=True))
    high = min((c + 0.5) / base for c, base in zip(channels, sfnet.CHANNELS, strict=True))
    for width in (channels[-1] / sfnet.CHANNELS[-1], (low + high) / 2):
        if sfnet.stage_channels(width) == channels:
            return width
    raise ValueError(f"{where}: an SFNet with stage channels {channels}, which no width gives (their ratios to "
                     f"{sfnet.CHANNELS} do not agree)")
