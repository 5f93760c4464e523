"""Data parallelism over devices and hosts, by sharding one program (GSPMD).

The training loop stays a single ``jax.jit`` program; with ``num_devices = D > 1`` it
builds a 1-D device :class:`~jax.sharding.Mesh` with axis ``"devices"`` and puts sharding
constraints on it (:func:`shard_batch`):

- the environment batch axis ``B`` of the environment state -- and so of every
  time-major ``[T, B, ...]`` trajectory -- is split into ``D`` blocks of ``B / D``
  environments, one per device;
- the learner (parameters, optimiser state) is replicated.

XLA's SPMD partitioner (Xu et al., "GSPMD: General and Scalable Parallelization for ML
Computation Graphs", 2021) then runs each device on its block and inserts the collectives the
program's semantics need: the batch mean of a loss becomes per-device partial sums followed
by an all-reduce, i.e. every device applies the same gradient averaged over the global batch
(data parallelism, ``g = (1/D) sum_d g_d`` for equal blocks), and batch statistics (observation
normalisation, advantage normalisation, episode metrics) are global too.

Why sharding rather than ``shard_map`` with ``lax.pmean``: a sharding annotation never
changes what a program computes, only where. The sharded run is therefore the single-device
run with the same global batch and seed -- the same random numbers (JAX's threefry is
partitionable, ``jax_threefry_partitionable``, so each device draws just its own block of
the global stream), the same minibatch permutations, the same statistics -- equal up to the
order of floating-point reductions. With ``shard_map`` each device would run the per-device
program on its own block, and every random draw, batch statistic and permutation would have
to be rewritten per device (keyed per environment, ``pmean``-ed) to keep that equality, in
every algorithm. Here no algorithm module contains device logic.

The price of that equality: whatever mixes environments crosses devices. Minibatches drawn
by one permutation of the global batch (:func:`fnrl.loops.onpolicy.minibatch_epochs`) are gathered
across devices (all-gathers of the batch each epoch), and evaluation, which is not sharded,
runs replicated on every device.

Several hosts: call :func:`initialize` (``jax.distributed.initialize``) in every process
before JAX is otherwise used; ``jax.devices()`` then lists the devices of every process, the
mesh spans them, and each process runs the same program on its own devices.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "devices"


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Joins a multi-process JAX run through ``jax.distributed.initialize``.

    Call it in every process before anything else touches JAX (before any array is made).
    Either give all three of ``coordinator`` (``host:port`` of process 0), ``num_processes``
    and ``process_id``, or none of them: JAX then reads them from the cluster
    environment (SLURM, Open MPI, Kubernetes/GKE, Cloud TPU ...).

    Raises:
      ValueError: one line, when only some of the three are given or they are out of range.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError("distributed: give the coordinator address, the number of processes and the "
                         "process id together, or none of them (to read them from the cluster environment)")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"distributed: the process id must be in [0, {num_processes}) for {num_processes} "
                         f"processes, got {process_id}")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def make_mesh(num_devices: int) -> Mesh:
    """A 1-D mesh with axis ``"devices"`` over the first ``num_devices`` of ``jax.devices()``
    (every process's devices in a multi-process run, where the mesh must span them all).

    Raises:
      ValueError: one line, when fewer devices are available (naming how to get more on CPU),
        or when a multi-process mesh would leave a process out.
    """
    available = jax.device_count()
    if not 1 <= num_devices <= available:
        raise ValueError(
            f"num_devices={num_devices} but {available} device(s) are available "
            f"({jax.default_backend()}); on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N "
            f"before JAX starts")
    if jax.process_count() > 1 and num_devices != available:
        raise ValueError(f"num_devices={num_devices}: a run over {jax.process_count()} processes must use "
                         f"all {available} of their devices")
    return Mesh(np.asarray(jax.devices()[:num_devices]), (AXIS,))


def shard_batch(tree: Any, mesh: Mesh | None, axis: Any = 0) -> Any:
    """``tree`` constrained to be split along a batch axis over ``mesh``'s devices.

    Each leaf is split into equal blocks along its axis ``axis`` (an int for every leaf, or
    a pytree prefix of ``tree`` of ints and ``None``; ``None`` replicates the leaf). With
    ``mesh=None`` (one device) ``tree`` is returned unchanged, so a single-device program
    carries no sharding at all (and vmaps over seeds freely). Values are never changed:
    it is ``jax.lax.with_sharding_constraint``, a layout annotation for jit.
    """
    if mesh is None:
        return tree

    def spec(leaf_axis, leaf):
        if leaf_axis is None:
            return NamedSharding(mesh, PartitionSpec())
        shape = np.shape(leaf)
        if not 0 <= leaf_axis < len(shape):
            raise ValueError(f"shard_batch: axis {leaf_axis} is out of range for a leaf of shape {shape}")
        if shape[leaf_axis] % mesh.size:
            raise ValueError(f"shard_batch: axis {leaf_axis} of a leaf of shape {shape} does not split into "
                             f"{mesh.size} equal blocks")
        return NamedSharding(mesh, PartitionSpec(*(None,) * leaf_axis, AXIS))

    if axis is None or isinstance(axis, int):
        shardings = jax.tree_util.tree_map(lambda leaf: spec(axis, leaf), tree)
    else:
        shardings = jax.tree_util.tree_map(spec, axis, tree, is_leaf=lambda a: a is None)
    return jax.lax.with_sharding_constraint(tree, shardings)


def batch_axes(make: Callable[[int], Any], batch_size: int) -> Any:
    """Which leaves of ``make(batch_size)`` carry the batch: a pytree of ``0`` (leading axis
    is the batch) and ``None`` (shared across the batch, e.g. observation statistics or the
    auto-reset key).

    Found from abstract shapes only (``jax.eval_shape``, no computation): a leaf is batched
    when its leading dimension follows the batch size from ``batch_size`` to
    ``2 * batch_size``.
    """
    small, large = (jax.eval_shape(lambda: make(n)) for n in (batch_size, 2 * batch_size))
    return jax.tree_util.tree_map(lambda a, b: 0 if a.shape[:1] != b.shape[:1] else None, small, large)


__all__ = ["initialize", "make_mesh", "shard_batch", "batch_axes"]
