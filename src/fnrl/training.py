"""The on-policy training loop, written once for every on-policy algorithm.

An algorithm supplies three pure functions over its ``learner`` pytree (parameters,
optimiser states, ...):

- ``init(key, obs) -> learner`` (``obs``: a batch of observations, to shape the networks);
- ``act(learner, obs, key) -> (action, extras)`` -- the behaviour policy; ``extras`` (e.g.
  ``log_prob``) are stored in the trajectory;
- ``update(learner, trajectory, key) -> (learner, metrics)`` -- one learning step on a
  time-major ``[T, B, ...]`` :class:`~fnrl.types.Trajectory`.

:func:`make_on_policy_train` turns them into ``train(key) -> (learner, metrics)``: the whole
run -- rollouts, updates and periodic evaluation -- is one ``lax.scan``, so ``jax.jit(train)``
compiles one program and ``jax.vmap(train)`` trains many seeds at once. ``train`` is a
:class:`fnrl.loop.Train`, which also exposes the run's pieces, for the command line's
checkpoints and progress.

With ``num_devices = D > 1`` the same program is data-parallel over ``D`` devices (of one or
several hosts): the environment batch is split across them and the learner replicated
(:mod:`fnrl.parallel`), so gradients are averaged over the global batch and the result equals
the single-device run with the same seed up to floating-point reduction order.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnrl import envs, loop, parallel
from fnrl.config import check
from fnrl.envs.wrappers import NormalizeObservation
from fnrl.rollout import episode_metrics, rollout


@dataclasses.dataclass(frozen=True)
class OnPolicyConfig:
    """Fields every on-policy algorithm shares; algorithms subclass it with their own."""

    env: str = "cartpole"
    total_steps: int = 100_000
    num_envs: int = 16
    rollout_length: int = 128
    gamma: float = 0.99
    num_evals: int = 20
    eval_episodes: int = 16
    hidden_sizes: tuple[int, ...] = (64, 64)
    normalize_obs: bool = False
    num_devices: int = 1  # data-parallel devices (all processes'); must divide num_envs

    def __post_init__(self):
        check(self.total_steps > 0, "total_steps", self.total_steps, "a positive integer")
        check(self.num_envs > 0, "num_envs", self.num_envs, "a positive integer")
        check(self.num_devices > 0 and self.num_envs % self.num_devices == 0, "num_devices",
              self.num_devices, f"a positive divisor of num_envs={self.num_envs}")
        check(self.rollout_length > 0, "rollout_length", self.rollout_length, "a positive integer")
        check(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        check(self.num_evals > 0, "num_evals", self.num_evals, "a positive integer")
        check(self.eval_episodes > 0, "eval_episodes", self.eval_episodes, "a positive integer")
        check(all(h > 0 for h in self.hidden_sizes), "hidden_sizes", self.hidden_sizes,
              "positive integers")

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def updates_per_eval(self) -> int:
        """Updates between evaluations; the run trains at least ``total_steps`` steps."""
        return -(-self.total_steps // (self.num_evals * self.steps_per_update))  # ceil


def make_env(config: OnPolicyConfig) -> envs.Env:
    """The single (unbatched) environment named by ``config.env``, with its time limit."""
    return envs.make(config.env)


def episode_limit(env: envs.Env) -> int:
    """Steps an evaluation episode may take: ``env``'s time limit, else 1000."""
    return getattr(env, "max_episode_steps", None) or 1000


def start_episodes(env: envs.Env, num_episodes: int, key, obs_stats=None) -> tuple[envs.Env, envs.EnvState]:
    """``num_episodes`` fresh episodes of ``env`` as evaluations run them: a batch without
    auto-reset (an ended episode stays ended) and, when ``obs_stats`` (a training run's
    observation statistics) is given, observations normalised by them, frozen. Returns the
    batched environment and its reset state."""
    batched = envs.wrap(env, num_envs=num_episodes, auto_reset=False)
    if obs_stats is not None:
        batched = NormalizeObservation(batched, update=False)
    state = batched.reset(key)
    if obs_stats is not None:
        state = batched.with_stats(state, obs_stats)
    return batched, state


def evaluate(env: envs.Env, act: Callable, learner: Any, key, num_episodes: int,
             max_steps: int, obs_stats=None) -> jax.Array:
    """Mean undiscounted return of ``act`` over ``num_episodes`` episodes (each run to its end
    or ``max_steps``), all in one ``lax.scan`` over a batch of environments
    (:func:`start_episodes`; ``obs_stats`` for a policy trained on normalised observations).
    """
    reset_key, key = jax.random.split(key)
    batched, state = start_episodes(env, num_episodes, reset_key, obs_stats)

    def step(carry, step_key):
        state, total, alive = carry
        action, _ = act(learner, state.obs, step_key)
        state = batched.step(state, action)
        # A where, not alive * reward: an ended episode keeps stepping, and Brax physics past a
        # termination can reach NaN (e.g. brax/ant), which 0 * NaN would carry into the total.
        total = total + jnp.where(alive > 0, state.reward, 0.0)
        alive = alive * (1.0 - jnp.maximum(state.termination, state.truncation))
        return (state, total, alive), None

    init = (state, jnp.zeros(num_episodes), jnp.ones(num_episodes))
    (_, total, _), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
    return total.mean()


