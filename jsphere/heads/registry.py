"""Heads by name: ``jsphere.heads.build('sphereface2', alpha=0.7, r=40, m=0.4, t=3, lw=10)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsphere.heads.a_softmax_caffe import ASoftmaxCaffe
from jsphere.heads.adaface import AdaFace
from jsphere.heads.arcface import ArcFace
from jsphere.heads.base import Head
from jsphere.heads.combined_margin import CombinedMargin
from jsphere.heads.cosface import CosFace
from jsphere.heads.curricularface import CurricularFace
from jsphere.heads.elasticface import ElasticArcFace, ElasticCosFace
from jsphere.heads.gasoftmax import GASoftmax
from jsphere.heads.gbcosface import GBCosFace
from jsphere.heads.magface import MagFace
from jsphere.heads.simple import SimPLE
from jsphere.heads.softmax import CocoLoss, Softmax
from jsphere.heads.sphereface import SphereFace
from jsphere.heads.sphereface2 import SphereFace2
from jsphere.heads.spherefaceplus import SphereFacePlus
from jsphere.heads.spherefacer import SphereFaceRH, SphereFaceRN, SphereFaceRS
from jsphere.heads.subcenter_arcface import SubcenterArcFace
from jsphere.heads.svsoftmax import SVSoftmax
from jsphere.heads.uniface import UniFace

_HEADS: dict[str, type[Head]] = {cls.name: cls for cls in (
    Softmax, CocoLoss, SphereFace, SphereFacePlus, GASoftmax, SphereFaceRH, SphereFaceRS, SphereFaceRN,
    SphereFace2, ArcFace, CosFace, CombinedMargin, SimPLE, GBCosFace, SVSoftmax, ASoftmaxCaffe,
    CurricularFace, MagFace, AdaFace, SubcenterArcFace, UniFace, ElasticArcFace, ElasticCosFace,
)}
ALIASES = {"normface": "cocoloss", "amsoftmax": "cosface"}


def register(cls: type[Head]) -> type[Head]:
    """Add a head class (usable as a decorator); its ``name`` becomes buildable by ``build``."""
    _HEADS[cls.name] = cls
    return cls


def names() -> list[str]:
    """Every name ``build`` accepts: the heads' names, then the aliases."""
    return sorted(_HEADS) + sorted(ALIASES)


def build(name: str, **hparams: Any) -> Head:
    """A head by name; besides its hyper-parameters ``project_centres`` and ``init_std`` (see ``Head``)."""
    key = ALIASES.get(name, name)
    if key not in _HEADS:
        raise ValueError(f"unknown head {name!r}; valid names: {', '.join(names())}")
    return _HEADS[key](**hparams)


def from_config(head: Mapping[str, Any]) -> Head:
    """The head a run's ``config.head`` describes: ``name``, ``hparams``, ``project_centres``, ``init_std``
    (the last two None: the head's own recipe)."""
    return build(head["name"], project_centres=head.get("project_centres"), init_std=head.get("init_std"),
                 **dict(head.get("hparams") or {}))
