"""Learned dynamics models: probabilistic ensembles (PETS) and a learned model as an environment.

    model = models.make_ensemble(spec, models.EnsembleConfig(num_models=5))
    params, metrics = models.fit(key, model, data)       # data: Transition [N, ...], env units
    params, metrics = models.fit(key, model, buffer, size=count)  # the first `count` rows (may be traced)
    mean, std = model.predict(params, obs, action)       # [M, *batch, D + 1] over y = [s' − s, r]
    env = models.model_env(model, params, start=data.obs,
                           reward_fn=models.reward_function(real_env))
    env = fnrl.envs.wrap(TimeLimit(env, 10), num_envs=256)    # batched, auto-resetting, like any env

**The ensemble** (Chua et al. 2018, "Deep Reinforcement Learning in a Handful of Trials using
Probabilistic Dynamics Models"): member ``i`` predicts ``N(μ_i(s, a), diag σ_i²(s, a))`` over
``y = [s' − s, r]`` (:func:`fnrl.networks.make_dynamics_ensemble`, log σ softly bounded by
learned per-member bounds), trained by :func:`fit` with the Gaussian NLL and PETS's bound
penalty (:func:`fnrl.losses.gaussian_nll_loss`):

- *bootstrap*: each member trains on its own resample, with replacement, of the training rows
  (``bootstrap="resample"``: Efron's bootstrap, as in PETS; member ``i`` sees ``n`` draws, ~63%
  of the distinct rows), or on all of them in its own order (``"none"``: random initialisation
  and SGD noise alone, which the lecture notes and Lakshminarayanan et al. 2017 find enough);
- *normalisation*: inputs ``s``, ``a`` (continuous actions) and targets ``y`` are standardised
  with statistics fitted on the training rows (:class:`fnrl.envs.wrappers.RunningStats`); the
  network works in standardised units and :meth:`Ensemble.predict` answers in the raw ones;
- *validation and early stopping*: a held-out fraction of the rows scores every member after
  every epoch (``select_by``: NLL or MSE in standardised units); each member keeps its best
  parameters so far, and training stops once no member has improved its best score by a
  relative ``min_improvement`` for ``patience`` epochs (MBPO's rule: Janner et al. 2019). The
  ``num_elites`` best members are the elites the model environment draws from.

**The model as an environment** (:class:`ModelEnv`): a predictor with a reward function and a
termination function — known ones, functions of ``(obs, action, next_obs)``, or the model's own
predicted reward — is an :class:`fnrl.envs.core.Env` with the real environment's ``spec``, so
``fnrl.envs.wrap`` (batching, auto-reset), :class:`~fnrl.envs.wrappers.TimeLimit`,
:func:`fnrl.rollout.rollout` and everything built on them run on it unchanged. Propagation
(PETS §5): ``"ts1"`` draws a member per step, ``"tsinf"`` one member per trajectory at reset
(trajectory sampling), ``"mean"`` follows the members' mean prediction; ``sample=True`` adds
the member's own aleatoric noise ``σ_i ε``. The curriculum's MBRL v3.0 / MBPO (short model
rollouts from dataset states) is ``model_env(..., start=dataset_obs)`` under a short TimeLimit.

Everything is in the environment's own units: fit on actions as the environment takes them
(data collected through ``wrap``'s action rescaling records ``[-1, 1]`` policy actions; map
them with :func:`fnrl.envs.wrappers.rescale_action` or collect with ``rescale_actions=False``),
and give the model environment the real environment's ``spec``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnrl import losses, networks
from fnrl.config import check, constrained, field_of, non_negative, one_of, positive, positive_int, Validated
from fnrl.envs.classic import CartPole, Pendulum
from fnrl.envs.core import Env, EnvState, Spec, Wrapper, as_float
from fnrl.envs.wrappers import RescaleAction, RunningStats, init_stats, normalize, rescale_action
from fnrl.types import Array, PRNGKey, Transition

__all__ = [
    "EnsembleConfig", "ModelFields", "ModelParams", "Ensemble", "make_ensemble", "targets", "bootstrap_indices", "fit",
    "ModelEnv", "model_env", "reward_function", "termination_function", "step_functions",
]

_EPS = 1e-8  # variance floor of the standardisation, as in fnrl.envs.wrappers.normalize


# --------------------------------------------------------------------------- the ensemble


@dataclasses.dataclass(frozen=True)
class EnsembleConfig(Validated):
    """A probabilistic dynamics ensemble and how :func:`fit` trains it.

    Defaults after PETS (Chua et al. 2018) and MBPO (Janner et al. 2019): 5 members (PETS;
    MBPO trains 7 and keeps 5 elites) of 4 × 200 swish (SiLU) units, Adam at 1e-3 with
    batches of 256 and a 20% hold-out (MBPO), learned log-σ bounds starting at PETS's
    log-variance bounds (−10, 0.5), i.e. log σ ∈ (−5, 0.25), and MBPO's early stopping (5
    epochs without a 1% improvement of any member).

    Attributes:
      num_models: ensemble size M.
      num_elites: how many of the best members (by validation score) the model environment
        uses; None for all of them.
      hidden_sizes, activation: each member's MLP torso (:class:`fnrl.networks.Torso`).
      learned_log_std_bounds: PETS's learned soft bounds on log σ (with ``bound_penalty``);
        False for fixed bounds.
      log_std_bounds: the bounds on log σ (in standardised units), learned ones' start.
      bound_penalty: λ of the bound penalty (:func:`fnrl.losses.gaussian_nll_loss`).
      learning_rate: Adam's step size.
      weight_decay: decoupled weight decay of the linear layers' weights (AdamW); 0 for none.
      batch_size: minibatch size per member (capped at the number of training rows).
      num_epochs: the most passes over the training rows.
      patience: stop after this many epochs in which no member improved; None never stops
        early (the best parameters are still kept).
      min_improvement: the relative improvement of a member's best score that counts.
      validation_fraction: the share of the rows held out; 0 trains on everything and keeps
        the last parameters.
      select_by: the validation score, ``"mse"`` (of the mean, MBPO) or ``"nll"``.
      bootstrap: ``"resample"`` (with replacement, per member) or ``"none"`` (see the module).
      normalize: standardise inputs and targets with statistics of the training rows.
    """

    num_models: int = positive_int(5)
    num_elites: int | None = constrained(None, lambda v: v is None or v > 0, "a positive integer or null")
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    activation: str = "silu"
    learned_log_std_bounds: bool = True
    log_std_bounds: tuple[float, float] = (-5.0, 0.25)
    bound_penalty: float = non_negative(0.01)
    learning_rate: float = positive(1e-3)
    weight_decay: float = non_negative(0.0)
    batch_size: int = positive_int(256)
    num_epochs: int = positive_int(100)
    patience: int | None = constrained(5, lambda v: v is None or v > 0, "a positive integer or null")
    min_improvement: float = non_negative(0.01)
    validation_fraction: float = constrained(0.2, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    select_by: str = one_of("mse", ("mse", "nll"))
    bootstrap: str = one_of("resample", ("resample", "none"))
    normalize: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.num_elites is not None:
            check(self.num_elites <= self.num_models, "num_elites", self.num_elites,
                  f"at most num_models={self.num_models}")
        check(len(self.log_std_bounds) == 2 and self.log_std_bounds[0] < self.log_std_bounds[1],
              "log_std_bounds", self.log_std_bounds, "a pair (low, high) with low < high")
        object.__setattr__(self, "log_std_bounds", tuple(float(b) for b in self.log_std_bounds))
        networks.Torso(tuple(self.hidden_sizes), self.activation)  # validates the torso fields

    @property
    def elites(self) -> int:
        return self.num_models if self.num_elites is None else self.num_elites


@dataclasses.dataclass(frozen=True)
class ModelFields(Validated):
    """The dynamics-ensemble fields of a model-based algorithm's config: ``model_X`` is
    :class:`EnsembleConfig`'s ``X`` (flat, so that ``--set model_num_models=7`` reaches it);
    :meth:`ensemble_config` builds the ensemble's config from them."""

    model_num_models: int = field_of(EnsembleConfig, "num_models")
    model_num_elites: int | None = field_of(EnsembleConfig, "num_elites")
    model_hidden_sizes: tuple[int, ...] = field_of(EnsembleConfig, "hidden_sizes")
    model_learning_rate: float = field_of(EnsembleConfig, "learning_rate")
    model_weight_decay: float = field_of(EnsembleConfig, "weight_decay")
    model_batch_size: int = field_of(EnsembleConfig, "batch_size")
    model_num_epochs: int = field_of(EnsembleConfig, "num_epochs")
    model_patience: int | None = field_of(EnsembleConfig, "patience")
    model_validation_fraction: float = field_of(EnsembleConfig, "validation_fraction")
    model_bootstrap: str = field_of(EnsembleConfig, "bootstrap")

    def __post_init__(self):
        super().__post_init__()
        self.ensemble_config()  # the checks that relate several fields

    def ensemble_config(self) -> EnsembleConfig:
        prefix = "model_"
        return EnsembleConfig(**{f.name[len(prefix):]: getattr(self, f.name) for f in dataclasses.fields(ModelFields)})


