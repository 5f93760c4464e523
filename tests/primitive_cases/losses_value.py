"""jit/vmap/grad cases for :mod:`fnrl.losses.value`."""
import jax
import jax.numpy as jnp

import fnrl.losses.value
from fnrl.losses import value as V
from primitive_cases import Case

MODULE = fnrl.losses.value
B, A = 5, 3  # batch, actions


def _normal(key, *shape):
    return jax.random.normal(key, shape)


def _termination(key):
    return jax.random.bernoulli(key, 0.3, (B,)).astype(jnp.float32)


def _transition(key):
    """reward [B], termination [B], Q(s', .) [B, A] twice (value / selector)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return _normal(k1, B), _termination(k2), _normal(k3, B, A), _normal(k4, B, A)


CASES = [
    Case("mse_loss", V.mse_loss,
         lambda k: (_normal(k, B), _normal(jax.random.fold_in(k, 1), B),
                    jax.random.uniform(jax.random.fold_in(k, 2), (B,))), (0,)),
    Case("huber_loss", lambda v, y: V.huber_loss(v, y, delta=0.5),
         lambda k: (2 * _normal(k, B), _normal(jax.random.fold_in(k, 1), B)), (0,)),
    Case("clipped_value_loss", lambda v, old, y: V.clipped_value_loss(v, old, y, 0.2),
         lambda k: tuple(_normal(kk, B) for kk in jax.random.split(k, 3)), (0,)),
    Case("td_target", lambda r, t, v: V.td_target(r, t, v, 0.99),
         lambda k: (*_transition(k)[:2], _normal(jax.random.fold_in(k, 9), B)), (0, 2)),
    Case("q_learning_target", lambda r, t, q: V.q_learning_target(r, t, q, 0.99),
         lambda k: _transition(k)[:3], (0, 2)),
    Case("double_q_target", lambda r, t, q, sel: V.double_q_target(r, t, q, sel, 0.99),
         _transition, (0, 2, 3)),
    Case("n_step_q_target", lambda g, t, q, sel, n: V.n_step_q_target(g, t, q, 0.99, n, sel),
         lambda k: (*_transition(k), jax.random.randint(jax.random.fold_in(k, 9), (B,), 1, 4)), (0, 2, 3)),
    Case("expected_sarsa_target", lambda r, t, q, p: V.expected_sarsa_target(r, t, q, p, 0.99),
         lambda k: (*_transition(k)[:3], jax.nn.softmax(_transition(k)[3])), (0, 2, 3)),
    Case("tabular_q_update", lambda q, r, t: V.tabular_q_update(q, 1, 2, r, t, 3, 0.9, 0.5),
         lambda k: (_normal(k, 4, A), _normal(jax.random.fold_in(k, 1)), _termination(k)[0]), (0, 1)),
    Case("action_value", V.action_value,
         lambda k: (_normal(k, B, A), jax.random.randint(jax.random.fold_in(k, 1), (B,), 0, A)), (0,)),
    Case("ensemble_td_loss", V.ensemble_td_loss,
         lambda k: (_normal(k, 2, B), _normal(jax.random.fold_in(k, 1), B),
                    jax.random.uniform(jax.random.fold_in(k, 2), (B,))), (0,)),
    Case("td_loss", lambda q, a, y: V.td_loss(q, a, y, loss="huber", delta=1.0),
         lambda k: (_normal(k, B, A), jax.random.randint(jax.random.fold_in(k, 1), (B,), 0, A),
                    2 * _normal(jax.random.fold_in(k, 2), B)), (0, 2)),
]
