"""Conservative Q-learning (Kumar, Zhou, Tucker & Levine 2020), CQL(H): an off-policy critic that
is also pushed down on the actions the dataset does not support.

    L(φ) = L_TD(φ) + α · Ê_(s, a)~D[τ log Σ_a' exp(Q_φ(s, a')/τ) − Q_φ(s, a)]      (their eq. 4)

The bracket, the *gap*, is the soft maximum of Q over all actions minus Q at the dataset's action:
minimising it lowers Q where the data have no action and raises it where they have one, so the
greedy policy stays on the data's support. ``τ = cql_temperature`` (1 in the paper).

- Discrete actions: DQN's TD loss and target network (:mod:`fnrl.algorithms.dqn`, the ``learning_rate``,
  ``loss``, ``double_q``, ``target_update_period``, ... fields) plus ``α`` times
  :func:`fnrl.losses.cql_penalty_discrete`, the exact log-sum-exp; ``α = cql_alpha`` (default 1).
- Continuous actions: SAC's critics, actor and temperature (:mod:`fnrl.algorithms.sac`, the
  ``actor_learning_rate``, ``critic_learning_rate``, ``tau``, ... fields) plus ``α`` times
  :func:`fnrl.losses.cql_penalty_continuous` for each critic (summed over the critics, like their TD
  losses), ``∫ exp(Q/τ) da`` importance-sampled from ``cql_num_actions`` uniform actions in
  ``[-1, 1]^d`` and as many from the current policy at ``s`` (the paper's App. F; CORL and the
  authors' code also add policy actions at ``s'``, which this leaves out); ``α = cql_alpha``
  (default 5, CORL's MuJoCo setting is 10).
- Lagrangian (``cql_lagrange``, the paper's CQL(H) with a threshold; for either kind): the weight
  is ``α = cql_alpha · α'`` and ``α' ≥ 0`` the multiplier of the constraint ``gap ≤ cql_target_gap``,
  learned by dual ascent on log α' (exponentiated gradient, :func:`fnrl.transforms.dual_ascent_update`)::

      log α' ← clip(log α' + η (gap − τ_gap), ±log 10⁶),     η = cql_lagrange_learning_rate,

  so α rises while the gap is above its target and falls while it is below. The critic's
  objective ``α' (gap − τ_gap)`` has the gradient of ``α' · gap``. Without it, α' = 1.

The fields of the other action kind must keep their defaults (a one-line error names the first that
does not). Evaluated greedily (the argmax of Q; the SAC policy's mode); ``eval_policy=stochastic``
evaluates DQN's ε-greedy policy at ``ε = epsilon_end`` (0.05) or samples SAC's policy.

Composed of:
- :func:`fnrl.algorithms.dqn.make_agent` / :func:`fnrl.algorithms.sac.make_agent` with their
  ``critic_penalty`` hook, weighted by the ``penalty_weight`` of their updates;
- :func:`fnrl.losses.cql_penalty_discrete`, :func:`fnrl.losses.cql_penalty_continuous`;
- :func:`fnrl.transforms.dual_ascent_update` (``log_space=True``); the dataset loop of
  :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnrl import losses, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.algorithms import dqn, sac
from fnrl.config import check, constrained, field_of, positive, positive_int
from fnrl.loops import core, offline

SUPPORTS = ("discrete", "continuous")
DEFAULT_ALPHA = {"discrete": 1.0, "continuous": 5.0}
MAX_LOG_ALPHA = math.log(1e6)  # |log α'| <= log 10⁶
_DQN_FIELDS = ("learning_rate", "max_grad_norm", "loss", "huber_delta", "double_q", "target_update_period",
               "target_tau")
_SAC_FIELDS = ("actor_learning_rate", "critic_learning_rate", "temperature_learning_rate", "tau", "num_critics",
               "init_temperature", "target_entropy", "backup_entropy")
_KIND_FIELDS = {"discrete": _DQN_FIELDS, "continuous": _SAC_FIELDS + ("cql_num_actions",)}


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    # CQL's own: α (None: 1.0 for discrete, 5.0 for continuous actions), τ, the Lagrangian variant.
    cql_alpha: float | None = constrained(None, lambda v: v is None or v >= 0, ">= 0, or null for the default "
                                          "of the action kind (1.0 discrete, 5.0 continuous)")
    cql_temperature: float = positive(1.0)
    cql_lagrange: bool = False
    cql_target_gap: float = 5.0
    cql_lagrange_learning_rate: float = positive(1e-3)
    # Discrete actions: DQN's (fnrl.algorithms.dqn.Config); its network is `hidden_sizes`.
    learning_rate: float = field_of(dqn.Config, "learning_rate")
    max_grad_norm: float = field_of(dqn.Config, "max_grad_norm")
    loss: str = field_of(dqn.Config, "loss")
    huber_delta: float = field_of(dqn.Config, "huber_delta")
    double_q: bool = field_of(dqn.Config, "double_q")
    target_update_period: int = field_of(dqn.Config, "target_update_period")
    target_tau: float = field_of(dqn.Config, "target_tau")
    # Continuous actions: the sampled actions of each kind, and SAC's (fnrl.algorithms.sac.Config).
    cql_num_actions: int = positive_int(10)
    actor_learning_rate: float = field_of(sac.Config, "actor_learning_rate")
    critic_learning_rate: float = field_of(sac.Config, "critic_learning_rate")
    temperature_learning_rate: float = field_of(sac.Config, "temperature_learning_rate")
    tau: float = field_of(sac.Config, "tau")
    num_critics: int = field_of(sac.Config, "num_critics")
    init_temperature: float = field_of(sac.Config, "init_temperature")
    target_entropy: float | None = field_of(sac.Config, "target_entropy")
    backup_entropy: bool = False  # SAC's target without −α log π, as CORL's and the authors' CQL

    def dqn_config(self) -> dqn.Config:
        """DQN's settings (one-step targets; ε-greedy at ``epsilon_end`` if evaluated stochastically)."""
        return dqn.Config(env=self.env, gamma=self.gamma, hidden_sizes=self.hidden_sizes, n_step=1,
                          learning_starts=0, epsilon_start=dqn.Config.epsilon_end,
                          **{name: getattr(self, name) for name in _DQN_FIELDS})

    def sac_config(self) -> sac.Config:
        return sac.Config(env=self.env, gamma=self.gamma, hidden_sizes=self.hidden_sizes,
                          **{name: getattr(self, name) for name in _SAC_FIELDS})


