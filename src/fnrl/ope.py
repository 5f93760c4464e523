"""Off-policy evaluation: the value of a policy π_e from a dataset another policy μ recorded.

    J(π_e) = E_{s_0 ~ μ₀, a_t ~ π_e}[Σ_t γ^t r_t]

A :class:`Policy` is what the estimators need of π_e: its actions and, for the importance-sampling
estimators, its log-density log π_e(a|s) at the dataset's actions (:func:`load_policy` makes one
from a run directory, through the agent's optional ``log_prob``; :func:`tabular_policy` from a
table π[s, a]). A deterministic policy (greedy DQN, DDPG, TD3) has no density: importance sampling
is undefined for it, and only the model-based estimate (FQE, :mod:`fnrl.algorithms.fqe`) applies.

:func:`estimate` computes, from a :class:`fnrl.datasets.Dataset` whose transitions carry the
behaviour policy's ``log_prob``:

- ``IS``, ``PDIS``, ``WIS`` (weighted per-decision), ``DR``, ``WDR`` -- the primitives of
  :mod:`fnrl.estimators` on the dataset's episodes laid out as ``[T, N]``; DR and WDR take
  FQE's Q̂ as their model, with V̂(s) = E_{a∼π_e}[Q̂(s, a)] (:func:`expected_value`);
- ``FQE`` -- E_{s_0 ∈ D}[V̂(s_0)] over the dataset's initial states (the direct method).

Importance sampling needs whole episodes: an episode that ends cut short (truncated before the
environment's time limit, as the last episode of each of ``fnrl collect``'s environments) is not
a sample of the episode distribution, so the IS and DR estimators leave it out (FQE learns
from every transition). :func:`true_value` is the Monte Carlo truth: the mean discounted return
of many on-policy episodes of π_e, with its standard error.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnrl import datasets, envs, estimators

__all__ = ["ESTIMATORS", "Episodes", "OPEError", "Policy", "episodes", "estimate", "expected_value", "load_policy",
           "tabular_policy", "true_value"]

ESTIMATORS = ("FQE", "IS", "PDIS", "WIS", "DR", "WDR")


class OPEError(ValueError):
    """Off-policy evaluation that cannot be done as asked, in one line."""


class Policy(NamedTuple):
    """The evaluated policy π_e, on batches of raw observations.

    act: ``act(obs, key) -> action``, a sample of π_e (its action, when deterministic).
    log_prob: ``log_prob(obs, action) -> [B]``, log π_e(a|s); None for a deterministic policy.
    discrete: whether actions are indices in ``[0, num_actions)`` (else floats in [-1, 1]).
    num_actions: the number of discrete actions (None for continuous ones).
    """

    act: Callable
    log_prob: Callable | None
    discrete: bool
    num_actions: int | None = None


def tabular_policy(probs) -> Policy:
    """The policy π[s, a] (rows summing to 1) on one-hot observations of a tabular MDP."""
    probs = jnp.asarray(probs, jnp.float32)
    log_probs = jnp.log(probs)

    def act(obs, key):
        return jax.random.categorical(key, log_probs[jnp.argmax(obs, -1)]).astype(jnp.int32)

    def log_prob(obs, action):
        return jnp.take_along_axis(log_probs[jnp.argmax(obs, -1)], action[..., None].astype(jnp.int32), -1)[..., 0]

    return Policy(act, log_prob, True, int(probs.shape[1]))


def load_policy(run_dir: str, report: Callable[[str], None] | None = None) -> tuple[Policy, str]:
    """The policy of the run in ``run_dir`` and the environment it trained on. A policy that is
    a distribution (the agent gives ``log_prob``) is evaluated as that distribution -- the one
    ``act(..., explore=True)`` samples (``eval_policy=stochastic``) -- otherwise the greedy policy
    evaluations use, deterministic (``log_prob`` None).

    Raises:
      fnrl.runs.RunError: one line: no run, no checkpoint, a run of several members.
    """
    from fnrl import runs

    info = runs.read(run_dir)
    if info["seeds"] is not None:
        raise runs.RunError(f"{run_dir!r} holds {info['members']} runs (--seeds/--sweep); evaluate a single run")
    train, carry, config = runs.load(run_dir, eval_policy="stochastic", report=report)
    if train.log_prob is None:  # no density: its greedy policy (the carry is the same whatever eval_policy is)
        import dataclasses

        module, _ = runs.build(info["algo"], info["config"], finetune=info["finetune"] is not None)
        train = runs.make_train(module, dataclasses.replace(config, eval_policy="greedy"))
    see, spec = runs.observations(carry), train.env.spec

    def act(obs, key):
        return train.act(carry.learner, see(obs), key)[0]

    log_prob = None if train.log_prob is None else (
        lambda obs, action: train.log_prob(carry.learner, see(obs), action))
    return Policy(act, log_prob, spec.discrete, spec.num_actions if spec.discrete else None), config.env


def expected_value(q: Callable, policy: Policy, obs, key, num_samples: int = 8):
    """V̂(s) = E_{a∼π_e(s)}[Q̂(s, a)] for a batch of observations ``[B, ...]``: exact over the actions
    of a discrete stochastic policy (``q(obs) -> [B, A]``), Q̂(s, π_e(s)) for a deterministic one,
    and the mean over ``num_samples`` sampled actions for a continuous stochastic one
    (``q(obs, action) -> [B]``)."""
    if policy.discrete:
        values = q(obs)
        if policy.log_prob is None:
            return jnp.take_along_axis(values, policy.act(obs, key)[..., None].astype(jnp.int32), -1)[..., 0]
        actions = jnp.arange(policy.num_actions, dtype=jnp.int32)
        log_probs = jax.vmap(lambda a: policy.log_prob(obs, jnp.full(obs.shape[:1], a)), out_axes=-1)(actions)
        return jnp.sum(jnp.exp(log_probs) * values, axis=-1)
    if policy.log_prob is None:
        return q(obs, policy.act(obs, key))
    return jnp.mean(jax.vmap(lambda k: q(obs, policy.act(obs, k)))(jax.random.split(key, num_samples)), axis=0)


class Episodes(NamedTuple):
    """A dataset's whole episodes laid out ``[T, N, ...]`` for the estimators (zero-padded, ``mask``
    1 while an episode runs), with ``index`` ``[T, N]``: each step's position in the dataset's
    transitions (0 where padded). ``dropped``: episodes left out, cut short."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    behaviour_log_prob: np.ndarray | None
    mask: np.ndarray
    index: np.ndarray
    dropped: int


