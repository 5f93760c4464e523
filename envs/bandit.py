"""Multi-armed bandits with known means, for exploration algorithms and regret curves.

A k-armed bandit is an environment with one-step episodes: every ``step`` pulls arm
``action`` (an int32 scalar in [0, k)), returns a reward drawn from that arm's distribution
and sets ``termination = 1``. The observation is a constant ``zeros((1,))`` (there is no
state), so an auto-resetting batch of bandits makes one pull per step, and an episode's return
is one reward. The arm means are on the environment (``env.means``), with the optimal arm
``env.optimal_arm``, its mean ``env.optimal_mean`` and the expected regret :func:`regret`.
Rewards are sampled with distrax.
"""
from __future__ import annotations

import dataclasses

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np

from fnrl.envs import register
from fnrl.envs.core import Env, EnvState, Spec, as_float


def _gaps(means: chex.Array, actions: chex.Array) -> chex.Array:
    """The per-step expected regret μ* − μ_{a_t}, [T, ...], with the argument checks."""
    means, actions = jnp.asarray(means), jnp.asarray(actions)
    chex.assert_rank(means, 1, custom_message="means must be the arm means, shape [k]")
    chex.assert_type(actions, int, custom_message="actions must be integer arm indices, shape [T, ...]")
    if actions.ndim < 1:
        raise ValueError(f"actions must be time-major [T, ...], got a scalar of shape {actions.shape}")
    return jnp.max(means) - means[actions]


def regret(means: chex.Array, actions: chex.Array) -> chex.Array:
    """Expected (pseudo-)regret of an action sequence: Σ_t (μ* − μ_{a_t}), μ* = max_a μ_a.

    (Lai & Robbins 1985; Auer, Cesa-Bianchi & Fischer 2002.) Its running total over time is
    :func:`cumulative_regret`.

    Args:
      means: the arm means μ, shape [k].
      actions: the arms pulled, int, time-major [T, ...] with any trailing batch dims.
    Returns:
      The regret summed over time, shape ``actions.shape[1:]``.
    """
    return jnp.sum(_gaps(means, actions), axis=0)


def cumulative_regret(means: chex.Array, actions: chex.Array) -> chex.Array:
    """The regret curve R(t) = Σ_{s ≤ t} (μ* − μ_{a_s}) of time-major ``actions`` [T, ...] (same
    shape); its last entry is :func:`regret`."""
    return jnp.cumsum(_gaps(means, actions), axis=0)


@dataclasses.dataclass(frozen=True, eq=False)
class _Bandit(Env):
    """Shared bandit mechanics; subclasses give ``_draw_means`` and ``_arm(mean)``.

    ``means`` gives the arm means; if ``None`` they are drawn from ``seed`` for ``num_arms``
    arms (default 10). ``state.internal`` is the RNG key.
    """

    means: tuple[float, ...] | None = None
    num_arms: int | None = None
    seed: int = 0
    name = "bandit"

    def __post_init__(self):
        if self.means is None:
            k = 10 if self.num_arms is None else int(self.num_arms)
            if k < 1:
                raise ValueError(f"{self.name}: num_arms must be >= 1, got {self.num_arms}")
            means = self._draw_means(np.random.default_rng(self.seed), k)
        else:
            means = np.asarray(self.means, np.float64)
            if means.ndim != 1 or means.size < 1:
                raise ValueError(f"{self.name}: means must be a non-empty 1-D list of arm means, got shape {means.shape}")
            if self.num_arms is not None and self.num_arms != means.size:
                raise ValueError(f"{self.name}: num_arms={self.num_arms} but {means.size} means were given")
        self._check_means(means)
        object.__setattr__(self, "means", jnp.asarray(means, jnp.float32))
        object.__setattr__(self, "num_arms", int(means.size))

    def _check_means(self, means: np.ndarray) -> None:
        if not np.all(np.isfinite(means)):
            raise ValueError(f"{self.name}: the arm means must be finite, got {means}")

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(1,), num_actions=self.num_arms)

    @property
    def optimal_arm(self) -> int:
        """argmax_a μ_a (the lowest index among ties)."""
        return int(np.argmax(self.means))

    @property
    def optimal_mean(self) -> float:
        """μ* = max_a μ_a."""
        return float(np.max(self.means))

    def regret(self, actions: chex.Array) -> chex.Array:
        """:func:`regret` with this bandit's means."""
        return regret(self.means, actions)

    def reset(self, key: chex.PRNGKey) -> EnvState:
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=jnp.zeros((1,), jnp.float32), reward=zero, termination=zero, truncation=zero,
                        internal=key)

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        action = self.spec.check_action(action, self.name)
        key, sub = jax.random.split(state.internal)
        reward = self._arm(self.means[action]).sample(seed=sub)
        return state.replace(reward=as_float(reward), termination=jnp.ones((), jnp.float32),
                             truncation=jnp.zeros((), jnp.float32), internal=key)


@dataclasses.dataclass(frozen=True, eq=False)
class BernoulliBandit(_Bandit):
    """``BernoulliBandit(means=None, num_arms=None, seed=0)``: arm a pays 1 with probability μ_a
    and 0 otherwise; unless given, the means are drawn μ_a ~ U(0, 1) for 10 arms (or ``num_arms``)."""

    name = "bandit/bernoulli"

    def _draw_means(self, rng, k):
        return rng.uniform(size=k)

    def _check_means(self, means):
        if not np.all((means >= 0) & (means <= 1)):
            raise ValueError(f"{self.name}: the arm means must be probabilities in [0, 1], got {means}")

    def _arm(self, mean):
        return distrax.Bernoulli(probs=mean)


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianBandit(_Bandit):
    """``GaussianBandit(means=None, num_arms=None, seed=0, stddev=1.0)``: arm a pays N(μ_a, stddev²);
    unless given, the means are drawn μ_a ~ N(0, 1) for 10 arms (or ``num_arms``), as in the
    10-armed testbed of Sutton & Barto (2018, §2.3)."""

    stddev: float = 1.0
    name = "bandit/gaussian"

    def __post_init__(self):
        if not self.stddev > 0:
            raise ValueError(f"{self.name}: stddev must be positive, got {self.stddev}")
        super().__post_init__()

    def _draw_means(self, rng, k):
        return rng.normal(size=k)

    def _arm(self, mean):
        return distrax.Normal(loc=mean, scale=self.stddev)


register("bandit/bernoulli", BernoulliBandit)
register("bandit/gaussian", GaussianBandit)

__all__ = ["BernoulliBandit", "GaussianBandit", "cumulative_regret", "regret"]
