"""Planning with a model: random shooting, CEM, MPPI and Monte Carlo tree search, run as MPC.

A **model** is anything with the environment interface (:class:`fnrl.envs.Env`): the planners
call ``model.step(state, action) -> state`` on copies of a state and read the new state's
``reward`` and ``termination``, and ``model.spec`` for the actions. The true environment is such
a model (exact: planning with known dynamics); a learned dynamics model wrapped with a reward
and termination function is another. Nothing else is assumed: the planners ignore ``obs``,
``info`` and ``truncation`` (a time limit ends an episode, not the task a plan optimises).

**Objective.** From a state s₀, an action sequence a_{0:H} is scored by the model's rewards r_t
and terminations d_t (:func:`sequence_returns`)::

    J(a_{0:H}) = Σ_{t<H} γ^t (Π_{k<t} (1 − d_k)) r_t

so the reward of the step that terminates counts and nothing after it does. Candidates are
scored together: ``jax.vmap`` over sequences (:func:`candidate_returns`), and the planners
themselves ``vmap`` over a batch of start states (:func:`run_mpc` plans every episode at once).

**Planners.** Each is a :class:`Planner`, two pure functions built from a validated config:
``init(spec) -> carry`` (what a fresh episode starts from) and ``plan(model, state, carry, key)
-> PlanOutput(action, carry, info)`` (the action to take in ``state`` and the carry for the next
step). Continuous actions are kept inside the spec's bounds by clipping every sample.

- :func:`random_shooting` -- the best of N uniformly random sequences;
- :func:`cem` -- the cross-entropy method: refit a Gaussian (a categorical for discrete
  actions) to the elite sequences, with smoothing (Rubinstein 1999; Chua et al. 2018);
- :func:`mppi` -- model predictive path integral control: an exponentially weighted average
  of perturbed sequences (Williams et al. 2017);
- :func:`mcts` -- tree search with DeepMind's ``mctx`` on the model, leaves valued by random
  rollouts as in UCT (Kocsis & Szepesvári 2006), for discrete actions.

**MPC.** Every step plans from the current state and executes the first action only, then plans
again (receding horizon). With ``warm_start`` the carry is the previous plan shifted by one step
(:func:`shift`): the sequence still to come, with the initial guess appended. Two ways to run it:

- :func:`run_mpc` -- episodes of the real environment, planning from each real state and carrying
  the plan from step to step (what ``fnrl plan`` and ``experiments/planning.py`` run);
- :func:`mpc_policy` -- an ``act(learner, obs, key)`` function for
  :func:`fnrl.loops.evaluation.evaluate` and :func:`fnrl.render.render_episode`. That contract
  gives the policy an observation and no memory, so this policy rebuilds the model state from the
  observation (:func:`observed_state`) and plans from scratch every step (no warm start).

By name: :func:`names`, :func:`config_class` and :func:`make` (``fnrl plan NAME``); tuned settings
per environment live in ``fnrl/presets.yaml`` with the algorithms' (:func:`fnrl.presets.config`).
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import mctx
import numpy as np

from fnrl import envs
from fnrl.config import Validated, check, constrained, non_negative, positive, positive_int, unit_interval
from fnrl.envs.classic import Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum
from fnrl.envs.core import Env, EnvState, Spec
from fnrl.envs.tabular import TabularEnv
from fnrl.models import ModelEnv

__all__ = [
    "ShootingConfig", "CEMConfig", "MPPIConfig", "MCTSConfig", "Planner", "PlanOutput", "Gaussian", "Categorical",
    "Episodes", "sequence_returns", "candidate_returns", "shift", "random_shooting", "cem", "mppi", "mcts",
    "run_mpc", "mpc_policy", "observed_state", "names", "config_class", "make",
]


# ------------------------------------------------------------------------------------ configs

def _below_one(default: float) -> Any:
    return constrained(default, lambda v: 0.0 <= v < 1.0, "in [0, 1)")


@dataclasses.dataclass(frozen=True)
class ShootingConfig(Validated):
    """Random shooting: ``population`` uniformly random sequences of ``horizon`` actions."""

    horizon: int = positive_int(30)
    population: int = positive_int(1000)
    discount: float = unit_interval(1.0)
    warm_start: bool = True  # also score the previous step's best sequence, shifted


@dataclasses.dataclass(frozen=True)
class CEMConfig(Validated):
    """The cross-entropy method: ``iterations`` rounds of ``population`` samples, refit to the
    best ``elites``. ``momentum`` α keeps that much of the old distribution at each refit;
    ``init_std`` is the initial standard deviation as a fraction of half the action range (0.5:
    a quarter of the range). The defaults are PETS's (Chua et al. 2018: 400 samples, 40 elites,
    5 iterations, α = 0.1, a horizon of 30 steps)."""

    horizon: int = positive_int(30)
    population: int = positive_int(400)
    elites: int = positive_int(40)
    iterations: int = positive_int(5)
    momentum: float = _below_one(0.1)
    init_std: float = positive(0.5)
    discount: float = unit_interval(1.0)
    warm_start: bool = True  # start from the previous plan's mean, shifted (the spread starts afresh)

    def __post_init__(self):
        super().__post_init__()
        check(self.elites < self.population, "elites", self.elites,
              f"smaller than population={self.population}")


@dataclasses.dataclass(frozen=True)
class MPPIConfig(Validated):
    """MPPI: ``iterations`` updates per step of a nominal sequence, each from ``population``
    perturbations of standard deviation ``noise_std`` (a fraction of half the action range),
    weighted by exp(J / ``temperature``)."""

    horizon: int = positive_int(30)
    population: int = positive_int(500)
    iterations: int = positive_int(1)
    temperature: float = positive(1.0)
    noise_std: float = positive(0.5)
    discount: float = unit_interval(1.0)
    warm_start: bool = True  # start from the previous nominal sequence, shifted


@dataclasses.dataclass(frozen=True)
class MCTSConfig(Validated):
    """Tree search with ``mctx``: ``num_simulations`` simulations from the current state; each new
    leaf is valued by the mean discounted return of ``num_rollouts`` random rollouts of
    ``rollout_steps`` model steps (0: every leaf is worth 0, and the tree alone must see far
    enough). ``exploration`` is the PUCT constant c₁ (mctx's ``pb_c_init``); ``max_depth`` caps
    the tree's depth (null: no cap beyond the number of simulations)."""

    num_simulations: int = positive_int(64)
    rollout_steps: int = constrained(25, lambda v: v >= 0, ">= 0")
    num_rollouts: int = positive_int(8)
    discount: float = unit_interval(0.99)
    exploration: float = non_negative(1.25)
    max_depth: int | None = None

    def __post_init__(self):
        super().__post_init__()
        check(self.max_depth is None or self.max_depth > 0, "max_depth", self.max_depth,
              "a positive integer or null")


# ---------------------------------------------------------------------------------- objective

def sequence_returns(model: Env, state: EnvState, actions: chex.Array, discount: float = 1.0) -> chex.Array:
    """J = Σ_{t<H} γ^t (Π_{k<t} (1 − d_k)) r_t of one action sequence ``actions`` ``[H, *A]``
    from ``state``: the model stepped H times (``lax.scan``), rewards after a termination
    dropped. A ``where``, not a product, drops them, so a model that returns NaN past its
    termination (Brax physics can) does not poison J."""

    def step(carry, action):
        state, alive, weight = carry
        state = model.step(state, action)
        reward = jnp.where(alive > 0, weight * state.reward, 0.0)
        alive = alive * (1.0 - state.termination)
        return (state, alive, weight * discount), reward

    one = jnp.ones((), jnp.float32)
    _, rewards = jax.lax.scan(step, (state, one, one), actions)
    return jnp.sum(rewards)


def candidate_returns(model: Env, state: EnvState, actions: chex.Array, discount: float = 1.0) -> chex.Array:
    """J of each of N sequences ``actions`` ``[N, H, *A]`` from the same ``state``, vmapped: ``[N]``."""
    return jax.vmap(lambda a: sequence_returns(model, state, a, discount))(actions)


def shift(sequence: chex.Array, fill: chex.Array) -> chex.Array:
    """The warm start: ``sequence`` ``[H, ...]`` advanced by one step, ``fill[-1]`` appended,
    ``(x_1, ..., x_{H-1}, fill_{H-1})``: after executing x₀ the rest of the plan still applies."""
    return jnp.concatenate([sequence[1:], fill[-1:]], axis=0)


# ----------------------------------------------------------------------------- action spaces

def _bounds(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """The continuous action bounds as float32 arrays of the action's shape."""
    low, high = (np.broadcast_to(np.asarray(b, np.float32), spec.action_shape)
                 for b in (spec.action_low, spec.action_high))
    return low, high


def _check_spec(spec: Spec, planner: str, kinds: tuple[str, ...]) -> None:
    """One-line ValueError unless ``planner`` handles ``spec``'s actions."""
    kind = "discrete" if spec.discrete else "continuous"
    if kind not in kinds:
        raise ValueError(f"{planner} needs {kinds[0]} actions; this model's actions are {kind}"
                         + (" (use random_shooting, cem or mppi)" if kind == "continuous" else
                            " (use mcts, random_shooting or cem)"))
    if not spec.discrete:
        if spec.action_low is None or spec.action_high is None:
            raise ValueError(f"{planner} needs bounded continuous actions; this model's spec has no bounds")
        low, high = _bounds(spec)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(f"{planner} needs finite action bounds with low < high, got {low} and {high}")


def _uniform_sequences(spec: Spec, key, num: int, horizon: int) -> chex.Array:
    """``num`` sequences of ``horizon`` uniformly random valid actions, ``[num, horizon, *A]``."""
    return spec.sample_action(key, (num, horizon))


class Gaussian(NamedTuple):
    """A diagonal Gaussian over continuous action sequences: ``mean``, ``std`` ``[H, *A]``."""

    mean: chex.Array
    std: chex.Array


class Categorical(NamedTuple):
    """Independent categoricals over discrete action sequences: ``probs`` ``[H, num_actions]``."""

    probs: chex.Array


def _initial_distribution(spec: Spec, horizon: int, init_std: float) -> Gaussian | Categorical:
    """The centre of the action box with σ = ``init_std`` · (high − low)/2; uniform if discrete."""
    if spec.discrete:
        return Categorical(jnp.full((horizon, spec.num_actions), 1.0 / spec.num_actions, jnp.float32))
    low, high = _bounds(spec)
    mean = np.broadcast_to((low + high) / 2, (horizon,) + low.shape)
    return Gaussian(jnp.asarray(mean), jnp.asarray(init_std * np.broadcast_to((high - low) / 2, mean.shape)))


def _sample(spec: Spec, dist: Gaussian | Categorical, key, num: int) -> chex.Array:
    """``num`` sequences from ``dist``; Gaussian samples clipped to the bounds."""
    if isinstance(dist, Categorical):
        return jax.random.categorical(key, jnp.log(dist.probs), shape=(num,) + dist.probs.shape[:1]).astype(jnp.int32)
    low, high = _bounds(spec)
    noise = jax.random.normal(key, (num,) + dist.mean.shape, dist.mean.dtype)
    return jnp.clip(dist.mean + dist.std * noise, low, high)


def _refit(dist: Gaussian | Categorical, elites: chex.Array, momentum: float) -> Gaussian | Categorical:
    """The maximum-likelihood fit to ``elites`` ``[K, H, ...]``, mixed with the old ``dist``:
    μ ← α μ + (1 − α) mean(elites), σ² ← α σ² + (1 − α) var(elites) (Chua et al. 2018), or
    p ← α p + (1 − α) frequencies(elites) for categoricals."""
    if isinstance(dist, Categorical):
        frequencies = jnp.mean(jax.nn.one_hot(elites, dist.probs.shape[-1]), axis=0)
        return Categorical(momentum * dist.probs + (1 - momentum) * frequencies)
    var = momentum * dist.std**2 + (1 - momentum) * jnp.var(elites, axis=0)
    return Gaussian(momentum * dist.mean + (1 - momentum) * jnp.mean(elites, axis=0), jnp.sqrt(var))


def _mode(dist: Gaussian | Categorical) -> chex.Array:
    """The most likely sequence: the mean, or each step's most probable action."""
    if isinstance(dist, Categorical):
        return jnp.argmax(dist.probs, axis=-1).astype(jnp.int32)
    return dist.mean


# ---------------------------------------------------------------------------------- planners

class PlanOutput(NamedTuple):
    """What ``plan`` returns: the ``action`` to take now (env units), the ``carry`` for the next
    step, and ``info`` (the planned sequence ``"plan"`` and its predicted ``"return"``; for
    MCTS the root's ``"visit_counts"``, ``"q_values"`` and ``"value"``)."""

    action: chex.Array
    carry: Any
    info: dict


class Planner(NamedTuple):
    """A planner: ``init(spec) -> carry`` and ``plan(model, state, carry, key) -> PlanOutput``,
    both pure (``plan`` works under ``jit`` and ``vmap`` over states, carries and keys; the model
    is a static Python object). ``model_steps`` is the number of ``model.step`` calls one
    ``plan`` makes, the budget planners are compared at."""

    name: str
    config: Any
    init: Callable[[Spec], Any]
    plan: Callable[[Env, EnvState, Any, chex.PRNGKey], PlanOutput]
    model_steps: int


def random_shooting(config: ShootingConfig = ShootingConfig()) -> Planner:
    """Random shooting: the best of N sequences drawn uniformly from the action space,

        a*_{0:H} = argmax_{a^i, i ≤ N} J(a^i),   a^i_t ~ U(A),

    executed for one step (the simplest planner of CS285 Lecture 10; with learned models,
    Nagabandi et al. 2018, "Neural network dynamics for model-based deep RL with model-free
    fine-tuning"). Discrete or continuous actions. With ``warm_start`` the previous step's best
    sequence, shifted, is one of the N (so the plan never gets worse under an exact model);
    the carry is that best sequence.
    """
    c = config

    def init(spec: Spec) -> chex.Array:
        _check_spec(spec, "random_shooting", ("continuous", "discrete"))
        return _mode(_initial_distribution(spec, c.horizon, 1.0))

    def plan(model, state, carry, key):
        candidates = _uniform_sequences(model.spec, key, c.population, c.horizon)
        if c.warm_start:
            candidates = candidates.at[0].set(carry)
        returns = candidate_returns(model, state, candidates, c.discount)
        best = candidates[jnp.argmax(returns)]
        following = shift(best, init(model.spec)) if c.warm_start else init(model.spec)
        return PlanOutput(best[0], following, {"plan": best, "return": jnp.max(returns)})

    return Planner("random_shooting", c, init, plan, c.population * c.horizon)


def cem(config: CEMConfig = CEMConfig()) -> Planner:
    """The cross-entropy method (Rubinstein 1999, "The cross-entropy method for combinatorial
    and continuous optimization"; as an MPC planner, Chua et al. 2018, PETS).

    For i = 1..I: draw N sequences from the sampling distribution q (a diagonal Gaussian
    N(μ, σ²) over ``[H, *A]``, samples clipped to the bounds; for discrete actions independent
    categoricals p_t), score them by J, keep the K best (the elites E) and refit with
    smoothing α::

        μ ← α μ + (1 − α) mean(E),   σ² ← α σ² + (1 − α) var(E)     (p ← α p + (1 − α) freq(E))

    The executed action is the first of the final distribution's mode (PETS executes the mean).
    ``warm_start``: the next step starts from μ shifted by one step (:func:`shift`) with σ reset
    to its initial value, as PETS does (for categoricals, p shifted, uniform appended).
    """
    c = config

    def init(spec: Spec) -> Gaussian | Categorical:
        _check_spec(spec, "cem", ("continuous", "discrete"))
        return _initial_distribution(spec, c.horizon, c.init_std)

    def plan(model, state, carry, key):
        initial = init(model.spec)
        start = carry if c.warm_start else initial

        def iteration(dist, key):
            samples = _sample(model.spec, dist, key, c.population)
            returns = candidate_returns(model, state, samples, c.discount)
            top, index = jax.lax.top_k(returns, c.elites)
            return _refit(dist, samples[index], c.momentum), top[0]

        dist, best = jax.lax.scan(iteration, start, jax.random.split(key, c.iterations))
        actions = _mode(dist)
        following = jax.tree_util.tree_map(shift, dist, initial) if c.warm_start else initial
        if c.warm_start and isinstance(dist, Gaussian):
            following = following._replace(std=initial.std)
        return PlanOutput(actions[0], following, {"plan": actions, "return": best[-1]})

    return Planner("cem", c, init, plan, c.iterations * c.population * c.horizon)


def mppi(config: MPPIConfig = MPPIConfig()) -> Planner:
    """Model predictive path integral control (Williams, Aldrich & Theodorou 2017, "Model
    predictive path integral control: from theory to parallel computation", JGCD; Williams et
    al. 2017, "Information theoretic MPC for model-based reinforcement learning", ICRA).

    Around the nominal sequence U ``[H, *A]``, draw N perturbed sequences V^i = clip(U + ε^i)
    with ε^i ~ N(0, σ²I), and replace U by their average weighted by the exponentiated returns::

        w_i = exp((J(V^i) − max_j J(V^j)) / λ) / Σ_k exp((J(V^k) − max_j J(V^j)) / λ),   U ← Σ_i w_i V^i

    (a softmax of J / λ; λ → 0 picks the best sample, λ → ∞ averages them all). The noise's
    control-cost term λ Σ_t U_tᵀ Σ⁻¹ ε_t of the information-theoretic derivation is left out, as
    in most MPPI implementations for learned models. Execute U₀; with ``warm_start`` the next
    step starts from U shifted by one step, the centre of the action box appended. Continuous
    actions only.
    """
    c = config

    def init(spec: Spec) -> chex.Array:
        _check_spec(spec, "mppi", ("continuous",))
        return _initial_distribution(spec, c.horizon, c.noise_std).mean

    def plan(model, state, carry, key):
        low, high = _bounds(model.spec)
        noise_std = c.noise_std * (high - low) / 2
        initial = init(model.spec)
        start = carry if c.warm_start else initial

        def iteration(nominal, key):
            noise = noise_std * jax.random.normal(key, (c.population,) + nominal.shape, nominal.dtype)
            samples = jnp.clip(nominal + noise, low, high)
            returns = candidate_returns(model, state, samples, c.discount)
            weights = jax.nn.softmax(returns / c.temperature)
            return jnp.tensordot(weights, samples, axes=1), jnp.max(returns)

        nominal, best = jax.lax.scan(iteration, start, jax.random.split(key, c.iterations))
        following = shift(nominal, initial) if c.warm_start else initial
        return PlanOutput(nominal[0], following, {"plan": nominal, "return": best[-1]})

    return Planner("mppi", c, init, plan, c.iterations * c.population * c.horizon)


def mcts(config: MCTSConfig = MCTSConfig()) -> Planner:
    """Monte Carlo tree search on the model with DeepMind's ``mctx`` (``mctx.muzero_policy``),
    for discrete actions.

    Each simulation descends the tree by PUCT (Rosin 2011; Silver et al. 2017), mctx's form of
    UCT's optimism (Kocsis & Szepesvári 2006), from a uniform prior with no root noise::

        a = argmax_a  Q̄(s, a) + c(s) · (1/|A|) · √N(s) / (1 + N(s, a)),   c(s) = c₁ + log((N(s) + c₂ + 1) / c₂)

    with Q(s, a) = r + γ(1 − d) V(s') normalised to [0, 1] among the node's children (mctx's
    ``qtransform_by_parent_and_siblings``), expands one new edge by one ``model.step`` (the
    recurrent function) and backs the leaf's value up the path. The action taken is the root's
    most visited one; ties go to the higher Q, then are broken at random.

    Action order: each search numbers the actions in a fresh random order. mctx breaks ties in
    its PUCT scores with noise of 1e-7, below float32's resolution of scores near 1, so ties go
    to the lowest index; with a fixed order that favoured one action, and on cart-pole (a
    mirror-symmetric task) the cart drifted one way until it left the track (swapping the two
    actions swapped the direction of the drift).

    Leaf values: the mean discounted return of ``num_rollouts`` rollouts of ``rollout_steps``
    uniformly random actions from the new state, UCT's default policy (Kocsis & Szepesvári 2006;
    Browne et al. 2012). Rollouts were chosen over zero values: with a reward every step (+1 in
    cart-pole), a zero value makes every leaf look alike until the tree itself is deep enough to
    reach the failures, while a random rollout already sees an imminent fall (``rollout_steps=0``
    gives the zero value).

    Terminal states: the tree's embedding carries an ``alive`` flag. The edge into a state with
    ``termination`` gets discount 0, so Q = r there and nothing below it is backed up; the leaf's
    value is 0; and steps taken below a terminal node (the tree may still expand them) have
    reward 0, so a model that pays rewards after its episode ends is not believed. The carry is
    empty (mctx builds a fresh tree each step).
    """
    c = config

    def init(spec: Spec) -> tuple:
        _check_spec(spec, "mcts", ("discrete",))
        return ()

    def leaf_value(model, state, key):
        if c.rollout_steps == 0:
            return jnp.zeros((), jnp.float32)
        actions = _uniform_sequences(model.spec, key, c.num_rollouts, c.rollout_steps)
        return jnp.mean(candidate_returns(model, state, actions, c.discount))

    def plan(model, state, carry, key):
        num_actions = model.spec.num_actions
        value_key, search_key, order_key, tie_key = jax.random.split(key, 4)
        order = jax.random.permutation(order_key, num_actions).astype(jnp.int32)  # tree index i is action order[i]

        def recurrent_fn(params, key, action, embedding):
            states, alive = embedding
            following = jax.vmap(model.step)(states, order[action])
            reward = jnp.where(alive > 0, following.reward, 0.0)
            still = alive * (1.0 - following.termination)
            values = jax.vmap(lambda s, k: leaf_value(model, s, k))(following, jax.random.split(key, action.shape[0]))
            output = mctx.RecurrentFnOutput(reward=reward, discount=c.discount * still,
                                            prior_logits=jnp.zeros((action.shape[0], num_actions), jnp.float32),
                                            value=jnp.where(still > 0, values, 0.0))
            return output, (following, still)

        root = mctx.RootFnOutput(prior_logits=jnp.zeros((1, num_actions), jnp.float32),
                                 value=leaf_value(model, state, value_key)[None],
                                 embedding=(jax.tree_util.tree_map(lambda x: x[None], state), jnp.ones((1,))))
        output = mctx.muzero_policy((), search_key, root, recurrent_fn, c.num_simulations, max_depth=c.max_depth,
                                    dirichlet_fraction=0.0, pb_c_init=c.exploration)
        summary = output.search_tree.summary()
        visits, q_values = (jnp.zeros_like(x[0]).at[order].set(x[0]) for x in (summary.visit_counts, summary.qvalues))
        most = visits == jnp.max(visits)
        best = most & (q_values == jnp.max(jnp.where(most, q_values, -jnp.inf)))
        action = jax.random.choice(tie_key, num_actions, p=best / jnp.sum(best)).astype(jnp.int32)
        return PlanOutput(action, carry, {"visit_counts": visits, "q_values": q_values,
                                          "value": summary.value[0]})

    per_leaf = c.num_rollouts * c.rollout_steps
    return Planner("mcts", c, init, plan, c.num_simulations * (1 + per_leaf) + per_leaf)


# --------------------------------------------------------------------------------------- MPC

class Episodes(NamedTuple):
    """Episodes of :func:`run_mpc`: undiscounted ``returns`` ``[B]``, ``lengths`` ``[B]`` (steps
    until termination, truncation or ``max_steps``) and, when recorded, ``internals``: every
    episode's ``EnvState.internal`` from the reset state on, ``[max_steps + 1, B, ...]``."""

    returns: chex.Array
    lengths: chex.Array
    internals: Any = None


def run_mpc(env: Env, planner: Planner, key: chex.PRNGKey, num_episodes: int, max_steps: int | None = None,
            model: Env | None = None, model_state: Callable[[EnvState], EnvState] | None = None,
            record: bool = False) -> Episodes:
    """``num_episodes`` episodes of ``env`` under MPC: at every step each episode plans from its
    state, executes the plan's first action and carries the plan to the next step (the warm
    start, when the planner's config asks for it). One ``lax.scan`` over steps; the planner is
    vmapped over the episodes. Pure: ``jax.jit(functools.partial(run_mpc, env, planner,
    num_episodes=4))(key)``.

    Args:
      env: the real environment (unbatched; from :func:`fnrl.envs.make`, so time-limited).
      planner: a :class:`Planner`.
      key: the episodes' start states and the planners' keys, split as
        :func:`fnrl.loops.evaluation.evaluate` splits its key (same start states).
      num_episodes: B, run side by side.
      max_steps: the longest episode (default: ``env``'s time limit, else 1000).
      model: what the planner plans with; default ``env`` itself (the true model).
      model_state: the model's state for a real state ``EnvState`` of ``env``; default the
        real state itself (right when ``model`` is ``env``, or shares its states).
      record: also return every step's ``internal`` state (for rendering).
    """
    from fnrl.loops.evaluation import episode_limit

    model = env if model is None else model
    model_state = (lambda state: state) if model_state is None else model_state
    max_steps = episode_limit(env) if max_steps is None else max_steps
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, (int, np.integer)) or num_episodes < 1:
        raise ValueError(f"run_mpc: num_episodes must be a positive integer, got {num_episodes!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"run_mpc: max_steps must be a positive integer, got {max_steps!r}")
    initial = planner.init(model.spec)
    batched = envs.wrap(env, num_envs=num_episodes, rescale_actions=False, auto_reset=False)
    reset_key, key = jax.random.split(key)
    state = batched.reset(reset_key)

    def plan(state, carry, key):
        return planner.plan(model, model_state(state), carry, jax.random.split(key)[1])

    def step(loop, step_key):
        state, carry, total, length, alive = loop
        out = jax.vmap(plan)(state, carry, jax.random.split(step_key, num_episodes))
        state = batched.step(state, out.action)
        total = total + jnp.where(alive > 0, state.reward, 0.0)
        length = length + (alive > 0)
        alive = alive * (1.0 - jnp.maximum(state.termination, state.truncation))
        return (state, out.carry, total, length, alive), (state.internal if record else None)

    carry = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_episodes,) + jnp.shape(x)), initial)
    zeros = jnp.zeros(num_episodes)
    loop = (state, carry, zeros, zeros.astype(jnp.int32), jnp.ones(num_episodes))
    (_, _, total, length, _), internals = jax.lax.scan(step, loop, jax.random.split(key, max_steps))
    if record:
        internals = jax.tree_util.tree_map(lambda first, rest: jnp.concatenate([first[None], rest]),
                                           state.internal, internals)
    return Episodes(total, length, internals)