def episodes(dataset: datasets.Dataset, time_limit: int | None) -> Episodes:
    """``dataset``'s whole episodes: those that end in a termination, or truncated at the
    environment's ``time_limit`` (or later); an episode truncated earlier is left out."""
    t = dataset.transitions
    lengths = np.asarray(dataset.episode_lengths)
    starts = np.cumsum(lengths) - lengths
    ends = starts + lengths - 1
    whole = (np.asarray(t.termination)[ends] > 0) | (time_limit is not None and lengths >= time_limit)
    if not whole.any():
        raise OPEError(f"{dataset.path}: no whole episode (every one ends cut short, before the time limit "
                       f"{time_limit}); importance sampling needs whole episodes")
    starts, lengths = starts[whole], lengths[whole]
    horizon = int(lengths.max())
    steps = np.arange(horizon)[:, None]
    mask = steps < lengths[None, :]
    index = np.where(mask, starts[None, :] + steps, 0)
    take = lambda x: np.where(mask.reshape(mask.shape + (1,) * (np.ndim(x) - 1)), np.asarray(x)[index], 0)  # noqa: E731
    behaviour = take(t.extras["log_prob"]) if "log_prob" in t.extras else None
    return Episodes(take(t.obs), take(t.action), take(t.reward).astype(np.float32), behaviour,
                    mask.astype(np.float32), index, int((~whole).sum()))


def initial_obs(dataset: datasets.Dataset) -> np.ndarray:
    """The first observation of every episode of ``dataset`` ``[N, ...]``: samples of μ₀."""
    lengths = np.asarray(dataset.episode_lengths)
    return np.asarray(dataset.transitions.obs)[np.cumsum(lengths) - lengths]


