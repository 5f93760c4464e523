"""Fitted Q evaluation (Le, Voloshin & Yue 2019, "Batch policy learning under constraints", ICML):
the action values of a fixed policy π_e regressed on a dataset, and its value read from them.

    L(φ) = Ê_(s, a, r, s') ~ D [(Q_φ(s, a) − y)²],   y = r + γ (1 − term) V_φ'(s'),
    V_φ'(s') = E_{a' ∼ π_e(s')}[Q_φ'(s', a')],
    Ĵ(π_e) = Ê_{s_0 ∈ D}[V_φ(s_0)]   (over the dataset's initial states)

with a target network φ' moved towards φ every ``target_period`` updates by Polyak averaging
(``tau``; ``tau = 1`` with ``target_period = N`` is the hard periodic copy of the paper's
iterations). V is exact over the actions of a discrete policy and the mean of
``action_samples`` sampled actions for a continuous one (:func:`fnrl.ope.expected_value`).
A time-limit truncation bootstraps; a termination does not. On one-hot (tabular) observations
with ``hidden_sizes = ()`` Q is a table, and FQE's fixed point is the solution of the empirical
Bellman equation Q = R̂ + γ P̂^π Q.

The evaluated policy is ``policy``, a run directory (:func:`fnrl.ope.load_policy`), or a
:class:`fnrl.ope.Policy` given to :func:`make_train`. Training runs on the offline loop
(``fnrl train fqe --dataset D --set policy=RUN_DIR``); its evaluations run π_e itself in the
environment (undiscounted returns), and the metric ``fqe_estimate`` is Ĵ(π_e) as it learns.
``fnrl ope`` trains it and uses Q̂ as the model of the doubly robust estimators.

Composed of:
- :func:`fnrl.losses.td_target`, :func:`fnrl.losses.mse_loss`, :func:`fnrl.transforms.polyak_update`;
- :func:`fnrl.networks.make_q_network`; the dataset loop of :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import datasets, envs, losses, networks, ope, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import positive, positive_int, unit_interval
from fnrl.loops import core, offline

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    policy: str = ""  # the evaluated policy: a training run's directory
    learning_rate: float = positive(3e-4)
    tau: float = unit_interval(0.005)  # target ← τ φ + (1 − τ) target ...
    target_period: int = positive_int(1)  # ... every this many updates
    action_samples: int = positive_int(8)  # continuous actions: samples of π_e(s') per target


class Learner(NamedTuple):
    q: Any
    target: Any
    opt: Any
    updates: jax.Array


def make_q(config: Config, spec):
    """FQE's Q-network: ``Q(s, ·)`` for discrete actions, ``Q(s, a)`` for continuous ones."""
    return networks.make_q_network(spec, networks.Torso(config.hidden_sizes))


def make_agent(config: Config, spec, policy: ope.Policy, initial_obs) -> Agent:
    """FQE of ``policy`` (``initial_obs`` ``[N, ...]``: the dataset's initial states, for the
    ``fqe_estimate`` metric); acting is ``policy``'s own."""
    net = make_q(config, spec)
    optimizer = optax.adam(config.learning_rate)
    initial_obs = jnp.asarray(initial_obs)

    def init(key, obs):
        action = None if spec.discrete else jnp.zeros(obs.shape[:1] + tuple(spec.action_shape), jnp.float32)
        params = net.init(key, obs) if spec.discrete else net.init(key, obs, action)
        return Learner(params, params, optimizer.init(params), jnp.zeros((), jnp.int32))

    def act(learner, obs, key, explore):
        return policy.act(obs, key), {}

    def q_of(params):
        return lambda *x: net.apply(params, *x)

    def loss(params, target, batch, key):
        next_v = ope.expected_value(q_of(target), policy, batch.next_obs, key, config.action_samples)
        y = jax.lax.stop_gradient(losses.td_target(batch.reward, batch.termination, next_v, config.gamma))
        if spec.discrete:
            q = losses.action_value(net.apply(params, batch.obs), batch.action)
        else:
            q = net.apply(params, batch.obs, batch.action)
        return losses.mse_loss(q, y), q

    def update(learner, batch, key):
        target_key, estimate_key = jax.random.split(key)
        (value, q), grads = jax.value_and_grad(loss, has_aux=True)(learner.q, learner.target, batch, target_key)
        params, opt = transforms.optimizer_step(optimizer, grads, learner.opt, learner.q)
        updates = learner.updates + 1
        moved = transforms.polyak_update(params, learner.target, config.tau)
        target = jax.tree_util.tree_map(lambda m, t: jnp.where(updates % config.target_period == 0, m, t),
                                        moved, learner.target)
        estimate = jnp.mean(ope.expected_value(q_of(params), policy, initial_obs, estimate_key, config.action_samples))
        return UpdateOutput(Learner(params, target, opt, updates),
                            {"fqe_loss": value, "q": jnp.mean(q), "fqe_estimate": estimate})

    return Agent(init, act, update)


