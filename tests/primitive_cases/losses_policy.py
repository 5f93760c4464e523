"""jit/vmap/grad cases for :mod:`fnrl.losses.policy`."""
import distrax
import jax
import jax.numpy as jnp

import fnrl.losses.policy
from fnrl.losses import policy as P
from primitive_cases import Case

MODULE = fnrl.losses.policy
EXEMPT = {"PPODiagnostics": "a NamedTuple of results, not a function (ppo_diagnostics has a case)"}

T, B, A = 5, 2, 3


def _samples(key, n):
    """n float arrays of shape [T, B]; the first two read as log-probs."""
    return tuple(jax.random.normal(k, (T, B)) - 1.0 for k in jax.random.split(key, n))


def _mask(key):
    return (jax.random.uniform(key, (T, B)) > 0.3).astype(jnp.float32)


def _with_mask(n):
    return lambda key: (*_samples(key, n), _mask(jax.random.fold_in(key, 1)))


def _critic(K, obs, action):
    return -jnp.sum((action - obs @ K) ** 2, axis=-1)


def _continuous(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    K = jax.random.normal(k1, (4, A))
    obs = jax.random.normal(k2, (T, B, 4))
    action = jax.random.normal(k3, (T, B, A))
    log_prob = jax.random.normal(k4, (T, B)) - 1.0
    return K, obs, action, log_prob, jnp.float32(0.2)


CASES = [
    Case("policy_gradient_loss", P.policy_gradient_loss, _with_mask(2), (0, 1)),
    Case("surrogate_loss", P.surrogate_loss, _with_mask(3), (0, 1, 2)),
    Case(
        "ppo_clip_loss", lambda lp, olp, adv, m: P.ppo_clip_loss(lp, olp, adv, 0.2, m), _with_mask(3), (0, 1, 2)
    ),
    Case("ppo_diagnostics", lambda lp, olp, m: P.ppo_diagnostics(lp, olp, 0.2, m), _with_mask(2), (0, 1)),
    Case(
        "kl_penalty_loss",
        lambda lp, olp, adv, kl, m: P.kl_penalty_loss(lp, olp, adv, jnp.abs(kl), jnp.float32(0.5), m),
        _with_mask(4),
        (0, 1, 2, 3),
    ),
    Case(
        "adaptive_kl_beta",
        lambda beta, kl: P.adaptive_kl_beta(beta, kl, kl_target=0.01),
        lambda key: (jnp.float32(1.0), 0.02 * jax.random.uniform(key)),
        (0, 1),
    ),
    Case(
        "entropy_loss",
        lambda logits, mu, log_std, m: (
            P.entropy_loss(distrax.Categorical(logits=logits), m),
            P.entropy_loss(distrax.MultivariateNormalDiag(mu, jnp.exp(log_std)), m),
        ),
        lambda key: (*(jax.random.normal(k, (T, B, A)) for k in jax.random.split(key, 3)), _mask(key)),
        (0, 1, 2),
    ),
    Case(
        "deterministic_actor_loss",
        lambda K, obs, action: P.deterministic_actor_loss(_critic, K, obs, action),
        lambda key: _continuous(key)[:3],
        (0, 1, 2),
    ),
    Case(
        "sac_actor_loss",
        lambda K, obs, action, log_prob, alpha: P.sac_actor_loss(_critic, K, obs, action, log_prob, alpha),
        _continuous,
        (0, 1, 2, 3, 4),
    ),
    Case(
        "sac_temperature_loss",
        lambda log_alpha, log_prob, m: P.sac_temperature_loss(log_alpha, log_prob, -float(A), m),
        lambda key: (jnp.float32(-1.0), *_samples(key, 1), _mask(key)),
        (0, 1),
    ),
]