@functools.partial(jax.jit, static_argnums=4)
def _importance_sampling(reward, target, behaviour, mask, gamma):
    """IS, PDIS and WIS of ``[T, N]`` episodes, in one compiled program."""
    args = (reward, target, behaviour, gamma)
    return {"IS": estimators.trajectory_importance_sampling(*args, mask=mask),
            "PDIS": estimators.per_decision_importance_sampling(*args, mask=mask),
            "WIS": estimators.weighted_importance_sampling(*args, mask=mask)}


@functools.partial(jax.jit, static_argnums=6)
def _doubly_robust(reward, target, behaviour, q_sa, v, mask, gamma):
    """DR and WDR of ``[T, N]`` episodes given Q̂(s, a) and V̂(s), in one compiled program."""
    args = (reward, target, behaviour, q_sa, v, gamma)
    return {"DR": estimators.doubly_robust(*args, mask=mask),
            "WDR": estimators.weighted_doubly_robust(*args, mask=mask)}


def estimate(dataset: datasets.Dataset, policy: Policy, gamma: float, *, time_limit: int | None = None,
             q: Callable | None = None, fqe_value: float | None = None, key=None,
             num_samples: int = 8) -> dict[str, float]:
    """Every estimate of J(π_e) that ``dataset`` and ``policy`` allow, by name (:data:`ESTIMATORS`).

    IS, PDIS and WIS need the behaviour ``log_prob`` in the dataset and a stochastic ``policy``;
    DR and WDR also need ``q``, FQE's Q̂ (``q(obs) -> [B, A]``, or ``q(obs, action) -> [B]`` for
    continuous actions); ``fqe_value`` is reported as ``FQE``. ``time_limit``: the environment's
    (see :func:`episodes`). Also returns ``episodes`` (used by IS) and ``dropped``.
    """
    out: dict[str, float] = {}
    if fqe_value is not None:
        out["FQE"] = float(fqe_value)
    if policy.log_prob is None or "log_prob" not in dataset.transitions.extras:
        return out
    key = jax.random.PRNGKey(0) if key is None else key
    ep = episodes(dataset, time_limit)
    flat = lambda x: jnp.asarray(x).reshape((-1,) + x.shape[2:])  # noqa: E731
    shape = ep.mask.shape
    target = np.asarray(jax.jit(policy.log_prob)(flat(ep.obs), flat(ep.action))).reshape(shape)
    target = np.where(ep.mask > 0, target, 0.0).astype(np.float32)
    args = (jnp.asarray(ep.reward), jnp.asarray(target), jnp.asarray(ep.behaviour_log_prob))
    mask = jnp.asarray(ep.mask)
    out.update({name: float(x) for name, x in _importance_sampling(*args, mask, gamma).items()})
    if q is not None:
        obs, action = flat(ep.obs), flat(ep.action)

        @jax.jit
        def model(obs, action, key):
            if policy.discrete:
                q_sa = jnp.take_along_axis(q(obs), action[..., None].astype(jnp.int32), -1)[..., 0]
            else:
                q_sa = q(obs, action)
            return q_sa, expected_value(q, policy, obs, key, num_samples)

        q_sa, v = (np.where(ep.mask > 0, np.asarray(x).reshape(shape), 0.0).astype(np.float32)
                   for x in model(obs, action, key))
        robust = _doubly_robust(*args, jnp.asarray(q_sa), jnp.asarray(v), mask, gamma)
        out.update({name: float(x) for name, x in robust.items()})
    out["episodes"], out["dropped"] = int(shape[1]), ep.dropped
    return out


def true_value(env: envs.Env, policy: Policy, key, num_episodes: int, gamma: float,
               max_steps: int | None = None) -> tuple[float, float]:
    """The mean discounted return of ``num_episodes`` on-policy episodes of ``policy`` in ``env``
    (each to its end or ``max_steps``, default the time limit) and its standard error."""
    from fnrl.loops.evaluation import episode_limit, evaluate

    act = lambda _, obs, key: (policy.act(obs, key), {})  # noqa: E731
    run = jax.jit(lambda key: evaluate(env, act, None, key, num_episodes, max_steps or episode_limit(env),
                                       discount=gamma, per_episode=True))
    returns = np.asarray(run(key), np.float64)
    stderr = float(returns.std(ddof=1) / np.sqrt(num_episodes)) if num_episodes > 1 else float("nan")
    return float(returns.mean()), stderr
