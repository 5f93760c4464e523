"""The model-based loop: every real transition on the device, handed whole to the agent.

1. ``learning_starts`` environment steps of uniformly random actions fill the buffer of real
   transitions, and the agent learns from them (one ``update``) before it first acts;
2. each iteration steps the ``num_envs`` auto-resetting environments ``rollout_length`` times
   with the agent's exploring policy, inserts the transitions and makes one ``update``.

``update(learner, data, key)`` receives the :class:`~fnrl.replay.ReplayState` of the real
transitions kept so far (``data.data`` has leaves ``[buffer_size, ...]`` of which
``[0, data.size)`` are filled; ``data.size`` is traced), not a sampled batch: what a
model-based agent learns from its experience is its own. PETS refits its dynamics ensemble on
all of it (:func:`fnrl.models.fit` with ``size=data.size``) and plans with the ensemble when it
acts; MBPO refits on its schedule and trains SAC on short model rollouts branched from the
buffer's states; Dyna-Q plans with its tabular model. The model, any buffer of imagined
transitions and the agent's own counters live in its learner, so a checkpoint holds them.

The cadence is the agent's experiment: PETS collects an episode per update
(``rollout_length = 200`` on pendulum), MBPO a step (``rollout_length = 1``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from fnrl import envs, replay
from fnrl.agent import Agent
from fnrl.config import check, non_negative, positive_int
from fnrl.loops import core
from fnrl.rollout import rollout

__all__ = ["ModelBasedConfig", "make_train"]


@dataclasses.dataclass(frozen=True)
class ModelBasedConfig(core.RunConfig):
    """Fields every model-based algorithm shares; algorithms subclass it with their own.

    ``learning_starts``: environment steps of uniformly random actions before the first update
    (0: the agent acts from its initial learner and first learns after one iteration).
    """

    num_envs: int = positive_int(1)
    rollout_length: int = positive_int(200)
    buffer_size: int = positive_int(100_000)
    learning_starts: int = non_negative(200)

    def __post_init__(self):
        super().__post_init__()
        most = max(self.warmup_steps, self.steps_per_iteration)
        check(self.buffer_size >= most, "buffer_size", self.buffer_size,
              f">= the {most} transitions inserted at once (learning_starts, num_envs * rollout_length)")

    @property
    def random_steps_per_env(self) -> int:
        return -(-self.learning_starts // self.num_envs)

    @property
    def warmup_steps(self) -> int:
        return self.random_steps_per_env * self.num_envs

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def periods(self) -> core.Schedule:
        """The run's evaluation periods of iterations after the warm-up
        (:meth:`fnrl.loops.core.RunConfig.schedule`)."""
        return self.schedule(self.steps_per_iteration, self.warmup_steps)


def make_train(config: ModelBasedConfig, env: envs.Env, agent: Agent, on_eval: Callable | None = None) -> core.Train:
    """``train(key) -> (learner, metrics)`` of ``agent`` on ``env`` (see :mod:`fnrl.loops.core`);
    ``step`` counts the warm-up's steps too. Continuous actions are in ``[-1, 1]``, as in every
    loop (:func:`fnrl.envs.wrap`): a model of the environment the agent acts in is a model of
    ``envs.wrap(env, auto_reset=False)``."""
    agent = core.with_bonus(config, agent, env)
    train_env = envs.wrap(env, num_envs=config.num_envs)

    def explore(learner, obs, key):
        return agent.act(learner, obs, key, True)

    def start(learner_key, reset_key, warmup_key, update_key):
        env_state = train_env.reset(reset_key)
        learner = agent.init(learner_key, env_state.obs)
        # The buffer's layout: a step of the agent's own as its observe leaves it, extras included.
        step = jax.eval_shape(lambda: agent.observe(
            learner, rollout(train_env, explore, learner, env_state, warmup_key, 1)[1], warmup_key)[1])
        buffer = replay.init(jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape[2:], x.dtype), step),
                             config.buffer_size)
        if config.warmup_steps:
            learner, env_state, warmup = core.random_warmup(train_env, agent, learner, env_state, warmup_key,
                                                            config.random_steps_per_env)
            buffer = replay.insert(buffer, warmup)
            learner = agent.update(learner, buffer, update_key).learner
        return learner, env_state, buffer

    def iterate(learner, env_state, buffer, key, index):
        rollout_key, update_key = jax.random.split(key)
        env_state, trajectory, episodes = rollout(train_env, explore, learner, env_state, rollout_key,
                                                  config.rollout_length)
        learner, trajectory = agent.observe(learner, trajectory, core.observe_key(key))
        buffer = replay.insert(buffer, trajectory)
        learner, metrics, _ = agent.update(learner, buffer, update_key)
        return core.Iteration(learner, env_state, buffer, episodes, metrics)

    return core.make_train(config, env, agent, start=start, iterate=iterate, schedule=config.periods,
                           steps_per_iteration=config.steps_per_iteration, initial_steps=config.warmup_steps,
                           start_keys=4, on_eval=on_eval)
