"""Haiku networks for every algorithm family: torsos, policy heads, values, Q ensembles, VAE
and dynamics-model ensembles.

Factories take the environment :class:`~fnrl.envs.core.Spec` (which picks the heads) and a
:class:`Torso` (the MLP configuration) and return pure haiku transforms, so a network is an
``init``/``apply`` pair that works under ``jit``, ``grad`` and ``vmap`` (over inputs, and over
parameters for many seeds: ``jax.vmap(net.init)(keys, obs)``)::

    net = make_actor_critic(spec, Torso((64, 64), "tanh", orthogonal_init=True))
    params = net.init(key, obs)
    dist, value = net.apply(params, obs)          # distrax distribution, V(s)

======================================  ==================================================
factory                                 ``apply``
======================================  ==================================================
:func:`make_policy`                     ``(params, obs) -> distribution``
:func:`make_value`                      ``(params, obs) -> V  [*batch]``
:func:`make_actor_critic`               ``(params, obs) -> (distribution, V)``
:func:`make_deterministic_policy`       ``(params, obs) -> action in (-1, 1)``
:func:`make_q_network`                  discrete ``(params, obs) -> Q [*batch, A]``;
                                        continuous ``(params, obs, action) -> Q [*batch]``;
                                        ensembles add a leading member axis ``[N, ...]``
:func:`make_dynamics_ensemble`          ``(params, obs, action) -> Gaussian over (s'-s, r)``
:func:`make_vae`                        :class:`VAE` ``(init, encode, decode)``
======================================  ==================================================

Observations have shape ``[*batch, *spec.observation_shape]`` with any leading batch dims
(time-major ``[T, B, ...]`` included) and are flattened to vectors. Discrete actions are
integer scalars; continuous actions are vectors ``[*batch, d]``. Squashed outputs
(:func:`tanh_gaussian_head`, :func:`deterministic_head`) lie in ``(-1, 1)``: the environment's
action-rescaling wrapper maps them onto the bounds.

The heads (:func:`categorical_head`, :func:`gaussian_head`, ...) and :func:`ensemble` are the
building blocks, to be called inside ``hk.transform`` for custom networks.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import chex
import distrax
import haiku as hk
import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from fnrl.envs.core import Spec

__all__ = [
    "Torso",
    "diag_gaussian",
    "TanhNormal",
    "categorical_head",
    "gaussian_head",
    "tanh_gaussian_head",
    "deterministic_head",
    "value_head",
    "ensemble",
    "soft_clamp",
    "make_policy",
    "make_value",
    "make_actor_critic",
    "make_deterministic_policy",
    "make_q_network",
    "make_dynamics_ensemble",
    "dynamics_log_std_bounds",
    "VAE",
    "make_vae",
]

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
}
DISTRIBUTIONS = ("auto", "categorical", "gaussian", "tanh_gaussian")
LOG_STD_BOUNDS = (-5.0, 2.0)


# --------------------------------------------------------------------------- torso


@dataclasses.dataclass(frozen=True)
class Torso:
    """Configuration of an MLP torso; calling it inside ``hk.transform`` builds the layers.

    ``h_{i+1} = act(LN(W_i h_i + b_i))`` for each hidden size, ``LN`` only with ``layer_norm``
    (Ba et al. 2016). With ``orthogonal_init`` the hidden weights are orthogonal with gain √2
    and biases zero (Saxe et al. 2014), and the factories give policy heads gain 0.01 and
    value/Q heads gain 1 — the PPO initialisation of Engstrom et al. 2020 and Andrychowicz et
    al. 2021 ("What matters in on-policy RL"). Otherwise haiku's default (truncated normal,
    std 1/√fan_in) is used. ``hidden_sizes=()`` gives linear heads on the raw input.

    Attributes:
      hidden_sizes: width of each hidden layer.
      activation: one of ``relu``, ``tanh``, ``elu``, ``gelu``, ``silu``.
      layer_norm: layer normalisation after each linear layer, before the activation.
      orthogonal_init: PPO-style orthogonal initialisation (above).
    """

    hidden_sizes: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    orthogonal_init: bool = False

    def __post_init__(self):
        sizes = tuple(self.hidden_sizes)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise ValueError(f"Torso.hidden_sizes must be positive integers, got {sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"Torso.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        object.__setattr__(self, "hidden_sizes", sizes)

    def __call__(self, x: chex.Array, name: str = "torso") -> chex.Array:
        """Features ``[*batch, hidden_sizes[-1]]`` of inputs ``x`` ``[*batch, n]`` (``x`` itself
        when ``hidden_sizes`` is empty)."""
        _assert_vectors(x, "Torso input x")
        return _MLP(self, name=name)(x)


def _assert_vectors(x: chex.Array, what: str) -> None:
    """``x`` must be a batch of vectors ``[*batch, n]`` (rank >= 1)."""
    chex.assert_rank(x, {*range(1, 9)}, custom_message=f"{what} must be [*batch, n]")


class _MLP(hk.Module):
    def __init__(self, torso: Torso, name: str):
        super().__init__(name=name)
        self._torso = torso

    def __call__(self, x):
        t = self._torso
        w_init = hk.initializers.Orthogonal(math.sqrt(2.0)) if t.orthogonal_init else None
        for i, size in enumerate(t.hidden_sizes):
            x = hk.Linear(size, w_init=w_init, name=f"linear_{i}")(x)
            if t.layer_norm:
                x = hk.LayerNorm(-1, create_scale=True, create_offset=True, name=f"norm_{i}")(x)
            x = ACTIVATIONS[t.activation](x)
        return x


def _head_init(torso: Torso, gain: float):
    """Orthogonal(gain) for a head on an orthogonally initialised torso, else haiku's default."""
    return hk.initializers.Orthogonal(gain) if torso.orthogonal_init else None


