"""Deep Q-network (Mnih et al. 2015) with double-Q and n-step targets as switches.

    L(φ) = Ê[ℓ(Q_φ(s_t, a_t) − y_t)],   ℓ the Huber loss ℓ_δ or the squared error ½x²,
    y_t  = G_t + γ^m (1 − term) Q_φ'(s_{t+m}, argmax_a' Q_sel(s_{t+m}, a')),

with ``G_t`` the m-step discounted reward (m = ``n_step`` unless the episode ended sooner),
``Q_sel = Q_φ'`` (DQN) or the online ``Q_φ`` (``double_q``: van Hasselt et al. 2016), and
the target network ``φ'`` moved towards ``φ`` every ``target_update_period`` updates by
``φ' ← τ φ + (1 − τ) φ'`` (``target_tau = 1``: the periodic copy of Mnih et al.; period 1 and
small τ: Polyak averaging). The behaviour policy is ε-greedy with ε decayed linearly over the
first ``exploration_fraction`` of the run's environment steps (counted from the learner's
updates, which the off-policy loop makes at a fixed rate); the greedy policy is evaluated.

The loss: Mnih et al. use the Huber loss (``loss="huber"``), made for Atari's clipped rewards,
where TD errors are of order δ = 1. On cartpole (Q up to 1/(1 − γ) = 100) with Adam it diverged
in our runs (plain DQN, seeds 0 and 1: mean Q-value above 10⁵ within 200k steps, where the true
values are below 100) while the squared error learned, so ``mse`` is the default. A likely
reason: beyond δ the Huber gradient is only the error's sign, so the few terminal transitions no
longer anchor the values against the many bootstrapped ones.

Composed of:
- :func:`fnrl.replay.n_step_transitions` and the replay buffer (in :mod:`fnrl.loops.offpolicy`);
- :func:`fnrl.losses.n_step_q_target` -- the target above (``next_q_selector`` for double Q);
- :func:`fnrl.losses.td_loss` -- squared (or Huber) regression of Q(s, a) on the target,
  weighted by the importance weights under prioritised replay (Schaul et al. 2016);
- :func:`fnrl.transforms.polyak_update` inside :func:`fnrl.transforms.periodic_update`;
- ``distrax.EpsilonGreedy`` (probability ε/|A| on every action, 1 − ε more on the argmax) and
  ``optax.linear_schedule`` for ε.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import constrained, one_of, positive, positive_int, unit_interval
from fnrl.loops import core, offpolicy

SUPPORTS = ("discrete",)


@dataclasses.dataclass(frozen=True)
class Config(offpolicy.OffPolicyConfig):
    num_envs: int = positive_int(10)
    batch_size: int = positive_int(128)
    buffer_size: int = positive_int(50_000)
    learning_starts: int = 10_000
    hidden_sizes: tuple[int, ...] = (120, 84)
    n_step: int = positive_int(3)
    double_q: bool = True
    learning_rate: float = positive(2.5e-4)
    max_grad_norm: float = positive(10.0)
    loss: str = one_of("mse", ("huber", "mse"))
    huber_delta: float = positive(1.0)
    target_update_period: int = positive_int(50)
    target_tau: float = constrained(1.0, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    epsilon_start: float = unit_interval(1.0)
    epsilon_end: float = unit_interval(0.05)
    exploration_fraction: float = constrained(0.5, lambda v: 0.0 < v <= 1.0, "in (0, 1]")


class Learner(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    updates: jax.Array  # updates made so far


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam after clipping the gradient's global norm."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))


def epsilon_schedule(config: Config):
    """``updates -> ε`` of the iteration that makes update number ``updates``: linear from
    ``epsilon_start`` to ``epsilon_end`` over the first ``exploration_fraction`` of the steps."""
    schedule = optax.linear_schedule(config.epsilon_start, config.epsilon_end,
                                     max(int(config.exploration_fraction * config.total_steps), 1))
    return lambda updates: schedule(config.warmup_steps + updates // config.updates_per_rollout
                                    * config.steps_per_iteration)


def learn(config: Config, optimizer, loss, learner, batch):
    """One gradient step of ``loss(params, target_params, batch) -> (value, (td_error, metrics))``
    and the target network's update: ``(learner, td_error, metrics)`` with the learner's
    ``params``, ``target_params``, ``opt_state`` and ``updates`` replaced."""
    grads, (td_error, metrics) = jax.grad(loss, has_aux=True)(learner.params, learner.target_params, batch)
    params, opt_state = transforms.optimizer_step(optimizer, grads, learner.opt_state, learner.params)
    count = learner.updates + 1
    target = transforms.periodic_update(transforms.polyak_update(params, learner.target_params, config.target_tau),
                                        learner.target_params, count, config.target_update_period)
    return learner._replace(params=params, target_params=target, opt_state=opt_state, updates=count), td_error, metrics


def make_agent(config: Config, spec, critic_penalty=None) -> Agent:
    """DQN's agent. ``critic_penalty(q, batch) -> (penalty, metrics)``, if given, is a term added
    to the loss with weight ``w``: ``L(φ) + w · penalty``, with ``q = Q_φ(s, ·)`` of the batch's
    observations (CQL, :mod:`fnrl.algorithms.cql`). The agent's ``update`` takes ``w`` as an
    optional fourth argument, ``penalty_weight`` (1 unless a caller that owns it passes it)."""
    net = networks.make_q_network(spec, networks.Torso(config.hidden_sizes))
    optimizer = make_optimizer(config)
    epsilon = epsilon_schedule(config)

    def init(key, obs):
        params = net.init(key, obs)
        return Learner(params, params, optimizer.init(params), jnp.zeros((), jnp.int32))

    def act(learner, obs, key, explore):
        q = net.apply(learner.params, obs)
        if not explore:
            return jnp.argmax(q, axis=-1), {}
        return distrax.EpsilonGreedy(q, epsilon(learner.updates)).sample(seed=key), {}

    def loss(params, target_params, batch, penalty_weight=1.0):
        q = net.apply(params, batch.obs)
        selector = net.apply(params, batch.next_obs) if config.double_q else None
        target = losses.n_step_q_target(batch.reward, batch.termination, net.apply(target_params, batch.next_obs),
                                        config.gamma, batch.extras["n_steps"], next_q_selector=selector)
        td_error = losses.action_value(q, batch.action) - target
        value = losses.td_loss(q, batch.action, target, config.loss, config.huber_delta, mask=batch.extras["weight"])
        metrics = {"loss": value, "q": jnp.mean(q)}
        if critic_penalty is not None:
            penalty, penalty_metrics = critic_penalty(q, batch)
            value = value + penalty_weight * penalty
            metrics = {**metrics, **penalty_metrics}
        return value, (td_error, metrics)

    def update(learner, batch, key, penalty_weight=1.0):
        learner, td_error, metrics = learn(config, optimizer, functools.partial(loss, penalty_weight=penalty_weight),
                                           learner, batch)
        return UpdateOutput(learner, metrics, jnp.abs(td_error))

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for DQN; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return offpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
