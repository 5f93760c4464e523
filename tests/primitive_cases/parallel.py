"""jit/vmap/grad cases for :mod:`fnrl.parallel`: sharding constraints on a mesh of the one
device these tests see (the constraint must be transparent to every transformation; the
two-device behaviour is tested in ``tests/test_parallel.py``)."""
import jax
import jax.numpy as jnp

import fnrl.parallel as P
from primitive_cases import Case

MODULE = P
EXEMPT = {
    "initialize": "joins a multi-process run (jax.distributed.initialize), once per process",
    "make_mesh": "builds a device Mesh object from the available devices",
    "batch_axes": "reads abstract shapes (jax.eval_shape) of a Python callable; returns ints and None",
}


def _shard(x, y):
    tree = P.shard_batch({"x": x, "y": y}, P.make_mesh(1), {"x": 0, "y": None})
    return jnp.tanh(tree["x"]) * tree["y"].sum()


CASES = [
    Case("shard_batch", _shard, lambda key: (jax.random.normal(key, (4, 3)), jnp.arange(3.0) + 1), (0, 1)),
]