# --------------------------------------------------------------------------- distributions


def diag_gaussian(loc: chex.Array, scale: chex.Array) -> distrax.Independent:
    """Diagonal Gaussian ``N(loc, diag(scale²))`` over the last axis:
    ``log p(x) = Σ_i log N(x_i; loc_i, scale_i)``.

    ``distrax.Independent(distrax.Normal(loc, scale), 1)`` — the same distribution as
    ``distrax.MultivariateNormalDiag`` (``kl_divergence``, ``entropy``, ``sample_and_log_prob``
    ...), but it can be returned from ``jit``/``vmap``: in distrax 0.1.9 a
    ``MultivariateNormalDiag`` built under ``jit`` leaks a tracer when used outside it.
    """
    chex.assert_equal_shape([loc, scale], custom_message="diag_gaussian: loc and scale")
    _assert_vectors(loc, "diag_gaussian: loc")
    return distrax.Independent(distrax.Normal(loc, scale), reinterpreted_batch_ndims=1)


def _clip_open(y: chex.Array) -> chex.Array:
    """``y`` clipped to ``[-(1 - eps), 1 - eps]``, inside the open interval ``(-1, 1)``."""
    bound = 1.0 - jnp.finfo(y.dtype).eps
    return jnp.clip(y, -bound, bound)


class _StableTanh(distrax.Tanh):
    """``distrax.Tanh`` kept strictly inside ``(-1, 1)``: in float32 ``tanh(u)`` rounds to
    ``±1`` for ``|u| > 9``, and ``atanh(±1) = ±inf``. Forward outputs and inverse inputs are
    clipped to ``±(1 - eps)`` (the log-determinant is still computed from ``u``), so samples
    are valid actions and ``log_prob`` of any action in ``[-1, 1]`` is finite."""

    def forward_and_log_det(self, x):
        y, log_det = super().forward_and_log_det(x)
        return _clip_open(y), log_det

    def inverse_and_log_det(self, y):
        return super().inverse_and_log_det(_clip_open(y))


class TanhNormal(distrax.Transformed):
    """Tanh-squashed diagonal Gaussian: ``a = tanh(u)``, ``u ~ N(loc, diag(scale²))``.

    Change of variables (Haarnoja et al. 2018, "Soft Actor-Critic", appendix C)::

        log π(a) = log N(u; loc, scale) − Σ_i log(1 − tanh²(u_i)),   u = atanh(a)

    built on ``distrax.Transformed`` with ``distrax.Block(distrax.Tanh(), 1)``; distrax
    evaluates ``log(1 − tanh²(u)) = 2(log 2 − u − softplus(−2u))``, stable for large ``|u|``.
    Prefer ``sample_and_log_prob`` (computed from ``u``, exact) to ``log_prob(sample)``:
    ``log_prob`` must invert ``tanh``; actions are kept within ``±(1 − eps)`` (see
    ``_StableTanh``), so samples lie in the open interval and every ``log_prob`` is finite.

    ``mode()`` returns ``tanh(loc)``, the conventional deterministic (evaluation) action; the
    density's own mode can differ. The entropy has no closed form: estimate it with
    ``-sample_and_log_prob(seed=...)[1]``.
    """

    def __init__(self, loc: chex.Array, scale: chex.Array):
        super().__init__(diag_gaussian(loc, scale), distrax.Block(_StableTanh(), ndims=1))

    def mode(self) -> chex.Array:
        return self.bijector.forward(self.distribution.mode())


