"""The loop core: what every training loop shares, written once.

A training run is a :class:`Train`: three pure functions over a typed :class:`Carry` --

- ``init(key) -> carry``;
- ``advance(carry) -> (carry, metrics)`` -- one *chunk*: a fixed number of the loop's
  *iterations* (on-policy: a rollout and an update; off-policy: acting, inserting and
  replayed updates), returning the last iteration's metrics;
- ``evaluate(carry, metrics) -> (carry, row)`` -- the evaluation that closes an evaluation
  period of ``chunks_per_eval`` chunks; ``row`` holds ``step``, ``episode_return``,
  ``train_episode_return`` and ``metrics``.

Calling the :class:`Train` runs all ``num_evals`` periods as one ``lax.scan`` -- one program
for ``jax.jit`` and ``jax.vmap`` over seeds. :func:`fnrl.runner.run` (and so ``fnrl train``)
instead calls the three jitted pieces from Python, for progress, the non-finite guard and
checkpoints that resume bit-for-bit: every random key is derived from ``carry.key`` and
``carry.chunk`` alone, so both ways of running compute the same thing.

A loop (:mod:`fnrl.loops.onpolicy`, :mod:`fnrl.loops.offpolicy`, ...) supplies only its
iteration, its own state (``carry.data``: a replay buffer, ...) and how it starts; the core
owns the carry, the key schedule, chunking, the tally of training episodes, evaluation
(:mod:`fnrl.loops.evaluation`) and the :class:`Train`. Algorithms are agents
(:class:`fnrl.agent.Agent`) and do not see any of it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnrl import envs, exploration
from fnrl.agent import Agent
from fnrl.config import Validated, constrained, non_negative, one_of, positive, positive_int, unit_interval
from fnrl.loops.evaluation import episode_limit, evaluate
from fnrl.rollout import Episodes, rollout

# About this many progress reports per run when the run is driven chunk by chunk.
PROGRESS_REPORTS = 100
EVAL_POLICIES = ("greedy", "stochastic")


@dataclasses.dataclass(frozen=True)
class RunConfig(Validated):
    """The fields every training run has; each loop's config extends it.

    ``eval_policy``: evaluations act with ``explore=False`` (``"greedy"``: the mode of a
    stochastic policy, no exploration noise) or ``explore=True`` (``"stochastic"``).
    """

    env: str = "cartpole"
    total_steps: int = positive_int(100_000)
    num_envs: int = positive_int(16)
    gamma: float = unit_interval(0.99)
    num_evals: int = positive_int(20)
    eval_episodes: int = positive_int(16)
    eval_policy: str = one_of("greedy", EVAL_POLICIES)
    hidden_sizes: tuple[int, ...] = constrained((64, 64), lambda v: all(h > 0 for h in v), "positive integers")
    # An exploration bonus added to the training rewards (fnrl.exploration): r + bonus_scale · b.
    bonus: str = one_of("none", exploration.BONUSES)
    bonus_scale: float = non_negative(0.1)
    bonus_form: str = one_of("mbie_eb", exploration.FORMS)  # of the count and simhash bonuses
    bonus_hash_bits: int = constrained(16, lambda v: 1 <= v <= 24, "in [1, 24]")  # simhash
    bonus_hidden_sizes: tuple[int, ...] = constrained((64, 64), lambda v: all(h > 0 for h in v),
                                                      "positive integers")  # rnd, prediction_error
    bonus_learning_rate: float = positive(1e-3)  # rnd, prediction_error

    def schedule(self, steps_per_iteration: int, initial_steps: int = 0) -> "Schedule":
        """The run's evaluation periods: at least ``total_steps`` environment steps, after
        ``initial_steps`` (a warm-up), in whole iterations of ``steps_per_iteration`` steps, cut
        into ``num_evals`` equal periods -- or into one period per iteration when the run has
        fewer iterations than ``num_evals``, so that a short run gets fewer evaluations rather
        than ``num_evals`` iterations."""
        iterations = max(1, -(-(self.total_steps - initial_steps) // steps_per_iteration))
        evals = min(self.num_evals, iterations)
        return Schedule(evals, -(-iterations // evals))


class Schedule(NamedTuple):
    """``evals`` evaluation periods of ``iterations_per_eval`` iterations (:meth:`RunConfig.schedule`)."""

    evals: int
    iterations_per_eval: int

    @property
    def iterations(self) -> int:
        return self.evals * self.iterations_per_eval


def with_bonus(config: RunConfig, agent: Agent, env: envs.Env) -> Agent:
    """``agent`` learning from the rewards plus ``config``'s exploration bonus, if any
    (:func:`fnrl.exploration.with_bonus`); every loop wraps its agent with it."""
    return exploration.with_bonus(agent, exploration.make_bonus(config, env), config.bonus_scale)


# fold_in constant of the key an iteration's ``observe`` gets: new keys, with the loops' splits unchanged.
_OBSERVE = 0x0B5E7E


def observe_key(key):
    """The key of ``agent.observe`` in the iteration (or warm-up) whose key is ``key``."""
    return jax.random.fold_in(key, _OBSERVE)


def random_warmup(train_env: envs.Env, agent: Agent, learner, env_state: envs.EnvState, key, num_steps: int):
    """``num_steps`` steps of uniformly random actions in the batched ``train_env`` (a warm-up
    that fills a buffer before learning), seen by ``agent.observe``: ``(learner, env_state,
    trajectory)``. The extras of the agent's ``act`` have no value for steps no agent took, so
    they are NaN (0 for non-float extras), with the structure a buffer of the agent's steps needs."""
    spec = train_env.spec
    num_envs = env_state.reward.shape[0]
    extras = jax.eval_shape(lambda: agent.act(learner, env_state.obs, key, True))[1]

    def uniform(_, obs, key):
        return spec.sample_action(key, (num_envs,)), missing_extras(extras)

    env_state, trajectory, _ = rollout(train_env, uniform, None, env_state, key, num_steps)
    learner, trajectory = agent.observe(learner, trajectory, observe_key(key))
    return learner, env_state, trajectory


