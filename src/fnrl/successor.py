"""Successor representations, successor features and generalised policy improvement (tabular).

On a finite :class:`fnrl.envs.tabular.MDP` with a policy π(a|s) and P_π(s, s') = Σ_a π(a|s) P(s'|s, a):

- The **successor representation** (Dayan 1993), normalised as in the lectures so that each row
  is a distribution over future states (the discounted future-state distribution):

      μ^π(s) = (1 − γ) e_s + γ E_{s'|s, π}[μ^π(s')],   i.e.   M^π = (1 − γ)(I − γ P_π)⁻¹  [S, S],

  M^π(s, s') = (1 − γ) Σ_t γ^t Pr(s_t = s' | s_0 = s, π). For any reward,
  V^π = M^π r_π / (1 − γ) with r_π(s) = Σ_a π(a|s) r(s, a) (the lectures write V = μᵀr, dropping
  the constant 1/(1 − γ) of their own future-state distribution), and the discounted state
  occupancy from μ₀ is d^π = μ₀ᵀ M^π (:func:`fnrl.envs.tabular.state_occupancy`).
- **Successor features** (Barreto et al. 2017) of features φ(s, a) ∈ R^D, unnormalised as there:

      ψ^π(s, a) = φ(s, a) + γ E_{s'|s, a} E_{a'~π(s')}[ψ^π(s', a')]  [S, A, D],

  so a reward r(s, a) = φ(s, a)ᵀw has Q^π(s, a) = ψ^π(s, a)ᵀw, for every w at once.
- **Generalised policy improvement** (GPI; Barreto et al. 2017, Theorem 1): given ψ^{π_1..π_K}
  and a task w, π(s) = argmax_a max_k ψ^{π_k}(s, a)ᵀw has Q^π ≥ max_k Q^{π_k} everywhere.

Terminal states follow :mod:`fnrl.envs.tabular` (absorbing, zero reward), so their SR row is e_t
and, with zero features there, their ψ is 0. Every function is pure and works under ``jit``,
``vmap`` and ``grad``; the TD updates take one transition each (scan them over a stream).

References: P. Dayan, "Improving generalization for temporal difference learning: the successor
representation", Neural Computation 1993. A. Barreto et al., "Successor features for transfer
in reinforcement learning", NeurIPS 2017 (arXiv:1606.05312).
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from fnrl.envs.tabular import MDP, _check_mdp, _check_policy, _policy_transitions

Array = chex.Array

__all__ = [
    "GPI",
    "successor_representation",
    "sr_td_update",
    "successor_features",
    "sf_td_update",
    "arrival_features",
    "reward_weights",
    "gpi",
]


def _check_index(fn: str, **indices: Array) -> None:
    for name, x in indices.items():
        chex.assert_rank(x, 0, custom_message=f"{fn}: `{name}` must be a scalar state or action index")
        chex.assert_type(x, int, custom_message=f"{fn}: `{name}` must be an integer index")


def _expected_features(fn: str, features: Array, transitions: Array) -> Array:
    """φ(s, a) [S, A, D] from φ(s, a) itself or from φ(s, a, s') [S, A, S, D] (its mean under P)."""
    num_states, num_actions, _ = transitions.shape
    chex.assert_rank(features, {3, 4}, custom_message=f"{fn}: `features` must be φ(s, a) [S, A, D] or "
                                                      "φ(s, a, s') [S, A, S, D]")
    shape = (num_states, num_actions, num_states, None) if features.ndim == 4 else (num_states, num_actions, None)
    chex.assert_shape(features, shape, custom_message=f"{fn}: `features` must be [S, A, D] or [S, A, S, D] with "
                                                      f"S = {num_states}, A = {num_actions}")
    if features.ndim == 4:
        return jnp.einsum("sat,satd->sad", transitions, features)
    return features


def successor_representation(mdp: MDP, policy: Array) -> Array:
    """The successor representation M^π = (1 − γ)(I − γ P_π)⁻¹ by one linear solve.

    Row s is the discounted future-state distribution from s, μ^π(s) = (1 − γ) Σ_t γ^t
    Pr(s_t = · | s_0 = s, π), the fixed point of μ^π(s) = (1 − γ) e_s + γ Σ_s' P_π(s, s') μ^π(s')
    (Dayan 1993; the lectures' normalisation). Then V^π = M^π r_π / (1 − γ).

    Args:
      mdp: the :class:`fnrl.envs.tabular.MDP`.
      policy: π(a|s), shape [S, A].
    Returns:
      M^π, shape [S, S], rows summing to 1.
    """
    num_states, num_actions = _check_mdp(mdp)
    _check_policy(policy, num_states, num_actions)
    p_pi = _policy_transitions(mdp, policy)
    eye = jnp.eye(num_states, dtype=p_pi.dtype)
    return (1.0 - mdp.discount) * jnp.linalg.solve(eye - mdp.discount * p_pi, eye)


def sr_td_update(sr: Array, state: Array, next_state: Array, termination: Array, discount, learning_rate) -> Array:
    """One TD(0) update of a tabular SR from a transition s → s' sampled under π (Dayan 1993).

        M(s) ← M(s) + α [(1 − γ) e_s + γ m' − M(s)],   m' = e_{s'} if s' is terminal else M(s'),

    a terminal s' being absorbing (its SR is e_{s'}). With step sizes satisfying the usual
    Robbins-Monro conditions and every state sampled infinitely often, M converges to
    :func:`successor_representation`; rows that sum to 1 keep summing to 1.

    Args:
      sr: M [S, S], float.
      state, next_state: s and s', integer scalars.
      termination: 1 if s' is terminal (float or bool scalar); 0 treats s' like any state.
      discount: γ; learning_rate: α.
    Returns:
      The updated M [S, S].
    """
    fn = "sr_td_update"
    chex.assert_rank(sr, 2, custom_message=f"{fn}: `sr` must be M [S, S]")
    chex.assert_shape(sr, (sr.shape[0], sr.shape[0]), custom_message=f"{fn}: `sr` must be square, M [S, S]")
    chex.assert_type(sr, float, custom_message=f"{fn}: `sr` must be a float array")
    _check_index(fn, state=state, next_state=next_state)
    chex.assert_rank(termination, 0, custom_message=f"{fn}: `termination` must be a scalar flag")
    eye = jnp.eye(sr.shape[0], dtype=sr.dtype)
    termination = jnp.asarray(termination, sr.dtype)
    bootstrap = termination * eye[next_state] + (1.0 - termination) * sr[next_state]
    target = (1.0 - discount) * eye[state] + discount * bootstrap
    return sr.at[state].add(learning_rate * (target - sr[state]))


def successor_features(mdp: MDP, policy: Array, features: Array) -> Array:
    """Successor features ψ^π [S, A, D] of tabular features, exactly (Barreto et al. 2017).

    ψ^π(s, a) = φ(s, a) + γ Σ_s' P(s'|s, a) ψ_V(s'), where the state features
    ψ_V(s) = Σ_a π(a|s) ψ^π(s, a) = (I − γ P_π)⁻¹ φ_π = M^π φ_π / (1 − γ) come from the
    :func:`successor_representation` and φ_π(s) = Σ_a π(a|s) φ(s, a). Features of transitions
    φ(s, a, s') are averaged over P first, as rewards are in :mod:`fnrl.envs.tabular`; then any
    reward R(s, a, s') = φ(s, a, s')ᵀw has Q^π = ψ^π w exactly.

    Args:
      mdp: the MDP (its rewards are not used).
      policy: π(a|s), shape [S, A].
      features: φ(s, a) [S, A, D] or φ(s, a, s') [S, A, S, D], float.
    Returns:
      ψ^π, shape [S, A, D].
    """
    fn = "successor_features"
    num_states, num_actions = _check_mdp(mdp)
    _check_policy(policy, num_states, num_actions)
    phi = _expected_features(fn, features, mdp.transitions)
    chex.assert_type(phi, float, custom_message=f"{fn}: `features` must be a float array")
    phi_pi = jnp.einsum("sa,sad->sd", policy, phi)
    psi_v = successor_representation(mdp, policy) @ phi_pi / (1.0 - mdp.discount)
    return phi + mdp.discount * jnp.einsum("sat,td->sad", mdp.transitions, psi_v)


def sf_td_update(psi: Array, policy: Array, state: Array, action: Array, features: Array, next_state: Array,
                 termination: Array, discount, learning_rate) -> Array:
    """One TD(0) update of tabular successor features from a sampled transition (s, a, φ, s').

        ψ(s, a) ← ψ(s, a) + α [φ + γ (1 − term) Σ_a' π(a'|s') ψ(s', a') − ψ(s, a)]

    (Barreto et al. 2017, eq. 4, with the expectation over a' ~ π taken exactly, as in expected
    SARSA). The behaviour that chose a may be any policy: the target only uses π at s'. Its fixed
    point is :func:`successor_features` of φ(s, a) = E[φ | s, a].

    Args:
      psi: ψ [S, A, D], float.
      policy: the evaluated π(a|s) [S, A].
      state, action, next_state: integer scalars s, a, s'.
      features: the transition's φ [D].
      termination: 1 if s' is terminal (nothing is bootstrapped from it).
      discount: γ; learning_rate: α.
    Returns:
      The updated ψ [S, A, D].
    """
    fn = "sf_td_update"
    chex.assert_rank(psi, 3, custom_message=f"{fn}: `psi` must be ψ [S, A, D]")
    chex.assert_type(psi, float, custom_message=f"{fn}: `psi` must be a float array")
    chex.assert_shape(policy, psi.shape[:2], custom_message=f"{fn}: `policy` must be π(a|s) of shape "
                                                            f"{psi.shape[:2]} ([S, A] of `psi`)")
    chex.assert_shape(features, psi.shape[2:], custom_message=f"{fn}: `features` must be φ of shape "
                                                              f"{psi.shape[2:]} ([D] of `psi`)")
    _check_index(fn, state=state, action=action, next_state=next_state)
    chex.assert_rank(termination, 0, custom_message=f"{fn}: `termination` must be a scalar flag")
    next_psi = policy[next_state] @ psi[next_state]
    target = features + discount * (1.0 - jnp.asarray(termination, psi.dtype)) * next_psi
    return psi.at[state, action].add(learning_rate * (target - psi[state, action]))


def arrival_features(mdp: MDP, states: Array) -> Array:
    """Features of arriving in given states: φ_k(s, a, s') = 1[s' = states[k]] · 1[s not terminal].

    With the goals of a :func:`fnrl.envs.tabular.gridworld` as ``states``, φᵀw is the reward
    "w_k on reaching goal k" (zero after termination, as the tabular convention requires).

    Args:
      mdp: the MDP.
      states: integer state indices [D].
    Returns:
      φ, shape [S, A, S, D], float32.
    """
    num_states, num_actions = _check_mdp(mdp)
    chex.assert_rank(states, 1, custom_message="arrival_features: `states` must be state indices [D]")
    chex.assert_type(states, int, custom_message="arrival_features: `states` must be integer indices")
    arrive = jax.nn.one_hot(states, num_states, dtype=jnp.float32).T  # [S', D]
    live = 1.0 - jnp.asarray(mdp.terminal, jnp.float32)
    return jnp.broadcast_to(live[:, None, None, None] * arrive, (num_states, num_actions, num_states, states.shape[0]))


def reward_weights(features: Array, rewards: Array, l2: float = 0.0) -> Array:
    """Least-squares reward weights w = argmin_w Σ_i (φ_iᵀw − r_i)² + λ‖w‖² (lectures, "idea 1";
    Barreto et al. 2017, Sec. 4).

    Solved as the least-squares problem [Φ; √λ I] w = [r; 0] (``jnp.linalg.lstsq``), so λ = 0
    gives the minimum-norm solution when Φ is rank-deficient (a feature never seen gets w = 0).

    Args:
      features: φ_i, shape [N, D], float.
      rewards: r_i, shape [N].
      l2: λ ≥ 0.
    Returns:
      w, shape [D].
    """
    fn = "reward_weights"
    chex.assert_rank(features, 2, custom_message=f"{fn}: `features` must be φ [N, D]")
    chex.assert_type(features, float, custom_message=f"{fn}: `features` must be a float array")
    chex.assert_shape(rewards, features.shape[:1], custom_message=f"{fn}: `rewards` must be r [N] with N = "
                                                                  f"{features.shape[0]} (rows of `features`)")
    if isinstance(l2, (int, float)) and not l2 >= 0:
        raise ValueError(f"{fn}: `l2` must be >= 0, got {l2}")
    dim = features.shape[1]
    a = jnp.concatenate([features, jnp.sqrt(l2) * jnp.eye(dim, dtype=features.dtype)])
    b = jnp.concatenate([rewards.astype(features.dtype), jnp.zeros(dim, features.dtype)])
    return jnp.linalg.lstsq(a, b)[0]


class GPI(NamedTuple):
    """``q`` [S, A]: max_k ψ^{π_k}(s, a)ᵀw, a lower bound on the GPI policy's Q; ``policy``
    [S, A]: the one-hot GPI policy, greedy in ``q`` (ties towards the lowest action)."""

    q: Array
    policy: Array


def gpi(successor_features: Array, w: Array) -> GPI:
    """Generalised policy improvement over K policies' successor features (Barreto et al. 2017).

        π(s) ∈ argmax_a max_k ψ^{π_k}(s, a)ᵀw.

    Theorem 1 there: if |Q̃^{π_k} − Q^{π_k}| ≤ ε then Q^π ≥ max_k Q^{π_k} − 2ε/(1 − γ); with exact
    ψ (ε = 0) the GPI policy is at least as good as every π_k in every state, and its Q is at
    least ``q``. With K = 1 this is one step of policy improvement (the lectures' "idea 1").

    Args:
      successor_features: ψ^{π_k} stacked, shape [K, S, A, D], float.
      w: task weights [D].
    Returns:
      ``GPI(q, policy)``.
    """
    fn = "gpi"
    chex.assert_rank(successor_features, 4, custom_message=f"{fn}: `successor_features` must be ψ [K, S, A, D]")
    chex.assert_type(successor_features, float, custom_message=f"{fn}: `successor_features` must be a float array")
    chex.assert_shape(w, successor_features.shape[3:], custom_message=f"{fn}: `w` must be [D] with D = "
                                                                      f"{successor_features.shape[3]} (of ψ)")
    q = jnp.max(successor_features @ w, axis=0)
    return GPI(q=q, policy=jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=q.dtype))
