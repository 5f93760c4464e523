"""Bootstrapped DQN (Osband et al. 2016), with randomised prior functions (Osband et al. 2018).

Posterior sampling for deep RL: ``K`` Q-heads on a shared torso are trained on their own
bootstrap of the data, and each training episode acts greedily with one head drawn at random,
which explores deeply and coherently where ε-greedy dithers:

    L(φ) = Σ_k Ê[m_k · ℓ(Q_k(s_t, a_t) − y_k)],
    y_k  = G_t + γ^m (1 − term) Q'_k(s_{t+m}, argmax_a' Q_sel,k(s_{t+m}, a')),

with ``m_k ~ Bernoulli(mask_prob)`` the bootstrap mask of each head, drawn once when the step
is taken and stored with it in the replay buffer (the random warm-up steps, which no agent
took, count for every head), and the targets of DQN (:mod:`fnrl.algorithms.dqn`, double Q
and n-step as switches) per head. With ``prior_scale = s > 0`` every head is ``f_k + s p_k``
for a fixed random network ``p`` (Osband et al. 2018). The head of each training
environment is drawn again when its episode ends (at the next iteration's start, which is the
next step with the default ``rollout_length = 1``). Evaluation is greedy in the heads' mean
Q-value; ε-greedy on top of the drawn head stays available (``epsilon_*``, 0 by default, as in
bsuite's agent).

Composed of:
- :func:`fnrl.networks.make_multi_head_q_network` -- the heads and their priors;
- :func:`fnrl.losses.n_step_q_target` and :func:`fnrl.losses.td_loss` per head, the bootstrap
  mask times prioritised replay's importance weight as the sample weight;
- the agent's ``observe`` (:mod:`fnrl.agent`) to draw a head per episode, ``act``'s extras to
  store the masks, and DQN's optimiser, ε schedule and gradient-and-target step
  (:func:`fnrl.algorithms.dqn.learn`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp

from fnrl import losses, networks
from fnrl.agent import Agent, UpdateOutput
from fnrl.algorithms import dqn
from fnrl.config import non_negative, positive_int, unit_interval
from fnrl.loops import core, offpolicy

SUPPORTS = ("discrete",)


@dataclasses.dataclass(frozen=True)
class Config(dqn.Config):
    num_heads: int = positive_int(10)
    mask_prob: float = unit_interval(0.5)
    prior_scale: float = non_negative(3.0)
    epsilon_start: float = unit_interval(0.0)
    epsilon_end: float = unit_interval(0.0)


class Learner(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    updates: jax.Array  # updates made so far
    heads: jax.Array  # [num_envs] the head each training environment acts with


def make_agent(config: Config, spec) -> Agent:
    net = networks.make_multi_head_q_network(spec, networks.Torso(config.hidden_sizes), num_heads=config.num_heads,
                                             prior_scale=config.prior_scale)
    optimizer = dqn.make_optimizer(config)
    epsilon = dqn.epsilon_schedule(config)

    def draw(key, num):
        return jax.random.randint(key, (num,), 0, config.num_heads)

    def init(key, obs):
        net_key, head_key = jax.random.split(key)
        params = net.init(net_key, obs)
        return Learner(params, params, optimizer.init(params), jnp.zeros((), jnp.int32), draw(head_key, obs.shape[0]))

    def act(learner, obs, key, explore):
        q = net.apply(learner.params, obs)  # [K, B, A]
        if not explore:
            return jnp.argmax(jnp.mean(q, axis=0), axis=-1), {}
        head_key, mask_key, action_key = jax.random.split(key, 3)
        batch = obs.shape[0]
        # A batch other than the training environments' (a stochastic evaluation) draws a head per step.
        heads = learner.heads if batch == learner.heads.shape[0] else draw(head_key, batch)
        action = distrax.EpsilonGreedy(q[heads, jnp.arange(batch)], epsilon(learner.updates)).sample(seed=action_key)
        mask = jax.random.bernoulli(mask_key, config.mask_prob, (batch, config.num_heads)).astype(jnp.float32)
        return action, {"mask": mask}

    def observe(learner, trajectory, key):
        ended = jnp.max(jnp.maximum(trajectory.termination, trajectory.truncation), axis=0) > 0  # [B]
        return learner._replace(heads=jnp.where(ended, draw(key, ended.shape[0]), learner.heads)), trajectory

    def loss(params, target_params, batch):
        q = net.apply(params, batch.obs)  # [K, B, A]
        selector = net.apply(params, batch.next_obs) if config.double_q else None
        next_q = net.apply(target_params, batch.next_obs)
        target = jax.vmap(lambda nq, sel: losses.n_step_q_target(
            batch.reward, batch.termination, nq, config.gamma, batch.extras["n_steps"], next_q_selector=sel))(
            next_q, selector)
        masks = jnp.nan_to_num(batch.extras["mask"], nan=1.0).T * batch.extras["weight"]  # [K, B]
        per_head = jax.vmap(lambda qk, yk, mk: losses.td_loss(qk, batch.action, yk, config.loss, config.huber_delta,
                                                              mask=mk))(q, target, masks)
        td_error = jax.vmap(losses.action_value, (0, None))(q, batch.action) - target
        value = jnp.sum(per_head)
        return value, (jnp.mean(jnp.abs(td_error), axis=0), {"loss": value, "q": jnp.mean(q)})

    def update(learner, batch, key):
        learner, td_error, metrics = dqn.learn(config, optimizer, loss, learner, batch)
        return UpdateOutput(learner, metrics, td_error)

    return Agent(init, act, update, observe)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for bootstrapped DQN; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return offpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
