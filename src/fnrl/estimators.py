"""Returns, advantages, importance weights and off-policy evaluation.

Conventions (README, "Design": time-major data)
------------------------------------
Sequences are time-major, ``[T, ...]`` with any trailing batch dims. Step ``t`` records

- ``rewards[t]`` = r_t, the reward for the step;
- ``values[t]`` = V(s_t), the value of the observation the action was taken in;
- ``next_values[t]`` = V(s'_t), the value of the observation after the step. For a step that ends
  an episode, s'_t is the episode's *final* observation (kept by auto-reset), not the first
  observation of the next episode; inside an episode ``next_values[t] == values[t + 1]``;
- ``termination[t]``: s'_t is terminal, so nothing is bootstrapped from it;
- ``truncation[t]``: the episode was cut (time limit) at s'_t, so V(s'_t) is bootstrapped but no
  trace crosses into the next episode.

Flags are 0/1 (float or bool). Every recursive estimator here is built from the same two
factors, so an algorithm can switch between them freely:

    bootstrap weight at t:  γ (1 − term_t)                     (multiplies V(s'_t))
    trace into t + 1:       γ λ (1 − term_t)(1 − trunc_t)

and a sequence that ends mid-episode is treated like a truncation at its last step: step T − 1
bootstraps from ``next_values[T - 1]``. Recursions run as a reverse ``lax.scan`` over the time
axis and work under ``jit``, ``vmap`` and ``grad``. Targets are *not* wrapped in
``stop_gradient``; do that in the loss where it is wanted.

The return estimators coincide with rlax's (``rlax.discounted_returns``, ``rlax.lambda_returns``,
``rlax.n_step_bootstrapped_returns``, ``rlax.truncated_generalized_advantage_estimation``) under
``discount_t = γ (1 − term_t)``, ``v_t = next_values``, ``lambda_t = λ (1 − trunc_t)``, which is
how they are tested; they are written here because rlax takes rank-1 inputs and has no
termination/truncation split (its GAE reads V(s_{t+1}) from ``values[t + 1]``, which is wrong
after a truncation).

Off-policy evaluation takes a batch of episodes ``[T, N, ...]``: time, then N episodes that each
start at t = 0 from the initial-state distribution, then any trailing dims; ``mask[t, i]`` is 1
while episode i is still running at step t. Masked steps contribute nothing (their reward,
Q̂ and V̂ count as 0 and their importance ratio as 1). The estimate of
J(π) = E_π[Σ_t γ^t r_t] has the trailing shape ``[...]``.
"""
from __future__ import annotations

from numbers import Number

import chex
import jax.numpy as jnp
from jax import lax

Array = chex.Array

__all__ = [
    "normalize_advantages",
    "td_errors",
    "discounted_returns",
    "n_step_returns",
    "lambda_returns",
    "gae",
    "importance_ratios",
    "cumulative_importance_ratios",
    "trajectory_importance_sampling",
    "per_decision_importance_sampling",
    "weighted_importance_sampling",
    "doubly_robust",
    "weighted_doubly_robust",
]


# --- checks


def _check(ref_name: str, ref, min_rank: int = 1, floats=None, flags=None):
    """Checks ``ref`` is a float array of rank >= ``min_rank`` and that every array in ``floats``
    (float) and ``flags`` (float or bool 0/1) has its shape; returns the flags as ``ref``'s dtype.
    Messages name the offending argument."""
    if jnp.ndim(ref) < min_rank:
        raise ValueError(
            f"`{ref_name}` must have rank >= {min_rank} (time-major "
            f"{'[T, N, ...]' if min_rank == 2 else '[T, ...]'}), got shape {jnp.shape(ref)}"
        )
    chex.assert_type(ref, float, custom_message=f"`{ref_name}` must be a float array")
    same_shape = lambda name: f"`{name}` must have the shape of `{ref_name}`"
    for name, x in (floats or {}).items():
        chex.assert_type(x, float, custom_message=f"`{name}` must be a float array")
        chex.assert_shape(x, ref.shape, custom_message=same_shape(name))
    out = []
    for name, x in (flags or {}).items():
        chex.assert_shape(x, ref.shape, custom_message=same_shape(name))
        out.append(jnp.asarray(x, ref.dtype))
    return out