def make_on_policy_train(config: OnPolicyConfig, env: envs.Env, init: Callable, act: Callable,
                         update: Callable, on_eval: Callable | None = None) -> loop.Train:
    """Builds ``train(key) -> (learner, metrics)`` from an algorithm's ``init``/``act``/``update``.

    ``metrics`` holds, per evaluation point (``[config.num_evals]``): ``step`` (environment
    steps so far), ``episode_return`` (mean evaluation return), ``train_episode_return`` (mean
    return of the training episodes that ended in the last update's rollout) and the last
    update's metrics. ``on_eval(step, episode_return, metrics)``, if given, is called on the
    host at each evaluation point through ``jax.debug.callback`` (``num_evals`` calls).
    The returned :class:`fnrl.loop.Train` also exposes the run's pieces (init, advance, evaluate).

    With ``config.num_devices > 1`` the environment state and trajectories are sharded along
    the environment axis over a device mesh and the learner is replicated
    (:func:`fnrl.parallel.shard_batch`); raises a one-line ``ValueError`` here when fewer
    devices are available.
    """
    def wrap(num_envs):
        return envs.wrap(env, num_envs=num_envs, normalize_obs=config.normalize_obs)

    train_env = wrap(config.num_envs)
    max_steps = episode_limit(env)
    mesh = parallel.make_mesh(config.num_devices) if config.num_devices > 1 else None
    env_axes = parallel.batch_axes(lambda n: wrap(n).reset(jax.random.PRNGKey(0)), config.num_envs) if mesh else 0
    size = loop.chunk_size(config.updates_per_eval, config.num_evals)
    chunks_per_eval = config.updates_per_eval // size

    def shard(env_state, learner):
        """Environments split over the devices, learner replicated (identity on one device)."""
        return parallel.shard_batch(env_state, mesh, env_axes), parallel.shard_batch(learner, mesh, None)

    def one_update(carry, key):
        learner, env_state = carry
        rollout_key, update_key = jax.random.split(key)
        env_state, trajectory, episodes = rollout(train_env, act, learner, env_state,
                                                  rollout_key, config.rollout_length)
        trajectory = parallel.shard_batch(trajectory, mesh, axis=1)  # [T, B, ...]
        learner, metrics = update(learner, trajectory, update_key)
        env_state, learner = shard(env_state, learner)
        train_return = episode_metrics(episodes)["episode_return"]
        return (learner, env_state), {**metrics, "train_episode_return": train_return}

    def init_carry(key):
        init_key, reset_key, key = jax.random.split(key, 3)
        env_state = train_env.reset(reset_key)
        env_state, learner = shard(env_state, init(init_key, env_state.obs))
        return {"learner": learner, "env_state": env_state, "key": key, "chunk": jnp.zeros((), jnp.int32)}

    def advance(carry):
        keys = loop.update_keys(carry["key"], carry["chunk"], config.num_evals, config.updates_per_eval, size)
        (learner, env_state), metrics = jax.lax.scan(one_update, (carry["learner"], carry["env_state"]), keys)
        carry = {**carry, "learner": learner, "env_state": env_state, "chunk": carry["chunk"] + 1}
        return carry, jax.tree_util.tree_map(lambda x: x[-1], metrics)

    def evaluate_carry(carry, metrics):
        key = loop.eval_key(carry["key"], carry["chunk"], config.num_evals, chunks_per_eval)
        episode_return = evaluate(env, act, carry["learner"], key, config.eval_episodes, max_steps,
                                  loop.obs_stats(carry))
        step = carry["chunk"] * size * config.steps_per_update
        return carry, {"step": step, "episode_return": episode_return, **metrics}

    return loop.Train(init=init_carry, advance=advance, evaluate=evaluate_carry, num_evals=config.num_evals,
                      chunks_per_eval=chunks_per_eval, steps_per_chunk=size * config.steps_per_update,
                      env=env, act=act, on_eval=on_eval, ordered_callbacks=mesh is None)


def minibatch_epochs(key, learner: Any, batch: Any, step: Callable, num_epochs: int,
                     num_minibatches: int) -> tuple[Any, Any]:
    """``num_epochs`` shuffled passes of minibatch updates over ``batch``.

    ``batch`` is a pytree whose leaves share leading dimensions ``[T, B, ...]`` (a trajectory
    and per-step targets); they are flattened to ``T·B`` samples, shuffled each epoch and cut
    into ``num_minibatches`` equal minibatches, and ``step(learner, minibatch) ->
    (learner, metrics)`` is applied to each in turn (all inside ``lax.scan``). Returns the
    final learner and the metrics of the last minibatch.
    """
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    size = jax.tree_util.tree_leaves(flat)[0].shape[0]
    if size % num_minibatches:
        raise ValueError(f"a batch of {size} samples does not split into {num_minibatches} minibatches")

    def epoch(learner, key):
        order = jax.random.permutation(key, size)
        shuffled = jax.tree_util.tree_map(
            lambda x: x[order].reshape((num_minibatches, -1) + x.shape[1:]), flat)
        return jax.lax.scan(step, learner, shuffled)

    learner, metrics = jax.lax.scan(epoch, learner, jax.random.split(key, num_epochs))
    return learner, jax.tree_util.tree_map(lambda x: x[-1, -1], metrics)


def check_env(algo: str, supports: tuple[str, ...], spec: envs.Spec, env_name: str) -> None:
    """Raises a one-line ``ValueError`` when ``algo`` cannot act in ``env_name``'s action space."""
    kind = "discrete" if spec.discrete else "continuous"
    if kind not in supports:
        raise ValueError(f"{algo} needs a {' or '.join(supports)}-action environment; "
                         f"{env_name} has {kind} actions")
