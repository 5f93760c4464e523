"""Finite MDPs with exact solvers, for testing algorithms against known answers and for teaching.

A finite MDP is the pytree :class:`MDP` of arrays ``transitions`` P[s, a, s'],
``rewards`` R[s, a] or R[s, a, s'], ``initial`` μ₀[s], ``discount`` γ and ``terminal`` [s].
:class:`TabularEnv` samples it through the functional environment interface (one-hot float32
observations, int32 actions, the MDP on ``env.mdp``), and three pure solvers answer exactly:

- :func:`value_iteration` -- V*, Q* and a greedy optimal policy;
- :func:`policy_evaluation` -- V^π and Q^π by one linear solve;
- :func:`state_occupancy` -- the normalised discounted state occupancy d^π.

The solvers work under ``jit``, ``vmap`` (over batches of MDPs or policies) and ``grad``.
rlax has no exact tabular solvers, so these are written here.

Terminal states: in the arrays a terminal state is absorbing with zero reward
(P[t, a, t] = 1, R[t, a, ·] = 0, checked when an env is built), so the solvers need no special
case and give V(t) = 0; the environment also sets ``termination = 1`` on every step that lands
in a terminal state, so an episode's discounted return Σ_t γ^t r_t is an unbiased sample of
μ₀ᵀV^π. Stepping on after termination stays in the terminal state with zero reward.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from fnrl.envs import register
from fnrl.envs.core import Env, EnvState, Spec, as_float


class MDP(NamedTuple):
    """A finite discounted MDP (a pytree; batch it by stacking leaves).

    transitions: P[s, a, s'] = Pr(s_{t+1} = s' | s_t = s, a_t = a), shape [S, A, S].
    rewards: R[s, a] (expected reward) or R[s, a, s'] (reward of the transition), float.
    initial: μ₀[s], the start-state distribution, shape [S].
    discount: γ ∈ [0, 1), a scalar.
    terminal: bool [S]; terminal states are absorbing with zero reward (see module docstring).
    """

    transitions: chex.Array
    rewards: chex.Array
    initial: chex.Array
    discount: chex.Array
    terminal: chex.Array


class Solution(NamedTuple):
    """Values of a policy: ``v`` [S], ``q`` [S, A] and the ``policy`` π(a|s) [S, A]."""

    v: chex.Array
    q: chex.Array
    policy: chex.Array


def _check_mdp(mdp: MDP) -> tuple[int, int]:
    chex.assert_rank(mdp.transitions, 3, custom_message="mdp.transitions must be P[s, a, s'] of shape [S, A, S]")
    num_states, num_actions, _ = mdp.transitions.shape
    chex.assert_shape(mdp.transitions, (num_states, num_actions, num_states),
                      custom_message="mdp.transitions must be P[s, a, s'] of shape [S, A, S]")
    chex.assert_rank(mdp.rewards, {2, 3}, custom_message="mdp.rewards must be R[s, a] or R[s, a, s']")
    chex.assert_shape(mdp.rewards, (num_states, num_actions, num_states)[: mdp.rewards.ndim],
                      custom_message="mdp.rewards must be R[s, a] [S, A] or R[s, a, s'] [S, A, S]")
    chex.assert_shape(mdp.initial, (num_states,), custom_message="mdp.initial must be μ₀[s] of shape [S]")
    chex.assert_rank(mdp.discount, 0, custom_message="mdp.discount must be a scalar")
    return num_states, num_actions


def _check_policy(policy, num_states: int, num_actions: int) -> None:
    chex.assert_shape(policy, (num_states, num_actions),
                      custom_message="policy must be π(a|s) of shape [S, A] (rows sum to 1)")


def _expected_reward(mdp: MDP) -> chex.Array:
    """r(s, a) = Σ_s' P(s'|s, a) R(s, a, s') (or R itself when it is [S, A])."""
    if mdp.rewards.ndim == 2:
        return mdp.rewards
    return jnp.sum(mdp.transitions * mdp.rewards, axis=-1)


def _policy_transitions(mdp: MDP, policy: chex.Array) -> chex.Array:
    """P_π(s, s') = Σ_a π(a|s) P(s'|s, a)."""
    return jnp.einsum("sa,sat->st", policy, mdp.transitions)


def _q_from_v(mdp: MDP, v: chex.Array) -> chex.Array:
    """Q(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) V(s')."""
    return _expected_reward(mdp) + mdp.discount * jnp.einsum("sat,t->sa", mdp.transitions, v)


def policy_evaluation(mdp: MDP, policy: chex.Array) -> Solution:
    """Exact V^π and Q^π of a stochastic policy by one linear solve.

    V^π = (I − γ P_π)⁻¹ r_π,   Q^π = r + γ P V^π,
    with P_π(s, s') = Σ_a π(a|s) P(s'|s, a) and r_π(s) = Σ_a π(a|s) r(s, a)
    (Bellman 1957; Puterman 1994, Thm 6.1.1). Differentiable in P, R and π.

    Args:
      mdp: the :class:`MDP`.
      policy: π(a|s), shape [S, A].
    Returns:
      ``Solution(v, q, policy)``.
    """
    num_states, num_actions = _check_mdp(mdp)
    _check_policy(policy, num_states, num_actions)
    p_pi = _policy_transitions(mdp, policy)
    r_pi = jnp.sum(policy * _expected_reward(mdp), axis=-1)
    v = jnp.linalg.solve(jnp.eye(num_states, dtype=p_pi.dtype) - mdp.discount * p_pi, r_pi)
    return Solution(v=v, q=_q_from_v(mdp, v), policy=policy)


def value_iteration(mdp: MDP, tol: float = 1e-6, max_iterations: int = 10_000) -> Solution:
    """Optimal values V*, Q* and a greedy optimal policy.

    Iterates the Bellman optimality operator V_{k+1}(s) = max_a [r(s, a) + γ Σ_s' P(s'|s, a) V_k(s')]
    (Bellman 1957) until the residual η = ‖V_{k+1} − V_k‖_∞ ≤ tol · (1 + ‖V_{k+1}‖_∞) or
    ``max_iterations``, takes the policy greedy in Q = r + γ P V_{k+1}, and returns that policy's
    exact values from :func:`policy_evaluation`. Since ‖V_{k+1} − V*‖_∞ ≤ γη/(1 − γ) (Puterman
    1994, Thm 6.3.1), ‖Q − Q*‖_∞ ≤ γ²η/(1 − γ) and the greedy policy is optimal once that is
    below half the smallest gap between an optimal and a suboptimal action value; the returned V*
    and Q* are then exact to float precision and satisfy V* = max_a Q*; their gradients with respect
    to P and R are those of the optimal policy's values (Danskin's theorem), since the iteration
    itself is not differentiated. Ties break towards the lowest action.

    Args:
      mdp: the :class:`MDP`.
      tol: relative stopping tolerance of the iteration.
      max_iterations: a cap on the number of backups.
    Returns:
      ``Solution(v, q, policy)`` with ``policy`` one-hot [S, A].
    """
    num_states, num_actions = _check_mdp(mdp)
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, mdp)

    def backup(v):
        return jnp.max(_q_from_v(frozen, v), axis=-1)

    def not_done(carry):
        k, v, v_next = carry
        gap = jnp.max(jnp.abs(v_next - v))
        return (k < max_iterations) & (gap > tol * (1.0 + jnp.max(jnp.abs(v_next))))

    def body(carry):
        k, _, v = carry
        return k + 1, v, backup(v)

    v0 = jnp.zeros(num_states, frozen.transitions.dtype)
    _, _, v = jax.lax.while_loop(not_done, body, (0, v0, backup(v0)))
    greedy = jax.nn.one_hot(jnp.argmax(_q_from_v(frozen, v), axis=-1), num_actions, dtype=v.dtype)
    return policy_evaluation(mdp, greedy)