def _check_unit(name: str, x):
    """A Python number (a traced value is not checked) must lie in [0, 1]."""
    if isinstance(x, Number) and not 0.0 <= x <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1], got {x}")


def _linear_step(y_prev, xc):
    y = xc[0] + xc[1] * y_prev
    return y, y


def _accumulate(x: Array, c: Array, init: Array, reverse: bool = True) -> Array:
    """y_t = x_t + c_t · y_{t±1} over the leading axis (t + 1 when ``reverse``), from ``init``."""
    return lax.scan(_linear_step, init, (x, jnp.broadcast_to(c, x.shape)), reverse=reverse)[1]


# --- returns


def td_errors(rewards: Array, values: Array, next_values: Array, termination: Array,
              gamma) -> Array:
    """One-step temporal-difference errors (Sutton 1988; Sutton & Barto 2018, §6.1):

        δ_t = r_t + γ (1 − term_t) V(s'_t) − V(s_t).

    Truncation needs no special case: s'_t is the final observation, so V(s'_t) bootstraps.
    Agrees with ``rlax.td_learning`` applied per step with ``discount_t = γ (1 − term_t)``.

    Args:
      rewards, values, next_values: ``[T, ...]`` floats (see the module conventions).
      termination: ``[T, ...]`` 0/1 flags.
      gamma: discount in [0, 1] (scalar or broadcastable to ``rewards``).

    Returns:
      ``[T, ...]`` TD errors.
    """
    _check_unit("gamma", gamma)
    (term,) = _check("rewards", rewards, floats=dict(values=values, next_values=next_values),
                     flags=dict(termination=termination))
    return rewards + gamma * (1.0 - term) * next_values - values


def lambda_returns(rewards: Array, next_values: Array, termination: Array, truncation: Array,
                   gamma, lambda_) -> Array:
    """λ-returns with termination and truncation (Sutton 1988; Sutton & Barto 2018, §12.1):

        G^λ_t = r_t + γ (1 − term_t) [ (1 − λ (1 − trunc_t)) V(s'_t) + λ (1 − trunc_t) G^λ_{t+1} ],

    with G^λ_T = V(s'_{T−1}) (a sequence cut mid-episode bootstraps). λ = 0 gives the one-step
    target r_t + γ (1 − term_t) V(s'_t); λ = 1 the discounted return bootstrapped only at
    truncations and at the end of the sequence. Equals ``rlax.lambda_returns(r, γ(1 − term),
    next_values, λ(1 − trunc))`` per trailing index; ``lambda_returns − values == gae`` when
    ``next_values[t] == values[t + 1]`` inside episodes.

    Args:
      rewards, next_values: ``[T, ...]`` floats.
      termination, truncation: ``[T, ...]`` 0/1 flags.
      gamma, lambda_: in [0, 1]; scalars or arrays broadcastable to ``rewards`` (a per-step
        ``lambda_`` gives off-policy traces, e.g. λ_t = min(1, ρ_t) as in V-trace).

    Returns:
      ``[T, ...]`` λ-returns.
    """
    _check_unit("gamma", gamma)
    _check_unit("lambda_", lambda_)
    term, trunc = _check("rewards", rewards, floats=dict(next_values=next_values),
                         flags=dict(termination=termination, truncation=truncation))
    bootstrap = gamma * (1.0 - term)
    trace = lambda_ * (1.0 - trunc)
    return _accumulate(rewards + bootstrap * (1.0 - trace) * next_values, bootstrap * trace,
                       next_values[-1])