def mpc_policy(planner: Planner, model: Env, state_from_obs: Callable | None = None) -> Callable:
    """An ``act(learner, obs, key) -> (action, {})`` that plans with ``model`` from scratch at
    every step, for :func:`fnrl.loops.evaluation.evaluate` and :func:`fnrl.render.render_episode`
    (``learner`` is ignored: pass None). ``obs`` is a batch ``[B, ...]``; each observation
    becomes a model state by ``state_from_obs(obs, key)`` (default :func:`observed_state` of
    ``model``). Continuous actions come back in ``[-1, 1]``, the units of the action-rescaled
    batch those functions step (:func:`fnrl.envs.wrap`).

    That contract has no memory, so there is no warm start here; :func:`run_mpc` carries the
    plan from step to step.
    """
    state_from_obs = observed_state(model) if state_from_obs is None else state_from_obs
    spec = model.spec
    initial = planner.init(spec)

    def to_policy_units(action):
        if spec.discrete:
            return action
        low, high = _bounds(spec)
        return (action - low) / (high - low) * 2.0 - 1.0

    def act(learner, obs, key):
        def one(obs, key):
            state_key, plan_key = jax.random.split(key)
            return to_policy_units(planner.plan(model, state_from_obs(obs, state_key), initial, plan_key).action)

        return jax.vmap(one)(obs, jax.random.split(key, obs.shape[0])), {}

    return act