class ModelParams(NamedTuple):
    """Everything a trained ensemble needs to predict; a pytree.

    Attributes:
      net: the haiku parameters of :func:`fnrl.networks.make_dynamics_ensemble`.
      obs_stats, action_stats, target_stats: the standardisation of ``s``, ``a`` (None for
        discrete actions) and ``y``; empty statistics standardise nothing.
      elites: indices ``[num_elites]`` of the best members by validation score.
    """

    net: Any
    obs_stats: RunningStats
    action_stats: RunningStats | None
    target_stats: RunningStats
    elites: Array


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """A probabilistic dynamics ensemble for environments with ``spec`` (:func:`make_ensemble`).

    Attributes:
      spec: the environment's spec (observation shape; discrete actions are one-hot encoded).
      config: :class:`EnsembleConfig`.
      net: the haiku transform of :func:`fnrl.networks.make_dynamics_ensemble`, in
        standardised units.
    """

    spec: Spec
    config: EnsembleConfig
    net: hk.Transformed

    @property
    def target_size(self) -> int:
        """``D + 1``: the flattened state change, then the reward."""
        return math.prod(self.spec.observation_shape) + 1

    def init(self, key: PRNGKey) -> ModelParams:
        """Fresh parameters, with empty statistics (no standardisation) and the first
        ``num_elites`` members as elites."""
        obs, action = _example_inputs(self.spec)
        stats = (init_stats(self.spec.observation_shape),
                 None if self.spec.discrete else init_stats(self.spec.action_shape),
                 init_stats((self.target_size,)))
        return ModelParams(self.net.init(key, obs, action), *stats, jnp.arange(self.config.elites))

    def predict(self, params: ModelParams, obs: Array, action: Array, elites_only: bool = False
                ) -> tuple[Array, Array]:
        """Every member's Gaussian over ``y = [s' − s, r]`` in raw units.

        With standardised inputs ``x̃ = (x − m_x) / s_x`` and the network's ``(μ̃_i, σ̃_i)`` in
        standardised target units, ``μ_i = m_y + s_y μ̃_i`` and ``σ_i = s_y σ̃_i``.

        Args:
          params: :class:`ModelParams`.
          obs: ``[*batch, *observation_shape]``; action: ``[*batch, *action_shape]``.
          elites_only: only the elite members.
        Returns:
          ``(mean, std)``, each ``[M, *batch, D + 1]`` (``M = num_elites`` with ``elites_only``).
        """
        dist = self.net.apply(params.net, *self._standardize(params, obs, action))
        mean, std = _unstandardize(params.target_stats, dist.mean(), dist.stddev())
        if elites_only:
            mean, std = mean[params.elites], std[params.elites]
        return mean, std

    def _standardize(self, params: ModelParams, obs: Array, action: Array) -> tuple[Array, Array]:
        obs = normalize(params.obs_stats, jnp.asarray(obs, jnp.float32), _EPS)
        if params.action_stats is not None:
            action = normalize(params.action_stats, jnp.asarray(action, jnp.float32), _EPS)
        return obs, action


