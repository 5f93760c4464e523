"""Deep Q-network (Mnih et al. 2015) with double-Q and n-step targets as switches.

    L(φ) = Ê[ℓ(Q_φ(s_t, a_t) − y_t)],   ℓ the Huber loss ℓ_δ or the squared error ½x²,
    y_t  = G_t + γ^m (1 − term) Q_φ'(s_{t+m}, argmax_a' Q_sel(s_{t+m}, a')),

with ``G_t`` the m-step discounted reward (m = ``n_step`` unless the episode ended sooner),
``Q_sel = Q_φ'`` (DQN) or the online ``Q_φ`` (``double_q``: van Hasselt et al. 2016), and
the target network ``φ'`` moved towards ``φ`` every ``target_update_period`` updates by
``φ' ← τ φ + (1 − τ) φ'`` (``target_tau = 1``: the periodic copy of Mnih et al.; period 1 and
small τ: Polyak averaging). The behaviour policy is ε-greedy with ε decayed linearly over the
first ``exploration_fraction`` of the run; evaluation is greedy.

The loss: Mnih et al. use the Huber loss (``loss="huber"``), made for Atari's clipped rewards,
where TD errors are of order δ = 1. On cartpole (Q up to 1/(1 − γ) = 100) with Adam it diverged
in our runs (plain DQN, seeds 0 and 1: mean Q-value above 10⁵ within 200k steps, where the true
values are below 100) while the squared error learned, so ``mse`` is the default. A likely
reason: beyond δ the Huber gradient is only the error's sign, so the few terminal transitions no
longer anchor the values against the many bootstrapped ones.

Composed of:
- :func:`fnrl.replay.n_step_transitions` and the replay buffer (in :mod:`fnrl.offpolicy`);
- :func:`fnrl.losses.n_step_q_target` -- the target above (``next_q_selector`` for double Q);
- :func:`fnrl.losses.td_loss` -- squared (or Huber) regression of Q(s, a) on the target,
  weighted by the importance weights under prioritised replay (Schaul et al. 2016);
- :func:`fnrl.transforms.polyak_update` inside :func:`fnrl.transforms.periodic_update`;
- ``distrax.EpsilonGreedy`` (probability ε/|A| on every action, 1 − ε more on the argmax) and
  ``optax.linear_schedule`` for ε.
"""
from __future__ import annotations

import dataclasses

import distrax
import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.config import check
from fnrl.offpolicy import Agent, OffPolicyConfig, make_off_policy_train
from fnrl.training import make_env

SUPPORTS = ("discrete",)


@dataclasses.dataclass(frozen=True)
class Config(OffPolicyConfig):
    num_envs: int = 10
    batch_size: int = 128
    buffer_size: int = 50_000
    learning_starts: int = 10_000
    hidden_sizes: tuple[int, ...] = (120, 84)
    n_step: int = 3
    double_q: bool = True
    learning_rate: float = 2.5e-4
    max_grad_norm: float = 10.0
    loss: str = "mse"
    huber_delta: float = 1.0
    target_update_period: int = 50
    target_tau: float = 1.0
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    exploration_fraction: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "positive")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "positive")
        check(self.loss in ("huber", "mse"), "loss", self.loss, "'huber' or 'mse'")
        check(self.huber_delta > 0, "huber_delta", self.huber_delta, "positive")
        check(self.target_update_period > 0, "target_update_period", self.target_update_period, "a positive integer")
        check(0.0 < self.target_tau <= 1.0, "target_tau", self.target_tau, "in (0, 1]")
        for name in ("epsilon_start", "epsilon_end"):
            check(0.0 <= getattr(self, name) <= 1.0, name, getattr(self, name), "in [0, 1]")
        check(0.0 < self.exploration_fraction <= 1.0, "exploration_fraction", self.exploration_fraction, "in (0, 1]")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for DQN; see :mod:`fnrl.offpolicy`."""
    return make_off_policy_train(config, make_agent(config), on_eval)


def make_agent(config: Config) -> Agent:
    """DQN's environment, ``init``, ``explore``, ``act`` and ``update`` (see :mod:`fnrl.offpolicy`)."""
    env = make_env(config)
    net = networks.make_q_network(env.spec, networks.Torso(config.hidden_sizes))
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
    epsilon = optax.linear_schedule(config.epsilon_start, config.epsilon_end,
                                    max(int(config.exploration_fraction * config.total_steps), 1))

    def init(key, obs):
        params = net.init(key, obs)
        return {"params": params, "target_params": params, "opt_state": optimizer.init(params),
                "updates": jnp.zeros((), jnp.int32)}

    def explore(learner, obs, key, step):
        return distrax.EpsilonGreedy(net.apply(learner["params"], obs), epsilon(step)).sample(seed=key)

    def act(learner, obs, key):
        return jnp.argmax(net.apply(learner["params"], obs), axis=-1), {}

    def loss(params, target_params, batch, weights):
        q = net.apply(params, batch.obs)
        selector = net.apply(params, batch.next_obs) if config.double_q else None
        target = losses.n_step_q_target(batch.reward, batch.termination, net.apply(target_params, batch.next_obs),
                                        config.gamma, batch.extras["n_steps"], next_q_selector=selector)
        td_error = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0] - target
        value = losses.td_loss(q, batch.action, target, config.loss, config.huber_delta, mask=weights)
        return value, (td_error, {"loss": value, "q": jnp.mean(q)})

    def update(learner, batch, weights, key):
        grads, (td_error, metrics) = jax.grad(loss, has_aux=True)(
            learner["params"], learner["target_params"], batch, weights)
        updates, opt_state = optimizer.update(grads, learner["opt_state"], learner["params"])
        params = optax.apply_updates(learner["params"], updates)
        count = learner["updates"] + 1
        target = transforms.periodic_update(
            transforms.polyak_update(params, learner["target_params"], config.target_tau),
            learner["target_params"], count, config.target_update_period)
        learner = {"params": params, "target_params": target, "opt_state": opt_state, "updates": count}
        return learner, td_error, metrics

    return Agent(env, init, explore, act, update)
