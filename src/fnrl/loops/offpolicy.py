"""The off-policy loop: replay on the device.

1. ``learning_starts`` environment steps of uniformly random actions fill the replay buffer
   (of the agent's exploring policy, when the run starts from a given ``learner``), after the
   transitions of a ``dataset``, if one is given (offline-to-online fine-tuning, :mod:`fnrl.finetune`);
2. each iteration steps the ``num_envs`` auto-resetting environments ``rollout_length`` times
   with the agent's exploring policy, inserts the assembled n-step transitions
   (:func:`fnrl.replay.n_step_transitions`; the last ``n − 1`` steps wait for the next
   iteration, so every transition gets its full window), then samples and applies
   ``updates_per_rollout`` updates.

The replay ratio is ``updates_per_rollout / (num_envs · rollout_length)`` updates per
environment step. A replayed batch is a :class:`~fnrl.types.Transition` ``[batch_size, ...]``
whose ``extras`` hold what ``act`` returned when the step was taken (NaN, or 0 for non-float
extras, for the random warm-up steps, which no agent took), ``n_steps`` (the bootstrap discount is ``γ^n_steps``) and
``weight``: the importance weights of prioritised replay (Schaul et al. 2016; ``priority_beta``
annealed linearly to 1 over the run), ones otherwise. Under prioritised replay the update's
``priorities`` ``p`` become ``(p + priority_eps)^priority_alpha``. The buffer is part of the
carry, so a checkpoint holds it and a resumed run replays exactly what it would have.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnrl import datasets, envs, replay
from fnrl.agent import Agent
from fnrl.config import check, non_negative, positive, positive_int, unit_interval
from fnrl.loops import core
from fnrl.rollout import rollout

__all__ = ["OffPolicyConfig", "Replay", "make_train"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig(core.RunConfig):
    """Fields every off-policy algorithm shares; algorithms subclass it with their own.

    ``learning_starts``: environment steps of uniformly random actions before learning (at
    least ``n_step`` per environment, so the first n-step window is complete).
    """

    num_envs: int = positive_int(4)
    rollout_length: int = positive_int(1)
    updates_per_rollout: int = positive_int(1)
    batch_size: int = positive_int(128)
    buffer_size: int = positive_int(100_000)
    learning_starts: int = non_negative(1_000)
    n_step: int = positive_int(1)
    prioritized: bool = False
    priority_alpha: float = non_negative(0.6)
    priority_beta: float = unit_interval(0.4)
    priority_eps: float = positive(1e-6)
    hidden_sizes: tuple[int, ...] = (256, 256)

    def __post_init__(self):
        super().__post_init__()
        most = max(self.warmup_transitions, self.num_envs * self.rollout_length)
        check(self.buffer_size >= most, "buffer_size", self.buffer_size,
              f">= the {most} transitions inserted at once (learning_starts, num_envs * rollout_length)")

    @property
    def warmup_length(self) -> int:
        """Random-action steps per environment before learning (>= n_step)."""
        return max(_ceil_div(self.learning_starts, self.num_envs), self.n_step)

    @property
    def warmup_steps(self) -> int:
        return self.warmup_length * self.num_envs

    @property
    def warmup_transitions(self) -> int:
        """Complete n-step windows the warm-up inserts."""
        return (self.warmup_length - self.n_step + 1) * self.num_envs

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def periods(self) -> core.Schedule:
        """The run's evaluation periods of iterations after the warm-up
        (:meth:`fnrl.loops.core.RunConfig.schedule`)."""
        return self.schedule(self.steps_per_iteration, self.warmup_steps)


class Replay(NamedTuple):
    """The loop's own state: the buffer, and the last ``n − 1`` steps, whose n-step windows
    are completed by the next iteration."""

    buffer: replay.ReplayState
    pending: object


def make_train(config: OffPolicyConfig, env: envs.Env, agent: Agent, on_eval: Callable | None = None, *,
               learner=None, dataset: datasets.Dataset | None = None) -> core.Train:
    """``train(key) -> (learner, metrics)`` of ``agent`` on ``env`` (see :mod:`fnrl.loops.core`);
    ``step`` counts the warm-up's steps too.

    ``learner``: the learner to start from instead of ``agent.init``'s (e.g. an offline run's);
    the warm-up then acts with the agent's exploring policy rather than uniformly at random.
    ``dataset``: one-step transitions (:class:`fnrl.datasets.Dataset`) inserted into the buffer
    before the warm-up's, so the first updates replay them (``n_steps`` 1; the acting extras the
    dataset lacks are NaN, as a random warm-up's). Both are constants of the program; a checkpoint
    holds the buffer they start, so a resumed run does not need them again, only their shapes.
    """
    if dataset is not None and dataset.size > config.buffer_size:
        raise ValueError(f"buffer_size={config.buffer_size} is smaller than the dataset's {dataset.size} transitions; "
                         f"set buffer_size >= {dataset.size}")
    if learner is not None:  # the agent's init gives it (an exploration bonus still starts afresh)
        agent = agent._replace(init=lambda key, obs: learner)
    agent = core.with_bonus(config, agent, env)
    train_env = envs.wrap(env, num_envs=config.num_envs)
    n = config.n_step
    total_iterations = config.periods.iterations

    def assemble(trajectory):
        return replay.n_step_transitions(trajectory, n, config.gamma)

    def tail(trajectory):  # the last n - 1 steps, which start no complete window yet
        return jax.tree_util.tree_map(lambda x: x[x.shape[0] - (n - 1):], trajectory)

    def explore(learner, obs, key):
        return agent.act(learner, obs, key, True)

    def start(learner_key, reset_key, warmup_key):
        env_state = train_env.reset(reset_key)
        first = agent.init(learner_key, env_state.obs)
        if learner is None:
            first, env_state, warmup = core.random_warmup(train_env, agent, first, env_state, warmup_key,
                                                          config.warmup_length)
        else:
            env_state, warmup, _ = rollout(train_env, explore, first, env_state, warmup_key, config.warmup_length)
            first, warmup = agent.observe(first, warmup, core.observe_key(warmup_key))
        transitions = assemble(warmup)
        example = jax.tree_util.tree_map(lambda x: x[0, 0], transitions)
        buffer = replay.init(example, config.buffer_size, prioritized=config.prioritized)
        if dataset is not None:
            buffer = replay.insert(buffer, prefill(example))
        buffer = replay.insert(buffer, transitions)
        return first, env_state, Replay(buffer, tail(warmup))

    def prefill(example):  # the dataset's transitions, with the buffer's extras
        data = dataset.device_put()
        acting = {k: v for k, v in example.extras.items() if k != "n_steps"}
        shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((1,) + x.shape, x.dtype), acting)
        extras = core.missing_extras(shapes, data.extras, (dataset.size,))
        return data._replace(extras={**extras, "n_steps": jnp.ones(dataset.size, example.extras["n_steps"].dtype)})

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
        learner, metrics, priorities = agent.update(learner, batch._replace(extras={**batch.extras, "weight": weights}),
                                                    update_key)
        if config.prioritized:
            if priorities is None:
                raise ValueError("prioritized replay needs priorities from the agent's update (UpdateOutput.priorities)")
            buffer = replay.update_priorities(buffer, indices, priorities + config.priority_eps, config.priority_alpha)
        return (learner, buffer), metrics

    def iterate(learner, env_state, data: Replay, key, index):
        rollout_key, update_key = jax.random.split(key)
        env_state, trajectory, episodes = rollout(train_env, explore, learner, env_state, rollout_key,
                                                  config.rollout_length)
        learner, trajectory = agent.observe(learner, trajectory, core.observe_key(key))
        joined = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), data.pending, trajectory)
        buffer = replay.insert(data.buffer, assemble(joined))
        progress = jnp.full(config.updates_per_rollout, index / total_iterations, jnp.float32)
        (learner, buffer), metrics = jax.lax.scan(
            one_update, (learner, buffer), (jax.random.split(update_key, config.updates_per_rollout), progress))
        last = jax.tree_util.tree_map(lambda x: x[-1], metrics)
        return core.Iteration(learner, env_state, Replay(buffer, tail(joined)), episodes, last)

    return core.make_train(config, env, agent, start=start, iterate=iterate,
                           schedule=config.periods,
                           steps_per_iteration=config.steps_per_iteration, initial_steps=config.warmup_steps,
                           start_keys=3, on_eval=on_eval)
