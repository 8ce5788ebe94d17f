"""What each stage runs: the shapes of a GPU run (``GPU``), and ``--smoke``'s tiny ones for a CPU dry run.

Plain data, no JAX: the supervising process reads the stage list and budgets from here without importing a
framework, and ``loop_config`` builds the training config of both the ``train5`` and the ``loop`` stages from
the same fields (so the two compile the same step, and the persistent compilation cache serves the second).
"""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    budget_s: float  # its own time limit; past it the stage is recorded as a timeout and the next one runs
    fresh: bool = False  # begin a new process (the stages after it share it): the loop's jsphere.main needs the
    # device memory that an earlier stage's process would hold (XLA keeps what it allocated until the process ends)


@dataclasses.dataclass(frozen=True)
class Model:
    arch: str
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SpeedCase:
    model: Model
    head: str
    batch: int
    classes: int


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    device: str  # 'gpu' | 'cpu': where the frameworks run
    stages: tuple[Stage, ...]
    deadline_s: float  # the whole check; stages that would start past it are recorded as skipped
    startup_s: float  # a stage process's imports and device start-up, before its first stage begins
    # correctness
    head_shape: tuple[int, int, int]  # batch, feature dim, classes
    head_names: tuple[str, ...] | None  # None: every registered head
    convert_model: Model
    convert_images: int
    sharded: tuple[int, int, int, float]  # classes, batch, feature dim, sample rate
    # train5 and the loop (one training recipe, see loop_config)
    train_model: Model
    train_batch: int
    train_steps: int  # the checked steps of train5 (finite, falling loss)
    timed_steps: int  # then this many timed steps (the step's own img/s)
    identities: int  # of the synthetic set the loop reads (and the head's class count in both stages)
    images_per_identity: int
    loop_steps: int
    loop_log_every: int
    loop_workers: int
    loop_threads: int
    # speed
    speed: dict[str, SpeedCase]  # stage name -> case
    rounds: int  # interleaved timing rounds (``benchmarks.common.interleaved``)
    warmup: int  # untimed calls of each runner before them
    settle: int  # untimed calls before each timed one
    matmul_n: int  # side of the bf16 matmul whose throughput is the MFU denominator
    embed: dict[str, Model]  # stage name -> model
    embed_batch: int


def _stages(budgets: dict[str, float]) -> tuple[Stage, ...]:
    return tuple(Stage(name, budgets[name], name in FRESH) for name in ORDER)


# The order is the priority when the deadline comes: the headline figures (iresnet100 b512 against PyTorch, the
# loop against its step) first, then correctness, then the other speed figures.
ORDER = ["environment", "speed_r100_b512", "train5", "loop", "heads", "convert", "speed_r100_b128", "sharded",
         "speed_sfnet20", "embed_r100", "embed_mbf"]
FRESH = ("loop",)
R100, SF20 = Model("iresnet100"), Model("sfnet20_deprecated")

GPU = Profile(
    name="gpu", device="gpu",
    stages=_stages({"environment": 60, "speed_r100_b512": 240, "train5": 150, "loop": 150, "heads": 90,
                    "convert": 100, "speed_r100_b128": 130, "sharded": 60, "speed_sfnet20": 90, "embed_r100": 90,
                    "embed_mbf": 60}),
    deadline_s=360, startup_s=90,
    head_shape=(128, 512, 2000), head_names=None, convert_model=Model("iresnet50"), convert_images=64,
    sharded=(85_742, 512, 512, 0.2),
    train_model=Model("iresnet50"), train_batch=256, train_steps=5, timed_steps=20,
    identities=1000, images_per_identity=8, loop_steps=150, loop_log_every=10,
    loop_workers=max(1, min(8, (os.cpu_count() or 2) - 4)), loop_threads=2,
    speed={"speed_r100_b512": SpeedCase(R100, "arcface", 512, 85_742),
           "speed_r100_b128": SpeedCase(R100, "arcface", 128, 85_742),
           "speed_sfnet20": SpeedCase(SF20, "sphereface2", 128, 8631)},
    rounds=10, warmup=2, settle=1, matmul_n=8192,
    embed={"embed_r100": R100, "embed_mbf": Model("mobilefacenet")}, embed_batch=256,
)

TINY = Model("sfnet4_bn", {"width": 0.25})
SMOKE = Profile(
    name="smoke", device="cpu",
    stages=_stages(dict.fromkeys(ORDER, 90)),
    deadline_s=600, startup_s=90,
    head_shape=(6, 16, 11), convert_model=TINY,
    # the heads' machinery on four of them (the suite checks every head on the CPU): margin softmax with an
    # independent PyTorch reference, a binary head with a bias, SimPLE's memory bank
    head_names=("arcface", "combined_margin", "sphereface2", "simple"), convert_images=4,
    sharded=(400, 16, 16, 0.2),
    train_model=TINY, train_batch=8, train_steps=5, timed_steps=2,
    identities=6, images_per_identity=4, loop_steps=6, loop_log_every=2, loop_workers=1, loop_threads=1,
    # both iresnet100 stages the same step: the second one loads it from the persistent compilation cache
    speed={"speed_r100_b512": SpeedCase(TINY, "arcface", 4, 100),
           "speed_r100_b128": SpeedCase(TINY, "arcface", 4, 100),
           "speed_sfnet20": SpeedCase(Model("sfnet4", {"width": 0.25}), "sphereface2", 4, 100)},
    rounds=1, warmup=0, settle=0, matmul_n=128,
    embed={"embed_r100": TINY, "embed_mbf": Model("mobilefacenet", {"scale": 1, "blocks": (1, 1, 1, 1)})},
    embed_batch=4,
)

PROFILES = {p.name: p for p in (GPU, SMOKE)}
SMOKE_DEVICES = 4  # simulated CPU devices of a smoke run (the class-sharded head splits over them)


def get(name: str) -> Profile:
    return PROFILES[name]
