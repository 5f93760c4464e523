"""Exploration bonuses: reward transforms that compose with any algorithm.

A bonus turns the rewards an agent learns from into ``r⁺_t = r_t + β b_t`` (``β`` the config's
``bonus_scale``), with ``b_t`` a measure of how novel the step's next state ``s_{t+1}`` is. It
is a :class:`Bonus`: ``init(key, obs) -> state`` and ``observe(state, trajectory) -> (state,
b)``, pure functions over its own state. :func:`with_bonus` wraps any :class:`fnrl.agent.Agent`
so that its ``observe`` updates the bonus state with every freshly collected trajectory and
adds ``β b`` to the trajectory's rewards before the loop uses it -- the on-policy loop's
update, the off-policy loop's replay buffer (so an off-policy bonus is the one computed when
the step was taken, and n-step returns sum the bonuses of their steps). The bonus state lives
in the learner, so it is checkpointed, resumed and vmapped over seeds with everything else;
evaluations and the ``train_episode_return`` tally report the environment's own rewards.

The bonuses (``bonus=`` in every config):

- ``count`` -- exact visit counts ``N(s)`` of one-hot observations (``tabular/*``,
  ``deepsea/*``: the state is the index of the hot entry), with the three forms of the
  lectures (``bonus_form``): UCB ``√(2 ln n / N)`` (``n`` all visits so far), MBIE-EB
  ``√(1 / N)`` (Strehl & Littman 2008) and BEB ``1 / N`` (Kolter & Ng 2009);
- ``simhash`` -- the same forms over counts of SimHash codes ``sign(A g(s))`` of ``k =
  bonus_hash_bits`` bits (Tang et al. 2017): ``A`` a fixed ``k × (D + 1)`` standard Gaussian
  matrix, ``g(s) = [z(s), 1]`` the observation standardised by running statistics with a
  constant feature appended (so the hyperplanes need not pass through the mean, and codes of a
  low-dimensional state resolve distance as well as direction), one count per code (``2^k``
  buckets, no collisions between codes);
- ``rnd`` -- random network distillation (Burda et al. 2018): ``b = ‖f̂(s') − f(s')‖²`` for a
  fixed random network ``f`` and a predictor ``f̂`` trained to match it on the states seen;
- ``prediction_error`` -- the error of a learned forward model, ``b = ‖f̂(s, a) − s'‖²``
  (Stadie et al. 2015's model-error bonus in the raw observation space).

Counts include the trajectory being observed (so ``N ≥ 1``). The two error bonuses see
observations standardised by running statistics and clipped to ``[−5, 5]``, report ``b``
divided by the running standard deviation of the errors (Burda et al. divide by that of the
intrinsic returns), and take one Adam step (``bonus_learning_rate``) on each trajectory after
computing ``b`` on it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import optax

from fnrl import networks
from fnrl.agent import Agent, UpdateOutput
from fnrl.envs import Spec
from fnrl.envs.wrappers import RunningStats, init_stats, normalize, update_stats

__all__ = ["BONUSES", "FORMS", "Bonus", "count_bonus", "counts", "error_bonus", "make_bonus", "prediction_error_bonus",
           "rnd_bonus", "simhash_bonus", "simhash_codes", "with_bonus"]

BONUSES = ("none", "count", "simhash", "rnd", "prediction_error")
FORMS = ("ucb", "mbie_eb", "beb")
# Embedding size of the random network and its predictor.
RND_FEATURES = 64
CLIP = 5.0
_BONUS_KEY = 0xB0  # fold_in constant of the bonus's initialisation key


class Bonus(NamedTuple):
    """``init(key, obs) -> state`` (``obs`` a batch of observations) and ``observe(state,
    trajectory) -> (state, b)`` with ``b`` the bonus ``[T, B]`` of each step (module docstring)."""

    init: Callable
    observe: Callable


def counts(form: str, visits: chex.Array, total: chex.Array) -> chex.Array:
    """A count bonus of ``visits`` ``N ≥ 1`` out of ``total`` visits ``n``: ``form`` ``"ucb"``
    ``√(2 ln n / N)``, ``"mbie_eb"`` ``√(1 / N)`` or ``"beb"`` ``1 / N``."""
    if form not in FORMS:
        raise ValueError(f"unknown count-bonus form {form!r}; accepted: {', '.join(FORMS)}")
    chex.assert_rank(total, 0, custom_message="counts: `total` must be a scalar (all visits n)")
    visits = jnp.maximum(visits, 1.0)
    if form == "ucb":
        return jnp.sqrt(2.0 * jnp.log(jnp.maximum(total, 1.0)) / visits)
    return jnp.sqrt(1.0 / visits) if form == "mbie_eb" else 1.0 / visits


class CountState(NamedTuple):
    counts: jax.Array  # visits of each state (or code)
    total: jax.Array  # all visits


class CountBonusState(NamedTuple):
    counts: CountState


class SimHashState(NamedTuple):
    projection: jax.Array  # A, [k, D + 1]
    obs_stats: RunningStats
    counts: CountState


def _counted(form: str, num_buckets: int, bucket: Callable):
    """``observe`` of a count bonus over ``bucket(state, next_obs [T, B, ...]) -> [T, B]`` ints."""

    def observe(state, trajectory):
        index = bucket(state, trajectory.next_obs)
        table = state.counts.counts.at[index.ravel()].add(1.0)
        total = state.counts.total + index.size
        return state._replace(counts=CountState(table, total)), counts(form, table[index], total)

    return observe, CountState(jnp.zeros(num_buckets, jnp.float32), jnp.zeros((), jnp.float32))


def count_bonus(spec: Spec, form: str = "mbie_eb") -> Bonus:
    """Exact counts of one-hot observations (the state is the hot entry's index)."""
    size = math.prod(spec.observation_shape)

    def bucket(_, obs):
        return jnp.argmax(obs.reshape(obs.shape[:2] + (size,)), axis=-1)

    observe, empty = _counted(form, size, bucket)
    return Bonus(lambda key, obs: CountBonusState(empty), observe)


def simhash_codes(projection: chex.Array, x: chex.Array) -> chex.Array:
    """SimHash bucket of each row of ``x`` ``[..., D]``: the bits ``A x > 0`` of the ``k × D``
    ``projection`` read as a binary number in ``[0, 2^k)``."""
    chex.assert_rank(projection, 2, custom_message="simhash_codes: `projection` must be A of shape [k, D]")
    if jnp.shape(x)[-1:] != projection.shape[1:]:
        raise ValueError(f"simhash_codes: x of shape {jnp.shape(x)} must end in D = {projection.shape[1]}")
    bits = (x @ projection.T > 0).astype(jnp.int32)
    return jnp.sum(bits << jnp.arange(projection.shape[0], dtype=jnp.int32), axis=-1)


def simhash_bonus(spec: Spec, bits: int = 16, form: str = "mbie_eb") -> Bonus:
    """Counts of SimHash codes of standardised observations (Tang et al. 2017)."""
    if not 1 <= bits <= 24:
        raise ValueError(f"simhash: bits must be in [1, 24] (2^bits count buckets), got {bits}")
    size = math.prod(spec.observation_shape)

    def bucket(state, obs):
        g = normalize(state.obs_stats, obs.reshape(obs.shape[:2] + (size,)))
        return simhash_codes(state.projection, jnp.concatenate([g, jnp.ones(g.shape[:-1] + (1,))], axis=-1))

    counted, empty = _counted(form, 2 ** bits, bucket)

    def init(key, obs):
        return SimHashState(jax.random.normal(key, (bits, size + 1)), init_stats((size,)), empty)

    def observe(state, trajectory):
        flat = trajectory.next_obs.reshape(trajectory.next_obs.shape[:2] + (size,))
        return counted(state._replace(obs_stats=update_stats(state.obs_stats, flat)), trajectory)

    return Bonus(init, observe)


class ErrorState(NamedTuple):
    params: Any  # the predictor's (and RND's fixed random network's, which get no gradient)
    opt_state: Any
    obs_stats: RunningStats
    error_stats: RunningStats


def error_bonus(spec: Spec, net: hk.Transformed, learning_rate: float) -> Bonus:
    """A bonus ``b = ‖prediction − target‖²`` (summed over features) with ``net.apply(params,
    x, a, x') -> (prediction, target)`` on standardised, clipped observations ``x``, ``x'``;
    normalised by the errors' running standard deviation; one Adam step on the mean error per
    trajectory, after computing ``b`` on it. A target computed from parameters (RND's random
    network) must be under ``stop_gradient``: Adam leaves parameters with zero gradients as
    they are.
    """
    size = math.prod(spec.observation_shape)
    optimizer = optax.adam(learning_rate)

    def flat(obs):
        return obs.reshape(obs.shape[:2] + (size,))

    def init(key, obs):
        x = flat(obs[None])
        params = net.init(key, x, jnp.zeros(x.shape[:2] + spec.action_shape, jnp.int32 if spec.discrete else jnp.float32), x)
        return ErrorState(params, optimizer.init(params), init_stats((size,)), init_stats(()))

    def observe(state, trajectory):
        obs_stats = update_stats(state.obs_stats, flat(trajectory.next_obs))
        x = normalize(obs_stats, flat(trajectory.obs), clip=CLIP)
        x_next = normalize(obs_stats, flat(trajectory.next_obs), clip=CLIP)

        def loss(params):
            prediction, target = net.apply(params, x, trajectory.action, x_next)
            e = jnp.sum((prediction - target) ** 2, axis=-1)
            return jnp.mean(e), e

        grads, e = jax.grad(loss, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        error_stats = update_stats(state.error_stats, e)
        b = e / jnp.sqrt(error_stats.var + 1e-8)
        return ErrorState(optax.apply_updates(state.params, updates), opt_state, obs_stats, error_stats), b

    return Bonus(init, observe)


def _mlp(hidden_sizes: tuple[int, ...], out: int, name: str) -> hk.Sequential:
    return hk.Sequential([networks.Torso(hidden_sizes), hk.Linear(out)], name=name)


def rnd_bonus(spec: Spec, hidden_sizes: tuple[int, ...] = (64, 64), learning_rate: float = 1e-3) -> Bonus:
    """Random network distillation (Burda et al. 2018) on the next observation."""

    def forward(x, action, x_next):
        del x, action
        target = jax.lax.stop_gradient(_mlp(hidden_sizes, RND_FEATURES, "target")(x_next))
        return _mlp(hidden_sizes, RND_FEATURES, "predictor")(x_next), target

    return error_bonus(spec, hk.without_apply_rng(hk.transform(forward)), learning_rate)


def prediction_error_bonus(spec: Spec, hidden_sizes: tuple[int, ...] = (64, 64),
                           learning_rate: float = 1e-3) -> Bonus:
    """The error of a learned forward model ``f̂(s, a) ≈ s'`` (standardised observations)."""
    size = math.prod(spec.observation_shape)

    def forward(x, action, x_next):
        a = jax.nn.one_hot(action, spec.num_actions) if spec.discrete else action.reshape(action.shape[:2] + (-1,))
        return _mlp(hidden_sizes, size, "model")(jnp.concatenate([x, a.astype(x.dtype)], axis=-1)), x_next

    return error_bonus(spec, hk.without_apply_rng(hk.transform(forward)), learning_rate)


def make_bonus(config, env) -> Bonus | None:
    """The bonus named by ``config.bonus`` (None for ``"none"``) for ``env``, with the config's
    settings.

    Raises:
      ValueError: one line, for ``count`` on an environment whose observations are not one-hot.
    """
    spec = env.spec
    if config.bonus == "none":
        return None
    if config.bonus == "count":
        if not env.unwrapped.one_hot_observations:
            raise ValueError(f"bonus=count counts one-hot observations (tabular/*, deepsea/*); {config.env}'s are "
                             "not: use bonus=simhash or bonus=rnd")
        return count_bonus(spec, config.bonus_form)
    if config.bonus == "simhash":
        return simhash_bonus(spec, config.bonus_hash_bits, config.bonus_form)
    if config.bonus == "rnd":
        return rnd_bonus(spec, config.bonus_hidden_sizes, config.bonus_learning_rate)
    return prediction_error_bonus(spec, config.bonus_hidden_sizes, config.bonus_learning_rate)


class Explorer(NamedTuple):
    """The learner of an agent with a bonus: the agent's own, the bonus state, and the mean
    bonus ``b`` of the last trajectory observed (logged as ``intrinsic_reward``)."""

    agent: Any
    bonus: Any
    intrinsic_reward: jax.Array


def with_bonus(agent: Agent, bonus: Bonus | None, scale: float) -> Agent:
    """``agent`` learning from ``r + scale · b`` (module docstring); ``agent`` itself when
    ``bonus`` is None. Acting and evaluation are the agent's own."""
    if bonus is None:
        return agent

    def init(key, obs):  # the agent gets the key it would get without a bonus
        return Explorer(agent.init(key, obs), bonus.init(jax.random.fold_in(key, _BONUS_KEY), obs), jnp.zeros(()))

    def act(learner, obs, key, explore):
        return agent.act(learner.agent, obs, key, explore)

    def observe(learner, trajectory, key):
        inner, trajectory = agent.observe(learner.agent, trajectory, key)
        state, b = bonus.observe(learner.bonus, trajectory)
        trajectory = trajectory._replace(reward=trajectory.reward + scale * b)
        return Explorer(inner, state, jnp.mean(b)), trajectory

    def update(learner, batch, key):
        inner, metrics, priorities = agent.update(learner.agent, batch, key)
        return UpdateOutput(learner._replace(agent=inner), {**metrics, "intrinsic_reward": learner.intrinsic_reward},
                            priorities)

    log_prob = None if agent.log_prob is None else (
        lambda learner, obs, action: agent.log_prob(learner.agent, obs, action))
    return Agent(init, act, update, observe, log_prob)