def missing_extras(extras, given: dict | None = None, shape: tuple[int, ...] | None = None) -> dict:
    """The acting ``extras`` (shapes, e.g. from ``jax.eval_shape`` of ``agent.act``) for steps no
    agent took: the arrays in ``given`` that ``extras`` names, NaN (0 for non-float extras) for the
    others; ``shape`` replaces the leading batch axis (e.g. a dataset's ``[N]``)."""
    given = given or {}

    def fill(name, e):
        batch = e.shape if shape is None else tuple(shape) + e.shape[1:]
        if name in given and jnp.shape(given[name]) == batch:
            return jnp.asarray(given[name], e.dtype)
        return jnp.full(batch, jnp.nan if jnp.issubdtype(e.dtype, jnp.floating) else 0, e.dtype)

    return {name: jax.tree_util.tree_map(lambda e, name=name: fill(name, e), e) for name, e in extras.items()}


def make_env(config: RunConfig) -> envs.Env:
    """The single (unbatched) environment named by ``config.env``, with its time limit."""
    return envs.make(config.env)


def check_env(algo: str, supports: tuple[str, ...], env: envs.Env, env_name: str) -> None:
    """Raises a one-line ``ValueError`` when ``algo`` cannot act in ``env`` (named ``env_name``).

    ``supports`` names the kinds ``algo`` accepts: ``"discrete"`` or ``"continuous"`` actions,
    or ``"tabular"`` (discrete actions and one-hot observations of finitely many states).
    """
    spec = env.spec
    if "tabular" in supports:
        if not (spec.discrete and env.unwrapped.one_hot_observations):
            raise ValueError(f"{algo} needs a tabular environment (one-hot states, discrete actions: tabular/*, "
                             f"deepsea/*); {env_name} is not")
        return
    kind = "discrete" if spec.discrete else "continuous"
    if kind not in supports:
        raise ValueError(f"{algo} needs a {' or '.join(supports)}-action environment; "
                         f"{env_name} has {kind} actions")


class Tally(NamedTuple):
    """Training episodes that ended since the last evaluation: their summed return and count."""

    return_sum: jax.Array
    count: jax.Array

    @classmethod
    def zero(cls) -> "Tally":
        return cls(jnp.zeros(()), jnp.zeros(()))

    def add(self, episodes: Episodes) -> "Tally":
        return Tally(self.return_sum + jnp.sum(episodes.done * episodes.episode_return),
                     self.count + jnp.sum(episodes.done))

    def mean(self) -> jax.Array:
        """Their mean return; NaN when none ended."""
        return jnp.where(self.count > 0, self.return_sum / jnp.maximum(self.count, 1.0), jnp.nan)