def make_ensemble(spec: Spec, config: EnsembleConfig = EnsembleConfig()) -> Ensemble:
    """The :class:`Ensemble` of ``config`` for an environment with ``spec``."""
    torso = networks.Torso(tuple(config.hidden_sizes), config.activation)
    net = networks.make_dynamics_ensemble(spec, torso, num_models=config.num_models,
                                          log_std_bounds=config.log_std_bounds,
                                          learned_log_std_bounds=config.learned_log_std_bounds)
    return Ensemble(spec, config, net)


def _example_inputs(spec: Spec) -> tuple[Array, Array]:
    obs = jnp.zeros((1, *spec.observation_shape), jnp.float32)
    action = jnp.zeros((1,), jnp.int32) if spec.discrete else jnp.zeros((1, *spec.action_shape), jnp.float32)
    return obs, action


def _unstandardize(stats: RunningStats, mean: Array, std: Array) -> tuple[Array, Array]:
    """The inverse of ``normalize(stats, ·, _EPS)`` for a Gaussian's mean and std."""
    scale = jnp.sqrt(stats.var + _EPS)
    return stats.mean + scale * mean, scale * std


def targets(data: Transition) -> Array:
    """The regression target ``y = [s' − s, r]`` ``[..., D + 1]`` of transitions ``data``
    (the state change flattened; ``next_obs`` is the observation the step reached)."""
    obs, next_obs = jnp.asarray(data.obs, jnp.float32), jnp.asarray(data.next_obs, jnp.float32)
    chex.assert_equal_shape([obs, next_obs], custom_message="targets: data.obs and data.next_obs")
    batch = jnp.shape(data.reward)
    chex.assert_shape(obs, (*batch, ...), custom_message=f"targets: data.obs must start with the reward's shape {batch}")
    delta = (next_obs - obs).reshape(batch + (-1,))
    return jnp.concatenate([delta, jnp.asarray(data.reward, jnp.float32)[..., None]], axis=-1)


def bootstrap_indices(key: PRNGKey, num_rows: int, num_models: int, mode: str = "resample",
                      size: int | Array | None = None) -> Array:
    """Each member's training rows, ``[num_models, num_rows]`` int32.

    ``"resample"``: member ``i`` draws ``num_rows`` rows uniformly with replacement (Efron
    1979; bootstrap ensembles: Osband et al. 2016, Chua et al. 2018), so each sees about
    ``1 − 1/e ≈ 63%`` of the distinct rows, some several times. ``"none"``: every member gets
    every row once, in its own random order.

    With ``size`` (an int or a traced int32 scalar) only rows ``[0, size)`` are drawn from, and
    only the first ``size`` columns are the sample (the rest is padding: draws from the same
    rows for ``"resample"``, the positions ``size, …, num_rows − 1`` for ``"none"``). Column
    ``p`` of member ``i`` depends only on ``fold_in(key_i, p)`` and ``size``, never on
    ``num_rows``, so the first ``size`` columns are those of ``num_rows=size``.
    """
    if mode not in ("resample", "none"):
        raise ValueError(f"bootstrap_indices: mode must be 'resample' or 'none', got {mode!r}")
    size = num_rows if size is None else size

    def member(k):
        if mode == "none":
            return _random_order(k, num_rows, size)
        return jax.vmap(lambda p: jax.random.randint(jax.random.fold_in(k, p), (), 0, size))(jnp.arange(num_rows))

    return jax.vmap(member)(jax.random.split(key, num_models)).astype(jnp.int32)