def state_occupancy(mdp: MDP, policy: chex.Array) -> chex.Array:
    """Normalised discounted state occupancy d^π(s) = (1 − γ) Σ_t γ^t Pr(s_t = s | μ₀, π).

    d^π = (1 − γ)(I − γ P_πᵀ)⁻¹ μ₀, a distribution over states (Sutton et al. 2000; Kakade &
    Langford 2002). It satisfies μ₀ᵀV^π = Σ_s d^π(s) r_π(s) / (1 − γ). Terminal states are
    absorbing, so an episode that terminates at step T leaves its share (1 − γ) Σ_{t≥T} γ^t = γ^T
    on the terminal state.

    Args:
      mdp: the :class:`MDP`.
      policy: π(a|s), shape [S, A].
    Returns:
      d^π, shape [S], summing to 1.
    """
    num_states, num_actions = _check_mdp(mdp)
    _check_policy(policy, num_states, num_actions)
    p_pi = _policy_transitions(mdp, policy)
    a = jnp.eye(num_states, dtype=p_pi.dtype) - mdp.discount * p_pi.T
    return (1.0 - mdp.discount) * jnp.linalg.solve(a, mdp.initial)


def _validated(mdp: MDP) -> MDP:
    """Checks an MDP's values (concrete arrays) and returns it as float32 jax arrays."""
    p, r, mu = (np.asarray(x, np.float64) for x in mdp[:3])
    gamma, terminal = float(mdp.discount), np.asarray(mdp.terminal, bool)
    _check_mdp(MDP(p, r, mu, np.asarray(gamma), terminal))
    if terminal.shape != mu.shape:
        raise ValueError(f"mdp.terminal must be a bool mask of shape {mu.shape}, got shape {terminal.shape}")
    if (p < 0).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
        raise ValueError("mdp.transitions must be non-negative with every row P[s, a, :] summing to 1")
    if (mu < 0).any() or not np.isclose(mu.sum(), 1.0, atol=1e-5):
        raise ValueError("mdp.initial must be a probability vector (non-negative, summing to 1)")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"mdp.discount must be in [0, 1), got {gamma}")
    t = np.flatnonzero(terminal)
    if not (np.allclose(p[t, :, t], 1.0) and np.allclose(r[t], 0.0)):
        raise ValueError("terminal states must be absorbing (P[t, a, t] = 1) with zero reward")
    return MDP(
        transitions=jnp.asarray(p, jnp.float32),
        rewards=jnp.asarray(r, jnp.float32),
        initial=jnp.asarray(mu, jnp.float32),
        discount=jnp.asarray(gamma, jnp.float32),
        terminal=jnp.asarray(terminal),
    )


