"""DAgger: dataset aggregation, imitation with an expert that labels the learner's own states
(Ross, Gordon & Bagnell 2011).

Round i (an iteration of the model-based loop, :mod:`fnrl.loops.modelbased`: ``rollout_length``
real steps in ``num_envs`` environments, then one ``update`` on every transition so far):

    1. act with the mixture π_i = β_i π* + (1 − β_i) π̂_i, per step, β_i = ``beta_decay``^i
       (β_0 = 1: the first round is the expert's own; the default ``beta_decay = 0`` then runs
       the learner alone, which Ross et al. found to work best);
    2. the expert labels every visited state, a* = π*(s) (the agent's ``observe``) -- one label
       per real step, so the run's label budget is ``total_steps``, ``learning_starts`` steps
       of uniformly random actions before the first round included (none by default);
    3. aggregate: D ← D ∪ {(s, a*)};  4. π̂_{i+1} = argmax_θ Ê_D[log π_θ(a*|s)] (``bc_updates``
       minibatch steps from the current parameters).

Behavioural cloning on N expert steps sees only the expert's state distribution, so its errors
compound (Ross & Bagnell 2010: O(T²ε) against DAgger's O(Tε)); DAgger's states are the
learner's. The expert is a policy ``expert(obs, key) -> action`` (batched), a trained run
(``expert=RUN_DIR``) or any function passed to :func:`make_train`.

Composed of:
- :func:`fnrl.losses.bc_nll_loss` on the aggregated labels;
- :func:`fnrl.networks.make_policy` (categorical or tanh-Gaussian, evaluated at its mode);
- the model-based loop's buffer of every real transition, whose ``extras`` hold the labels
  (``observe`` queries the expert at each visited state).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import non_negative, positive, positive_int, unit_interval
from fnrl.loops import core, modelbased

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(modelbased.ModelBasedConfig):
    """``expert``: the run directory of the expert's training run (or pass ``expert=`` to
    :func:`make_train`); ``rollout_length``: real steps, and so labels, per round."""

    env: str = "pendulum"
    expert: str = ""
    rollout_length: int = positive_int(200)
    learning_starts: int = non_negative(0)
    beta_decay: float = unit_interval(0.0)
    bc_updates: int = positive_int(500)
    batch_size: int = positive_int(256)
    learning_rate: float = positive(1e-3)


class Learner(NamedTuple):
    policy: Any
    opt: Any
    round: jax.Array  # rounds done: β = beta_decay ** round


def make_agent(config: Config, spec, expert: Callable) -> Agent:
    """DAgger's agent; ``expert(obs, key) -> action`` on a batch of observations."""
    policy = networks.make_policy(spec, networks.Torso(config.hidden_sizes),
                                  distribution="categorical" if spec.discrete else "tanh_gaussian")
    optimizer = optax.adam(config.learning_rate)

    def init(key, obs):
        params = policy.init(key, obs)
        return Learner(params, optimizer.init(params), jnp.zeros((), jnp.int32))

    def act(learner, obs, key, explore):
        own = policy.apply(learner.policy, obs).mode()
        if not explore:  # the learner's policy, as evaluations run it
            return own, {}
        expert_key, mix_key = jax.random.split(key)
        beta = jnp.asarray(config.beta_decay, jnp.float32) ** learner.round.astype(jnp.float32)
        use_expert = jax.random.uniform(mix_key, obs.shape[:1]) < beta
        action = jnp.where(use_expert.reshape(use_expert.shape + (1,) * (own.ndim - 1)), expert(obs, expert_key), own)
        return action.astype(own.dtype), {}

    def observe(learner, trajectory, key):  # the expert labels every visited state
        obs = trajectory.obs.reshape((-1,) + trajectory.obs.shape[2:])
        labels = expert(obs, key).reshape(trajectory.action.shape).astype(trajectory.action.dtype)
        return learner, trajectory._replace(extras={**trajectory.extras, "expert_action": labels})

    def loss(params, obs, labels):
        return losses.bc_nll_loss(policy.apply(params, obs).log_prob(labels))

    def update(learner, buffer, key):
        data = buffer.data

        def step(carry, key):
            params, opt = carry
            indices = jax.random.randint(key, (config.batch_size,), 0, jnp.maximum(buffer.size, 1))
            value, grads = jax.value_and_grad(loss)(params, data.obs[indices], data.extras["expert_action"][indices])
            params, opt = transforms.optimizer_step(optimizer, grads, opt, params)
            return (params, opt), value

        (params, opt), values = jax.lax.scan(step, (learner.policy, learner.opt),
                                             jax.random.split(key, config.bc_updates))
        return UpdateOutput(Learner(params, opt, learner.round + 1),
                            {"bc_loss": values[-1], "labels": buffer.size.astype(jnp.float32)})

    return Agent(init, act, update, observe)


def _run_expert(run_dir: str, env_name: str) -> Callable:
    """The greedy policy of the (single) training run in ``run_dir``, which must have trained on ``env_name``."""
    from fnrl import runs

    if runs.read(run_dir)["seeds"] is not None:
        raise runs.RunError(f"expert={run_dir}: holds several runs (--seeds/--sweep); the expert is a single run")
    train, carry, config = runs.load(run_dir, eval_policy="greedy")
    if config.env != env_name:
        raise runs.RunError(f"expert={run_dir}: trained on {config.env}, not {env_name}")
    policy = runs.policy(train, carry)
    return lambda obs, key: policy(obs, key)[0]


def make_train(config: Config, on_eval=None, expert: Callable | None = None):
    """``train(key) -> (learner, metrics)`` for DAgger; see :mod:`fnrl.loops.core`. ``expert``:
    ``expert(obs, key) -> action``; by default the greedy policy of the run in ``config.expert``."""
    env = core.make_env(config)
    if config.bonus != "none":
        raise ValueError(f"dagger takes no exploration bonus (bonus={config.bonus}): it imitates, it has no rewards "
                         "to add one to")
    if expert is None:
        if not config.expert:
            raise ValueError("dagger needs an expert: --set expert=RUN_DIR (a training run of the same environment)")
        expert = _run_expert(config.expert, config.env)
    return modelbased.make_train(config, env, make_agent(config, env.spec, expert), on_eval)
