"""jit/vmap/grad cases for :mod:`fnrl.transforms`, plus the small softmax policy the tests share.

The policy: ``logits(s) = s W + b`` over ``N_ACTIONS`` actions, on ``N_STATES`` states of
dimension ``OBS_DIM``. ``mean_kl_fn`` and ``surrogate_fn`` build the two functions natural
gradient and TRPO take, with the old policy held fixed at ``params_old``.
"""
import jax
import jax.numpy as jnp
import optax

import fnrl.transforms
from fnrl import transforms as T
from primitive_cases import Case

MODULE = fnrl.transforms
EXEMPT = {"TRPOInfo": "a NamedTuple of diagnostics, not a function"}

N_STATES, OBS_DIM, N_ACTIONS = 5, 3, 4


def init_policy(key):
    kw, kb = jax.random.split(key)
    return {"w": jax.random.normal(kw, (OBS_DIM, N_ACTIONS)), "b": 0.5 * jax.random.normal(kb, (N_ACTIONS,))}


def logits(params, obs):
    return obs @ params["w"] + params["b"]


def mean_kl_fn(params_old, obs):
    """``p -> mean_s KL(π_old(·|s) ‖ π_p(·|s))`` with π_old fixed at ``params_old``."""
    log_old = jax.lax.stop_gradient(jax.nn.log_softmax(logits(params_old, obs)))

    def kl(p):
        return jnp.mean(jnp.sum(jnp.exp(log_old) * (log_old - jax.nn.log_softmax(logits(p, obs))), -1))

    return kl


def surrogate_fn(params_old, obs, actions, advantages):
    """``p -> mean(π_p(a|s) / π_old(a|s) · A)``, the importance-weighted surrogate (to maximise)."""
    def log_prob(p):
        lp = jax.nn.log_softmax(logits(p, obs))
        return jnp.take_along_axis(lp, actions[:, None], -1)[:, 0]

    log_old = jax.lax.stop_gradient(log_prob(params_old))
    return lambda p: jnp.mean(jnp.exp(log_prob(p) - log_old) * advantages)


def policy_data(key):
    """``(params, obs, actions, advantages)`` for the policy above."""
    kp, ko, ka, kv = jax.random.split(key, 4)
    return (
        init_policy(kp),
        jax.random.normal(ko, (N_STATES, OBS_DIM)),
        jax.random.randint(ka, (N_STATES,), 0, N_ACTIONS),
        jax.random.normal(kv, (N_STATES,)),
    )


def _spd_system(key):
    km, kb = jax.random.split(key)
    return jax.random.normal(km, (4, 4)), jax.random.normal(kb, (4,))


def _cg(m, b):
    a = m @ m.T + jnp.eye(4)
    return T.conjugate_gradient(lambda v: a @ v, b, num_iterations=4, damping=0.1)


def _fvp_args(key):
    kp, kv, ko = jax.random.split(key, 3)
    return init_policy(kp), init_policy(kv), jax.random.normal(ko, (N_STATES, OBS_DIM))


def _fvp(params, v, obs):
    return T.fisher_vector_product(mean_kl_fn(params, obs), params)(v)


def _natural_gradient(params, obs, actions, advantages):
    grads = jax.grad(surrogate_fn(params, obs, actions, advantages))(params)
    fvp = T.fisher_vector_product(mean_kl_fn(params, obs), params)
    return T.natural_gradient_step(grads, fvp, max_kl=0.01, num_cg_iterations=5, damping=0.1)


def _natural_gradient_optax(params, grads, obs):
    natural = T.scale_by_natural_gradient(max_kl=0.01, num_cg_iterations=5, damping=0.1)
    tx = optax.chain(natural, optax.scale(-1.0))
    return tx.update(grads, tx.init(params), params, kl_fn=mean_kl_fn(params, obs))[0]


def _trpo(params, obs, actions, advantages):
    new_params, info = T.trpo_step(
        params,
        surrogate_fn(params, obs, actions, advantages),
        mean_kl_fn(params, obs),
        max_kl=0.01,
        num_cg_iterations=5,
        damping=0.1,
    )
    return new_params, info.step_fraction, info.kl, info.improvement


def _online_target(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return init_policy(k1), init_policy(k2), jax.random.randint(k3, (), 0, 6)


def _dual_args(key):
    kl, kc = jax.random.split(key)
    return jax.random.uniform(kl, (3,)), 0.02 * jax.random.uniform(kc, (3,))


def _adam_step(params, grads):
    optimizer = optax.adam(0.1)
    return T.optimizer_step(optimizer, grads, optimizer.init(params), params)[0]


CASES = [
    Case("optimizer_step", _adam_step, lambda k: _online_target(k)[:2], (0, 1)),
    Case("conjugate_gradient", _cg, _spd_system, (0, 1)),
    Case("fisher_vector_product", _fvp, _fvp_args, (0, 1)),
    Case("natural_gradient_step", _natural_gradient, policy_data, (0, 3)),
    Case("scale_by_natural_gradient", _natural_gradient_optax, _fvp_args, (0, 1)),
    Case("trpo_step", _trpo, policy_data, (0, 3)),
    Case("polyak_update", lambda o, t: T.polyak_update(o, t, 0.3), lambda k: _online_target(k)[:2], (0, 1)),
    Case("periodic_update", lambda o, t, s: T.periodic_update(o, t, s, 3), _online_target, (0, 1)),
    Case("dual_ascent_update", lambda lam, c: T.dual_ascent_update(lam, c, 0.01, 0.5), _dual_args, (0, 1)),
    Case(
        "dual_ascent_update",
        lambda lam, c: T.dual_ascent_update(lam, c, 0.01, 0.5, log_space=True),
        _dual_args,
        (0, 1),
    ),
]
