"""APG: analytic policy gradients -- a deterministic policy trained by backpropagating the return
through a differentiable model, the lectures' MBRL v2.0 ("backpropagate through the model into
the policy"; PILCO: Deisenroth & Rasmussen 2011; Brax's ``brax.training.agents.apg``: Freeman
et al. 2021).

    each update, policy_updates times:
        s_0^i ~ ρ, i < N = num_starts      model="true": fresh resets of the real environment;
                                           model="learned": states drawn from the real data D
        a_t = μ_θ(s_t),  s_{t+1} = f(s_t, a_t),  r_t = r(s_t, a_t, s_{t+1}),  d_t = term(...)
        L(θ) = −(1/N) Σ_i Σ_{t<H} γ^t (Π_{k<t} (1 − d_k)) r_t^i            (H = horizon)
        θ ← θ − Adam(clip_c(∇_θ L)),    clip_c(g) = g · min(1, c / ‖g‖₂)   (c = max_grad_norm)

``∇_θ L`` is exact reverse-mode differentiation through all ``H`` steps of the rollout
(backpropagation through time). ``model="true"`` differentiates the real environment's own
``step`` (pure JAX: pendulum, Brax), in ``[-1, 1]`` action units; ``model="learned"`` first
refits the ensemble p̂ to D from its previous parameters (as PETS does) and rolls out on
``f(s, a) = s + mean_k μ_k(s, a)`` -- the members' mean, without noise, so deterministic and
differentiable -- with the known reward (``known_reward=false``: the predicted one).

**Exploding gradients.** With ``A_t = ∂f/∂s + ∂f/∂a ∂μ/∂s`` (the closed loop's Jacobian at step
t) and ``B_t = ∂f/∂a``, ``∂s_t/∂θ = Σ_{k<t} A_{t−1} ⋯ A_{k+1} B_k ∂μ_θ(s_k)/∂θ``: a product of
up to ``H`` Jacobians, which grows exponentially in ``H`` wherever the closed loop is unstable
or chaotic (pendulum near upright under a poor policy). Metz et al. 2021 ("Gradients are not
all you need") show the variance of such unrolled gradients exploding with the unroll length;
Suh et al. 2022 ("Do Differentiable Simulators Give Better Policy Gradients?") show the exact
gradient of stiff or discontinuous dynamics (contacts; here the velocity clip at ±8, whose
gradient is 0 while it binds) to be biased or uninformative about the expected return, where a
zeroth-order (likelihood-ratio) estimate stays unbiased. Hence the moderate horizon, the
discount and the global-norm clipping (on pendulum 25 steps were too short for the swing-up to
pay and 100 started with gradient norms in the thousands: ``fnrl/presets.yaml``); the metrics
log ``grad_norm`` (the mean over an update's steps, before clipping) to watch it.

Steps counted: the loop's real environment steps only (its ``rollout_length`` per update,
acting with ``μ_θ`` plus Gaussian noise of std ``exploration_noise``). With ``model="true"``
the ``policy_updates · num_starts · horizon`` simulator steps that each update differentiates
through are not counted (Brax's APG counts them).

Composed of:
- :func:`fnrl.networks.make_deterministic_policy` -- ``μ_θ(s) = tanh(·) ∈ (−1, 1)``;
- the real environment (:func:`fnrl.envs.wrap`, no auto-reset), or :func:`fnrl.models.fit` on
  the filled part of the loop's buffer (``size=data.size``) and :func:`fnrl.models.model_env`
  with ``propagation="mean", sample=False``;
- :func:`policy_return` -- the rollout of ``μ_θ`` (a ``lax.scan``) whose ``jax.grad`` is the update;
- ``optax.clip_by_global_norm`` and ``optax.adam``;
- the model-based loop of :mod:`fnrl.loops.modelbased`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import envs, models, networks, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import non_negative, one_of, positive, positive_int
from fnrl.loops import core, modelbased

SUPPORTS = ("continuous",)
MODELS = ("true", "learned")


@dataclasses.dataclass(frozen=True)
class Config(modelbased.ModelBasedConfig, models.ModelFields):
    env: str = "pendulum"
    total_steps: int = positive_int(5_000)
    hidden_sizes: tuple[int, ...] = (64, 64)
    model: str = one_of("true", MODELS)
    known_reward: bool = True  # model="learned": the environment's reward, or the model's (false)
    horizon: int = positive_int(50)  # H: steps of each differentiated rollout
    num_starts: int = positive_int(64)  # N: rollouts per gradient step
    policy_updates: int = positive_int(50)  # gradient steps per update
    learning_rate: float = positive(1e-3)
    max_grad_norm: float = positive(1.0)
    exploration_noise: float = non_negative(0.1)


def policy_return(policy, params, model: envs.Env, state: envs.EnvState, horizon: int, discount: float):
    """−L(θ) = (1/N) Σ_i Σ_{t<H} γ^t (Π_{k<t} (1 − d_k)) r_t^i: the deterministic policy
    ``policy(params, obs) -> action`` rolled out for ``horizon`` steps (``lax.scan``) on the batched
    ``model`` from its states ``state`` (leaves ``[N, ...]``); differentiable in ``params``. A
    ``where`` drops the rewards after a termination (a product would let a NaN through, as in
    :func:`fnrl.planning.sequence_returns`, the open-loop version)."""
    def step(carry, _):
        state, alive, weight = carry
        state = model.step(state, policy(params, state.obs))
        reward = jnp.where(alive > 0, weight * state.reward, 0.0)
        return (state, alive * (1.0 - state.termination), weight * discount), reward

    carry = (state, jnp.ones_like(state.reward), jnp.ones(()))
    _, rewards = jax.lax.scan(step, carry, None, horizon)
    return jnp.mean(jnp.sum(rewards, axis=0))


class Learner(NamedTuple):
    policy: Any
    opt_state: Any
    model: Any  # the ensemble's models.ModelParams (model="learned"); () for the true model


def make_agent(config: Config, env: envs.Env) -> Agent:
    """APG acting in ``env`` as the loop's agents act in it (continuous actions in ``[-1, 1]``)."""
    agent_env = envs.wrap(env, auto_reset=False)
    spec = agent_env.spec
    policy = networks.make_deterministic_policy(spec, networks.Torso(config.hidden_sizes))
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
    learned = config.model == "learned"
    if learned:
        ensemble = models.make_ensemble(spec, config.ensemble_config())
        if config.known_reward:
            try:
                reward_fn, termination_fn = models.reward_function(agent_env), models.termination_function(agent_env)
            except ValueError as error:
                raise ValueError(f"apg: {error}; set known_reward=false to use the model's predicted reward") from None
        else:
            reward_fn = termination_fn = None

    def starts(model_params, data, key):
        """The batched model (an :class:`~fnrl.envs.core.Env`) and ``num_starts`` states to start from."""
        if learned:
            def start(key):
                return data.data.obs[jax.random.randint(key, (), 0, data.size)]

            model = models.model_env(ensemble, model_params, start, reward_fn, termination_fn,
                                     propagation="mean", sample=False)
            model = envs.wrap(model, num_envs=config.num_starts, rescale_actions=False, auto_reset=False)
        else:
            model = envs.wrap(env, num_envs=config.num_starts, auto_reset=False)
        return model, model.reset(key)

    def loss(params, model, state):
        return -policy_return(policy.apply, params, model, state, config.horizon, config.gamma)

    def policy_step(model_params, data):
        def one(carry, key):
            params, opt_state = carry
            model, state = starts(model_params, data, key)
            value, grads = jax.value_and_grad(loss)(params, model, state)
            params, opt_state = transforms.optimizer_step(optimizer, grads, opt_state, params)
            return (params, opt_state), {"imagined_return": -value, "grad_norm": optax.tree.norm(grads)}

        return one

    def init(key, obs):
        policy_key, model_key = jax.random.split(key)
        params = policy.init(policy_key, obs)
        return Learner(params, optimizer.init(params), ensemble.init(model_key) if learned else ())

    def act(learner, obs, key, explore):
        action = policy.apply(learner.policy, obs)
        if explore:
            action = jnp.clip(action + config.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)
        return action, {}

    def update(learner, data, key):
        fit_key, policy_key = jax.random.split(key)
        metrics = {}
        model_params = learner.model
        if learned:
            model_params, fit = models.fit(fit_key, ensemble, data.data, learner.model, size=data.size)
            metrics = {"model_epochs": fit["num_epochs"], "model_val_mse": jnp.mean(fit["best_score"])}
        (params, opt_state), steps = jax.lax.scan(policy_step(model_params, data), (learner.policy, learner.opt_state),
                                                  jax.random.split(policy_key, config.policy_updates))
        metrics = {**metrics, "imagined_return": steps["imagined_return"][-1], "grad_norm": jnp.mean(steps["grad_norm"])}
        return UpdateOutput(Learner(params, opt_state, model_params), metrics)

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for APG; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    core.check_env("apg", SUPPORTS, env, config.env)
    return modelbased.make_train(config, env, make_agent(config, env), on_eval)