# --------------------------------------------------------------------------- heads


def categorical_head(h: chex.Array, num_actions: int, *, w_init=None) -> distrax.Categorical:
    """Softmax policy ``π(a|s) = softmax(W h + b)_a`` over ``num_actions`` actions."""
    _assert_vectors(h, "categorical_head: h")
    return distrax.Categorical(logits=hk.Linear(num_actions, w_init=w_init, name="logits")(h))


class _GaussianParams(hk.Module):
    """Mean and standard deviation of a diagonal Gaussian head (see :func:`gaussian_head`)."""

    def __init__(self, size, state_dependent_std, log_std_bounds, init_log_std, w_init, name):
        super().__init__(name=name)
        _check_log_std(log_std_bounds, init_log_std)
        self._size, self._state_dependent = size, state_dependent_std
        self._bounds, self._init, self._w_init = log_std_bounds, init_log_std, w_init

    def __call__(self, h):
        (lo, hi), size = self._bounds, self._size
        # Raw value whose bounded image is init_log_std (inverse of the squashing below).
        raw_init = hk.initializers.Constant(math.atanh(2 * (self._init - lo) / (hi - lo) - 1))
        mean = hk.Linear(size, w_init=self._w_init, name="mean")(h)
        if self._state_dependent:
            raw = hk.Linear(size, w_init=self._w_init, b_init=raw_init, name="log_std")(h)
        else:
            raw = jnp.broadcast_to(hk.get_parameter("log_std", (size,), init=raw_init), mean.shape)
        log_std = lo + 0.5 * (hi - lo) * (jnp.tanh(raw) + 1.0)
        return mean, jnp.exp(log_std)


def _check_log_std(log_std_bounds, init_log_std) -> None:
    lo, hi = log_std_bounds
    if not lo < init_log_std < hi:
        raise ValueError(
            f"need log_std_bounds[0] < init_log_std < log_std_bounds[1], got "
            f"log_std_bounds={tuple(log_std_bounds)!r}, init_log_std={init_log_std!r}"
        )


def gaussian_head(
    h: chex.Array,
    size: int,
    *,
    state_dependent_std: bool = False,
    log_std_bounds: tuple[float, float] = LOG_STD_BOUNDS,
    init_log_std: float = 0.0,
    w_init=None,
    name: str = "gaussian_head",
) -> distrax.Independent:
    """Diagonal Gaussian ``N(μ(h), diag σ²)`` with a bounded log standard deviation.

    ``μ = W h + b``; ``log σ = lo + ½(hi − lo)(tanh(ρ) + 1) ∈ (lo, hi)``, where ``ρ`` is a free
    parameter vector (state-independent, as in PPO: Schulman et al. 2017) or ``W' h + b'``
    (state-dependent, as in SAC: Haarnoja et al. 2018). The smooth bound keeps gradients
    everywhere (a hard clip would not); ``ρ`` starts where ``log σ = init_log_std``.
    """
    _assert_vectors(h, "gaussian_head: h")
    params = _GaussianParams(size, state_dependent_std, log_std_bounds, init_log_std, w_init, name)
    return diag_gaussian(*params(h))


def tanh_gaussian_head(
    h: chex.Array,
    size: int,
    *,
    state_dependent_std: bool = True,
    log_std_bounds: tuple[float, float] = LOG_STD_BOUNDS,
    init_log_std: float = 0.0,
    w_init=None,
    name: str = "tanh_gaussian_head",
) -> TanhNormal:
    """:class:`TanhNormal` policy ``a = tanh(u)``, ``u ~`` :func:`gaussian_head` (SAC)."""
    _assert_vectors(h, "tanh_gaussian_head: h")
    params = _GaussianParams(size, state_dependent_std, log_std_bounds, init_log_std, w_init, name)
    return TanhNormal(*params(h))


