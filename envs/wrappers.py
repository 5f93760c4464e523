"""Composable environment wrappers; all pure, all work under jit, vmap and pmap.

The standard training stack, built by :func:`wrap`, from the inside out::

    env                      one environment (``make`` already added its TimeLimit)
    -> RescaleAction         policy acts in [-1, 1]; clipped and mapped to the env's bounds
    -> Batch(num_envs)       B copies under vmap: states and actions get a leading [B] axis
    -> AutoReset             ended episodes restart; info keeps final_obs and episode stats
    -> NormalizeObservation  running mean/var over everything seen (optional)

Per-environment wrappers (TimeLimit, RescaleAction) sit inside :class:`Batch`; wrappers that
act on the whole batch (AutoReset, NormalizeObservation) sit outside it.

Each wrapper owns a few keys of ``state.info`` and hides them from the environment it wraps
(the inner environment sees exactly the state it produced), so a batch-level wrapper's
bookkeeping never passes through :class:`Batch`'s vmap.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from fnrl.envs.core import Env, EnvState, Spec, Wrapper, as_float


def _split_info(state: EnvState, keys) -> tuple[EnvState, dict]:
    """(the state with the wrapper's own info keys removed, those keys' values)."""
    own = {k: state.info[k] for k in keys if k in state.info}
    inner = {k: v for k, v in state.info.items() if k not in keys}
    return state.replace(info=inner), own


class TimeLimit(Wrapper):
    """Sets ``truncation`` once an episode reaches ``max_episode_steps`` steps.

    A step that both terminates and hits the limit counts as a termination (no bootstrap):
    ``truncation_t = 1[t >= max_episode_steps] * (1 - termination_t)`` (Pardo et al., "Time
    Limits in Reinforcement Learning", ICML 2018). The step counter lives in
    ``state.info["steps"]``; wrap each environment (inside :class:`Batch`).
    """

    def __init__(self, env: Env, max_episode_steps: int):
        if int(max_episode_steps) <= 0:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        super().__init__(env)
        self.max_episode_steps = int(max_episode_steps)

    def reset(self, key) -> EnvState:
        state = self.env.reset(key)
        return state.replace(info={**state.info, "steps": jnp.zeros((), jnp.int32)})

    def step(self, state: EnvState, action) -> EnvState:
        inner, own = _split_info(state, ("steps",))
        next_state = self.env.step(inner, action)
        steps = own["steps"] + 1
        hit_limit = (steps >= self.max_episode_steps) & (next_state.termination == 0)
        truncation = jnp.maximum(next_state.truncation, hit_limit.astype(jnp.float32))
        return next_state.replace(truncation=truncation, info={**next_state.info, "steps": steps})


def rescale_action(action: chex.Array, low: chex.Array, high: chex.Array) -> chex.Array:
    """Maps ``action`` from ``[-1, 1]`` to ``[low, high]`` after clipping it to ``[-1, 1]``.

    ``a_env = low + (clip(a, -1, 1) + 1) / 2 * (high - low)``, elementwise; ``low`` and
    ``high`` broadcast against ``action``. The gradient is the affine map's inside the box
    and zero outside it.
    """
    action = jnp.asarray(action)
    chex.assert_type(action, float, custom_message="rescale_action: `action` must be float")
    low, high = jnp.asarray(low, action.dtype), jnp.asarray(high, action.dtype)
    chex.assert_is_broadcastable(low.shape, action.shape, custom_message="rescale_action: `low` vs `action`")
    chex.assert_is_broadcastable(high.shape, action.shape, custom_message="rescale_action: `high` vs `action`")
    return low + (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


class RescaleAction(Wrapper):
    """The policy acts in ``[-1, 1]^d``; actions are clipped and mapped to the env's bounds
    by :func:`rescale_action`. For continuous environments with finite bounds."""

    def __init__(self, env: Env):
        spec = env.spec
        if spec.discrete:
            raise ValueError("RescaleAction needs a continuous action space; this environment's is discrete")
        low, high = (np.broadcast_to(np.asarray(b, np.float32), spec.action_shape)
                     for b in (spec.action_low, spec.action_high))
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(f"RescaleAction needs finite bounds with low < high, got low={low}, high={high}")
        super().__init__(env)
        self._low, self._high = low, high

    @property
    def spec(self) -> Spec:  # type: ignore[override]
        shape = self.env.spec.action_shape
        return Spec(observation_shape=self.env.spec.observation_shape, action_shape=shape,
                    action_low=-1.0, action_high=1.0)

    def step(self, state: EnvState, action) -> EnvState:
        return self.env.step(state, rescale_action(action, self._low, self._high))


class Batch(Wrapper):
    """``num_envs`` independent copies of ``env`` under ``jax.vmap``.

    ``reset(key)`` resets each copy with its own key (``jax.random.split(key, num_envs)``);
    ``step`` takes actions with a leading ``[num_envs]`` axis. ``spec`` stays the spec of
    one environment.
    """

    def __init__(self, env: Env, num_envs: int):
        if int(num_envs) <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        super().__init__(env)
        self.num_envs = int(num_envs)

    def reset(self, key) -> EnvState:
        return self.reset_batch(key, self.num_envs)

    def reset_batch(self, key, size: int) -> EnvState:
        """``size`` freshly reset copies (any number: :class:`AutoReset` resets a few at a time)."""
        return jax.vmap(self.env.reset)(jax.random.split(key, size))

    def step(self, state: EnvState, action) -> EnvState:
        chex.assert_axis_dimension(action, 0, self.num_envs,
                                   custom_message=f"Batch.step: `action` needs a leading axis of {self.num_envs} envs")
        return jax.vmap(self.env.step)(state, action)


class AutoReset(Wrapper):
    """Restarts ended episodes in place, keeping what bootstrapping and logging need.

    After ``step``, where ``done = max(termination, truncation)`` is set the returned
    ``obs`` is the first observation of a fresh episode, while the step's ``reward`` and
    flags are those of the ending step. ``state.info`` holds:

    * ``final_obs``: the observation the step actually reached, ``s_{t+1}``, for every env
      (for an ended episode its last observation: truncated episodes bootstrap from
      ``V(final_obs)``, Pardo et al., ICML 2018);
    * ``episode_return`` / ``episode_length``: running ``sum_t r_t`` and step count of the
      current episode (0 just after a reset);
    * ``ended_return`` / ``ended_length``: those totals for the episode that ended at this
      step, where ``done``; 0 elsewhere.

    Put it directly around :class:`Batch`. Resetting costs only when an episode ends: a
    ``lax.switch`` on the number of ended episodes ``n`` does nothing when ``n = 0``; when
    ``0 < n <= ceil(partial_fraction * B)`` it resets that many environments only (indices
    from ``jnp.nonzero``, scattered into the batch); beyond, it resets the whole batch and
    selects. The fresh states come from ``info["reset_key"]``, split at every reset (fresh
    randomness each time, unlike a cached first state). Under an outer ``vmap`` (e.g. over
    seeds) the switch becomes a select and every branch runs at every step: batch seeds
    into ``num_envs`` instead where throughput matters.
    """

    KEYS = ("final_obs", "episode_return", "episode_length", "ended_return", "ended_length", "reset_key")

    def __init__(self, env: Env, partial_fraction: float = 1 / 16):
        if not 0.0 <= partial_fraction <= 1.0:
            raise ValueError(f"partial_fraction must be in [0, 1], got {partial_fraction!r}")
        super().__init__(env)
        self.partial_fraction = float(partial_fraction)

    def reset(self, key) -> EnvState:
        key, reset_key = jax.random.split(key)
        state = self.env.reset(key)
        zeros = jnp.zeros_like(as_float(state.reward))
        return state.replace(info={**state.info, "final_obs": state.obs,
                                   "episode_return": zeros, "episode_length": zeros.astype(jnp.int32),
                                   "ended_return": zeros, "ended_length": zeros.astype(jnp.int32),
                                   "reset_key": reset_key})

    def step(self, state: EnvState, action) -> EnvState:
        inner, own = _split_info(state, self.KEYS)
        reached = self.env.step(inner, action)
        done = jnp.maximum(reached.termination, reached.truncation) > 0
        next_state, reset_key = self._restart(reached, done, own["reset_key"])
        episode_return = own["episode_return"] + reached.reward
        episode_length = own["episode_length"] + 1
        zero = jnp.zeros_like
        return next_state.replace(info={
            **next_state.info, "final_obs": reached.obs,
            "episode_return": jnp.where(done, zero(episode_return), episode_return),
            "episode_length": jnp.where(done, zero(episode_length), episode_length),
            "ended_return": jnp.where(done, episode_return, zero(episode_return)),
            "ended_length": jnp.where(done, episode_length, zero(episode_length)),
            "reset_key": reset_key})

    def _restart(self, reached: EnvState, done: chex.Array, key) -> tuple[EnvState, chex.Array]:
        """``reached`` with the obs, internal state and info of ended episodes made fresh."""

        def refresh(make_fresh, combine):
            """A switch branch: states from ``make_fresh(key)`` combined into ``reached``."""

            def branch(key):
                key, reset_key = jax.random.split(key)
                new = make_fresh(reset_key)
                return reached.replace(**{f: jax.tree_util.tree_map(combine, getattr(new, f), getattr(reached, f))
                                          for f in ("obs", "internal", "info")}), key

            return branch

        num_done = jnp.sum(done)
        branches = [lambda key: (reached, key),  # 0: nothing ended
                    refresh(self.env.reset, lambda new, old: jnp.where(_expand(done, new), new, old))]  # 1: all
        index = (num_done > 0).astype(jnp.int32)
        size = done.shape[0] if done.ndim == 1 else 0
        most = math.ceil(self.partial_fraction * size)
        if isinstance(self.env, Batch) and 0 < most < size:  # 2: only the few that ended
            (ended,) = jnp.nonzero(done, size=most, fill_value=size)  # padding is out of range: dropped
            branches.append(refresh(lambda k: self.env.reset_batch(k, most),
                                    lambda new, old: old.at[ended].set(new, mode="drop")))
            index = jnp.where(num_done > most, 1, 2 * index)
        return jax.lax.switch(index, branches, key)


def _expand(flag: chex.Array, like: chex.Array) -> chex.Array:
    """``flag`` of shape ``[B]`` (or ``[]``) reshaped to broadcast against ``like`` ``[B, ...]``."""
    return flag.reshape(flag.shape + (1,) * (jnp.ndim(like) - flag.ndim))


class RunningStats(NamedTuple):
    """Running count, mean and sum of squared deviations ``M2`` of a stream of vectors.

    ``var = M2 / count`` (population variance). ``count`` is float32 so the statistics are
    a float pytree (exact integers up to 2^24; the weights in :func:`update_stats` stay
    accurate far beyond).
    """

    count: chex.Array
    mean: chex.Array
    m2: chex.Array

    @property
    def var(self) -> chex.Array:
        """``M2 / count``; 1 while nothing has been seen (so normalising is the identity).
        Also for statistics stacked over leading axes (e.g. per device)."""
        count = jnp.reshape(self.count, jnp.shape(self.count) + (1,) * (jnp.ndim(self.m2) - jnp.ndim(self.count)))
        return jnp.where(count > 0, self.m2 / jnp.maximum(count, 1.0), 1.0)


def init_stats(shape) -> RunningStats:
    """Empty statistics for vectors of ``shape``."""
    return RunningStats(jnp.zeros((), jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))


def _combine(a: RunningStats, b: RunningStats) -> RunningStats:
    """Chan, Golub & LeVeque (1979) pairwise merge: with ``n = n_a + n_b``, ``d = mu_b - mu_a``,
    ``mu = mu_a + d n_b / n`` and ``M2 = M2_a + M2_b + d^2 n_a n_b / n``."""
    n = a.count + b.count
    safe_n = jnp.maximum(n, 1.0)
    delta = b.mean - a.mean
    return RunningStats(n, a.mean + delta * (b.count / safe_n), a.m2 + b.m2 + delta**2 * (a.count * b.count / safe_n))


def merge_stats(stats: RunningStats, axis_name) -> RunningStats:
    """Exactly combines the statistics held along the named axis ``axis_name`` (pmap/vmap/
    shard_map devices); every member gets the statistics of all the data together.

    With per-member ``(n_i, mu_i, M2_i)``: ``n = sum n_i``, ``mu = sum n_i mu_i / n`` and
    ``M2 = sum (M2_i + n_i (mu_i - mu)^2)`` (the parallel-variance identity of Chan, Golub &
    LeVeque, "Updating Formulae and a Pairwise Algorithm for Computing Sample Variances",
    1979), computed with three ``psum``s.
    """
    _check_stats(stats)
    n = jax.lax.psum(stats.count, axis_name)
    safe_n = jnp.maximum(n, 1.0)
    mean = jax.lax.psum(stats.count * stats.mean, axis_name) / safe_n
    m2 = jax.lax.psum(stats.m2 + stats.count * (stats.mean - mean) ** 2, axis_name)
    return RunningStats(n, mean, m2)


def update_stats(stats: RunningStats, batch: chex.Array, axis_name=None) -> RunningStats:
    """Folds ``batch`` (``[..., *shape]``: any leading axes) into ``stats``.

    The batch's own ``(n_b, mu_b, M2_b)`` (two-pass) is merged with the running statistics
    by Chan et al.'s (1979) formula (Welford's 1962 update when ``n_b = 1``). With
    ``axis_name`` the batch statistics are first combined across that named axis by
    :func:`merge_stats`, so every device folds in the same global batch and the running
    statistics stay identical (and equal to one device seeing all the data).
    """
    _check_stats(stats)
    batch = jnp.asarray(batch, jnp.float32)
    _check_trailing_shape(batch, stats, "update_stats: `batch`")
    flat = batch.reshape((-1,) + stats.mean.shape)
    if flat.shape[0] == 0:
        return stats
    mean = jnp.mean(flat, axis=0)
    new = RunningStats(jnp.asarray(flat.shape[0], jnp.float32), mean, jnp.sum((flat - mean) ** 2, axis=0))
    if axis_name is not None:
        new = merge_stats(new, axis_name)
    return _combine(stats, new)


def normalize(stats: RunningStats, x: chex.Array, eps: float = 1e-8, clip: float | None = None) -> chex.Array:
    """``clip((x - mu) / sqrt(var + eps), -clip, clip)`` with the running ``mu`` and ``var``."""
    _check_stats(stats)
    _check_trailing_shape(x, stats, "normalize: `x`")
    out = (x - stats.mean) / jnp.sqrt(stats.var + eps)
    return out if clip is None else jnp.clip(out, -clip, clip)


def _check_trailing_shape(x, stats: RunningStats, name: str) -> None:
    shape, rank = jnp.shape(x), stats.mean.ndim
    if len(shape) < rank or tuple(shape[len(shape) - rank:]) != stats.mean.shape:
        raise ValueError(f"{name} of shape {shape} must end in the statistics' shape {stats.mean.shape}")


def _check_stats(stats) -> None:
    if not isinstance(stats, RunningStats):
        raise TypeError(f"expected RunningStats, got {type(stats).__name__}")
    chex.assert_rank(stats.count, 0, custom_message="RunningStats.count must be a scalar")
    chex.assert_equal_shape([stats.mean, stats.m2], custom_message="RunningStats.mean and .m2")


class NormalizeObservation(Wrapper):
    """Observations standardised by running statistics of every observation seen so far.

    ``obs' = clip((obs - mu) / sqrt(var + eps), -clip, clip)``, applied to ``state.obs``
    and (below an :class:`AutoReset`) ``info["final_obs"]`` with the same statistics. The
    statistics (:class:`RunningStats`) live in ``info["obs_stats"]``; each ``reset`` and
    ``step`` folds in the batch of observations it returns (:func:`update_stats`), before
    normalising them. ``update=False`` freezes them (evaluation: put the training
    statistics in with :meth:`with_stats`); ``axis_name`` combines each update across a
    named device axis so all devices keep identical statistics. The raw observations are
    kept in ``info["raw_obs"]`` and handed back to the inner environment.
    """

    KEYS = ("obs_stats", "raw_obs")

    def __init__(self, env: Env, update: bool = True, clip: float | None = 10.0, eps: float = 1e-8, axis_name=None):
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be positive or None, got {clip!r}")
        super().__init__(env)
        self.update, self.clip, self.eps, self.axis_name = bool(update), clip, float(eps), axis_name

    def reset(self, key) -> EnvState:
        return self._observe(self.env.reset(key), init_stats(self.spec.observation_shape))

    def step(self, state: EnvState, action) -> EnvState:
        return self._observe(self.env.step(self._raw(state), action), state.info["obs_stats"])

    def with_stats(self, state: EnvState, stats: RunningStats) -> EnvState:
        """``state`` re-normalised with ``stats`` (e.g. frozen training statistics for evaluation)."""
        return self._normalized(self._raw(state), stats)

    def _raw(self, state: EnvState) -> EnvState:
        """The inner environment's own state: raw observations back, our info keys removed."""
        inner, own = _split_info(state, self.KEYS)
        raw = dict(own["raw_obs"])
        return inner.replace(obs=raw.pop("obs"), info={**inner.info, **raw})

    def _observe(self, state: EnvState, stats: RunningStats) -> EnvState:
        if self.update:
            stats = update_stats(stats, state.obs, self.axis_name)
        return self._normalized(state, stats)

    def _normalized(self, state: EnvState, stats: RunningStats) -> EnvState:
        raw = {"obs": state.obs, **({"final_obs": state.info["final_obs"]} if "final_obs" in state.info else {})}
        norm = {k: normalize(stats, v, self.eps, self.clip) for k, v in raw.items()}
        return state.replace(obs=norm.pop("obs"), info={**state.info, **norm, "obs_stats": stats, "raw_obs": raw})


