"""jit/vmap/grad cases for :mod:`fnrl.losses.offline`."""
import jax
import jax.numpy as jnp

import fnrl.losses.offline
from fnrl.losses import offline as O
from primitive_cases import Case

MODULE = fnrl.losses.offline
B, A, N = 4, 3, 6  # batch, discrete actions, sampled actions


def _normal(key, *shape):
    return jax.random.normal(key, shape)


def _normals(key, *shapes):
    return tuple(_normal(k, *s) for k, s in zip(jax.random.split(key, len(shapes)), shapes))


def _critic(K, obs, action):
    return -jnp.sum((action - obs @ K) ** 2, axis=-1) - 1.0


CASES = [
    Case("bc_nll_loss", O.bc_nll_loss, lambda k: (-jnp.abs(_normal(k, B)),), (0,)),
    Case("awr_weights", lambda adv: O.awr_weights(adv, temperature=0.5, max_weight=5.0),
         lambda k: (2 * _normal(k, B),), (0,)),
    Case("awr_actor_loss", lambda logp, adv: O.awr_actor_loss(logp, adv, temperature=0.5, max_weight=5.0),
         lambda k: _normals(k, (B,), (B,)), (0, 1)),
    Case("expectile_loss", lambda v, q: O.expectile_loss(v, q, expectile=0.8),
         lambda k: _normals(k, (B,), (B,)), (0, 1)),
    Case("td3_bc_actor_loss",
         lambda K, obs, action, data_action: O.td3_bc_actor_loss(_critic, K, obs, action, data_action, alpha=2.5),
         lambda k: _normals(k, (2, A), (B, 2), (B, A), (B, A)), (0, 1, 2, 3)),
    Case("cql_penalty_discrete", lambda q, a: O.cql_penalty_discrete(q, a, temperature=0.5),
         lambda k: (_normal(k, B, A), jax.random.randint(jax.random.fold_in(k, 1), (B,), 0, A)), (0,)),
    Case("cql_penalty_continuous",
         lambda qd, qu, lu, qp, lp: O.cql_penalty_continuous(qd, qu, lu, qp, lp, temperature=0.5),
         lambda k: (*_normals(k, (B,), (B, N)), jnp.full((B, N), -jnp.log(2.0)),
                    *_normals(jax.random.fold_in(k, 1), (B, N), (B, N))),
         (0, 1, 2, 3, 4)),
]