def discounted_returns(rewards: Array, termination: Array, truncation: Array, gamma,
                       next_values: Array | None = None) -> Array:
    """Discounted reward-to-go, cut at episode boundaries (Sutton & Barto 2018, §3.3):

        G_t = r_t + γ (1 − term_t) [ trunc_t V(s'_t) + (1 − trunc_t) G_{t+1} ],  G_T = V(s'_{T−1}).

    This is :func:`lambda_returns` with λ = 1 (and ``rlax.discounted_returns``). Without
    ``next_values`` nothing is bootstrapped (V ≡ 0): the plain Monte-Carlo reward-to-go of
    REINFORCE. Only ``next_values`` at truncated steps and at the last step are read.

    Args:
      rewards: ``[T, ...]`` floats.
      termination, truncation: ``[T, ...]`` 0/1 flags.
      gamma: in [0, 1].
      next_values: optional ``[T, ...]`` bootstrap values V(s'_t).

    Returns:
      ``[T, ...]`` returns.
    """
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    return lambda_returns(rewards, next_values, termination, truncation, gamma, 1.0)


def n_step_returns(rewards: Array, next_values: Array, termination: Array, truncation: Array,
                   gamma, n: int) -> Array:
    """n-step bootstrapped returns, cut at episode boundaries (Sutton & Barto 2018, §7.1;
    the A3C targets of Mnih et al. 2016):

        G^(n)_t = Σ_{k=0}^{m−1} γ^k r_{t+k} + γ^m V(s'_{t+m−1}) · [s'_{t+m−1} not terminal],

    where m ≤ n is the number of steps until the episode ends (termination: no bootstrap;
    truncation: bootstrap the final observation) or the sequence ends. Recursively,
    G^(k)_t = r_t + γ (1 − term_t) [trunc_t V(s'_t) + (1 − trunc_t) G^(k−1)_{t+1}],
    G^(0)_{t+1} = V(s'_t). Equals ``rlax.n_step_bootstrapped_returns(r, γ(1 − term),
    next_values, n, lambda_t=1 − trunc)`` per trailing index.

    Args:
      rewards, next_values: ``[T, ...]`` floats.
      termination, truncation: ``[T, ...]`` 0/1 flags.
      gamma: in [0, 1].
      n: number of steps, a Python int >= 1 (n >= T gives :func:`discounted_returns`).

    Returns:
      ``[T, ...]`` n-step returns.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"`n` must be a Python int >= 1, got {n!r}")
    _check_unit("gamma", gamma)
    term, trunc = _check("rewards", rewards, floats=dict(next_values=next_values),
                         flags=dict(termination=termination, truncation=truncation))
    bootstrap = gamma * (1.0 - term)
    returns = next_values  # G^(0)_{t+1}, aligned with step t
    for k in range(min(n, rewards.shape[0])):  # beyond T steps every return has hit the end
        if k:  # shift: the (k−1)-step return from s_{t+1}; past the end, bootstrap V(s'_{T−1})
            returns = jnp.concatenate([returns[1:], next_values[-1:]], axis=0)
        returns = rewards + bootstrap * (trunc * next_values + (1.0 - trunc) * returns)
    return returns


def gae(rewards: Array, values: Array, next_values: Array, termination: Array,
        truncation: Array, gamma, lambda_) -> Array:
    """Generalized advantage estimation with termination and truncation (Schulman et al. 2016,
    "High-dimensional continuous control using generalized advantage estimation", §3):

        δ_t = r_t + γ (1 − term_t) V(s'_t) − V(s_t),
        A_t = δ_t + γ λ (1 − term_t)(1 − trunc_t) A_{t+1},   A_T = 0.

    λ = 0 gives the TD errors; λ = 1 the discounted return minus V(s_t); in between, the
    (1 − λ)-weighted average of n-step advantages. A truncated step bootstraps from the final
    observation's value but its trace stops there. Equals
    ``rlax.truncated_generalized_advantage_estimation`` when there is no truncation (with its
    ``values = [values, next_values[-1]]`` and ``discount_t = γ (1 − term_t)``).

    Args:
      rewards, values, next_values: ``[T, ...]`` floats.
      termination, truncation: ``[T, ...]`` 0/1 flags.
      gamma, lambda_: in [0, 1]; scalars or arrays broadcastable to ``rewards``.

    Returns:
      ``[T, ...]`` advantages; ``advantages + values`` are the λ-return value targets.
    """
    _check_unit("lambda_", lambda_)
    deltas = td_errors(rewards, values, next_values, termination, gamma)
    term, trunc = _check("rewards", rewards,
                         flags=dict(termination=termination, truncation=truncation))
    return _accumulate(deltas, gamma * lambda_ * (1.0 - term) * (1.0 - trunc),
                       jnp.zeros_like(rewards[0]))


# --- importance weights


def importance_ratios(target_log_probs: Array, behaviour_log_probs: Array,
                      max_ratio=None) -> Array:
    """Per-step importance ratios ρ_t = π(a_t|s_t) / μ(a_t|s_t) = exp(log π − log μ), optionally
    truncated to min(ρ̄, ρ_t) as in Retrace (Munos et al. 2016, c_t = λ min(1, ρ_t)) and
    V-trace (Espeholt et al. 2018, ρ̄ and c̄). Any shape.

    Args:
      target_log_probs: log π(a_t|s_t), float array.
      behaviour_log_probs: log μ(a_t|s_t), same shape.
      max_ratio: optional truncation level ρ̄ > 0.

    Returns:
      the ratios, shaped like the inputs.
    """
    if isinstance(max_ratio, Number) and not max_ratio > 0:
        raise ValueError(f"`max_ratio` must be > 0, got {max_ratio}")
    _check("target_log_probs", target_log_probs, min_rank=0,
           floats=dict(behaviour_log_probs=behaviour_log_probs))
    ratios = jnp.exp(target_log_probs - behaviour_log_probs)
    return ratios if max_ratio is None else jnp.minimum(max_ratio, ratios)


def cumulative_importance_ratios(target_log_probs: Array, behaviour_log_probs: Array,
                                 done: Array | None = None, max_ratio=None) -> Array:
    """Per-decision cumulative importance ratios (Precup, Sutton & Singh 2000):

        ρ_{0:t} = Π_{k=t₀}^{t} ρ_k,   ρ_k = π(a_k|s_k) / μ(a_k|s_k),

    where t₀ is the first step of the episode containing t (the product restarts after a step
    with ``done = 1``). Summed in log space. With ``max_ratio`` each factor is truncated to
    min(ρ̄, ρ_k), giving Retrace's trace products Π c_k (Munos et al. 2016, with λ = 1).

    Args:
      target_log_probs, behaviour_log_probs: ``[T, ...]`` floats.
      done: optional ``[T, ...]`` 0/1 flags, 1 where an episode ends at step t (termination or
        truncation); by default the whole sequence is one episode.
      max_ratio: optional truncation level ρ̄ > 0 for each factor.

    Returns:
      ``[T, ...]`` products ρ_{t₀:t}.
    """
    if isinstance(max_ratio, Number) and not max_ratio > 0:
        raise ValueError(f"`max_ratio` must be > 0, got {max_ratio}")
    (done,) = _check("target_log_probs", target_log_probs,
                     floats=dict(behaviour_log_probs=behaviour_log_probs),
                     flags=dict(done=jnp.zeros_like(target_log_probs) if done is None else done))
    log_ratios = target_log_probs - behaviour_log_probs
    if max_ratio is not None:
        log_ratios = jnp.minimum(jnp.log(max_ratio), log_ratios)
    same_episode = jnp.concatenate([jnp.ones_like(done[:1]), 1.0 - done[:-1]], axis=0)
    return jnp.exp(_accumulate(log_ratios, same_episode, jnp.zeros_like(log_ratios[0]),
                               reverse=False))


# --- off-policy evaluation


def _off_policy_estimate(rewards, target_log_probs, behaviour_log_probs, gamma, mask,
                         q_values=None, state_values=None, *, per_decision=True, weighted=False):
    """Σ_t γ^t Σ_i [W^i_t (r^i_t − Q̂^i_t) + W^i_{t−1} V̂^i_t]: every estimator below, with
    W^i_t = ρ^i_{0:t}/N (ρ^i_{0:T−1}/N trajectory-wise), self-normalised over episodes when
    ``weighted``, W^i_{−1} = 1/N, and Q̂ = V̂ = 0 for the importance-sampling estimators."""
    _check_unit("gamma", gamma)
    floats = dict(target_log_probs=target_log_probs, behaviour_log_probs=behaviour_log_probs)
    if q_values is not None:
        floats.update(q_values=q_values, state_values=state_values)
    (mask,) = _check("rewards", rewards, min_rank=2, floats=floats,
                     flags=dict(mask=jnp.ones_like(rewards) if mask is None else mask))
    chex.assert_rank(gamma, 0, custom_message="`gamma` must be a scalar")
    # Masked steps have ratio 1, so ρ_{0:t} stays at the episode's final product after its end.
    w = cumulative_importance_ratios(target_log_probs * mask, behaviour_log_probs * mask)
    if not per_decision:
        w = jnp.broadcast_to(w[-1], w.shape)
    w_prev = jnp.concatenate([jnp.ones_like(w[:1]), w[:-1]], axis=0)
    if weighted:
        w, w_prev = (x / jnp.sum(x, axis=1, keepdims=True) for x in (w, w_prev))
    else:
        w, w_prev = w / rewards.shape[1], w_prev / rewards.shape[1]
    terms = w * rewards
    if q_values is not None:
        terms = terms - w * q_values + w_prev * state_values
    discounts = jnp.asarray(gamma, rewards.dtype) ** jnp.arange(rewards.shape[0],
                                                                dtype=rewards.dtype)
    return jnp.einsum("t,tn...->...", discounts, terms * mask)


def trajectory_importance_sampling(rewards: Array, target_log_probs: Array,
                                   behaviour_log_probs: Array, gamma,
                                   mask: Array | None = None) -> Array:
    """Trajectory-wise (ordinary) importance sampling (Precup, Sutton & Singh 2000):

        V̂_IS = (1/N) Σ_i ρ^i_{0:H_i−1} Σ_t γ^t r^i_t.

    Unbiased for J(π) = E_π[Σ_t γ^t r_t]; high variance.

    Args:
      rewards, target_log_probs, behaviour_log_probs: ``[T, N, ...]`` floats (time, episodes, ...);
        the log-probs are log π(a_t|s_t) and log μ(a_t|s_t) of the logged actions.
      gamma: scalar discount in [0, 1].
      mask: optional ``[T, N, ...]`` 0/1, 1 while the episode is running.

    Returns:
      ``[...]`` estimate of J(π).
    """
    return _off_policy_estimate(rewards, target_log_probs, behaviour_log_probs, gamma, mask,
                                per_decision=False)


def per_decision_importance_sampling(rewards: Array, target_log_probs: Array,
                                     behaviour_log_probs: Array, gamma,
                                     mask: Array | None = None) -> Array:
    """Per-decision importance sampling (Precup, Sutton & Singh 2000):

        V̂_PDIS = (1/N) Σ_i Σ_t γ^t ρ^i_{0:t} r^i_t.

    Unbiased; each reward is weighted only by the ratios of the actions before it. Arguments
    as in :func:`trajectory_importance_sampling`.
    """
    return _off_policy_estimate(rewards, target_log_probs, behaviour_log_probs, gamma, mask)


def weighted_importance_sampling(rewards: Array, target_log_probs: Array,
                                 behaviour_log_probs: Array, gamma, mask: Array | None = None,
                                 per_decision: bool = True) -> Array:
    """Weighted (self-normalised) importance sampling. By default the weighted *per-decision*
    form (Precup, Sutton & Singh 2000; Thomas 2015, "Safe reinforcement learning", PhD thesis):

        V̂_WPDIS = Σ_t γ^t Σ_i (ρ^i_{0:t} / Σ_j ρ^j_{0:t}) r^i_t;

    with ``per_decision=False`` the weighted trajectory-wise form
    Σ_i ρ^i_{0:H−1} G^i / Σ_j ρ^j_{0:H−1}, G^i = Σ_t γ^t r^i_t. Biased but consistent, and of much
    lower variance than the ordinary forms. Arguments as in
    :func:`trajectory_importance_sampling`.
    """
    return _off_policy_estimate(rewards, target_log_probs, behaviour_log_probs, gamma, mask,
                                per_decision=per_decision, weighted=True)


def doubly_robust(rewards: Array, target_log_probs: Array, behaviour_log_probs: Array,
                  q_values: Array, state_values: Array, gamma, mask: Array | None = None) -> Array:
    """Sequential doubly robust estimator (Jiang & Li 2016, "Doubly robust off-policy value
    evaluation for reinforcement learning", ICML). Per episode,

        V_DR(t) = V̂(s_t) + ρ_t (r_t + γ V_DR(t+1) − Q̂(s_t, a_t)),   V_DR(H) = 0,

    which unrolls to V_DR(0) = Σ_t γ^t [ρ_{0:t} (r_t − Q̂(s_t, a_t)) + ρ_{0:t−1} V̂(s_t)]; the
    estimate is the mean over episodes. Unbiased for any Q̂ as long as
    V̂(s) = Σ_a π(a|s) Q̂(s, a); its variance falls as Q̂ approaches Q^π.

    Args:
      rewards, target_log_probs, behaviour_log_probs: as in :func:`trajectory_importance_sampling`.
      q_values: ``[T, N, ...]`` Q̂(s_t, a_t) of the logged actions.
      state_values: ``[T, N, ...]`` V̂(s_t) = E_{a∼π}[Q̂(s_t, a)].
      gamma: scalar discount in [0, 1].
      mask: optional ``[T, N, ...]`` 0/1, 1 while the episode is running.

    Returns:
      ``[...]`` estimate of J(π).
    """
    return _off_policy_estimate(rewards, target_log_probs, behaviour_log_probs, gamma, mask,
                                q_values, state_values)


def weighted_doubly_robust(rewards: Array, target_log_probs: Array, behaviour_log_probs: Array,
                           q_values: Array, state_values: Array, gamma,
                           mask: Array | None = None) -> Array:
    """Weighted doubly robust estimator (Thomas & Brunskill 2016, "Data-efficient off-policy
    policy evaluation for reinforcement learning", ICML):

        V̂_WDR = Σ_t γ^t Σ_i [w^i_t r^i_t − (w^i_t Q̂(s^i_t, a^i_t) − w^i_{t−1} V̂(s^i_t))],

    with self-normalised weights w^i_t = ρ^i_{0:t} / Σ_j ρ^j_{0:t} and w^i_{−1} = 1/N: weighted
    per-decision IS with Q̂/V̂ as a control variate. Arguments as in :func:`doubly_robust`.
    """
    return _off_policy_estimate(rewards, target_log_probs, behaviour_log_probs, gamma, mask,
                                q_values, state_values, weighted=True)


def normalize_advantages(advantages: chex.Array, eps: float = 1e-8) -> chex.Array:
    """``(Â − mean Â) / (std Â + eps)`` over the whole batch (all axes): the per-batch
    standardisation of advantages used with PPO, A2C, REINFORCE and TRPO (e.g. Schulman et al.
    2017's implementation; Andrychowicz et al. 2021, "What Matters in On-Policy RL")."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)