def _random_order(key: PRNGKey, n: int, size: int | Array) -> Array:
    """``range(n)`` with its first ``size`` entries in uniformly random order, then the rest in
    order: a stable argsort of random bits drawn per position from ``fold_in(key, i)``, positions
    from ``size`` on keyed last. The order of ``range(size)`` does not depend on ``n``."""
    i = jnp.arange(n)
    bits = jax.vmap(lambda j: jax.random.bits(jax.random.fold_in(key, j), dtype=jnp.uint32))(i)
    last = jnp.uint32(jnp.iinfo(jnp.uint32).max)  # a valid position with these bits still sorts first: it has the lower index
    return jnp.argsort(jnp.where(i < size, bits, last), stable=True).astype(jnp.int32)


def _num_held_out(fraction: float, size, xp=jnp):
    """``round(fraction · size)`` in float32, ties to even (``xp=np`` for a static size: the
    same number as for a traced one)."""
    return xp.round(xp.float32(fraction) * xp.asarray(size, xp.float32)).astype(xp.int32)


# --------------------------------------------------------------------------- training


class _Learner(NamedTuple):
    net: Any
    opt_state: Any


def fit(key: PRNGKey, model: Ensemble, data: Transition, params: ModelParams | None = None,
        validation: Transition | None = None, size: int | Array | None = None
        ) -> tuple[ModelParams, dict[str, Array]]:
    """Trains ``model`` on the transitions ``data``; pure, so it works under ``jit`` and
    ``vmap`` (over keys: many seeds in one program).

    Only the first ``size`` of the ``N`` (flattened) rows are data (all of them for ``None``):
    the rest is padding, e.g. the unfilled part of a fixed-capacity buffer, and may hold
    anything, NaN included; it never reaches the statistics, the losses or the scores.
    ``size`` may be traced (one compiled program for every fill level).

    The ``size`` rows are split at random into ``n_val = round(validation_fraction · size)``
    held-out and ``n = size − n_val`` training rows (all ``size`` train when ``validation`` is
    given); statistics of the training rows standardise inputs and targets; each member gets
    its bootstrap sample of the training rows (:func:`bootstrap_indices`). Every epoch is a
    shuffled pass of ``max(1, ⌊n / b⌋)`` minibatch Adam steps (``lax.fori_loop``: ``n`` may be
    traced) with the static ``b = min(batch_size, N_train)``, ``N_train = N − round(
    validation_fraction · N)`` the most training rows there can be (``N`` with ``validation``), on

        L = Σ_i [ NLL_i + λ (Σ max_log_std_i − Σ min_log_std_i) ],

    member ``i`` on its own minibatch of its own sample (with ``n < b`` the one minibatch wraps
    around the sample, positions modulo ``n``: a full-batch step), followed by scoring each
    member on the validation rows (masked means); each member keeps the parameters of its best score (the initial
    parameters count as epoch 0), and once no member has improved for ``patience`` epochs the
    remaining epochs leave them unchanged (under ``vmap`` they are still computed, then
    discarded). Epoch ``t`` draws its randomness from ``fold_in(key, t)``, so a run of ``E``
    epochs is the beginning of a longer run with the same key. Every random draw depends on
    row and position indices only, not on ``N``: fitting the first ``size`` rows of a padded
    buffer gives the parameters of fitting ``data[:size]`` (to float rounding) whenever
    ``n ≥ batch_size`` or ``n`` divides ``b`` (otherwise only the minibatch size differs).
    Held-out counts are rounded in float32, ties to even.

    Args:
      key: PRNG key (the split, the bootstrap, initialisation and the minibatch order).
      model: :func:`make_ensemble`'s result.
      data: a :class:`fnrl.types.Transition` with any leading batch dims ``[N, ...]`` or
        ``[T, B, ...]`` (flattened); uses ``obs``, ``action``, ``reward`` and ``next_obs``.
      params: start from these network parameters (e.g. the previous round's, as MBPO
        retrains); the statistics are fitted afresh either way.
      validation: held-out transitions to score on instead of a fraction of ``data`` (all
        valid: ``size`` counts the rows of ``data`` only).
      size: the number of valid rows, an int or an int32 scalar that may be traced; None for
        all ``N``. A concrete one is checked (``size ≤ N``, leaving a training row); a traced
        one cannot be, so the caller guarantees ``size ≤ N`` and ``size − n_val ≥ 1``.
    Returns:
      ``(params, metrics)``: :class:`ModelParams` (each member's best, the elites by
      validation score) and, with ``E = num_epochs``, ``M = num_models``:
      ``train_loss [E]`` (the last minibatch's L, NaN for epochs not trained), ``val_nll``,
      ``val_mse [E, M]`` (standardised units; NaN without validation rows), ``trained [E]``,
      ``best_epoch [M]`` (0: the initial parameters), ``best_score [M]`` and ``num_epochs``
      (epochs trained).
    """
    cfg = model.config
    obs, action, y = _flatten_transitions(model.spec, data)
    split_key, boot_key, init_key, epochs_key = jax.random.split(key, 4)
    n = y.shape[0]
    fraction = cfg.validation_fraction if validation is None else 0.0
    size = _check_size(n if size is None else size, n, fraction)
    if validation is None:  # the valid rows in random order (the first num_val held out), then the padding
        num_val, max_val = _num_held_out(fraction, size), int(_num_held_out(fraction, n, np))
        order = _random_order(split_key, n, size)
        val_rows, val_count = order[:max_val], num_val
    else:  # appended after the rows of data
        held_out = _flatten_transitions(model.spec, validation)
        val_count = held_out[2].shape[0]
        obs, action, y = (jnp.concatenate(pair) for pair in zip((obs, action, y), held_out))
        num_val, max_val, order, val_rows = 0, 0, jnp.arange(n), jnp.arange(n, n + val_count)
    # The training rows are order[num_val + j] for j < num_train (traced), at most max_train (static).
    num_train, max_train = size - num_val, n - max_val
    position = jnp.arange(n)
    train_mask = jnp.zeros(y.shape[0], bool).at[order].set((position >= num_val) & (position < size))
    has_val = val_count > 0

    stats = _fit_stats(model, obs, action, y, train_mask)
    net = model.net.init(init_key, *_example_inputs(model.spec)) if params is None else params.net
    for leaf in jax.tree_util.tree_leaves(net):
        chex.assert_axis_dimension(leaf, 0, cfg.num_models, custom_message=(
            f"fit: every network parameter needs a leading axis of num_models={cfg.num_models} members"))
    standardized = ModelParams(net, *stats, jnp.arange(cfg.elites))
    x_obs, x_action = model._standardize(standardized, obs, action)
    y_std = normalize(stats[2], y, _EPS)
    # [M, max_train] rows of the whole dataset; member i's sample is its first num_train columns.
    rows = order[num_val + bootstrap_indices(boot_key, max_train, cfg.num_models, cfg.bootstrap, num_train)]

    batch_size = min(cfg.batch_size, max_train)
    num_steps = jnp.maximum(1, num_train // batch_size)
    optimizer = _optimizer(cfg)

    def member_terms(dist, y_target, weights=None, bounds=(None, None)):
        """Per-member GaussianNLLTerms of a prediction with batch [M, b] against y [M, b, D+1]."""
        nll = functools.partial(losses.gaussian_nll_loss, bound_penalty=cfg.bound_penalty)
        return jax.vmap(nll)(dist.mean(), jnp.log(dist.stddev()), y_target, weights, *bounds)

    def loss_fn(net, batch):
        obs_b, action_b, y_b = batch
        dist = model.net.apply(net, obs_b, action_b, per_member=True)
        bounds = networks.dynamics_log_std_bounds(net) if cfg.learned_log_std_bounds else (None, None)
        return jnp.sum(member_terms(dist, y_b, None, bounds).loss)

    def sgd_step(learner: _Learner, idx):  # idx [M, b]: member i's rows in row i
        loss, grads = jax.value_and_grad(loss_fn)(learner.net, (x_obs[idx], x_action[idx], y_std[idx]))
        updates, opt_state = optimizer.update(grads, learner.opt_state, learner.net)
        return _Learner(optax.apply_updates(learner.net, updates), opt_state), loss

    def evaluate(net):
        """(nll [M], mse [M]) of every member on the validation rows (NaN without any)."""
        nan = jnp.full((cfg.num_models,), jnp.nan)
        if val_rows.shape[0] == 0:
            return nan, nan
        # A static slice of val_rows.shape[0] rows, the first val_count of them held out; the
        # other slots repeat a held-out row (no padding reaches the network) and weigh 0.
        mask = jnp.arange(val_rows.shape[0]) < val_count
        idx = jnp.where(mask, val_rows, val_rows[0])
        dist = model.net.apply(net, x_obs[idx], x_action[idx])
        shape = dist.mean().shape
        terms = member_terms(dist, jnp.broadcast_to(y_std[idx], shape), jnp.broadcast_to(mask, shape[:-1]))
        return jnp.where(has_val, terms.nll, nan), jnp.where(has_val, terms.mse, nan)

    def score(nll, mse):
        return nll if cfg.select_by == "nll" else mse

    def train_epoch(learner, key):
        # The sample's positions in a fresh order, num_steps minibatches of them (the remainder
        # of the division changes each epoch; with num_train < batch_size one minibatch wraps
        # around all of them); every member takes the same positions of its own sample.
        shuffled = _random_order(key, max_train, num_train)

        def step(j, carry):
            positions = shuffled[(j * batch_size + jnp.arange(batch_size)) % num_train]
            return sgd_step(carry[0], rows[:, positions])

        return jax.lax.fori_loop(0, num_steps, step, (learner, jnp.zeros((), jnp.float32)))

    def epoch(carry, index):
        learner, best, best_score, best_epoch, since, stopped = carry
        key = jax.random.fold_in(epochs_key, index)  # epoch t's randomness does not depend on num_epochs
        learner, train_loss = jax.lax.cond(
            stopped, lambda lr, k: (lr, jnp.full((), jnp.nan)), train_epoch, learner, key)
        nll, mse = evaluate(learner.net)
        current = score(nll, mse)
        improved = jnp.where(has_val, current < best_score - cfg.min_improvement * jnp.abs(best_score), True)
        best = _select_members(improved, learner.net, best)
        best_score = jnp.where(improved, current, best_score)
        best_epoch = jnp.where(improved, index, best_epoch)
        since = jnp.where(jnp.any(improved), 0, since + 1)
        record = {"train_loss": train_loss, "val_nll": nll, "val_mse": mse, "trained": ~stopped}
        if cfg.patience is not None:
            stopped = stopped | (since >= cfg.patience)
        return (learner, best, best_score, best_epoch, since, stopped), record

    start = _Learner(net, optimizer.init(net))
    initial_score = score(*evaluate(net))
    carry = (start, net, initial_score, jnp.zeros((cfg.num_models,), jnp.int32), jnp.zeros((), jnp.int32),
             jnp.zeros((), bool))
    (_, best, best_score, best_epoch, _, _), history = jax.lax.scan(epoch, carry, jnp.arange(1, cfg.num_epochs + 1))

    elites = jnp.where(has_val, jnp.argsort(best_score)[: cfg.elites], jnp.arange(cfg.elites))
    metrics = {**history, "best_epoch": best_epoch, "best_score": best_score,
               "num_epochs": jnp.sum(history["trained"])}
    return ModelParams(best, *stats, elites.astype(jnp.int32)), metrics


def _check_size(size, n: int, fraction: float) -> Array:
    """``fit``'s ``size`` as an int32 scalar; a concrete one must be in ``[0, n]`` and leave a
    training row after the ``fraction`` held out (a traced one cannot be checked)."""
    if jnp.ndim(size) != 0 or not jnp.issubdtype(jnp.result_type(size), jnp.integer):
        raise ValueError(f"fit: size must be None or an integer scalar (the number of valid rows), got {size!r}")
    if not isinstance(size, jax.core.Tracer):
        size = int(size)
        if not 0 <= size <= n:
            raise ValueError(f"fit: size={size} must be between 0 and the {n} rows of data")
        if size - int(_num_held_out(fraction, size, np)) < 1:
            split = f" with validation_fraction={fraction}" if fraction else ""
            raise ValueError(f"fit: {size} transitions leave none to train on{split}")
    return jnp.asarray(size, jnp.int32)


def _flatten_transitions(spec: Spec, data: Transition) -> tuple[Array, Array, Array]:
    """(obs [N, *obs_shape], action [N, ...], y [N, D + 1]) with every leading dim flattened."""
    obs = jnp.asarray(data.obs)
    rank = len(spec.observation_shape)
    if obs.ndim <= rank or tuple(obs.shape[obs.ndim - rank:]) != tuple(spec.observation_shape):
        raise ValueError(f"fit: data.obs of shape {obs.shape} must be [*batch, *{tuple(spec.observation_shape)}]")
    batch = obs.shape[: obs.ndim - rank]
    action = jnp.asarray(data.action)
    action_shape = () if spec.discrete else tuple(spec.action_shape)
    if tuple(action.shape) != batch + action_shape:
        raise ValueError(f"fit: data.action of shape {action.shape} must be {batch + action_shape} "
                         f"(the obs batch {batch}, then the action shape)")
    y = targets(data)
    size = math.prod(batch)
    return (obs.reshape((size, *spec.observation_shape)).astype(jnp.float32),
            action.reshape((size, *action_shape)), y.reshape((size, -1)))


def _fit_stats(model: Ensemble, obs, action, y, mask):
    """(obs, action, target) statistics of the rows where ``mask`` (the training rows); empty
    ones without ``normalize``."""
    spec = model.spec
    if not model.config.normalize:
        return (init_stats(spec.observation_shape), None if spec.discrete else init_stats(spec.action_shape),
                init_stats((model.target_size,)))
    return (_masked_stats(obs, mask), None if spec.discrete else _masked_stats(action, mask), _masked_stats(y, mask))


def _masked_stats(x: Array, mask: Array) -> RunningStats:
    """``update_stats(init_stats(shape), x[mask])`` for ``x [n, *shape]`` with a traced ``mask
    [n]``: ``count = Σ m``, ``mean = Σ m x / count``, ``M2 = Σ m (x − mean)²`` (0 where nothing
    is counted). Masked rows enter through ``where`` only, so NaN padding does not leak."""
    x = jnp.asarray(x, jnp.float32)
    keep = mask.reshape(mask.shape + (1,) * (x.ndim - 1))
    count = jnp.sum(mask, dtype=jnp.float32)
    mean = jnp.sum(jnp.where(keep, x, 0.0), axis=0) / jnp.maximum(count, 1.0)
    return RunningStats(count, mean, jnp.sum(jnp.where(keep, (x - mean) ** 2, 0.0), axis=0))


def _optimizer(cfg: EnsembleConfig) -> optax.GradientTransformation:
    """Adam, or AdamW with the decay on the linear layers' weights only (not biases or bounds)."""
    if cfg.weight_decay == 0:
        return optax.adam(cfg.learning_rate)

    def mask(net):
        return {module: {name: name == "w" for name in leaves} for module, leaves in net.items()}

    return optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay, mask=mask)