class Learner(NamedTuple):
    agent: Any  # DQN's or SAC's learner
    log_alpha: jax.Array  # log α' of the Lagrangian variant (0, i.e. α' = 1, without it)


def check_kind(config: Config, spec) -> str:
    """The action kind of ``spec``; raises a one-line ConfigError when ``config`` sets a field
    of the other kind."""
    kind = "discrete" if spec.discrete else "continuous"
    defaults = Config()
    for other, names in _KIND_FIELDS.items():
        for name in names if other != kind else ():
            value = getattr(config, name)
            check(value == getattr(defaults, name), name, value,
                  f"left at its default: it is for {other} actions, and {config.env} has {kind} actions")
    return kind


def make_agent(config: Config, spec) -> Agent:
    kind = check_kind(config, spec)
    alpha = DEFAULT_ALPHA[kind] if config.cql_alpha is None else config.cql_alpha
    temperature = config.cql_temperature

    def discrete_penalty(q, batch):
        gap = losses.cql_penalty_discrete(q, batch.action, temperature, mask=batch.extras["weight"])
        return gap, {"cql_gap": gap}

    def continuous_penalty(q, policy, batch, key):
        uniform_key, policy_key = jax.random.split(key)
        obs = jnp.repeat(batch.obs[:, None], config.cql_num_actions, axis=1)  # [B, N, ...]
        uniform = jax.random.uniform(uniform_key, obs.shape[:2] + spec.action_shape, minval=-1.0, maxval=1.0)
        sampled, log_prob = policy(obs).sample_and_log_prob(seed=policy_key)  # [B, N, d], [B, N]
        q_data = q(batch.obs, batch.action)  # [num_critics, B]
        q_sampled = q(obs, sampled)
        gap = losses.cql_penalty_continuous(
            q_data, q(obs, uniform), -math.prod(spec.action_shape) * math.log(2.0),
            q_sampled, jnp.broadcast_to(log_prob, q_sampled.shape), temperature,
            mask=jnp.broadcast_to(batch.extras["weight"], q_data.shape))
        return q_data.shape[0] * gap, {"cql_gap": gap}  # the critics' penalties summed; their mean gap

    if kind == "discrete":
        inner = dqn.make_agent(config.dqn_config(), spec, critic_penalty=discrete_penalty)
    else:
        inner = sac.make_agent(config.sac_config(), spec, critic_penalty=continuous_penalty)

    def init(key, obs):
        return Learner(inner.init(key, obs), jnp.zeros((), jnp.float32))

    def act(learner, obs, key, explore):
        return inner.act(learner.agent, obs, key, explore)

    def update(learner, batch, key):
        weight = alpha * jnp.exp(learner.log_alpha)
        agent, metrics, priorities = inner.update(learner.agent, batch, key, weight)
        log_alpha = learner.log_alpha
        if config.cql_lagrange:
            log_alpha = jnp.clip(transforms.dual_ascent_update(log_alpha, metrics["cql_gap"], config.cql_target_gap,
                                                               config.cql_lagrange_learning_rate, log_space=True),
                                 -MAX_LOG_ALPHA, MAX_LOG_ALPHA)
        return UpdateOutput(Learner(agent, log_alpha), {**metrics, "cql_alpha": weight}, priorities)

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for CQL on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    core.check_env("cql", SUPPORTS, env, config.env)
    dataset = offline.load_dataset(config, env)
    return offline.make_train(config, env, make_agent(config, env.spec), dataset, on_eval)
