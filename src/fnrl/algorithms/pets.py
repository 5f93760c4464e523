"""PETS: probabilistic ensembles with trajectory sampling (Chua et al. 2018), the lectures' MBRL v1.5.

    repeat:  fit the ensemble p̂(s' − s, r | s, a) to every real transition D so far
             (a bootstrap per member, Gaussian NLL, early stopping on held-out data);
             act by MPC: at every real step, CEM over action sequences a_{0:H} scored on the model,
                 J(a_{0:H}) = Σ_{t<H} γ^t r(ŝ_t, a_t, ŝ_{t+1}),   ŝ_{t+1} ~ p̂(· | ŝ_t, a_t),   ŝ_0 = s,
             and execute a_0;
             append what the MPC agent did (an episode per update: ``rollout_length``) to D.

The reward is the environment's own where fnrl knows it (:func:`fnrl.models.reward_function`;
``known_reward=false`` uses the model's predicted reward and no termination). ``propagation``
is the model environment's (:class:`fnrl.models.ModelEnv`): ``"ts1"``, ``"tsinf"`` (PETS's
trajectory sampling, one particle per candidate) or ``"mean"`` (the members' mean, noise-free).

Composed of:
- :func:`fnrl.models.make_ensemble` and :func:`fnrl.models.fit` on the filled part of the loop's
  buffer (``size=data.size``), starting from the previous fit's parameters;
- :func:`fnrl.models.model_env` -- the ensemble as an environment;
- :func:`fnrl.planning.cem` run as MPC by :func:`fnrl.planning.mpc_policy` (it plans from
  scratch at every step: the agent contract's ``act`` has no memory for a warm start);
- the model-based loop of :mod:`fnrl.loops.modelbased`.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp

from fnrl import envs, models, planning
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import field_of, one_of, positive_int
from fnrl.loops import core, modelbased

SUPPORTS = ("continuous", "discrete")


@dataclasses.dataclass(frozen=True)
class Config(modelbased.ModelBasedConfig, models.ModelFields):
    env: str = "pendulum"
    total_steps: int = positive_int(5_000)
    num_evals: int = positive_int(10)
    eval_episodes: int = positive_int(4)
    # CEM (planning.CEMConfig, PETS's settings), over the action sequences of the next `horizon` steps.
    horizon: int = field_of(planning.CEMConfig, "horizon")
    population: int = field_of(planning.CEMConfig, "population")
    elites: int = field_of(planning.CEMConfig, "elites")
    iterations: int = field_of(planning.CEMConfig, "iterations")
    momentum: float = field_of(planning.CEMConfig, "momentum")
    init_std: float = field_of(planning.CEMConfig, "init_std")
    plan_discount: float = field_of(planning.CEMConfig, "discount")
    # The model as an environment.
    propagation: str = one_of("tsinf", models.PROPAGATIONS)
    known_reward: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.planner()  # CEM's own checks (elites < population)

    def planner(self) -> planning.Planner:
        return planning.cem(planning.CEMConfig(
            horizon=self.horizon, population=self.population, elites=self.elites, iterations=self.iterations,
            momentum=self.momentum, init_std=self.init_std, discount=self.plan_discount, warm_start=False))


class Learner(NamedTuple):
    model: models.ModelParams


def make_agent(config: Config, env: envs.Env) -> Agent:
    """PETS acting in ``env`` as the loop's agents act in it (:func:`fnrl.envs.wrap`: continuous
    actions in ``[-1, 1]``)."""
    agent_env = envs.wrap(env, auto_reset=False)
    spec = agent_env.spec
    ensemble = models.make_ensemble(spec, config.ensemble_config())
    planner = config.planner()
    reward_fn, termination_fn = models.step_functions(agent_env, config.known_reward, "pets")

    def model_env(learner):
        return models.model_env(ensemble, learner.model, lambda key: jnp.zeros(spec.observation_shape),
                                reward_fn, termination_fn, config.propagation)

    def init(key, obs):
        return Learner(ensemble.init(key))

    def act(learner, obs, key, explore):
        return planning.mpc_policy(planner, model_env(learner))(None, obs, key)

    def update(learner, data, key):
        params, fit = models.fit(key, ensemble, data.data, learner.model, size=data.size)
        metrics = {"model_epochs": fit["num_epochs"], "model_val_mse": jnp.mean(fit["best_score"]),
                   "real_transitions": data.size}
        return UpdateOutput(Learner(params), metrics)

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for PETS; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return modelbased.make_train(config, env, make_agent(config, env), on_eval)