def wrap(env: Env, num_envs: int | None = None, *, rescale_actions: bool = True, auto_reset: bool = True,
         normalize_obs: bool = False, obs_clip: float | None = 10.0, axis_name=None) -> Env:
    """The standard training stack around ``env`` (see the module docstring for the order).

    Args:
      env: one environment, e.g. ``fnrl.envs.make("brax/ant")`` (already time-limited).
      num_envs: batch size B (:class:`Batch`); None for a single unbatched environment.
      rescale_actions: for continuous actions, act in ``[-1, 1]`` (:class:`RescaleAction`);
        ignored for discrete environments.
      auto_reset: restart ended episodes (:class:`AutoReset`).
      normalize_obs: running observation normalisation (:class:`NormalizeObservation`),
        clipped to ``±obs_clip`` and combined across ``axis_name`` when given.
    """
    if rescale_actions and not env.spec.discrete:
        env = RescaleAction(env)
    if num_envs is not None:
        env = Batch(env, num_envs)
    if auto_reset:
        env = AutoReset(env)
    if normalize_obs:
        env = NormalizeObservation(env, clip=obs_clip, axis_name=axis_name)
    return env


__all__ = ["TimeLimit", "RescaleAction", "Batch", "AutoReset", "NormalizeObservation", "RunningStats",
           "init_stats", "update_stats", "merge_stats", "normalize", "rescale_action", "wrap"]