# The environments whose observation determines their state: internal state from (obs, a fresh
# reset's internal state).
_FROM_OBS: dict[type, Callable] = {
    CartPole: lambda obs, fresh: obs,
    MountainCar: lambda obs, fresh: obs,
    MountainCarContinuous: lambda obs, fresh: obs,
    Pendulum: lambda obs, fresh: jnp.stack([jnp.arctan2(obs[1], obs[0]), obs[2]]),
    Acrobot: lambda obs, fresh: jnp.stack([jnp.arctan2(obs[1], obs[0]), jnp.arctan2(obs[3], obs[2]), obs[4], obs[5]]),
    TabularEnv: lambda obs, fresh: (jnp.argmax(obs).astype(jnp.int32), fresh[1]),  # (s, the reset's RNG key)
    ModelEnv: lambda obs, fresh: fresh,  # a learned model's state is its observation (and its own key)
}


def observed_state(env: Env) -> Callable[[chex.Array, chex.PRNGKey], EnvState]:
    """``state_from_obs(obs, key) -> EnvState``: a state of ``env`` (any stack of fnrl wrappers
    around a classic-control or tabular environment) whose observation is ``obs``.

    A fresh ``env.reset(key)`` gives the wrappers' bookkeeping (a time limit's step counter
    restarts at 0) and the environment's own state is recovered from ``obs``: cart-pole and the
    mountain cars observe their state; pendulum (cos θ, sin θ, θ̇) gives θ = atan2(sin θ, cos θ);
    acrobot likewise for both angles; a tabular MDP's one-hot observation gives the state index
    (its RNG key comes from the reset); a learned model (:class:`fnrl.models.ModelEnv`) is in
    the state it observes.

    Raises:
      ValueError: one line, for an environment whose observation does not determine its state
        (Brax's observations omit positions, for instance): plan from the real state with
        :func:`run_mpc`, or give :func:`mpc_policy` a ``state_from_obs``.
    """
    inner = env.unwrapped
    recover = _FROM_OBS.get(type(inner))
    if recover is None:
        name = getattr(inner, "name", None) or type(inner).__name__
        raise ValueError(f"{name}: its observation does not determine its state, so a planner cannot start from "
                         "an observation; plan from the environment's own state with fnrl.planning.run_mpc, "
                         "or give mpc_policy a state_from_obs")

    def state_from_obs(obs, key):
        fresh = env.reset(key)
        return fresh.replace(obs=jnp.asarray(obs, fresh.obs.dtype), internal=recover(jnp.asarray(obs), fresh.internal))

    return state_from_obs


# ----------------------------------------------------------------------------------- by name

_PLANNERS: dict[str, tuple[type, Callable[[Any], Planner]]] = {
    "random_shooting": (ShootingConfig, random_shooting),
    "cem": (CEMConfig, cem),
    "mppi": (MPPIConfig, mppi),
    "mcts": (MCTSConfig, mcts),
}


def names() -> list[str]:
    """The planners' names (``fnrl plan NAME``), in the order of the module docstring."""
    return list(_PLANNERS)


def config_class(name: str) -> type:
    """The config dataclass of planner ``name``.

    Raises:
      ValueError: one line naming the unknown planner, its closest names and what is accepted.
    """
    if name not in _PLANNERS:
        close = difflib.get_close_matches(name, _PLANNERS, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown planner {name!r}{hint}; accepted: {', '.join(names())}")
    return _PLANNERS[name][0]


def make(name: str, config: Any = None) -> Planner:
    """Planner ``name`` with ``config`` (default: its config's defaults)."""
    kind = config_class(name)
    config = kind() if config is None else config
    if not isinstance(config, kind):
        raise TypeError(f"planner {name!r} takes a {kind.__name__}, got {type(config).__name__}")
    return _PLANNERS[name][1](config)