def value(config: Config, spec, policy: ope.Policy, learner: Learner, obs, key) -> jax.Array:
    """V̂(s) = E_{a∼π_e}[Q̂(s, a)] of the learned Q at observations ``obs`` ``[N, ...]``; its mean over
    the dataset's initial states is FQE's estimate of J(π_e)."""
    net = make_q(config, spec)
    return ope.expected_value(lambda *x: net.apply(learner.q, *x), policy, obs, key, config.action_samples)


def estimates(config: Config, env: envs.Env, policy: ope.Policy, dataset: datasets.Dataset, key,
              fqe_only: bool = False) -> dict[str, float]:
    """What ``fnrl ope`` prints: FQE of ``policy`` trained on ``dataset`` (``config.total_steps``
    updates, discount ``config.gamma``), its estimate Ĵ(π_e) as ``FQE``, and (unless ``fqe_only``)
    IS, PDIS, WIS, and DR and WDR with FQE's Q̂ as their model (:func:`fnrl.ope.estimate`)."""
    from fnrl.loops.evaluation import episode_limit

    fqe_key, estimate_key = jax.random.split(key)
    learner, _ = jax.jit(make_train(config, policy=policy, dataset=dataset, env=env))(fqe_key)
    net = make_q(config, env.spec)
    start = jnp.asarray(ope.initial_obs(dataset))
    estimate = float(jnp.mean(value(config, env.spec, policy, learner, start, estimate_key)))
    evaluated = ope.Policy(policy.act, None, policy.discrete, policy.num_actions) if fqe_only else policy
    return ope.estimate(dataset, evaluated, config.gamma, time_limit=episode_limit(env),
                        q=lambda *x: net.apply(learner.q, *x), fqe_value=estimate, key=estimate_key,
                        num_samples=config.action_samples)


def make_train(config: Config, on_eval=None, *, policy: ope.Policy | None = None,
               dataset: datasets.Dataset | None = None, env: envs.Env | None = None):
    """``train(key) -> (learner, metrics)`` for FQE of ``policy`` (default: the run in
    ``config.policy``) on ``dataset`` (default: ``config.dataset``, checked against ``env``,
    default ``config.env``); see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config) if env is None else env
    if dataset is None:
        dataset = offline.load_dataset(config, env)
    if policy is None:
        if not config.policy:
            raise ValueError("fqe evaluates a policy: set policy=RUN_DIR (a training run's directory), "
                             "e.g. --set policy=runs/bc")
        policy, policy_env = ope.load_policy(config.policy)
        if policy_env != config.env:
            raise ValueError(f"fqe: the policy {config.policy!r} trained on {policy_env}, not {config.env}")
    agent = make_agent(config, env.spec, policy, ope.initial_obs(dataset))
    return offline.make_train(config, env, agent, dataset, on_eval)