def _sample(key: chex.PRNGKey, probs: chex.Array) -> chex.Array:
    """An index drawn from ``probs`` by inverting the CDF (one uniform draw, never a
    zero-probability index: the first c_i > u · c_n has p_i > 0)."""
    cdf = jnp.cumsum(probs)
    return jnp.argmax(cdf > jax.random.uniform(key) * cdf[-1]).astype(jnp.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class TabularEnv(Env):
    """Samples a finite :class:`MDP`: one-hot float32 observations, int32 actions.

    ``state.internal`` is ``(s, key)``: the state index and the RNG key of the dynamics.
    Actions outside [0, A) are clamped (no error can be raised under jit).
    """

    mdp: MDP
    name: str = "tabular"
    one_hot_observations: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "mdp", _validated(self.mdp))

    @property
    def spec(self) -> Spec:
        num_states, num_actions, _ = self.mdp.transitions.shape
        return Spec(observation_shape=(num_states,), num_actions=num_actions)

    def _state(self, s, key, reward, termination, info) -> EnvState:
        obs = jax.nn.one_hot(s, self.mdp.initial.shape[0], dtype=jnp.float32)
        return EnvState(obs=obs, reward=as_float(reward), termination=as_float(termination),
                        truncation=jnp.zeros((), jnp.float32), internal=(s, key), info=info)

    def reset(self, key: chex.PRNGKey) -> EnvState:
        key, sub = jax.random.split(key)
        return self._state(_sample(sub, self.mdp.initial), key, 0.0, 0.0, {})

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        action = self.spec.check_action(action, self.name)
        s, key = state.internal
        key, sub = jax.random.split(key)
        s_next = _sample(sub, self.mdp.transitions[s, action])
        reward = self.mdp.rewards[s, action]
        if reward.ndim:
            reward = reward[s_next]
        return self._state(s_next, key, reward, self.mdp.terminal[s_next], state.info)