class Carry(NamedTuple):
    """The whole state of a run between chunks (what a checkpoint holds)."""

    learner: Any  # the agent's
    env_state: envs.EnvState | None  # the batched training environments (None offline)
    key: jax.Array  # the run's key: every random key derives from it and chunk
    chunk: jax.Array  # chunks done
    tally: Tally
    data: Any  # the loop's own state (off-policy: the replay buffer), () if none


def obs_stats(carry: Carry):
    """The training environments' observation statistics in ``carry`` (None without
    observation normalisation, or no training environments): what an evaluation of the learner
    must apply, frozen."""
    return None if carry.env_state is None else carry.env_state.info.get("obs_stats")


def chunk_size(iterations_per_eval: int, num_evals: int) -> int:
    """Iterations per chunk: the largest divisor of ``iterations_per_eval`` that still gives
    about :data:`PROGRESS_REPORTS` chunks in the whole run (at least one chunk per evaluation)."""
    wanted = max(1, PROGRESS_REPORTS // num_evals)  # chunks per evaluation period
    return min(d for d in range(1, iterations_per_eval + 1)
               if iterations_per_eval % d == 0 and iterations_per_eval // d <= wanted)


def _period_keys(key, period, num_evals: int):
    """``(train_key, eval_key)`` of evaluation period ``period``: ``split(split(key, num_evals)[period])``."""
    return jax.random.split(jax.random.split(key, num_evals)[period])


def iteration_keys(key, chunk, num_evals: int, iterations_per_eval: int, size: int):
    """The ``size`` iteration keys of chunk number ``chunk`` (traced).

    Period ``p``'s iterations take ``split(train_key, iterations_per_eval)`` in order, ``size``
    per chunk (:func:`_period_keys`), so the keys do not depend on how the run is cut into
    chunks or programs.
    """
    chunks_per_eval = iterations_per_eval // size
    train_key, _ = _period_keys(key, chunk // chunks_per_eval, num_evals)
    keys = jax.random.split(train_key, iterations_per_eval)
    return jax.lax.dynamic_slice_in_dim(keys, chunk % chunks_per_eval * size, size)


def eval_key(key, chunk, num_evals: int, chunks_per_eval: int):
    """The evaluation key of the period that chunk number ``chunk`` (traced) has just closed."""
    return _period_keys(key, chunk // chunks_per_eval - 1, num_evals)[1]


@dataclasses.dataclass(frozen=True)
class Train:
    """``train(key) -> (learner, metrics)``, with the pieces it is made of (module docstring).

    Attributes beyond the three functions: ``num_evals`` periods of ``chunks_per_eval`` chunks
    of ``steps_per_chunk`` environment steps after ``initial_steps`` (an off-policy warm-up);
    ``env`` (the unbatched environment) and ``act(learner, obs, key) -> (action, extras)``
    (the evaluation policy), which :func:`fnrl.loops.evaluation.evaluate` and
    :mod:`fnrl.render` take; ``on_eval(step, episode_return, metrics)``, called on the host at
    each evaluation of ``train(key)`` through ``jax.debug.callback``; ``may_be_nan``, the
    metrics that are NaN by design when there is nothing to average.
    """

    init: Callable
    advance: Callable
    evaluate: Callable
    num_evals: int
    chunks_per_eval: int
    steps_per_chunk: int
    env: envs.Env
    act: Callable
    initial_steps: int = 0
    log_prob: Callable | None = None  # the agent's: log π(a|s) of act's policy with explore=True
    on_eval: Callable | None = None
    ordered_callbacks: bool = True  # False across devices: ordered effects are single-device
    # Metrics that are NaN by design at times (no training episode ended since the last
    # evaluation); the runner's non-finite guard passes over them.
    may_be_nan: tuple[str, ...] = ("train_episode_return",)

    def __call__(self, key) -> tuple[Any, dict]:
        def period(carry, _):
            carry, metrics = jax.lax.scan(lambda c, _: self.advance(c), carry, None, self.chunks_per_eval)
            carry, row = self.evaluate(carry, jax.tree_util.tree_map(lambda x: x[-1], metrics))
            if self.on_eval is not None:
                jax.debug.callback(self.on_eval, row["step"], row["episode_return"],
                                   {k: v for k, v in row.items() if k not in ("step", "episode_return")},
                                   ordered=self.ordered_callbacks)
            return carry, row

        carry, metrics = jax.lax.scan(period, self.init(key), None, self.num_evals)
        return carry.learner, metrics

    @property
    def num_chunks(self) -> int:
        return self.num_evals * self.chunks_per_eval

    def step(self, chunks_done: int) -> int:
        """Environment steps after ``chunks_done`` chunks."""
        return self.initial_steps + chunks_done * self.steps_per_chunk


class Iteration(NamedTuple):
    """What one iteration of a loop returns to the core."""

    learner: Any
    env_state: envs.EnvState
    data: Any
    episodes: Episodes  # the training episodes that ended during it
    metrics: dict


def make_train(config: RunConfig, env: envs.Env, agent: Agent, *, start: Callable, iterate: Callable,
               schedule: Schedule, steps_per_iteration: int, initial_steps: int = 0, start_keys: int = 2,
               on_eval: Callable | None = None, ordered_callbacks: bool = True) -> Train:
    """A :class:`Train` from a loop's two functions:

    - ``start(*keys) -> (learner, env_state, data)`` -- the run's start (the agent's ``init``,
      the environments' reset, an off-policy warm-up ...) from ``start_keys`` keys: the first
      ``start_keys`` of ``split(key, start_keys + 1)``, whose last key is the run's;
    - ``iterate(learner, env_state, data, key, index) -> Iteration`` -- iteration number
      ``index`` (traced) of the run.

    The run is ``schedule.evals`` periods of ``schedule.iterations_per_eval`` iterations of
    ``steps_per_iteration`` environment steps, after ``initial_steps`` (a warm-up). Evaluation runs ``config.eval_episodes``
    episodes of the agent's policy with ``explore`` set by ``config.eval_policy``, on
    observations normalised by the training statistics if there are any.
    """
    num_evals, iterations_per_eval = schedule
    size = chunk_size(iterations_per_eval, num_evals)
    chunks_per_eval = iterations_per_eval // size
    max_steps = episode_limit(env)
    explore = config.eval_policy == "stochastic"

    def act(learner, obs, key):
        return agent.act(learner, obs, key, explore)

    def init(key):
        *keys, key = jax.random.split(key, start_keys + 1)
        learner, env_state, data = start(*keys)
        return Carry(learner, env_state, key, jnp.zeros((), jnp.int32), Tally.zero(), data)

    def advance(carry: Carry):
        keys = iteration_keys(carry.key, carry.chunk, num_evals, iterations_per_eval, size)
        indices = carry.chunk * size + jnp.arange(size)

        def body(inner, inputs):
            learner, env_state, data, tally = inner
            key, index = inputs
            out = iterate(learner, env_state, data, key, index)
            return (out.learner, out.env_state, out.data, tally.add(out.episodes)), out.metrics

        inner = (carry.learner, carry.env_state, carry.data, carry.tally)
        (learner, env_state, data, tally), metrics = jax.lax.scan(body, inner, (keys, indices))
        carry = Carry(learner, env_state, carry.key, carry.chunk + 1, tally, data)
        return carry, jax.tree_util.tree_map(lambda x: x[-1], metrics)

    def evaluate_carry(carry: Carry, metrics):
        key = eval_key(carry.key, carry.chunk, num_evals, chunks_per_eval)
        episode_return = evaluate(env, act, carry.learner, key, config.eval_episodes, max_steps, obs_stats(carry))
        step = initial_steps + carry.chunk * size * steps_per_iteration
        row = {"step": step, "episode_return": episode_return, **metrics, "train_episode_return": carry.tally.mean()}
        return carry._replace(tally=Tally.zero()), row

    return Train(init=init, advance=advance, evaluate=evaluate_carry, num_evals=num_evals,
                 chunks_per_eval=chunks_per_eval, steps_per_chunk=size * steps_per_iteration, env=env, act=act,
                 initial_steps=initial_steps, on_eval=on_eval, ordered_callbacks=ordered_callbacks,
                 log_prob=agent.log_prob)
