"""Tabular Dyna-Q (Sutton 1990; Sutton & Barto 2018, §8.2): Q-learning plus planning with a
learned model of the environment.

Each iteration of the model-based loop (:mod:`fnrl.loops.modelbased`; with the defaults one
real step in one environment, exactly the book's loop) does

    (a)    start from Q(s, a) = ``q_init`` and an empty model (``init``);
    (b, c) act ε-greedily in Q and take the step s, a → r, s', term;
    (d)    direct RL:  Q(s, a) ← Q(s, a) + α [r + γ (1 − term) max_a' Q(s', a') − Q(s, a)];
    (e)    model learning: N(s, a, s') += 1, with the step's reward and termination;
    (f)    planning, K = ``planning_steps`` times: s drawn uniformly from the states seen so
           far, a uniformly from the actions taken in s, s' ~ N(s, a, ·) / N(s, a), and the
           same Q-learning update with the model's mean reward r̂(s, a, s') and termination.

(d) and (e) are the agent's ``observe``, one update per real transition in time order (steps of
a batch of environments in order within a time step); a time-limit truncation is no
termination and bootstraps from the episode's final state. (f) is its ``update``, which
ignores the loop's buffer of real transitions: the model lives in the learner.
``planning_steps = 0`` is plain tabular Q-learning (Watkins 1989).

The model is empirical counts N(s, a, s') with summed rewards and terminations, rather than
the book's table of the last (r, s') seen per (s, a), which assumes deterministic dynamics. On
a deterministic task the two are the same model; on a stochastic one (``tabular/gridworld``
slips with probability 0.1) planning samples s' from the maximum-likelihood model instead of
replaying the latest outcome.

Q starts at ``q_init`` everywhere: 0 is the book's. Planning only reaches pairs already tried,
and ε-greedy tries others rarely, so a run can settle on a longer path (in the Dyna maze,
``tabular/dyna_maze``, one of 16 or more steps where 14 is optimal) for 20,000 steps and more; an
optimistic ``q_init`` ≥ max V* (1 there, where the only reward is 1) makes every untried action
look best until it is tried (Sutton & Barto 2018, §2.6), and the presets set it there.

Acting: while exploring, ε-greedy with ties among the maximal actions broken uniformly at
random (as in the book's Dyna maze, where Q starts at 0 and ties are everywhere); the greedy
(evaluation) policy breaks ties towards the lowest action, deterministically, as
:func:`fnrl.envs.tabular.value_iteration` does.

For tabular environments only (one-hot observations of finitely many states and discrete
actions: ``tabular/*``, ``deepsea/*``): the state index is the argmax of the flattened
observation.

Composed of:
- :func:`fnrl.losses.tabular_q_update` -- one exact Q-learning step on the table (its target
  is :func:`fnrl.losses.q_learning_target`), for direct RL and for planning;
- ``distrax.EpsilonGreedy`` for the behaviour policy;
- the loop's ``observe`` hook (:mod:`fnrl.agent`) for direct RL and model learning.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp

from fnrl import losses
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import constrained, non_negative, positive_int, unit_interval
from fnrl.loops import core, modelbased

SUPPORTS = ("tabular",)


@dataclasses.dataclass(frozen=True)
class Config(modelbased.ModelBasedConfig):
    """``planning_steps`` K, the step size α = ``learning_rate``, ε = ``epsilon`` and the initial
    value ``q_init`` (module docstring); with the defaults those of Sutton & Barto's Dyna maze
    (K = 5, α = 0.1, ε = 0.1, Q = 0). ``gamma`` defaults to the discount of ``tabular/gridworld``
    (0.95, also the book's); the presets set other MDPs' own. ``buffer_size``: the loop's buffer
    of real transitions, which Dyna-Q does not read, so it is kept small."""

    env: str = "tabular/gridworld"
    gamma: float = unit_interval(0.95)
    num_envs: int = positive_int(1)
    rollout_length: int = positive_int(1)
    buffer_size: int = positive_int(1000)
    learning_starts: int = non_negative(0)
    planning_steps: int = non_negative(5)
    learning_rate: float = constrained(0.1, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    epsilon: float = unit_interval(0.1)
    q_init: float = 0.0


class Model(NamedTuple):
    """The empirical model, each ``[S, A, S]``: the count N(s, a, s') of real transitions and
    the sums of their rewards and terminations."""

    counts: jax.Array
    reward_sums: jax.Array
    termination_sums: jax.Array


class Learner(NamedTuple):
    q: jax.Array  # Q [S, A]
    model: Model


def _state(obs, obs_rank: int):
    """The state index of one-hot observations ``[..., *observation_shape]`` (``obs_rank`` axes)."""
    return jnp.argmax(obs.reshape(obs.shape[:obs.ndim - obs_rank] + (-1,)), axis=-1).astype(jnp.int32)


def observe_transitions(config: Config, learner: Learner, trajectory) -> Learner:
    """(d) and (e) of the module docstring for every step of ``trajectory`` ``[T, B, ...]``."""
    def flat(x):
        return x.reshape((-1,) + x.shape[2:])

    obs_rank = trajectory.obs.ndim - 2
    s, s_next = _state(flat(trajectory.obs), obs_rank), _state(flat(trajectory.next_obs), obs_rank)
    a, r, term = flat(trajectory.action).astype(jnp.int32), flat(trajectory.reward), flat(trajectory.termination)

    def direct(q, step):
        return losses.tabular_q_update(q, *step, config.gamma, config.learning_rate), None

    q, _ = jax.lax.scan(direct, learner.q, (s, a, r, term, s_next))
    m = learner.model
    model = Model(m.counts.at[s, a, s_next].add(1.0), m.reward_sums.at[s, a, s_next].add(r),
                  m.termination_sums.at[s, a, s_next].add(term))
    return Learner(q, model)


def _draw(weights, u):
    """The index drawn with probability ∝ ``weights`` (non-negative) by inverting the CDF at the
    uniform ``u``: the first i with c_i > u · c_n, never one of weight 0."""
    cdf = jnp.cumsum(weights.astype(jnp.float32))
    return jnp.argmax(cdf > u * cdf[-1]).astype(jnp.int32)


def plan(config: Config, learner: Learner, key) -> Learner:
    """(f) of the module docstring: ``planning_steps`` Q-learning updates on model transitions
    (none before the model has seen any transition), each drawing s, a and s' from one key."""
    model = learner.model
    seen = jnp.sum(model.counts, axis=-1) > 0  # [S, A]

    def simulated(q, key):
        u = jax.random.uniform(key, (3,))
        s = _draw(jnp.any(seen, axis=-1), u[0])
        a = _draw(seen[s], u[1])
        n = model.counts[s, a]
        s_next = _draw(n, u[2])
        r, term = model.reward_sums[s, a, s_next] / n[s_next], model.termination_sums[s, a, s_next] / n[s_next]
        return losses.tabular_q_update(q, s, a, r, term, s_next, config.gamma, config.learning_rate), None

    q, _ = jax.lax.scan(simulated, learner.q, jax.random.split(key, config.planning_steps))
    return learner._replace(q=jnp.where(jnp.any(seen), q, learner.q))


def make_agent(config: Config, spec) -> Agent:
    num_states, num_actions = math.prod(spec.observation_shape), spec.num_actions
    obs_rank = len(spec.observation_shape)

    def init(key, obs):
        zeros = jnp.zeros((num_states, num_actions, num_states))
        return Learner(jnp.full((num_states, num_actions), config.q_init), Model(zeros, zeros, zeros))

    def act(learner, obs, key, explore):
        q = learner.q[_state(obs, obs_rank)]
        if not explore:
            return jnp.argmax(q, axis=-1), {}
        return distrax.EpsilonGreedy(q, config.epsilon).sample(seed=key), {}

    def observe(learner, trajectory, key):
        return observe_transitions(config, learner, trajectory), trajectory

    def update(learner, data, key):  # data: the loop's buffer of real transitions, unused
        learner = plan(config, learner, key)
        pairs = jnp.sum(jnp.sum(learner.model.counts, axis=-1) > 0)
        return UpdateOutput(learner, {"q": jnp.mean(learner.q), "model_pairs": pairs.astype(jnp.float32)})

    return Agent(init, act, update, observe)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for Dyna-Q; see :mod:`fnrl.loops.core`.

    Raises:
      ValueError: one line, for an environment that is not tabular, or an exploration bonus
        (Dyna-Q learns in ``observe``, before a bonus would be added to the rewards).
    """
    env = core.make_env(config)
    core.check_env("dyna_q", SUPPORTS, env, config.env)
    if config.bonus != "none":
        raise ValueError(f"dyna_q takes no exploration bonus (bonus={config.bonus}): it learns from the real "
                         "rewards as it observes them; use bonus=none")
    return modelbased.make_train(config, env, make_agent(config, env.spec), on_eval)
