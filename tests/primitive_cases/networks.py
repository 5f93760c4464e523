"""jit/vmap/grad cases for fnrl.networks: every network runs with parameters batched by vmap
(many seeds), and gradients flow to parameters and differentiable inputs."""
import haiku as hk
import jax
import jax.numpy as jnp

import fnrl.networks as nw
from fnrl.envs.core import Spec

from primitive_cases import Case

MODULE = nw
EXEMPT = {"VAE": "a NamedTuple of make_vae's pure functions, exercised by the make_vae case"}

DISCRETE = Spec(observation_shape=(4,), num_actions=3)
CONTINUOUS = Spec(observation_shape=(3,), action_shape=(2,), action_low=-1.0, action_high=1.0)
TORSO = nw.Torso((8,), "tanh")
B = 5


def _normal(key, shape):
    return jax.random.normal(key, shape)


def _transformed(f):
    return hk.without_apply_rng(hk.transform(f))


def _with_params(net, *inputs, extra=()):
    """make_args(key) -> (params, *inputs, *extra): parameters initialised from ``key`` on
    ``inputs``; ``extra`` are further arguments of the case (e.g. actions to score)."""

    def make_args(key):
        makers = inputs + tuple(extra)
        keys = jax.random.split(key, len(makers) + 1)
        args = tuple(make(k) for make, k in zip(makers, keys[1:]))
        return (net.init(keys[0], *args[: len(inputs)]),) + args

    return make_args


def _obs(spec):
    return lambda k: _normal(k, (B,) + spec.observation_shape)


def _action(k):
    return jnp.tanh(_normal(k, (B, 2)))


def _features(k):
    return _normal(k, (B, 6))


_torso = _transformed(lambda x: TORSO(x))
_categorical = _transformed(lambda h: nw.categorical_head(h, 3))
_gaussian = _transformed(lambda h: nw.gaussian_head(h, 2, state_dependent_std=True))
_tanh_gaussian = _transformed(lambda h: nw.tanh_gaussian_head(h, 2))
_deterministic = _transformed(lambda h: nw.deterministic_head(h, 2))
_value = _transformed(lambda h: nw.value_head(h))
_ensemble = _transformed(lambda h: nw.ensemble(lambda x: TORSO(x), 3)(h))
_policy = nw.make_policy(CONTINUOUS, TORSO)
_value_net = nw.make_value(DISCRETE, TORSO)
_actor_critic = nw.make_actor_critic(DISCRETE, TORSO)
_deterministic_policy = nw.make_deterministic_policy(CONTINUOUS, TORSO)
_critics = nw.make_q_network(CONTINUOUS, TORSO, num_critics=2)
_dynamics = nw.make_dynamics_ensemble(CONTINUOUS, TORSO, num_models=3)
_learned_dynamics = nw.make_dynamics_ensemble(CONTINUOUS, TORSO, num_models=3, learned_log_std_bounds=True)
_vae = nw.make_vae(2, 2, TORSO, condition_size=3)


def _vae_terms(params, x, c, eps):
    q = _vae.encode(params, x, c)
    z = q.mean() + q.stddev() * eps  # reparameterised sample
    return _vae.decode(params, z, c).log_prob(x), q.entropy()


def _make_vae_args(key):
    kx, kc, ke, ki = jax.random.split(key, 4)
    x, c, eps = _action(kx), _normal(kc, (B, 3)), _normal(ke, (B, 2))
    return _vae.init(ki, x, c), x, c, eps


CASES = [
    Case("Torso", _torso.apply, _with_params(_torso, _features), (0, 1)),
    Case(
        "diag_gaussian",
        lambda loc, log_scale, x: nw.diag_gaussian(loc, jnp.exp(log_scale)).log_prob(x),
        lambda k: tuple(_normal(kk, (B, 2)) for kk in jax.random.split(k, 3)),
        (0, 1, 2),
    ),
    Case(
        "TanhNormal",
        lambda loc, log_scale, u: (
            nw.TanhNormal(loc, jnp.exp(log_scale)).log_prob(jnp.tanh(u)),
            nw.TanhNormal(loc, jnp.exp(log_scale)).mode(),
        ),
        lambda k: tuple(_normal(kk, (B, 2)) for kk in jax.random.split(k, 3)),
        (0, 1),
    ),
    Case(
        "categorical_head",
        lambda p, h: _categorical.apply(p, h).probs,
        _with_params(_categorical, _features),
        (0, 1),
    ),
    Case(
        "gaussian_head",
        lambda p, h, a: _gaussian.apply(p, h).log_prob(a),
        _with_params(_gaussian, _features, extra=[_action]),
        (0, 1),
    ),
    Case(
        "tanh_gaussian_head",
        lambda p, h, a: _tanh_gaussian.apply(p, h).log_prob(a),
        _with_params(_tanh_gaussian, _features, extra=[_action]),
        (0, 1),
    ),
    Case("deterministic_head", _deterministic.apply, _with_params(_deterministic, _features), (0, 1)),
    Case("value_head", _value.apply, _with_params(_value, _features), (0, 1)),
    Case("ensemble", _ensemble.apply, _with_params(_ensemble, _features), (0, 1)),
    Case(
        "make_policy",
        lambda p, obs, a: _policy.apply(p, obs).log_prob(a),
        _with_params(_policy, _obs(CONTINUOUS), extra=[_action]),
    ),
    Case("make_value", _value_net.apply, _with_params(_value_net, _obs(DISCRETE)), (0, 1)),
    Case(
        "make_actor_critic",
        lambda p, obs: (lambda d, v: (d.logits, v))(*_actor_critic.apply(p, obs)),
        _with_params(_actor_critic, _obs(DISCRETE)),
        (0, 1),
    ),
    Case(
        "make_deterministic_policy",
        _deterministic_policy.apply,
        _with_params(_deterministic_policy, _obs(CONTINUOUS)),
        (0, 1),
    ),
    Case(
        "make_q_network",
        _critics.apply,
        _with_params(_critics, _obs(CONTINUOUS), _action),
        (0, 2),
    ),
    Case(
        "make_dynamics_ensemble",
        lambda p, obs, a, y: _dynamics.apply(p, obs, a).log_prob(y),
        _with_params(_dynamics, _obs(CONTINUOUS), _action, extra=[lambda k: _normal(k, (B, 4))]),
        (0, 2),
    ),
    Case(  # learned log-std bounds, each member on its own inputs
        "make_dynamics_ensemble",
        lambda p, obs, a, y: _learned_dynamics.apply(p, obs, a, per_member=True).log_prob(y),
        _with_params(_learned_dynamics, lambda k: _normal(k, (3, B, 3)), lambda k: jnp.tanh(_normal(k, (3, B, 2))),
                     extra=[lambda k: _normal(k, (3, B, 4))]),
        (0, 2),
    ),
    Case(
        "dynamics_log_std_bounds",
        lambda p: nw.dynamics_log_std_bounds(jax.tree.map(lambda x: 2.0 * x, p)),
        lambda k: (_learned_dynamics.init(k, _obs(CONTINUOUS)(k), _action(k)),),
    ),
    Case(
        "soft_clamp",
        lambda x, lo, hi: nw.soft_clamp(x, lo - 1.0, hi + 1.0),
        lambda k: tuple(3.0 * _normal(kk, (B, 2)) for kk in jax.random.split(k, 3)),
        (0, 1, 2),
    ),
    Case("make_vae", _vae_terms, _make_vae_args, (0, 1, 3)),
]
