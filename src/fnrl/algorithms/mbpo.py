"""MBPO: model-based policy optimisation (Janner et al. 2019, "When to Trust Your Model:
Model-Based Policy Optimization"), the lectures' MBRL v3.0: SAC trained on short model rollouts
branched from real states.

    each real step:      act with SAC's policy π in the environment; D_env ← D_env ∪ {(s, a, r, s')}
    every model_every:   fit the ensemble p̂(s' − s, r | s, a) to D_env (as PETS does)
    each real step:      branch model_rollouts rollouts of rollout_horizon steps from s ~ D_env,
                         a ~ π(·|s), (s', r) from a random elite member per step;  D_model ← them
                         policy_updates SAC updates on batches drawn real_ratio from D_env and
                         the rest from D_model

Short branches keep the model's compounding error small while the rollouts start from the whole
state distribution of the real data (Janner et al.'s bound on the return gap grows with the
branch length). The reward is the environment's own where fnrl knows it
(:func:`fnrl.models.reward_function`); ``known_reward=false`` uses the model's predicted reward.
A branch's last step is truncated (a time limit), so SAC bootstraps from where it stopped.

Composed of:
- :func:`fnrl.models.make_ensemble` and :func:`fnrl.models.fit` on the filled part of the loop's
  buffer (``size=data.size``), from the previous fit's parameters;
- :func:`fnrl.models.model_env` starting from states of the real data, under a
  :class:`~fnrl.envs.wrappers.TimeLimit`, rolled out by :func:`fnrl.rollout.rollout`;
- :mod:`fnrl.replay` -- the buffer of imagined transitions, sampling both buffers;
- SAC's agent (:func:`fnrl.algorithms.sac.make_agent`) for acting and its updates;
- the model-based loop of :mod:`fnrl.loops.modelbased`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnrl import envs, models, replay
from fnrl.agent import Agent, UpdateOutput
from fnrl.algorithms import sac
from fnrl.config import check, field_of, positive_int, unit_interval
from fnrl.envs.wrappers import TimeLimit
from fnrl.loops import core, modelbased
from fnrl.rollout import rollout
from fnrl.types import Transition

SUPPORTS = sac.SUPPORTS
_SAC_FIELDS = ("actor_learning_rate", "critic_learning_rate", "temperature_learning_rate", "tau", "num_critics",
               "init_temperature", "target_entropy")


@dataclasses.dataclass(frozen=True)
class Config(modelbased.ModelBasedConfig, models.ModelFields):
    env: str = "pendulum"
    total_steps: int = positive_int(20_000)
    rollout_length: int = positive_int(1)  # real steps per environment between updates
    model_every: int = positive_int(250)  # real steps between refits of the ensemble
    model_rollouts: int = positive_int(400)  # branches per update
    rollout_horizon: int = positive_int(1)  # steps per branch
    model_buffer_size: int = positive_int(100_000)
    policy_updates: int = positive_int(10)  # SAC updates per update (per real step by default)
    batch_size: int = positive_int(256)
    real_ratio: float = unit_interval(0.05)
    known_reward: bool = True
    # SAC's (fnrl.algorithms.sac.Config); its networks are `hidden_sizes`.
    actor_learning_rate: float = field_of(sac.Config, "actor_learning_rate")
    critic_learning_rate: float = field_of(sac.Config, "critic_learning_rate")
    temperature_learning_rate: float = field_of(sac.Config, "temperature_learning_rate")
    tau: float = field_of(sac.Config, "tau")
    num_critics: int = field_of(sac.Config, "num_critics")
    init_temperature: float = field_of(sac.Config, "init_temperature")
    target_entropy: float | None = field_of(sac.Config, "target_entropy")

    def __post_init__(self):
        super().__post_init__()
        check(self.model_every % self.steps_per_iteration == 0, "model_every", self.model_every,
              f"a multiple of the {self.steps_per_iteration} real steps per update (num_envs * rollout_length)")
        check(self.model_buffer_size >= self.model_rollouts * self.rollout_horizon, "model_buffer_size",
              self.model_buffer_size, f">= the {self.model_rollouts * self.rollout_horizon} imagined transitions "
              "of one update (model_rollouts * rollout_horizon)")

    def sac_config(self) -> sac.Config:
        return sac.Config(env=self.env, gamma=self.gamma, hidden_sizes=self.hidden_sizes,
                          **{name: getattr(self, name) for name in _SAC_FIELDS})


class Learner(NamedTuple):
    policy: Any  # SAC's learner
    model: models.ModelParams
    imagined: replay.ReplayState  # D_model
    updates: jax.Array  # updates made so far
    model_score: jax.Array  # the last fit's mean validation score of the members


def make_agent(config: Config, env: envs.Env) -> Agent:
    """MBPO acting in ``env`` as the loop's agents act in it (continuous actions in ``[-1, 1]``)."""
    agent_env = envs.wrap(env, auto_reset=False)
    spec = agent_env.spec
    ensemble = models.make_ensemble(spec, config.ensemble_config())
    policy = sac.make_agent(config.sac_config(), spec)
    reward_fn, termination_fn = models.step_functions(agent_env, config.known_reward, "mbpo")
    num_real = round(config.real_ratio * config.batch_size)
    refit_every = config.model_every // config.steps_per_iteration

    def init(key, obs):
        policy_key, model_key = jax.random.split(key)
        zero = jnp.zeros((), jnp.float32)
        example = Transition(obs=obs[0], action=jnp.zeros(spec.action_shape, jnp.float32), reward=zero,
                             termination=zero, truncation=zero, next_obs=obs[0], extras={})
        return Learner(policy.init(policy_key, obs), ensemble.init(model_key),
                       replay.init(example, config.model_buffer_size), jnp.zeros((), jnp.int32), zero)

    def act(learner, obs, key, explore):
        return policy.act(learner.policy, obs, key, explore)

    def refit(learner, data, key):
        params, fit = models.fit(key, ensemble, data.data, learner.model, size=data.size)
        return params, jnp.mean(fit["best_score"])

    def branch(learner, model, data, key):
        """``model_rollouts`` rollouts of ``rollout_horizon`` steps of π on the model from real states."""
        def start(key):
            return data.data.obs[jax.random.randint(key, (), 0, data.size)]

        model_env = models.model_env(ensemble, model, start, reward_fn, termination_fn, propagation="ts1")
        batch = envs.wrap(TimeLimit(model_env, config.rollout_horizon), num_envs=config.model_rollouts,
                          rescale_actions=False)
        reset_key, rollout_key = jax.random.split(key)
        explore = lambda params, obs, key: policy.act(params, obs, key, True)  # noqa: E731
        return rollout(batch, explore, learner.policy, batch.reset(reset_key), rollout_key,
                       config.rollout_horizon)[1]

    def policy_update(imagined, data):
        def one(policy_learner, key):
            real_key, model_key, update_key = jax.random.split(key, 3)
            batch = replay.sample(imagined, model_key, config.batch_size - num_real)[0]
            if num_real:
                real = replay.sample(data, real_key, num_real)[0]
                batch = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), real, batch)
            batch = batch._replace(extras={"weight": jnp.ones(config.batch_size),
                                           "n_steps": jnp.ones(config.batch_size, jnp.int32)})
            out = policy.update(policy_learner, batch, update_key)
            return out.learner, out.metrics

        return one

    def update(learner, data, key):
        fit_key, branch_key, policy_key = jax.random.split(key, 3)
        model, score = jax.lax.cond(learner.updates % refit_every == 0, refit,
                                    lambda learner, data, key: (learner.model, learner.model_score),
                                    learner, data, fit_key)
        imagined = replay.insert(learner.imagined, branch(learner, model, data, branch_key))
        policy_learner, metrics = jax.lax.scan(policy_update(imagined, data), learner.policy,
                                               jax.random.split(policy_key, config.policy_updates))
        metrics = {**jax.tree_util.tree_map(lambda x: x[-1], metrics), "model_val_mse": score}
        return UpdateOutput(Learner(policy_learner, model, imagined, learner.updates + 1, score), metrics)

    def log_prob(learner, obs, action):
        return policy.log_prob(learner.policy, obs, action)

    return Agent(init, act, update, log_prob=log_prob)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for MBPO; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    core.check_env("mbpo", SUPPORTS, env, config.env)
    return modelbased.make_train(config, env, make_agent(config, env), on_eval)
