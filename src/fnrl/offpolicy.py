"""The off-policy training loop, written once for DQN, DDPG, TD3 and SAC.

An algorithm is an :class:`Agent`: its environment and four pure functions over its ``learner``
pytree (parameters, target parameters, optimiser states, counters):

- ``init(key, obs) -> learner`` (``obs``: a batch of observations, to shape the networks);
- ``explore(learner, obs, key, step) -> action`` -- the behaviour policy (ε-greedy, action
  noise, a stochastic actor); ``step`` is the number of environment steps so far, for schedules;
- ``act(learner, obs, key) -> (action, extras)`` -- the evaluation policy (greedy/deterministic),
  with the signature :func:`fnrl.training.evaluate` takes;
- ``update(learner, batch, weights, key) -> (learner, td_error, metrics)`` -- one gradient step on
  a replayed minibatch of :func:`fnrl.replay.n_step_transitions` (leaves ``[batch_size, ...]``;
  ``extras["n_steps"]`` gives the bootstrap discount ``γ^m``), its per-sample loss weights
  (importance weights under prioritised replay, else ones) and the per-sample TD errors ``[B]``
  that become the new priorities ``|δ| + ε``.

:func:`make_off_policy_train` turns an agent into ``train(key) -> (learner, metrics)``:

1. ``learning_starts`` environment steps of uniformly random actions fill the replay buffer;
2. each *iteration* steps the ``num_envs`` auto-resetting environments ``rollout_length`` times
   with ``explore``, inserts the assembled n-step transitions (the last ``n − 1`` steps wait for
   the next iteration, so every transition gets its full window), then samples and applies
   ``updates_per_rollout`` updates;
3. every ``num_evals``-th of the run the policy ``act`` is evaluated.

The replay ratio is ``updates_per_rollout / (num_envs · rollout_length)`` updates per
environment step. The whole run -- warm-up, acting, replay, updates and evaluation -- is one
``lax.scan`` program with the buffer on the device, so ``jax.jit(train)`` compiles once and
``jax.vmap(train)`` trains many seeds, each with its own buffer. ``train`` is a
:class:`fnrl.loop.Train`, which also exposes the run's pieces (the buffer is part of the carry,
so a checkpoint holds it and a resumed run replays exactly what it would have).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnrl import envs, loop, replay
from fnrl.config import check
from fnrl.rollout import rollout
from fnrl.training import episode_limit, evaluate

__all__ = ["Agent", "OffPolicyConfig", "make_off_policy_train"]


class Agent(NamedTuple):
    """What an off-policy algorithm supplies to the loop (see the module docstring)."""

    env: envs.Env
    init: Callable
    explore: Callable
    act: Callable
    update: Callable


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig:
    """Fields every off-policy algorithm shares; algorithms subclass it with their own.

    ``learning_starts``: environment steps of uniformly random actions before learning (at
    least ``n_step`` per environment, so the first n-step window is complete).
    ``priority_beta`` is annealed linearly to 1 over the run (Schaul et al. 2016).
    """

    env: str = "cartpole"
    total_steps: int = 100_000
    num_envs: int = 4
    rollout_length: int = 1
    updates_per_rollout: int = 1
    batch_size: int = 128
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    n_step: int = 1
    gamma: float = 0.99
    prioritized: bool = False
    priority_alpha: float = 0.6
    priority_beta: float = 0.4
    priority_eps: float = 1e-6
    num_evals: int = 20
    eval_episodes: int = 16
    hidden_sizes: tuple[int, ...] = (256, 256)
    num_devices: int = 1  # the command line's data-parallel setting; this loop runs on one device

    def __post_init__(self):
        positive = "a positive integer"
        for name in ("total_steps", "num_envs", "rollout_length", "updates_per_rollout", "batch_size",
                     "buffer_size", "n_step", "num_evals", "eval_episodes"):
            check(getattr(self, name) > 0, name, getattr(self, name), positive)
        check(self.num_devices == 1, "num_devices", self.num_devices, "1 (the off-policy loop runs on one device)")
        check(self.learning_starts >= 0, "learning_starts", self.learning_starts, ">= 0")
        check(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        check(self.priority_alpha >= 0, "priority_alpha", self.priority_alpha, ">= 0")
        check(0.0 <= self.priority_beta <= 1.0, "priority_beta", self.priority_beta, "in [0, 1]")
        check(self.priority_eps > 0, "priority_eps", self.priority_eps, "positive")
        check(all(h > 0 for h in self.hidden_sizes), "hidden_sizes", self.hidden_sizes, "positive integers")
        most = max(self.warmup_transitions, self.num_envs * self.rollout_length)
        check(self.buffer_size >= most, "buffer_size", self.buffer_size,
              f">= the {most} transitions inserted at once (learning_starts, num_envs * rollout_length)")

    @property
    def warmup_length(self) -> int:
        """Random-action steps per environment before learning (>= n_step)."""
        return max(_ceil_div(self.learning_starts, self.num_envs), self.n_step)

    @property
    def warmup_transitions(self) -> int:
        """Complete n-step windows the warm-up inserts."""
        return (self.warmup_length - self.n_step + 1) * self.num_envs

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def iterations_per_eval(self) -> int:
        """Iterations between evaluations; the run takes at least ``total_steps`` steps."""
        remaining = max(self.total_steps - self.warmup_length * self.num_envs, 1)
        return _ceil_div(remaining, self.num_evals * self.steps_per_iteration)


def make_off_policy_train(config: OffPolicyConfig, agent: Agent, on_eval: Callable | None = None) -> loop.Train:
    """Builds ``train(key) -> (learner, metrics)`` from an algorithm's :class:`Agent`.

    ``metrics`` holds, per evaluation point (``[config.num_evals]``): ``step`` (environment
    steps so far, warm-up included), ``episode_return`` (mean evaluation return of ``act``),
    ``train_episode_return`` (mean return of the exploring episodes that ended since the last
    evaluation; NaN if none did) and the last update's metrics. ``on_eval(step,
    episode_return, metrics)``, if given, is called on the host at each evaluation point
    through ``jax.debug.callback`` (``num_evals`` calls).
    """
    env, init, explore, act, update = agent
    train_env = envs.wrap(env, num_envs=config.num_envs)
    spec = train_env.spec
    max_steps = episode_limit(env)
    n, length = config.n_step, config.rollout_length
    warmup_steps = config.warmup_length * config.num_envs
    total_iterations = config.num_evals * config.iterations_per_eval
    size = loop.chunk_size(config.iterations_per_eval, config.num_evals)
    chunks_per_eval = config.iterations_per_eval // size

    def random_policy(_, obs, key):
        return spec.sample_action(key, (config.num_envs,)), {}

    def assemble(trajectory):
        return replay.n_step_transitions(trajectory, n, config.gamma)

    def tail(trajectory):  # the last n - 1 steps, which start no complete window yet
        return jax.tree_util.tree_map(lambda x: x[x.shape[0] - (n - 1):], trajectory)

    def one_update(carry, inputs):
        learner, buffer = carry
        key, progress = inputs
        sample_key, update_key = jax.random.split(key)
        if config.prioritized:
            beta = config.priority_beta + (1.0 - config.priority_beta) * progress
            batch, indices, weights = replay.sample_prioritized(buffer, sample_key, config.batch_size, beta)
        else:
            batch, indices = replay.sample(buffer, sample_key, config.batch_size)
            weights = jnp.ones(config.batch_size)
        learner, td_error, metrics = update(learner, batch, weights, update_key)
        if config.prioritized:
            buffer = replay.update_priorities(buffer, indices, jnp.abs(td_error) + config.priority_eps,
                                              config.priority_alpha)
        return (learner, buffer), metrics

    def one_iteration(carry, inputs):
        learner, buffer, env_state, pending, ended = carry
        index, key = inputs
        rollout_key, update_key = jax.random.split(key)
        step = warmup_steps + index * config.steps_per_iteration

        def policy(learner, obs, key):
            return explore(learner, obs, key, step), {}

        env_state, trajectory, episodes = rollout(train_env, policy, learner, env_state, rollout_key, length)
        joined = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), pending, trajectory)
        buffer = replay.insert(buffer, assemble(joined))
        progress = jnp.full(config.updates_per_rollout, index / total_iterations, jnp.float32)
        (learner, buffer), metrics = jax.lax.scan(
            one_update, (learner, buffer), (jax.random.split(update_key, config.updates_per_rollout), progress))
        ended = (ended[0] + jnp.sum(episodes.done * episodes.episode_return), ended[1] + jnp.sum(episodes.done))
        last = jax.tree_util.tree_map(lambda x: x[-1], metrics)
        return (learner, buffer, env_state, tail(joined), ended), last

    def init_carry(key):
        init_key, reset_key, warmup_key, key = jax.random.split(key, 4)
        env_state = train_env.reset(reset_key)
        learner = init(init_key, env_state.obs)
        env_state, warmup, _ = rollout(train_env, random_policy, None, env_state, warmup_key, config.warmup_length)
        transitions = assemble(warmup)
        example = jax.tree_util.tree_map(lambda x: x[0, 0], transitions)
        buffer = replay.init(example, config.buffer_size, prioritized=config.prioritized)
        buffer = replay.insert(buffer, transitions)
        return {"learner": learner, "env_state": env_state, "key": key, "chunk": jnp.zeros((), jnp.int32),
                "buffer": buffer, "pending": tail(warmup), "ended": (jnp.zeros(()), jnp.zeros(()))}

    def advance(carry):
        keys = loop.update_keys(carry["key"], carry["chunk"], config.num_evals, config.iterations_per_eval, size)
        indices = carry["chunk"] * size + jnp.arange(size)
        inner = (carry["learner"], carry["buffer"], carry["env_state"], carry["pending"], carry["ended"])
        (learner, buffer, env_state, pending, ended), metrics = jax.lax.scan(one_iteration, inner, (indices, keys))
        carry = {**carry, "learner": learner, "buffer": buffer, "env_state": env_state, "pending": pending,
                 "ended": ended, "chunk": carry["chunk"] + 1}
        return carry, jax.tree_util.tree_map(lambda x: x[-1], metrics)

    def evaluate_carry(carry, metrics):
        key = loop.eval_key(carry["key"], carry["chunk"], config.num_evals, chunks_per_eval)
        return_sum, count = carry["ended"]
        train_return = jnp.where(count > 0, return_sum / jnp.maximum(count, 1), jnp.nan)
        episode_return = evaluate(env, act, carry["learner"], key, config.eval_episodes, max_steps)
        step = warmup_steps + carry["chunk"] * size * config.steps_per_iteration
        carry = {**carry, "ended": (jnp.zeros(()), jnp.zeros(()))}
        return carry, {"step": step, "episode_return": episode_return, **metrics, "train_episode_return": train_return}

    return loop.Train(init=init_carry, advance=advance, evaluate=evaluate_carry, num_evals=config.num_evals,
                      chunks_per_eval=chunks_per_eval, steps_per_chunk=size * config.steps_per_iteration,
                      env=env, act=act, initial_steps=warmup_steps, on_eval=on_eval)
