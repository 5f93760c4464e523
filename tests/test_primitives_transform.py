"""Every public primitive runs under jit, vmap and grad (issue: foundation).

The example inputs live in ``tests/primitive_cases/<module>.py``; a public name without a
case (and not exempt with a reason) fails ``test_every_public_primitive_has_a_case``.
"""
import importlib
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import primitive_cases

MODULES = [
    importlib.import_module(f"primitive_cases.{m.name}")
    for m in pkgutil.iter_modules(primitive_cases.__path__)
]
CASES = [(mod.__name__.split(".")[-1], case) for mod in MODULES for case in mod.CASES]
IDS = [f"{m}.{c.name}" for m, c in CASES]


def _leaves_close(a, b, rtol=1e-5, atol=1e-5):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.split(".")[-1])
def test_every_public_primitive_has_a_case(module):
    covered = {c.name for c in module.CASES} | set(getattr(module, "EXEMPT", {}))
    missing = sorted(set(module.MODULE.__all__) - covered)
    assert not missing, f"public primitives with no jit/vmap/grad case: {missing}"


@pytest.mark.parametrize("module_name,case", CASES, ids=IDS)
def test_jit_vmap_grad(module_name, case):
    args = case.make_args(jax.random.PRNGKey(0))
    jitted = jax.jit(case.fn)
    _leaves_close(jitted(*args), case.fn(*args))

    # vmap over a batch of 3 independent inputs equals a loop over them (of the jitted
    # function, just checked against the eager one: one compilation, not three eager runs);
    # vmapped under jit, which compiles once rather than op by op.
    batch = [case.make_args(k) for k in jax.random.split(jax.random.PRNGKey(1), 3)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batch)
    vmapped = jax.jit(jax.vmap(case.fn))(*stacked)
    looped = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[jitted(*b) for b in batch])
    _leaves_close(vmapped, looped, rtol=1e-4, atol=1e-4)

    # grad of the summed output is finite with respect to every differentiable argument.
    def scalar(*a):
        return sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(case.fn(*a)))

    grads = jax.jit(jax.grad(scalar, argnums=case.argnums))(*args)
    for g in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(np.asarray(g))), f"non-finite gradient for {case.name}"
