"""Value losses and bootstrap targets for value-based and actor-critic methods.

Targets are per-transition: every argument is an array with any batch shape ``[...]``
(Q-values add a trailing action axis ``[..., A]``), the result has shape ``[...]`` and is
wrapped in :func:`jax.lax.stop_gradient`, so differentiating a loss never moves the
target. ``termination`` (1 or True: the next state is terminal) removes the bootstrap
term; a time-limit truncation is *not* a termination and bootstraps as usual
(README, "Design": time-major data). ``discount`` is γ itself; the bootstrap weight is
γ·(1 − termination).

Losses return a scalar: the mean over all elements, or, with ``mask`` (weights of the
per-sample shape), ``Σ mask·ℓ / Σ mask`` (0 when every weight is 0).

Built on and tested against rlax (``td_learning``, ``q_learning``, ``double_q_learning``,
``expected_sarsa``) and optax (``l2_loss``, ``huber_loss``), which work on one
transition at a time and return TD errors; here the targets are exposed separately so
an algorithm can mix and match them with a loss.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

from fnrl.losses._checks import (
    _check_action_values,
    _check_discount,
    _check_float,
    _check_positive,
    _check_same_shape,
    _masked_mean,
    _select,
)
from fnrl.types import Array

__all__ = [
    "action_value",
    "mse_loss",
    "huber_loss",
    "clipped_value_loss",
    "td_target",
    "q_learning_target",
    "double_q_target",
    "n_step_q_target",
    "expected_sarsa_target",
    "tabular_q_update",
    "ensemble_td_loss",
    "td_loss",
]

_LOSSES = ("mse", "huber")


def _greedy_value(next_q: Array, next_q_selector: Array | None) -> Array:
    """``Q(s', argmax_a' selector(s', a'))``; the selector defaults to ``next_q`` (max)."""
    if next_q_selector is None:
        return jnp.max(next_q, axis=-1)
    return _select(next_q, jnp.argmax(next_q_selector, axis=-1))


# --------------------------------------------------------------------------- losses
def action_value(q_values: Array, actions: Array) -> Array:
    """``Q(s, a)``: the value of each integer action ``actions [...]`` in ``q_values [..., A]``."""
    chex.assert_type(actions, int, custom_message="action_value: `actions` must be an integer array")
    _check_action_values("action_value", actions, q_values=q_values)
    return _select(q_values, actions)


def mse_loss(prediction: Array, target: Array, mask: Array | None = None) -> Array:
    """Squared-error regression loss ``mean ½ (v − sg(y))²``.

    The standard value-fitting loss (e.g. Mnih et al. 2015; Schulman et al. 2016): its
    gradient w.r.t. ``prediction`` is ``(v − y)/N``. Elementwise term from ``optax.l2_loss``.

    Args:
      prediction: ``v``, shape ``[...]``.
      target: ``y``, same shape; treated as a constant (stop-gradient).
      mask: optional weights ``[...]`` (see module docstring).
    Returns:
      scalar loss.
    """
    _check_same_shape("mse_loss", prediction=prediction, target=target)
    _check_float("mse_loss", prediction=prediction, target=target)
    return _masked_mean(optax.l2_loss(prediction, jax.lax.stop_gradient(target)), mask, "mse_loss")


def huber_loss(prediction: Array, target: Array, delta: float = 1.0, mask: Array | None = None) -> Array:
    """Huber loss (Huber 1964), as used for DQN's TD errors (Mnih et al. 2015).

    With ``x = v − sg(y)``::

        ℓ_δ(x) = ½ x²             if |x| ≤ δ
               = δ (|x| − ½ δ)    otherwise,

    quadratic inside ``[−δ, δ]`` and linear outside (gradient ``clip(x, −δ, δ)``).
    Elementwise term from ``optax.huber_loss`` (same as ``rlax.huber_loss(x, δ)``).

    Args:
      prediction: ``v``, shape ``[...]``.
      target: ``y``, same shape; treated as a constant.
      delta: δ > 0.
      mask: optional weights ``[...]``.
    Returns:
      scalar loss.
    """
    _check_same_shape("huber_loss", prediction=prediction, target=target)
    _check_float("huber_loss", prediction=prediction, target=target)
    _check_positive("huber_loss", "delta", delta)
    elementwise = optax.huber_loss(prediction, jax.lax.stop_gradient(target), delta=delta)
    return _masked_mean(elementwise, mask, "huber_loss")


def clipped_value_loss(
    value: Array, old_value: Array, target: Array, clip_epsilon: float, mask: Array | None = None
) -> Array:
    """PPO's clipped value loss (Schulman et al. 2017, as in OpenAI baselines' ``ppo2``).

    With ``v_clip = v_old + clip(v − v_old, −ε, ε)``::

        L = mean ½ max((v − y)², (v_clip − y)²),

    a pessimistic bound that stops the value function from moving more than ε away
    from the value that collected the data. Equals ``mse_loss(v, y)`` wherever
    ``|v − v_old| ≤ ε``.

    Args:
      value: ``v``, the current value prediction ``[...]``.
      old_value: ``v_old``, the prediction recorded at collection time ``[...]`` (constant).
      target: ``y``, e.g. GAE returns ``[...]`` (constant).
      clip_epsilon: ε > 0.
      mask: optional weights ``[...]``.
    Returns:
      scalar loss.
    """
    fn = "clipped_value_loss"
    _check_same_shape(fn, value=value, old_value=old_value, target=target)
    _check_float(fn, value=value, old_value=old_value, target=target)
    _check_positive(fn, "clip_epsilon", clip_epsilon)
    old_value, target = jax.lax.stop_gradient(old_value), jax.lax.stop_gradient(target)
    clipped = old_value + jnp.clip(value - old_value, -clip_epsilon, clip_epsilon)
    elementwise = jnp.maximum(optax.l2_loss(value, target), optax.l2_loss(clipped, target))
    return _masked_mean(elementwise, mask, fn)


# --------------------------------------------------------------------------- targets
def td_target(reward: Array, termination: Array, next_value: Array, discount) -> Array:
    """TD(0) target (Sutton 1988): ``y = r + γ (1 − term) V(s')``, stop-gradient.

    ``y − V(s)`` equals ``rlax.td_learning(V(s), r, γ(1 − term), V(s'))``.

    Args:
      reward: ``r``, shape ``[...]``.
      termination: 1/True where ``s'`` is terminal, shape ``[...]``.
      next_value: ``V(s')``, shape ``[...]``.
      discount: γ ∈ [0, 1], a scalar or an array ``[...]``.
    Returns:
      target ``[...]``.
    """
    fn = "td_target"
    _check_same_shape(fn, reward=reward, termination=termination, next_value=next_value)
    _check_float(fn, reward=reward, next_value=next_value)
    _check_discount(fn, discount, reward)
    bootstrap = discount * (1.0 - jnp.asarray(termination, reward.dtype))
    return jax.lax.stop_gradient(reward + bootstrap * next_value)


def q_learning_target(reward: Array, termination: Array, next_q: Array, discount) -> Array:
    """Q-learning / DQN target (Watkins 1989; Mnih et al. 2015).

    ``y = r + γ (1 − term) max_a' Q(s', a')``, stop-gradient; ``next_q`` normally
    comes from the target network. ``y − Q(s, a)`` equals ``rlax.q_learning``.

    Args:
      reward: ``r [...]``.
      termination: ``[...]``, 1/True where ``s'`` is terminal.
      next_q: ``Q(s', ·)``, shape ``[..., A]``.
      discount: γ, scalar or ``[...]``.
    Returns:
      target ``[...]``.
    """
    _check_action_values("q_learning_target", reward, next_q=next_q)
    return td_target(reward, termination, _greedy_value(next_q, None), discount)


def double_q_target(
    reward: Array, termination: Array, next_q_value: Array, next_q_selector: Array, discount
) -> Array:
    """Double-DQN target (van Hasselt, Guez & Silver 2016).

    ``y = r + γ (1 − term) Q_φ'(s', argmax_a' Q_φ(s', a'))``, stop-gradient: the *online*
    network ``Q_φ`` selects the action and the *target* network ``Q_φ'`` evaluates it.
    (The CS285 notes' "in practice" slide uses ``Q_φ'`` for both, a misprint.)
    ``y − Q(s, a)`` equals ``rlax.double_q_learning(..., q_t_value, q_t_selector)``.

    Args:
      reward: ``r [...]``.
      termination: ``[...]``.
      next_q_value: target-network ``Q_φ'(s', ·)``, ``[..., A]``, used for the value.
      next_q_selector: online-network ``Q_φ(s', ·)``, ``[..., A]``, used for the argmax.
      discount: γ, scalar or ``[...]``.
    Returns:
      target ``[...]``.
    """
    _check_action_values("double_q_target", reward, next_q_value=next_q_value, next_q_selector=next_q_selector)
    return td_target(reward, termination, _greedy_value(next_q_value, next_q_selector), discount)


def n_step_q_target(
    n_step_return: Array,
    termination: Array,
    next_q: Array,
    discount,
    n,
    next_q_selector: Array | None = None,
) -> Array:
    """Q target of an assembled n-step transition (Sutton 1988; Hessel et al. 2018, Rainbow).

    For ``(s_t, a_t, G = Σ_{k<n} γ^k r_{t+k}, s_{t+n})``::

        y = G + γ^n (1 − term) max_a' Q(s_{t+n}, a'),

    stop-gradient, where ``term`` says that the episode terminated within the n steps.
    ``n`` may be an integer array ``[...]``: the number of steps actually taken when a
    window was cut short (a truncation or the end of the buffer), which bootstraps from
    the last state with ``γ^n`` for that shorter n. With ``next_q_selector`` the argmax
    is taken over it (double Q). Summing rewards over sequences is
    :mod:`fnrl.estimators`' job; this is the per-transition target of replay-based DQN.

    Args:
      n_step_return: ``G [...]``.
      termination: ``[...]``, 1/True if a terminal state was reached within the n steps.
      next_q: ``Q(s_{t+n}, ·)``, ``[..., A]`` (target network).
      discount: γ, scalar or ``[...]``.
      n: number of steps, a positive int or an int array ``[...]``.
      next_q_selector: optional online ``Q(s_{t+n}, ·)`` ``[..., A]`` for double Q.
    Returns:
      target ``[...]``.
    """
    fn = "n_step_q_target"
    _check_action_values(fn, n_step_return, next_q=next_q)
    if next_q_selector is not None:
        _check_action_values(fn, n_step_return, next_q_selector=next_q_selector)
    if isinstance(n, int) and n < 1:
        raise ValueError(f"{fn}: `n` must be a positive number of steps, got {n}")
    _check_discount(fn, discount, n_step_return)
    bootstrap_discount = jnp.asarray(discount, n_step_return.dtype) ** n
    return td_target(n_step_return, termination, _greedy_value(next_q, next_q_selector), bootstrap_discount)


def expected_sarsa_target(
    reward: Array, termination: Array, next_q: Array, next_probs: Array, discount
) -> Array:
    """Expected-SARSA target (van Seijen et al. 2009).

    ``y = r + γ (1 − term) Σ_a' π(a'|s') Q(s', a')``, stop-gradient. With a greedy π it
    is the Q-learning target. ``y − Q(s, a)`` equals ``rlax.expected_sarsa``.

    Args:
      reward: ``r [...]``.
      termination: ``[...]``.
      next_q: ``Q(s', ·)``, ``[..., A]``.
      next_probs: ``π(·|s')``, ``[..., A]``, summing to 1 over the last axis.
      discount: γ, scalar or ``[...]``.
    Returns:
      target ``[...]``.
    """
    fn = "expected_sarsa_target"
    _check_action_values(fn, reward, next_q=next_q, next_probs=next_probs)
    _check_float(fn, next_probs=next_probs)
    return td_target(reward, termination, jnp.sum(next_probs * next_q, axis=-1), discount)


def tabular_q_update(q: Array, state: Array, action: Array, reward: Array, termination: Array,
                     next_state: Array, discount, learning_rate) -> Array:
    """One exact tabular Q-learning update (Watkins 1989; Sutton & Barto 2018, eq. 6.8).

    ``Q(s, a) ← Q(s, a) + α [r + γ (1 − term) max_a' Q(s', a') − Q(s, a)]``, every other entry
    unchanged: the :func:`q_learning_target` of one transition, as a step of size α on the
    table. A truncated step is no termination: it bootstraps from its (final) ``s'``. The
    bracket equals ``rlax.q_learning(Q(s), a, r, γ (1 − term), Q(s'))``.

    Args:
      q: the table ``Q [S, A]``, float.
      state, action, next_state: integer scalars ``s``, ``a``, ``s'``.
      reward: ``r``, a float scalar.
      termination: 1/True where ``s'`` is terminal, a scalar.
      discount: γ ∈ [0, 1].
      learning_rate: the step size α.
    Returns:
      the updated table ``[S, A]``.
    """
    fn = "tabular_q_update"
    chex.assert_rank(q, 2, custom_message=f"{fn}: `q` must be a table of shape [num_states, num_actions]")
    for name, x in (("state", state), ("action", action), ("next_state", next_state)):
        chex.assert_rank(x, 0, custom_message=f"{fn}: `{name}` must be an integer scalar")
        chex.assert_type(x, int, custom_message=f"{fn}: `{name}` must be an integer scalar")
    reward, termination = jnp.asarray(reward), jnp.asarray(termination)
    for name, x in (("reward", reward), ("termination", termination)):
        chex.assert_rank(x, 0, custom_message=f"{fn}: `{name}` must be a scalar")
    target = q_learning_target(reward, termination, q[next_state], discount)
    return q.at[state, action].add(learning_rate * (target - q[state, action]))


def td_loss(
    q_values: Array,
    actions: Array,
    target: Array,
    loss: str = "huber",
    delta: float = 1.0,
    mask: Array | None = None,
) -> Array:
    """TD regression of ``Q(s, a)`` onto a bootstrap target (DQN: Mnih et al. 2015).

    ``L = mean ℓ(Q(s, a) − sg(y))`` with ℓ the Huber loss (``loss="huber"``, δ=``delta``)
    or ``½ x²`` (``loss="mse"``). ``y`` comes from one of :func:`td_target`,
    :func:`q_learning_target`, :func:`double_q_target`, :func:`n_step_q_target`,
    :func:`expected_sarsa_target`; only the chosen action's Q-value receives gradient.

    Args:
      q_values: ``Q(s, ·)``, ``[..., A]``.
      actions: integer actions ``[...]``.
      target: ``y [...]``.
      loss: ``"huber"`` or ``"mse"``.
      delta: Huber threshold δ > 0.
      mask: optional weights ``[...]``.
    Returns:
      scalar loss.
    """
    fn = "td_loss"
    if loss not in _LOSSES:
        raise ValueError(f"{fn}: unknown `loss` {loss!r}; expected one of {_LOSSES}")
    chex.assert_type(actions, int, custom_message=f"{fn}: `actions` must be an integer array")
    _check_same_shape(fn, actions=actions, target=target)
    _check_action_values(fn, target, q_values=q_values)
    q_sa = _select(q_values, actions)
    if loss == "mse":
        return mse_loss(q_sa, target, mask)
    return huber_loss(q_sa, target, delta, mask)


def ensemble_td_loss(q: Array, target: Array, weights: Array | None = None) -> tuple[Array, Array]:
    """Regression of an ensemble of ``K`` critics onto one target (DDPG, TD3, SAC critics).

    ``L = Σ_k Ê_w[½ (Q_k(s, a) − sg(y))²]``, the sum of the critics' :func:`mse_loss` (each
    weighted by ``weights``, e.g. prioritised replay's importance weights), so that every
    critic gets the gradient of its own regression; with clipped double Q (Fujimoto et al.
    2018) ``y`` already holds the minimum over the target critics.

    Args:
      q: ``Q_k(s, a)``, ``[K, B]``.
      target: ``y``, ``[B]``.
      weights: optional ``[B]``.
    Returns:
      ``(loss, td_error)``: the scalar loss and the critics' mean TD error ``[B]``
      (``|td_error|`` is the usual priority).
    """
    chex.assert_rank(q, 2)
    chex.assert_shape(target, q.shape[1:])
    targets = jnp.broadcast_to(target, q.shape)
    masks = None if weights is None else jnp.broadcast_to(weights, q.shape)
    return q.shape[0] * mse_loss(q, targets, mask=masks), jnp.mean(q - target, axis=0)
