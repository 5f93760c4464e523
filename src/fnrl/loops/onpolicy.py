"""The on-policy loop: each iteration rolls the agent out for ``rollout_length`` steps in
``num_envs`` auto-resetting environments, then makes one ``update`` on the time-major
trajectory ``[T, B, ...]`` (whose ``extras`` hold what ``act`` returned, e.g. ``log_prob``).

With ``num_devices = D > 1`` the same program is data-parallel over ``D`` devices (of one or
several hosts): the environment batch is split across them and the learner replicated
(:mod:`fnrl.parallel`), so gradients are averaged over the global batch and the result equals
the single-device run with the same seed up to floating-point reduction order.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from fnrl import envs, parallel
from fnrl.agent import Agent
from fnrl.config import check, positive_int
from fnrl.loops import core
from fnrl.rollout import rollout

__all__ = ["OnPolicyConfig", "make_train", "minibatch_epochs"]


@dataclasses.dataclass(frozen=True)
class OnPolicyConfig(core.RunConfig):
    """Fields every on-policy algorithm shares; algorithms subclass it with their own."""

    rollout_length: int = positive_int(128)
    normalize_obs: bool = False
    num_devices: int = 1  # data-parallel devices (all processes'); must divide num_envs

    def __post_init__(self):
        super().__post_init__()
        check(self.num_devices > 0 and self.num_envs % self.num_devices == 0, "num_devices",
              self.num_devices, f"a positive divisor of num_envs={self.num_envs}")

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def periods(self) -> core.Schedule:
        """The run's evaluation periods of updates (:meth:`fnrl.loops.core.RunConfig.schedule`)."""
        return self.schedule(self.steps_per_update)


def make_train(config: OnPolicyConfig, env: envs.Env, agent: Agent, on_eval: Callable | None = None) -> core.Train:
    """``train(key) -> (learner, metrics)`` of ``agent`` on ``env`` (see :mod:`fnrl.loops.core`).

    ``metrics`` holds, per evaluation point (``[config.periods.evals]``): ``step``,
    ``episode_return`` (mean evaluation return), ``train_episode_return`` (mean return of the
    training episodes that ended since the previous evaluation) and the last update's metrics.
    With ``config.num_devices > 1`` the environment state and trajectories are sharded along
    the environment axis over a device mesh and the learner is replicated
    (:func:`fnrl.parallel.shard_batch`); raises a one-line ``ValueError`` here when fewer
    devices are available.
    """
    agent = core.with_bonus(config, agent, env)

    def wrap(num_envs):
        return envs.wrap(env, num_envs=num_envs, normalize_obs=config.normalize_obs)

    train_env = wrap(config.num_envs)
    mesh = parallel.make_mesh(config.num_devices) if config.num_devices > 1 else None
    env_axes = parallel.batch_axes(lambda n: wrap(n).reset(jax.random.PRNGKey(0)), config.num_envs) if mesh else 0

    def shard(env_state, learner):
        """Environments split over the devices, learner replicated (identity on one device)."""
        return parallel.shard_batch(env_state, mesh, env_axes), parallel.shard_batch(learner, mesh, None)

    def act(learner, obs, key):
        return agent.act(learner, obs, key, True)

    def start(learner_key, reset_key):
        env_state = train_env.reset(reset_key)
        env_state, learner = shard(env_state, agent.init(learner_key, env_state.obs))
        return learner, env_state, ()

    def iterate(learner, env_state, data, key, index):
        rollout_key, update_key = jax.random.split(key)
        env_state, trajectory, episodes = rollout(train_env, act, learner, env_state, rollout_key,
                                                  config.rollout_length)
        trajectory = parallel.shard_batch(trajectory, mesh, axis=1)  # [T, B, ...]
        learner, trajectory = agent.observe(learner, trajectory, core.observe_key(key))
        learner, metrics, _ = agent.update(learner, trajectory, update_key)
        env_state, learner = shard(env_state, learner)
        return core.Iteration(learner, env_state, data, episodes, metrics)

    return core.make_train(config, env, agent, start=start, iterate=iterate,
                           schedule=config.periods, steps_per_iteration=config.steps_per_update,
                           on_eval=on_eval, ordered_callbacks=mesh is None)


def minibatch_epochs(key, learner: Any, batch: Any, step: Callable, num_epochs: int,
                     num_minibatches: int) -> tuple[Any, Any]:
    """``num_epochs`` shuffled passes of minibatch updates over ``batch``.

    ``batch`` is a pytree whose leaves share leading dimensions ``[T, B, ...]`` (a trajectory
    and per-step targets); they are flattened to ``T·B`` samples, shuffled each epoch and cut
    into ``num_minibatches`` equal minibatches, and ``step(learner, minibatch) ->
    (learner, metrics)`` is applied to each in turn (all inside ``lax.scan``). Returns the
    final learner and the metrics of the last minibatch.
    """
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    size = jax.tree_util.tree_leaves(flat)[0].shape[0]
    if size % num_minibatches:
        raise ValueError(f"a batch of {size} samples does not split into {num_minibatches} minibatches")

    def epoch(learner, key):
        order = jax.random.permutation(key, size)
        shuffled = jax.tree_util.tree_map(
            lambda x: x[order].reshape((num_minibatches, -1) + x.shape[1:]), flat)
        return jax.lax.scan(step, learner, shuffled)

    learner, metrics = jax.lax.scan(epoch, learner, jax.random.split(key, num_epochs))
    return learner, jax.tree_util.tree_map(lambda x: x[-1, -1], metrics)