def random_mdp(num_states: int = 10, num_actions: int = 3, discount: float = 0.9, seed: int = 0) -> TabularEnv:
    """A random MDP: P(·|s, a) ~ Dirichlet(1), R[s, a, s'] ~ N(0, 1), μ₀ ~ Dirichlet(1); no
    terminal states (a continuing task; :func:`fnrl.envs.make` cuts episodes at 100 steps)."""
    if int(num_states) < 1 or int(num_actions) < 1:
        raise ValueError(f"random_mdp needs num_states, num_actions >= 1, got {num_states}, {num_actions}")
    rng = np.random.default_rng(seed)
    mdp = MDP(
        transitions=rng.dirichlet(np.ones(num_states), size=(num_states, num_actions)),
        rewards=rng.normal(size=(num_states, num_actions, num_states)),
        initial=rng.dirichlet(np.ones(num_states)),
        discount=discount,
        terminal=np.zeros(num_states, bool),
    )
    return TabularEnv(mdp, name="tabular/random_mdp")


def chain(num_states: int = 5, slip: float = 0.2, small_reward: float = 2.0, large_reward: float = 10.0,
          discount: float = 0.99) -> TabularEnv:
    """The n-state chain of Strens (2000), a classic exploration benchmark.

    States 0..n−1, start in 0. Action 1 ("forward") moves s → s + 1 with reward 0, and at the
    last state stays there with reward ``large_reward``; action 0 ("back") returns to state 0
    with reward ``small_reward``. With probability ``slip`` the other action is executed. The
    myopic "back" reward hides the far reward: with the defaults the optimal policy is always
    "forward" but a dithering agent rarely gets past the first states. Continuing (no terminal
    states); :func:`fnrl.envs.make` cuts episodes at 1000 steps, the length Strens used.
    """
    if int(num_states) < 2:
        raise ValueError(f"chain needs num_states >= 2, got {num_states}")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"chain's slip must be a probability in [0, 1], got {slip}")
    n = int(num_states)
    forward = np.minimum(np.arange(n) + 1, n - 1)
    p_executed = np.zeros((n, 2, n))  # P[s, executed action, s']
    p_executed[np.arange(n), 0, 0] = 1.0
    p_executed[np.arange(n), 1, forward] = 1.0
    transitions = np.stack([(1 - slip) * p_executed[:, 0] + slip * p_executed[:, 1],
                            (1 - slip) * p_executed[:, 1] + slip * p_executed[:, 0]], axis=1)
    rewards = np.zeros((n, 2, n))  # the executed action is identified by s' (back: 0, forward: s + 1 or n − 1)
    rewards[:, :, 0] = small_reward
    rewards[n - 1, :, n - 1] = large_reward
    mdp = MDP(transitions, rewards, np.eye(n)[0], discount, np.zeros(n, bool))
    return TabularEnv(mdp, name="tabular/chain")


DEFAULT_GRID = (
    "S....",
    ".###.",
    ".....",
    ".#.#.",
    "....G",
)
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left


