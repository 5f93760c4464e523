"""jit/vmap/grad cases for :mod:`fnrl.estimators` (a [T=5, B=2] stream; [T=4, N=3] episodes)."""
import jax
import jax.numpy as jnp

import fnrl.estimators as E
from primitive_cases import Case

MODULE = E
T, B = 5, 2


def _stream(key):
    """rewards, values, next_values, termination, truncation: [T, B] with random episode ends."""
    k = jax.random.split(key, 5)
    ends = jax.random.bernoulli(k[3], 0.3, (T, B))
    term = ends & jax.random.bernoulli(k[4], 0.5, (T, B))
    trunc = ends & ~term
    return (jax.random.normal(k[0], (T, B)), jax.random.normal(k[1], (T, B)),
            jax.random.normal(k[2], (T, B)), term.astype(jnp.float32), trunc.astype(jnp.float32))


def _stream_without_values(key):
    r, _, nv, term, trunc = _stream(key)
    return r, nv, term, trunc


def _log_probs(key, shape=(T, B)):
    k1, k2 = jax.random.split(key)
    return (jax.nn.log_sigmoid(jax.random.normal(k1, shape)),
            jax.nn.log_sigmoid(jax.random.normal(k2, shape)))


def _done(key):
    return (*_log_probs(key), jax.random.bernoulli(key, 0.3, (T, B)).astype(jnp.float32))


def _episodes(key, with_q=False):
    """rewards, target/behaviour log-probs, [q_values, state_values,] mask: [T=4, N=3]."""
    k = jax.random.split(key, 4)
    shape = (4, 3)
    length = jax.random.randint(k[3], (3,), 1, 5)
    mask = (jnp.arange(4)[:, None] < length).astype(jnp.float32)
    q = jax.random.normal(k[2], shape)
    extra = (q, q + 0.1 * jax.random.normal(k[1], shape)) if with_q else ()
    return (jax.random.normal(k[0], shape), *_log_probs(k[1], shape), *extra, mask)


CASES = [
    Case("normalize_advantages", E.normalize_advantages, lambda k: (jax.random.normal(k, (4, 3)),), (0,)),
    Case("td_errors", lambda r, v, nv, term, trunc: E.td_errors(r, v, nv, term, 0.9),
         _stream, (0, 1, 2)),
    Case("discounted_returns",
         lambda r, nv, term, trunc: E.discounted_returns(r, term, trunc, 0.9, next_values=nv),
         _stream_without_values, (0, 1)),
    Case("n_step_returns", lambda r, nv, term, trunc: E.n_step_returns(r, nv, term, trunc, 0.9, 3),
         _stream_without_values, (0, 1)),
    Case("lambda_returns",
         lambda r, nv, term, trunc: E.lambda_returns(r, nv, term, trunc, 0.9, 0.8),
         _stream_without_values, (0, 1)),
    Case("gae", lambda r, v, nv, term, trunc: E.gae(r, v, nv, term, trunc, 0.9, 0.8),
         _stream, (0, 1, 2)),
    Case("importance_ratios", lambda lp, lb: E.importance_ratios(lp, lb, max_ratio=1.2),
         _log_probs, (0, 1)),
    Case("cumulative_importance_ratios",
         lambda lp, lb, done: E.cumulative_importance_ratios(lp, lb, done, max_ratio=1.5),
         _done, (0, 1)),
    Case("trajectory_importance_sampling",
         lambda r, lp, lb, m: E.trajectory_importance_sampling(r, lp, lb, 0.9, m),
         _episodes, (0, 1, 2)),
    Case("per_decision_importance_sampling",
         lambda r, lp, lb, m: E.per_decision_importance_sampling(r, lp, lb, 0.9, m),
         _episodes, (0, 1, 2)),
    Case("weighted_importance_sampling",
         lambda r, lp, lb, m: E.weighted_importance_sampling(r, lp, lb, 0.9, m),
         _episodes, (0, 1, 2)),
    Case("doubly_robust",
         lambda r, lp, lb, q, v, m: E.doubly_robust(r, lp, lb, q, v, 0.9, m),
         lambda key: _episodes(key, with_q=True), (0, 1, 2, 3, 4)),
    Case("weighted_doubly_robust",
         lambda r, lp, lb, q, v, m: E.weighted_doubly_robust(r, lp, lb, q, v, 0.9, m),
         lambda key: _episodes(key, with_q=True), (0, 1, 2, 3, 4)),
]
