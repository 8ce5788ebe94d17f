"""Class-sharded heads: Partial FC generalised to every head of the family (``config.head.sharded``).

The class centres ``w`` are padded to a multiple of the device count and split along the class axis over the
mesh axis ``data`` (device i owns classes [i C_local, (i + 1) C_local)). Inside ``jax.shard_map`` every device
all-gathers the embeddings and labels of the global batch, computes cosines against its own centres only,
and runs the head's unchanged ``forward`` with a ``ShardedClassAxis``: its reductions over classes are local
reductions followed by ``psum``/``pmax`` (so the softmax normaliser is global without ever materialising the
global logits), padded classes are masked out, and the one-hot is each device's slice. Binary heads
(SphereFace2, UniFace) sum their per-class terms the same way. Autodiff through the collectives is exact.

With ``sample_rate < 1`` each device keeps every positive class of the global batch plus random negatives, k =
max(int(sample_rate * C_local), min(B_global, C_local)) centres (static), so only those rows receive gradient
(as arcface_torch's PartialFC v2; the optimizer still decays every row).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jsphere.heads.base import Head
from jsphere.heads.common import ClassAxis
from jsphere.parallel import DATA_AXIS as AXIS


class ShardedClassAxis(ClassAxis):
    """Reductions over a class axis split across the devices of mesh axis ``data`` (inside shard_map)."""

    def __init__(self, num_classes: int, local_labels: jax.Array, valid: jax.Array):
        super().__init__(num_classes)
        self.local_labels = local_labels  # [B] column of each label on this device, -1 if elsewhere
        self.valid = valid  # [C_local] False for padded (or unsampled filler) columns

    def one_hot(self, labels, dtype):
        cols = self.valid.shape[0]
        return jax.nn.one_hot(self.local_labels, cols, dtype=dtype)

    def sum(self, x):
        return jax.lax.psum(jnp.sum(jnp.where(self.valid, x, 0), axis=-1), AXIS)

    def max(self, x):
        return jax.lax.pmax(jax.lax.stop_gradient(jnp.max(jnp.where(self.valid, x, -jnp.inf), axis=-1)), AXIS)

    def logsumexp(self, x):
        m = self.max(x)
        return m + jnp.log(self.sum(jnp.exp(jnp.where(self.valid, x, -jnp.inf) - m[:, None])))

    def take(self, rows, labels):
        picked = rows[jnp.clip(self.local_labels, 0, rows.shape[0] - 1)]
        return jax.lax.psum(jnp.where((self.local_labels >= 0)[:, None], picked, 0), AXIS)


def _gather_batch(local: jax.Array, index: jax.Array, devices: int) -> jax.Array:
    """The global batch on every device, typed as replicated: a psum of each device's slice in its place (its
    transpose hands each device the gradient of its own rows, summed over the class shards)."""
    b = local.shape[0]
    full = jnp.zeros((devices * b,) + local.shape[1:], local.dtype)
    return jax.lax.psum(jax.lax.dynamic_update_slice_in_dim(full, local, index * b, axis=0), AXIS)


def padded_rows(head: Head, num_classes: int, num_devices: int) -> int:
    """Rows of ``w`` after padding the class count to a multiple of ``num_devices``."""
    if num_classes < num_devices:
        raise ValueError(f"a class-sharded head needs at least one class per device: {num_classes} classes < "
                         f"{num_devices} devices (use config.head.sharded=False)")
    per_device = math.ceil(num_classes / num_devices)
    return head.centre_rows(per_device * num_devices)


class ShardedHead:
    """A head whose class centres are split over the devices of ``mesh``.

    It owns its padding: ``init`` creates the padded centres directly sharded; checkpoints hold them padded
    (``layout`` goes into the metadata); a run resuming with a checkpoint padded for another device count keeps
    that padding when this mesh can split it, and otherwise reads the per-class arrays whole and ``repad``s them.
    """

    def __init__(self, head: Head, mesh: jax.sharding.Mesh, num_classes: int, feat_dim: int, *,
                 sample_rate: float = 1.0, seed: int = 0, rows: int | None = None):
        if not head.class_shardable:
            raise ValueError(f"head {head.name!r} cannot be class-sharded (its loss needs the whole class axis on "
                             "one device, or it has no class centres): use config.head.sharded=False")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"config.head.sample_rate must be in (0, 1], got {sample_rate}")
        self.head, self.mesh, self.num_classes, self.feat_dim = head, mesh, num_classes, feat_dim
        self.devices = mesh.shape[AXIS]
        self.rows = padded_rows(head, num_classes, self.devices)
        self.real_rows = head.centre_rows(num_classes)
        if rows is not None and rows % (head.centre_rows(1) * self.devices) == 0 and rows >= self.real_rows:
            self.rows = rows  # resuming: keep the checkpoint's padding, which this mesh splits evenly
        self.classes_per_device = self.rows // head.centre_rows(1) // self.devices
        self.sample_rate, self.seed = sample_rate, seed
        abstract = jax.eval_shape(lambda k: head.init(k, feat_dim, num_classes)[0], jax.random.key(0))
        self.class_params = tuple(k for k, v in abstract.items() if v.shape and v.shape[0] == self.real_rows)

    # ------------------------------------------------------------------------------------------- params
    def specs(self, params) -> dict:
        return {k: P(AXIS) if k in self.class_params else P() for k in params}

    def shardings(self, params) -> dict:
        return {k: NamedSharding(self.mesh, spec) for k, spec in self.specs(params).items()}

    def is_class_leaf(self, path, shape) -> bool:
        """Whether a leaf of a state tree (weights, optimizer state) is a per-class array of this head: its path
        passes through 'head' and ends in a per-class parameter name."""
        keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
        return "head" in keys[:-1] and keys[-1] in self.class_params and len(shape) > 0

    def sharding_of(self, path, shape) -> NamedSharding:
        """The sharding of a state leaf: per-class arrays split over ``data``, everything else replicated."""
        return NamedSharding(self.mesh, P(AXIS) if self.is_class_leaf(path, shape) else P())

    def layout(self) -> dict[str, int]:
        """What a checkpoint records of the padding."""
        return {"rows": self.real_rows, "padded_rows": self.rows}

    def _pad_to(self, x: jax.Array) -> jax.Array:
        x = x[: self.real_rows]
        return jnp.concatenate([x, jnp.zeros((self.rows - x.shape[0],) + x.shape[1:], x.dtype)])

    def pad(self, params: dict) -> dict:
        """Unpadded params (``init_from``, converted weights) padded to this head's rows."""
        return {k: self._pad_to(jnp.asarray(v)) if k in self.class_params else v for k, v in params.items()}

    def saved_layout(self, target, saved_rows: int):
        """A restore target whose per-class leaves have the checkpoint's padded shape (replicated) when it
        differs from this head's."""
        if saved_rows == self.rows:
            return target
        replicated = NamedSharding(self.mesh, P())

        def leaf(path, x):
            if not self.is_class_leaf(path, x.shape):
                return x
            return jax.ShapeDtypeStruct((saved_rows,) + tuple(x.shape[1:]), x.dtype, sharding=replicated)

        return jax.tree_util.tree_map_with_path(leaf, target)

    def repad(self, tree):
        """Per-class leaves padded for another device count, padded for this one (others unchanged)."""
        return jax.tree_util.tree_map_with_path(
            lambda path, x: self._pad_to(x) if self.is_class_leaf(path, x.shape) and x.shape[0] != self.rows else x,
            tree)

    def init(self, key):
        """Padded params created directly sharded (the full ``w`` never sits on one device)."""
        def make(key):
            params, state = self.head.init(key, self.feat_dim, self.num_classes)
            return self.pad(params), state

        shapes = jax.eval_shape(make, key)
        out_shardings = (self.shardings(shapes[0]), jax.tree.map(lambda _: NamedSharding(self.mesh, P()), shapes[1]))
        return jax.jit(make, out_shardings=out_shardings)(key)

    def project(self, params):
        return self.head.project(params)

    # ---------------------------------------------------------------------------------------------- loss
    def _local_loss(self, params, state, x, labels, step, *key):
        index = jax.lax.axis_index(AXIS)
        x, labels = _gather_batch(x, index, self.devices), _gather_batch(labels, index, self.devices)
        k = int(self.head.centre_rows(1))
        c_local = self.classes_per_device
        offset = index * c_local
        local = labels - offset
        mine = (local >= 0) & (local < c_local)
        valid = (offset + jnp.arange(c_local)) < self.num_classes
        if self.sample_rate < 1.0:
            keep = min(c_local, max(int(self.sample_rate * c_local), min(labels.shape[0], c_local)))
            positive = jnp.zeros((c_local,), bool).at[jnp.where(mine, local, c_local)].set(True, mode="drop")
            sample_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(self.seed), step), index)
            score = jax.random.uniform(sample_key, (c_local,)) + 2.0 * positive
            score = jnp.where(valid, score, -1.0)
            chosen = jnp.sort(jax.lax.top_k(score, keep)[1])
            params = {name: (v.reshape((c_local, k) + v.shape[1:])[chosen].reshape((keep * k,) + v.shape[1:])
                             if name in self.class_params else v) for name, v in params.items()}
            valid = valid[chosen]
            position = jnp.searchsorted(chosen, jnp.clip(local, 0, c_local - 1))
            mine = mine & (chosen[jnp.clip(position, 0, keep - 1)] == local)
            local = position
        axis = ShardedClassAxis(self.num_classes, jnp.where(mine, local, -1), valid)
        return self.head.forward(params, state, x, labels, step, axis, *key)

    def loss(self, params, state, embeddings, labels, step, key=None):
        """Same contract as ``Head.loss``; embeddings/labels sharded (or replicated) along the batch. A stochastic
        head's ``key`` reaches every device whole, so each draws what the dense head draws for the global batch."""
        x = embeddings.astype(jnp.promote_types(embeddings.dtype, jnp.float32))
        key = tuple(self.head.key_argument(key).values())
        fn = jax.shard_map(self._local_loss, mesh=self.mesh,
                           in_specs=(self.specs(params), P(), P(AXIS), P(AXIS), P()) + (P(),) * len(key),
                           out_specs=(P(), P(), P()))
        return fn(params, state, x, labels, jnp.asarray(step), *key)