def gridworld(layout: tuple[str, ...] = DEFAULT_GRID, slip: float = 0.1, discount: float = 0.95) -> TabularEnv:
    """A grid world: walk from ``S`` to the goal ``G`` (reward 1 on arrival, then terminal).

    ``layout`` is a tuple of equal-length strings: ``.`` free, ``#`` wall, ``S`` start (several
    give a uniform start distribution), ``G`` goal (several allowed). States are the non-wall
    cells in row-major order. Actions 0-3 move up, right, down, left; with probability ``slip``
    the direction is instead drawn uniformly from the four (the intended one included). Moving
    into a wall or off the grid stays put. With ``slip = 0``, V*(s) = γ^(d(s) − 1) for d(s) the shortest-path distance to a goal.
    """
    return TabularEnv(_grid_mdp(layout, slip, discount), name="tabular/gridworld")


def _grid_mdp(layout: tuple[str, ...], slip: float, discount: float) -> MDP:
    """The MDP of :func:`gridworld` (numpy arrays)."""
    if not layout or len({len(row) for row in layout}) != 1 or set("".join(layout)) - set(".#SG"):
        raise ValueError("gridworld layout must be equal-length strings of '.', '#', 'S' and 'G'")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"gridworld's slip must be a probability in [0, 1], got {slip}")
    grid = np.array([list(row) for row in layout])
    cells = [tuple(c) for c in np.argwhere(grid != "#")]
    index = {c: i for i, c in enumerate(cells)}
    kinds = np.array([grid[c] for c in cells])
    if "S" not in kinds or "G" not in kinds:
        raise ValueError("gridworld layout needs at least one start 'S' and one goal 'G'")
    n = len(cells)
    goal = kinds == "G"
    moved = np.zeros((n, 4, n))  # deterministic move targets
    for i, (row, col) in enumerate(cells):
        for a, (dr, dc) in enumerate(_MOVES):
            moved[i, a, index.get((row + dr, col + dc), i)] = 1.0
    transitions = (1 - slip) * moved + slip * moved.mean(axis=1, keepdims=True)
    transitions[goal] = np.eye(n)[goal][:, None, :]
    rewards = np.broadcast_to(goal[None, None, :] & ~goal[:, None, None], (n, 4, n)).astype(float)
    start = (kinds == "S") / np.sum(kinds == "S")
    return MDP(transitions, rewards, start, discount, goal)


# The maze of Sutton & Barto (2018), Figure 8.2 (their Dyna maze): 6 × 9 cells, 47 of them free,
# the goal 14 steps from the start.
DYNA_MAZE = (
    ".......#G",
    "..#....#.",
    "S.#....#.",
    "..#......",
    ".....#...",
    ".........",
)


def dyna_maze(slip: float = 0.0, discount: float = 0.95) -> TabularEnv:
    """:func:`gridworld` on :data:`DYNA_MAZE`, deterministic (``slip = 0``) with γ = 0.95 as in
    Sutton & Barto's Dyna-Q experiment; V* at the start is γ¹³. The book's episodes have no time
    limit; :func:`fnrl.envs.make` cuts them at a generous 2000 steps, within which 91% of uniformly
    random walks from the start (what acting on Q = 0 begins as) reach the goal."""
    return TabularEnv(_grid_mdp(DYNA_MAZE, slip, discount), name="tabular/dyna_maze")


register("tabular/random_mdp", random_mdp, max_episode_steps=100)
register("tabular/chain", chain, max_episode_steps=1000)
register("tabular/gridworld", gridworld, max_episode_steps=100)
register("tabular/dyna_maze", dyna_maze, max_episode_steps=2000)

__all__ = [
    "MDP",
    "Solution",
    "TabularEnv",
    "random_mdp",
    "chain",
    "gridworld",
    "dyna_maze",
    "DYNA_MAZE",
    "policy_evaluation",
    "value_iteration",
    "state_occupancy",
]