def deterministic_head(h: chex.Array, size: int, *, w_init=None) -> chex.Array:
    """Deterministic policy ``μ(s) = tanh(W h + b) ∈ (−1, 1)^size`` (DDPG: Lillicrap et al.
    2016; TD3: Fujimoto et al. 2018)."""
    _assert_vectors(h, "deterministic_head: h")
    return jnp.tanh(hk.Linear(size, w_init=w_init, name="action")(h))


def value_head(h: chex.Array, *, w_init=None) -> chex.Array:
    """Scalar value ``V(s) = w·h + b``, shape ``[*batch]``."""
    _assert_vectors(h, "value_head: h")
    return hk.Linear(1, w_init=w_init, name="value")(h)[..., 0]


def ensemble(fn: Callable[..., Any], size: int, *, name: str = "ensemble") -> Callable[..., Any]:
    """``size`` independently initialised copies of ``fn``, applied to the same inputs.

    Call inside ``hk.transform``. ``fn(*arrays)`` builds its own haiku modules and returns a
    pytree of arrays; the returned function gives every output a leading member axis
    ``[size, ...]``. The members' parameters are stacked along a leading axis (``jax.vmap`` of
    the member's ``init`` over ``size`` keys, registered with ``hk.lift``), so one forward pass
    evaluates all members in parallel and gradients of member ``i`` touch only slice ``i``.
    Called with ``member_axis=True`` the inputs carry a leading ``[size]`` axis too and member
    ``i`` sees only slice ``i`` of them (each member on its own data, e.g. a bootstrap sample).
    Used for twin/ensemble critics (TD3: Fujimoto et al. 2018; REDQ: Chen et al. 2021) and
    probabilistic dynamics ensembles (PETS: Chua et al. 2018).
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"ensemble {name!r}: size must be a positive integer, got {size!r}")
    member = hk.without_apply_rng(hk.transform(fn))

    def apply(*args, member_axis: bool = False):
        if member_axis:
            for i, x in enumerate(jax.tree_util.tree_leaves(args)):
                chex.assert_axis_dimension(x, 0, size, custom_message=(
                    f"ensemble {name!r}: with member_axis=True input {i} needs a leading axis of {size} members"))
        axes = (0,) + ((0 if member_axis else None),) * len(args)
        keys = hk.next_rng_keys(size) if hk.running_init() else None
        params = hk.lift(jax.vmap(member.init, in_axes=axes), name=name)(keys, *args)
        return jax.vmap(member.apply, in_axes=axes)(params, *args)

    return apply


def soft_clamp(x: chex.Array, lower: chex.Array, upper: chex.Array) -> chex.Array:
    """``x`` bounded smoothly below by ``lower`` and above by ``upper`` (PETS: Chua et al. 2018,
    appendix A.1, where the bounds on a predicted log-variance are learned)::

        y = upper − softplus(upper − x),   soft_clamp(x) = lower + softplus(y − lower)

    ``≈ x`` well inside ``(lower, upper)``; never below ``lower`` and never above
    ``upper + log(1 + e^{−(upper − lower)})`` (the second softplus's tail: ``upper + 0.004``
    for PETS's bounds); smooth, with gradients to ``lower`` and ``upper`` as well, so the
    bounds can be parameters. The arrays broadcast against each other.
    """
    y = upper - jax.nn.softplus(upper - x)
    return lower + jax.nn.softplus(y - lower)


# --------------------------------------------------------------------------- inputs


def _flatten_obs(obs: chex.Array, spec: Spec) -> tuple[chex.Array, tuple[int, ...]]:
    """``[*batch, *observation_shape]`` -> (``[*batch, prod(observation_shape)]``, batch)."""
    obs = jnp.asarray(obs)
    shape = tuple(spec.observation_shape)
    dims = ", ".join(map(str, ("*batch",) + shape))
    chex.assert_shape(obs, (..., *shape),
                      custom_message=f"obs must be [{dims}]: batch dims, then spec.observation_shape")
    batch = obs.shape[: obs.ndim - len(shape)]
    return obs.reshape(batch + (math.prod(shape),)).astype(jnp.float32), batch


def _action_features(action: chex.Array, spec: Spec, batch: tuple[int, ...]) -> chex.Array:
    """Continuous actions as they are; discrete ones one-hot."""
    action = jnp.asarray(action)
    if spec.discrete:
        chex.assert_shape(
            action, batch, custom_message=f"discrete action must be integers of the obs batch shape {batch}"
        )
        chex.assert_type(action, int, custom_message="discrete action must be integers")
        return jax.nn.one_hot(action, spec.num_actions)
    chex.assert_shape(
        action, batch + tuple(spec.action_shape),
        custom_message=f"action must be [*batch, *{tuple(spec.action_shape)}] with the obs batch {batch}",
    )
    return action.astype(jnp.float32)


def _action_size(spec: Spec, who: str) -> int:
    """Size of a continuous action vector; a clear error for discrete or non-vector actions."""
    if spec.discrete:
        raise ValueError(f"{who} needs a continuous action space, but the spec is discrete "
                         f"(num_actions={spec.num_actions})")
    if len(spec.action_shape) != 1:
        raise ValueError(f"{who} needs vector actions, got spec.action_shape={spec.action_shape!r}")
    return spec.action_shape[0]


def _policy_head(spec, torso, distribution, state_dependent_std, log_std_bounds, init_log_std):
    """Validates the options and returns ``features -> distribution``."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if distribution == "auto":
        distribution = "categorical" if spec.discrete else "gaussian"
    w_init = _head_init(torso, 0.01)
    if distribution == "categorical":
        if not spec.discrete:
            raise ValueError("distribution='categorical' needs a discrete action space; "
                             "use 'gaussian' or 'tanh_gaussian' for continuous actions")
        return lambda h: categorical_head(h, spec.num_actions, w_init=w_init)
    size = _action_size(spec, f"distribution={distribution!r}")
    _check_log_std(log_std_bounds, init_log_std)
    head = gaussian_head if distribution == "gaussian" else tanh_gaussian_head
    if state_dependent_std is None:  # the head's own default: PPO-style / SAC-style
        state_dependent_std = distribution == "tanh_gaussian"
    return lambda h: head(h, size, state_dependent_std=state_dependent_std,
                          log_std_bounds=log_std_bounds, init_log_std=init_log_std, w_init=w_init)


# --------------------------------------------------------------------------- factories


def make_policy(
    spec: Spec,
    torso: Torso = Torso(),
    *,
    distribution: str = "auto",
    state_dependent_std: bool | None = None,
    log_std_bounds: tuple[float, float] = LOG_STD_BOUNDS,
    init_log_std: float = 0.0,
) -> hk.Transformed:
    """Stochastic policy ``π(·|s)``: ``init(key, obs)``, ``apply(params, obs) -> distribution``.

    ``distribution``: ``categorical`` (discrete), ``gaussian`` (continuous, unbounded: PPO,
    TRPO), ``tanh_gaussian`` (continuous in (−1, 1): SAC), or ``auto`` (categorical if
    ``spec.discrete`` else gaussian). The distribution's batch shape is the observations'
    batch shape. Gaussian options (see :func:`gaussian_head`): ``state_dependent_std``
    (default ``None``: a free log-std vector for ``gaussian``, as in PPO; a log-std output
    layer for ``tanh_gaussian``, as in SAC), ``log_std_bounds`` and ``init_log_std``.
    """
    head = _policy_head(spec, torso, distribution, state_dependent_std, log_std_bounds, init_log_std)

    def forward(obs):
        x, _ = _flatten_obs(obs, spec)
        return head(torso(x, name="policy_torso"))

    return hk.without_apply_rng(hk.transform(forward))


def make_value(spec: Spec, torso: Torso = Torso()) -> hk.Transformed:
    """State value ``V(s)``: ``init(key, obs)``, ``apply(params, obs) -> [*batch]``."""

    def forward(obs):
        x, _ = _flatten_obs(obs, spec)
        return value_head(torso(x, name="value_torso"), w_init=_head_init(torso, 1.0))

    return hk.without_apply_rng(hk.transform(forward))


def make_actor_critic(
    spec: Spec,
    torso: Torso = Torso(),
    *,
    shared_torso: bool = False,
    critic_torso: Torso | None = None,
    distribution: str = "auto",
    state_dependent_std: bool | None = None,
    log_std_bounds: tuple[float, float] = LOG_STD_BOUNDS,
    init_log_std: float = 0.0,
) -> hk.Transformed:
    """Policy and value in one network: ``apply(params, obs) -> (distribution, V [*batch])``.

    With ``shared_torso`` both heads read one torso (Mnih et al. 2016, A3C), so the value loss
    also shapes the policy's features; otherwise the policy uses ``torso`` and the value
    ``critic_torso`` (default: the same configuration), with separate parameters. The policy
    options are those of :func:`make_policy`.
    """
    if shared_torso and critic_torso is not None:
        raise ValueError("critic_torso must be None when shared_torso=True (one torso is shared)")
    head = _policy_head(spec, torso, distribution, state_dependent_std, log_std_bounds, init_log_std)
    critic_torso = critic_torso or torso

    def forward(obs):
        x, _ = _flatten_obs(obs, spec)
        if shared_torso:
            h_pi = h_v = torso(x, name="shared_torso")
        else:
            h_pi, h_v = torso(x, name="policy_torso"), critic_torso(x, name="value_torso")
        return head(h_pi), value_head(h_v, w_init=_head_init(critic_torso, 1.0))

    return hk.without_apply_rng(hk.transform(forward))


def make_deterministic_policy(spec: Spec, torso: Torso = Torso()) -> hk.Transformed:
    """Deterministic policy (DDPG, TD3): ``apply(params, obs) -> action [*batch, d] in (−1, 1)``
    (see :func:`deterministic_head`)."""
    size = _action_size(spec, "make_deterministic_policy")

    def forward(obs):
        x, _ = _flatten_obs(obs, spec)
        return deterministic_head(torso(x, name="policy_torso"), size, w_init=_head_init(torso, 0.01))

    return hk.without_apply_rng(hk.transform(forward))


def make_q_network(spec: Spec, torso: Torso = Torso(), *, num_critics: int | None = None) -> hk.Transformed:
    """Action values.

    Discrete spec: ``Q(s, ·)`` for all actions (DQN: Mnih et al. 2015),
    ``apply(params, obs) -> [*batch, num_actions]``. Continuous spec: ``Q(s, a)`` on the
    concatenation ``[s, a]`` (DDPG/TD3/SAC), ``apply(params, obs, action) -> [*batch]``.
    With ``num_critics=N`` the outputs gain a leading axis ``[N, ...]`` of independently
    initialised critics (twin critics: ``N=2``; see :func:`ensemble`).
    """
    w_init = _head_init(torso, 1.0)
    if spec.discrete:
        def member(x):
            return hk.Linear(spec.num_actions, w_init=w_init, name="q")(torso(x, name="q_torso"))
    else:
        _action_size(spec, "make_q_network")

        def member(x, a):
            h = torso(jnp.concatenate([x, a], axis=-1), name="q_torso")
            return hk.Linear(1, w_init=w_init, name="q")(h)[..., 0]

    q = member if num_critics is None else ensemble(member, num_critics, name="critics")

    def forward(obs, action=None):
        x, batch = _flatten_obs(obs, spec)
        if spec.discrete:
            if action is not None:
                raise ValueError("a discrete Q-network computes Q(s, ·) for all actions: "
                                 "call apply(params, obs) without an action")
            return q(x)
        if action is None:
            raise ValueError("a continuous Q-network computes Q(s, a): call apply(params, obs, action)")
        return q(x, _action_features(action, spec, batch))

    return hk.without_apply_rng(hk.transform(forward))


def make_multi_head_q_network(spec: Spec, torso: Torso = Torso(), *, num_heads: int,
                              prior_scale: float = 0.0) -> hk.Transformed:
    """``K = num_heads`` action-value heads on one shared torso, for a discrete spec
    (bootstrapped DQN: Osband et al. 2016): ``apply(params, obs) -> [K, *batch, num_actions]``.

    With randomised prior functions (Osband et al. 2018) each head is ``Q_k = f_k + s · p_k``:
    ``p`` a second network of the same shape, randomly initialised and never trained (its
    output is under ``stop_gradient``), ``s = prior_scale`` (it is always built, so ``s`` may be
    traced, e.g. swept; ``s = 0`` gives the plain heads).
    """
    if not spec.discrete:
        raise ValueError("make_multi_head_q_network: needs a discrete-action spec")
    w_init = _head_init(torso, 1.0)

    def heads(x, batch, name):
        q = hk.Linear(num_heads * spec.num_actions, w_init=w_init, name=f"{name}_heads")(torso(x, name=f"{name}_torso"))
        return jnp.moveaxis(q.reshape(batch + (num_heads, spec.num_actions)), -2, 0)

    def forward(obs):
        x, batch = _flatten_obs(obs, spec)
        return heads(x, batch, "q") + prior_scale * jax.lax.stop_gradient(heads(x, batch, "prior"))

    return hk.without_apply_rng(hk.transform(forward))


class _LearnedBoundGaussianParams(hk.Module):
    """Mean and standard deviation with learned soft log-σ bounds (PETS; see
    :func:`make_dynamics_ensemble`)."""

    def __init__(self, size, log_std_bounds, w_init, name):
        super().__init__(name=name)
        self._size, self._bounds, self._w_init = size, log_std_bounds, w_init

    def __call__(self, h):
        (lo, hi), size = self._bounds, self._size
        mean = hk.Linear(size, w_init=self._w_init, name="mean")(h)
        raw = hk.Linear(size, w_init=self._w_init, name="log_std")(h)
        lower = hk.get_parameter("min_log_std", (size,), init=hk.initializers.Constant(lo))
        upper = hk.get_parameter("max_log_std", (size,), init=hk.initializers.Constant(hi))
        return mean, jnp.exp(soft_clamp(raw, lower, upper))


def make_dynamics_ensemble(
    spec: Spec,
    torso: Torso = Torso(),
    *,
    num_models: int = 5,
    log_std_bounds: tuple[float, float] = LOG_STD_BOUNDS,
    learned_log_std_bounds: bool = False,
) -> hk.Transformed:
    """Probabilistic ensemble of dynamics models (PETS: Chua et al. 2018; MBPO: Janner et al.
    2019): member ``i`` predicts ``N(μ_i(s, a), diag σ_i²(s, a))`` over the target
    ``y = [s' − s, r]`` (flattened state change, then the reward).

    ``apply(params, obs, action) ->`` a :func:`diag_gaussian` with batch shape
    ``[num_models, *batch]`` and event ``[prod(observation_shape) + 1]``; train with
    ``−log_prob(y)`` (:func:`fnrl.losses.gaussian_nll_loss`). With ``per_member=True``,
    ``obs`` and ``action`` carry a leading ``[num_models]`` axis and member ``i`` predicts for
    slice ``i`` only (each member on its own bootstrap sample). Discrete actions are one-hot
    encoded.

    ``log σ`` is state-dependent and bounded. By default the bounds are fixed and smooth, as
    in :func:`gaussian_head`: ``log σ = lo + ½(hi − lo)(tanh(ρ) + 1)``. With
    ``learned_log_std_bounds=True`` they are parameters per member and output dimension, as in
    PETS: ``log σ = soft_clamp(ρ, min_log_std, max_log_std)`` (:func:`soft_clamp`), starting
    at ``log_std_bounds``; the training loss adds a small penalty
    ``λ(Σ max_log_std − Σ min_log_std)`` that pulls them together (read them from the
    parameters with :func:`dynamics_log_std_bounds`), so that σ is bounded where there is no
    data while the bounds stay where the data put them.
    """
    size = math.prod(spec.observation_shape) + 1
    if not spec.discrete:
        _action_size(spec, "make_dynamics_ensemble")
    lo, hi = log_std_bounds
    if not lo < hi:
        raise ValueError(f"make_dynamics_ensemble: need log_std_bounds[0] < log_std_bounds[1], got {tuple(log_std_bounds)!r}")
    w_init = _head_init(torso, 1.0)

    def member(x, a):
        h = torso(jnp.concatenate([x, a], axis=-1), name="model_torso")
        if learned_log_std_bounds:
            return _LearnedBoundGaussianParams(size, log_std_bounds, w_init, name="model_head")(h)
        return _GaussianParams(size, True, log_std_bounds, 0.0, w_init, name="model_head")(h)

    models = ensemble(member, num_models, name="models")

    def forward(obs, action, per_member: bool = False):
        x, batch = _flatten_obs(obs, spec)
        if per_member:
            chex.assert_axis_dimension(x, 0, num_models, custom_message=(
                f"make_dynamics_ensemble: with per_member=True obs needs a leading axis of {num_models} members"))
        # Distributions are built outside the member vmap, from stacked arrays.
        return diag_gaussian(*models(x, _action_features(action, spec, batch), member_axis=per_member))

    return hk.without_apply_rng(hk.transform(forward))


def dynamics_log_std_bounds(params: hk.Params) -> tuple[chex.Array, chex.Array]:
    """The learned ``(min_log_std, max_log_std)`` of a :func:`make_dynamics_ensemble` built with
    ``learned_log_std_bounds=True``, each ``[num_models, prod(observation_shape) + 1]`` (with
    any leading axes of stacked parameters, e.g. seeds)."""
    found = {name: value for module in params.values() for name, value in module.items()
             if name in ("min_log_std", "max_log_std")}
    if len(found) != 2:
        raise ValueError("dynamics_log_std_bounds: these parameters have no learned log-std bounds; "
                         "build the model with make_dynamics_ensemble(..., learned_log_std_bounds=True)")
    return found["min_log_std"], found["max_log_std"]


class VAE(NamedTuple):
    """A Gaussian VAE's pure functions (from :func:`make_vae`).

    Attributes:
      init: ``init(key, x, c=None) -> params``.
      encode: ``encode(params, x, c=None) -> q(z | x, c)``, a :func:`diag_gaussian`.
      decode: ``decode(params, z, c=None) -> p(x | z, c)``, a :func:`diag_gaussian`.
    """

    init: Callable
    encode: Callable
    decode: Callable


def make_vae(
    data_size: int,
    latent_size: int,
    torso: Torso = Torso(),
    *,
    condition_size: int | None = None,
    log_std_bounds: tuple[float, float] = LOG_STD_BOUNDS,
    squash: bool = False,
    decoder_std: float | None = None,
) -> VAE:
    """Gaussian VAE (Kingma & Welling 2014), conditional with ``condition_size`` (Sohn et al.
    2015).

    Encoder ``q(z | x[, c]) = N(μ_φ, diag σ_φ²)`` on ``[x, c]``; decoder
    ``p(x | z[, c]) = N(μ_θ(z, c), diag σ_θ²)`` on ``[z, c]`` with a learned state-independent
    ``σ_θ``; both via :func:`gaussian_head`. ``x`` is ``[*batch, data_size]``, ``z``
    ``[*batch, latent_size]``, ``c`` ``[*batch, condition_size]``. With ``squash`` the decoder's
    mean is ``tanh(μ_θ(z, c)) ∈ (−1, 1)``, for data in a box such as normalised actions (BCQ's
    decoder); with ``decoder_std`` its σ is that constant rather than learned (the ELBO's
    reconstruction term is then a squared error over ``2 decoder_std²``, BCQ's). A behaviour model ``p(a|s)`` (BCQ: Fujimoto et al. 2019; PLAS: Zhou et al. 2020)
    has ``x = a``, ``c = s`` (:mod:`fnrl.behaviour`). Train with the ELBO in
    :mod:`fnrl.losses.generative`.
    """
    for arg, n in (("data_size", data_size), ("latent_size", latent_size),
                   ("condition_size", 1 if condition_size is None else condition_size)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"make_vae: {arg} must be a positive integer, got {n!r}")
    _check_log_std(log_std_bounds, 0.0)
    if decoder_std is not None and not decoder_std > 0:
        raise ValueError(f"make_vae: decoder_std must be positive or None (learned), got {decoder_std!r}")

    def inputs(v, size, arg, c):
        chex.assert_shape(v, (..., size), custom_message=f"{arg} must be [*batch, {size}]")
        if condition_size is None:
            if c is not None:
                raise ValueError("this VAE is unconditional (condition_size=None): pass no condition c")
            return v
        if c is None:
            raise ValueError(f"this VAE is conditional: pass c of shape [*batch, {condition_size}]")
        chex.assert_shape(c, v.shape[:-1] + (condition_size,),
                          custom_message=f"c must be [*batch, {condition_size}] with the batch of {arg}")
        return jnp.concatenate([v, c], axis=-1)

    def transforms():
        def encode(x, c=None):
            h = torso(inputs(x, data_size, "x", c), name="encoder_torso")
            params = _GaussianParams(latent_size, True, log_std_bounds, 0.0, None, name="encoder_head")
            return diag_gaussian(*params(h))

        def decode(z, c=None):
            h = torso(inputs(z, latent_size, "z", c), name="decoder_torso")
            if decoder_std is None:
                mean, std = _GaussianParams(data_size, False, log_std_bounds, 0.0, None, name="decoder_head")(h)
            else:
                mean = hk.Linear(data_size, name="decoder_mean")(h)
                std = jnp.full_like(mean, decoder_std)
            return diag_gaussian(jnp.tanh(mean) if squash else mean, std)

        def init(x, c=None):
            return decode(encode(x, c).mean(), c)

        return init, (encode, decode)

    vae = hk.without_apply_rng(hk.multi_transform(transforms))
    return VAE(vae.init, *vae.apply)