def _select_members(take: Array, new, old):
    """Member-wise ``where``: member ``i``'s slice of every leaf from ``new`` where ``take[i]``."""
    def pick(a, b):
        return jnp.where(take.reshape(take.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree_util.tree_map(pick, new, old)


# --------------------------------------------------------------------------- the model as an environment

# predict(obs, action) -> (mean, std), each [K, D + 1] over y = [s' − s, r] for one obs and action.
Predictor = Callable[[Array, Array], tuple[Array, Array]]
# reward_fn(obs, action, next_obs) -> reward; termination_fn(...) -> bool/0-1. Batch dims allowed.
StepFunction = Callable[[Array, Array, Array], Array]
PROPAGATIONS = ("ts1", "tsinf", "mean")


class ModelState(NamedTuple):
    """:class:`ModelEnv`'s ``internal`` state: its PRNG key and the member of the trajectory
    (used by ``"tsinf"``)."""

    key: PRNGKey
    member: Array


class ModelEnv(Env):
    """A dynamics predictor as an environment (MBRL: Sutton's Dyna 1991; PETS: Chua et al. 2018;
    MBPO: Janner et al. 2019).

    ``reset(key)``: ``s_0 = start(key)`` when ``start`` is a function (e.g. the real
    environment's ``lambda k: env.reset(k).obs``: then the model starts exactly where the real
    environment does from the same key), else a row of the array ``start [K, *obs_shape]``
    drawn uniformly (e.g. dataset states). ``step(state, a)``, with ``(μ_k, σ_k)`` the
    predictor's members::

        y = μ_k + σ_k ε,  ε ~ N(0, I)    k ~ U{members} each step ("ts1") or at reset ("tsinf");
        y = mean_k μ_k                    ("mean"; deterministic);
        s' = s + y[:-1],  r = reward_fn(s, a, s') or y[-1],  term = termination_fn(s, a, s') or 0

    (without ``sample``, ``ε = 0``). ``truncation`` is always 0: put the environment in a
    :class:`~fnrl.envs.wrappers.TimeLimit` for a horizon. The env holds the predictor and its
    parameters: build it inside the jitted function when they are traced (e.g. retrained).

    Args:
      spec: the real environment's spec (actions are checked against it).
      predict: :data:`Predictor` ``(obs, action) -> (mean, std)`` for one observation and one
        action, each ``[K, D + 1]``: :func:`model_env` makes one from a trained ensemble; a
        known simulator with ``std = 0`` is a perfect model.
      start: the start-state function or array (above).
      reward_fn, termination_fn: known functions of ``(obs, action, next_obs)``
        (:func:`reward_function`, :func:`termination_function`); None for the predicted
        reward and no termination.
      propagation: ``"ts1"``, ``"tsinf"`` or ``"mean"``.
      sample: add the aleatoric noise ``σ_k ε``.
    """

    name = "model"

    def __init__(self, spec: Spec, predict: Predictor, start: Array | Callable[[PRNGKey], Array],
                 reward_fn: StepFunction | None = None, termination_fn: StepFunction | None = None,
                 propagation: str = "ts1", sample: bool = True):
        if propagation not in PROPAGATIONS:
            raise ValueError(f"ModelEnv: propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        if not callable(start):
            start = jnp.asarray(start, jnp.float32)
            shape = tuple(spec.observation_shape)
            if start.ndim != len(shape) + 1 or tuple(start.shape[1:]) != shape or start.shape[0] == 0:
                raise ValueError(f"ModelEnv: start must be a function of a key or an array [K, *{shape}] "
                                 f"of start observations, got shape {start.shape}")
        self.spec, self.predict, self.start = spec, predict, start
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.propagation, self.sample = propagation, bool(sample)

    def _predict(self, obs, action) -> tuple[Array, Array]:
        mean, std = self.predict(obs, action)
        size = math.prod(self.spec.observation_shape) + 1
        msg = f"ModelEnv: predict(obs, action) must return (mean, std), each [num_members, {size}]"
        chex.assert_rank([mean, std], 2, custom_message=msg)
        chex.assert_equal_shape([mean, std], custom_message=msg)
        chex.assert_axis_dimension(mean, 1, size, custom_message=msg)
        return mean, std

    def reset(self, key: PRNGKey) -> EnvState:
        if callable(self.start):
            obs = as_float(self.start(key))
            chex.assert_shape(obs, self.spec.observation_shape,
                              custom_message="ModelEnv: start(key) must return one observation")
        else:
            obs = self.start[jax.random.randint(key, (), 0, self.start.shape[0])]
        own_key = jax.random.fold_in(key, 1)  # independent of the key the start state used
        # Only the number of members is used (under jit the prediction itself is dropped).
        num_members = self._predict(obs, _example_inputs(self.spec)[1][0])[0].shape[0]
        member = jax.random.randint(jax.random.fold_in(own_key, 0), (), 0, num_members)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=obs, reward=zero, termination=zero, truncation=zero,
                        internal=ModelState(own_key, member.astype(jnp.int32)))

    def step(self, state: EnvState, action: Array) -> EnvState:
        action = self.spec.check_action(action, self.name)
        obs = state.obs
        key, member_key, noise_key = jax.random.split(state.internal.key, 3)
        mean, std = self._predict(obs, action)
        if self.propagation == "mean":
            y = jnp.mean(mean, axis=0)
        else:
            member = state.internal.member if self.propagation == "tsinf" else \
                jax.random.randint(member_key, (), 0, mean.shape[0])
            y = mean[member]
            if self.sample:
                y = y + std[member] * jax.random.normal(noise_key, y.shape)
        next_obs = obs + y[:-1].reshape(obs.shape)
        reward = y[-1] if self.reward_fn is None else self.reward_fn(obs, action, next_obs)
        termination = 0.0 if self.termination_fn is None else self.termination_fn(obs, action, next_obs)
        return state.replace(obs=next_obs, reward=as_float(reward), termination=as_float(termination),
                             truncation=jnp.zeros((), jnp.float32),
                             internal=ModelState(key, state.internal.member))


def model_env(model: Ensemble, params: ModelParams, start: Array | Callable[[PRNGKey], Array],
              reward_fn: StepFunction | None = None, termination_fn: StepFunction | None = None,
              propagation: str = "ts1", sample: bool = True) -> ModelEnv:
    """A trained ensemble's elite members as a :class:`ModelEnv` with the ensemble's spec."""
    def predict(obs, action):
        return model.predict(params, obs, action, elites_only=True)

    return ModelEnv(model.spec, predict, start, reward_fn, termination_fn, propagation, sample)


# --------------------------------------------------------------------------- known rewards and terminations
#
# Functions of (obs, action, next_obs) with any leading batch dims, in the environment's units,
# equal to what envs/classic.py computes (tests/test_models.py checks them on real transitions).


def _pendulum_reward(env: Pendulum) -> StepFunction:
    """``r = −(θ² + 0.1 θ̇² + 0.001 u²)`` with ``θ = atan2(sin θ, cos θ) ∈ [−π, π]`` (the
    environment's normalised angle) and ``θ̇`` from ``obs``, ``u = clip(a, ±max_torque)``."""
    def reward(obs, action, next_obs):
        theta = jnp.arctan2(obs[..., 1], obs[..., 0])
        u = jnp.clip(action[..., 0], -env.max_torque, env.max_torque)
        return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)

    return reward


def _cartpole_reward(env: CartPole) -> StepFunction:
    """``r = 1`` for every step, the terminating one included."""
    return lambda obs, action, next_obs: jnp.ones(jnp.shape(obs)[:-1], jnp.float32)


def _cartpole_termination(env: CartPole) -> StepFunction:
    """``|x'| > x_threshold`` or ``|θ'| > theta_threshold`` (2.4 and 12°) on ``next_obs``."""
    def termination(obs, action, next_obs):
        return (jnp.abs(next_obs[..., 0]) > env.x_threshold) | (jnp.abs(next_obs[..., 2]) > env.theta_threshold)

    return termination


def _never(obs, action, next_obs):
    return jnp.zeros(jnp.shape(obs)[:-1], bool)


_KNOWN = {Pendulum: (_pendulum_reward, lambda env: _never), CartPole: (_cartpole_reward, _cartpole_termination)}


def _known(env: Env, which: int, what: str) -> StepFunction:
    inner = env.unwrapped
    if type(inner) not in _KNOWN:
        names = ", ".join(cls.name for cls in _KNOWN)
        raise ValueError(f"no known {what} for {type(inner).__name__}; known for: {names}")
    known = _KNOWN[type(inner)][which](inner)
    rescaling = _rescaling(env)
    if rescaling is None:
        return known
    return lambda obs, action, next_obs: known(obs, rescale_action(action, rescaling._low, rescaling._high), next_obs)


def _rescaling(env: Env) -> RescaleAction | None:
    """The :class:`~fnrl.envs.wrappers.RescaleAction` in ``env``'s stack of wrappers, if any."""
    while isinstance(env, Wrapper):
        if isinstance(env, RescaleAction):
            return env
        env = env.env
    return None


def step_functions(env: Env, known: bool, who: str) -> tuple[StepFunction | None, StepFunction | None]:
    """``(reward_fn, termination_fn)`` for a model of ``env``: the known ones
    (:func:`reward_function`, :func:`termination_function`) when ``known``, else ``(None, None)``
    -- the model's predicted reward and no termination.

    Raises:
      ValueError: one line naming ``who`` (an algorithm) when ``known`` and fnrl knows no reward
        for ``env``.
    """
    if not known:
        return None, None
    try:
        return reward_function(env), termination_function(env)
    except ValueError as error:
        raise ValueError(f"{who}: {error}; set known_reward=false to use the model's predicted reward") from None


def reward_function(env: Env) -> StepFunction:
    """The known reward ``(obs, action, next_obs) -> r`` of ``env`` (pendulum, cartpole; any
    wrappers around them are looked through), with actions in the units ``env`` takes: the
    environment's own, or ``[-1, 1]`` through a :class:`~fnrl.envs.wrappers.RescaleAction`
    (``fnrl.envs.wrap(env, auto_reset=False)``: the environment as an agent acts in it)."""
    return _known(env, 0, "reward function")


def termination_function(env: Env) -> StepFunction:
    """The known termination ``(obs, action, next_obs) -> bool`` of ``env`` (pendulum: never;
    cartpole: leaving the track or the angle limit)."""
    return _known(env, 1, "termination function")
