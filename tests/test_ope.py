"""Off-policy evaluation in :mod:`fnrl.estimators` against an exactly solved tabular MDP.

The MDP: 4 states plus an absorbing terminal state, 2 actions, horizon H = 6, γ = 0.9, random
transitions and rewards. J(π) = Σ_s d₀(s) V_0(s) comes from the finite-horizon backward
recursion Q_h = R + γ P V_{h+1}, V_h = Σ_a π Q_h, V_H = 0 (numpy, no fnrl code). Episodes are
sampled with numpy from a different behaviour policy μ; they end early at the terminal state,
so the estimators see masked, ragged episodes.
"""
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.estimators as E

S, A, H, GAMMA = 5, 2, 6, 0.9
TERMINAL = S - 1


def make_mdp(seed=0):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))  # P[s, a, s']
    P[TERMINAL] = np.eye(S)[TERMINAL]
    R = rng.uniform(-1, 1, size=(S, A))
    R[TERMINAL] = 0.0
    d0 = np.append(rng.dirichlet(np.ones(S - 1)), 0.0)
    pi = rng.dirichlet(np.ones(A), size=S)
    mu = 0.5 * rng.dirichlet(np.ones(A), size=S) + 0.5 / A  # bounded away from 0
    return P, R, d0, pi, mu


def exact_q(P, R, pi):
    """Q_h(s, a) for h = 0..H−1 by backward recursion; returns Q [H, S, A] and V [H, S]."""
    Q, V = np.zeros((H, S, A)), np.zeros((H + 1, S))
    for h in reversed(range(H)):
        Q[h] = R + GAMMA * P @ V[h + 1]
        V[h] = (pi * Q[h]).sum(-1)
    return Q, V[:H]


def sample(mdp, n, seed):
    """n episodes of H steps from μ, time-major [H, n]; mask = 0 once the terminal is reached."""
    P, R, d0, pi, mu = mdp
    rng = np.random.default_rng(seed)

    def draw(probs):  # one categorical draw per row of probs [n, k]
        below = probs.cumsum(-1) < rng.random((len(probs), 1))
        return below.sum(-1).clip(max=probs.shape[-1] - 1)

    s = draw(np.broadcast_to(d0, (n, S)))
    states, actions = np.zeros((H, n), int), np.zeros((H, n), int)
    for t in range(H):
        states[t], actions[t] = s, draw(mu[s])
        s = draw(P[s, actions[t]])
    return states, actions


def episode_data(mdp, states, actions, q_model):
    """Estimator inputs [H, n] for sampled episodes, with a model Q̂ [H, S, A] of choice."""
    P, R, d0, pi, mu = mdp
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    t = np.arange(H)[:, None]
    return dict(rewards=f32(R[states, actions]),
                target_log_probs=f32(np.log(pi[states, actions])),
                behaviour_log_probs=f32(np.log(mu[states, actions])),
                q_values=f32(q_model[t, states, actions]),
                state_values=f32((pi[states] * q_model[t, states]).sum(-1)),
                mask=f32(states != TERMINAL))


def batches(data, k, n=None):
    """The first k·n episodes (all by default) as k batches in a trailing dim: [H, n, k], so that
    one call gives k independent estimates."""
    end = None if n is None else k * n
    return {name: x[:, :end].reshape(H, -1, k) for name, x in data.items()}


ESTIMATORS = {
    "trajectory_is": (E.trajectory_importance_sampling, False),
    "per_decision_is": (E.per_decision_importance_sampling, False),
    "weighted_is": (E.weighted_importance_sampling, False),
    "weighted_trajectory_is": (lambda *a, mask: E.weighted_importance_sampling(
        *a, mask=mask, per_decision=False), False),
    "doubly_robust": (E.doubly_robust, True),
    "weighted_doubly_robust": (E.weighted_doubly_robust, True),
}


def estimate(name, data):
    fn, with_q = ESTIMATORS[name]
    keys = ["rewards", "target_log_probs", "behaviour_log_probs"] + (
        ["q_values", "state_values"] if with_q else [])
    return np.asarray(fn(*(data[k] for k in keys), GAMMA, mask=data["mask"]))


@pytest.fixture(scope="module")
def problem():
    mdp = make_mdp()
    P, R, d0, pi, mu = mdp
    Q, V = exact_q(P, R, pi)
    wrong_q = Q + np.random.default_rng(1).uniform(1.0, 3.0, size=(1, S, A))  # biased model
    return dict(mdp=mdp, truth=float(d0 @ V[0]), Q=Q, wrong_q=wrong_q)


@pytest.fixture(scope="module")
def big(problem):
    states, actions = sample(problem["mdp"], 20_000, seed=2)
    return dict(exact=episode_data(problem["mdp"], states, actions, problem["Q"]),
                wrong=episode_data(problem["mdp"], states, actions, problem["wrong_q"]))


def test_sampler_and_oracle_agree_on_policy(problem):
    """Sanity of the test's own oracle: with μ = π the mean discounted return matches J(π)."""
    P, R, d0, pi, mu = problem["mdp"]
    states, actions = sample((P, R, d0, pi, pi), 20_000, seed=3)
    returns = ((GAMMA ** np.arange(H))[:, None] * R[states, actions]).sum(0)
    assert abs(returns.mean() - problem["truth"]) < 3 * returns.std() / np.sqrt(len(returns))
    assert abs(pi[:, 0] - mu[:, 0]).max() > 0.1  # and μ really differs from π


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimators_converge_to_the_true_value(problem, big, name):
    """On 20 000 episodes every estimator is within 3 standard errors of J(π); the standard
    error comes from the spread of 40 independent batch estimates of 500 episodes."""
    full = estimate(name, big["wrong"])
    per_batch = estimate(name, batches(big["wrong"], 40))
    se = per_batch.std(ddof=1) / np.sqrt(len(per_batch))
    assert full.shape == ()
    assert abs(full - problem["truth"]) < 3 * se, (full, problem["truth"], se)


@pytest.mark.parametrize("name", ["per_decision_is", "weighted_is", "doubly_robust",
                                  "weighted_doubly_robust"])
def test_error_shrinks_with_more_data(problem, big, name):
    """RMSE over 40 batches falls ~4x from 25 to 400 episodes per batch (1/√n): require 2x."""

    def rmse(n):
        errors = estimate(name, batches(big["wrong"], 40, n)) - problem["truth"]
        return np.sqrt(np.mean(errors**2))

    assert rmse(400) < 0.5 * rmse(25), (rmse(25), rmse(400))


def test_doubly_robust_is_unbiased_with_a_wrong_model(problem, big):
    """Per-episode DR values (episodes as trailing dims) average to J(π) although Q̂ is off by
    +1..+3 everywhere: the direct-method estimate E[V̂(s_0)] is many standard errors away."""
    per_episode = estimate("doubly_robust", batches(big["wrong"], 20_000))
    se = per_episode.std(ddof=1) / np.sqrt(per_episode.size)
    assert abs(per_episode.mean() - problem["truth"]) < 3 * se
    direct = float(big["wrong"]["state_values"][0].mean())
    assert abs(direct - problem["truth"]) > 20 * se


def test_doubly_robust_has_lower_variance_than_per_decision_is_with_exact_model(big):
    per_episode = {name: estimate(name, batches(big["exact"], 20_000))
                   for name in ("per_decision_is", "doubly_robust")}
    assert per_episode["doubly_robust"].var() < 0.5 * per_episode["per_decision_is"].var()


# --- exact identities


def random_episodes(seed, T=5, N=4, on_policy=False):
    rng = np.random.default_rng(seed)
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    lengths = rng.integers(1, T + 1, size=N)
    mask = (np.arange(T)[:, None] < lengths).astype(np.float32)
    lb = np.log(rng.uniform(0.1, 1, (T, N)))
    lp = lb if on_policy else np.log(rng.uniform(0.1, 1, (T, N)))
    return dict(rewards=f32(rng.normal(size=(T, N))), target_log_probs=f32(lp),
                behaviour_log_probs=f32(lb), q_values=f32(rng.normal(size=(T, N))),
                state_values=f32(rng.normal(size=(T, N))), mask=f32(mask))


def test_doubly_robust_matches_the_jiang_li_recursion():
    """V_DR(t) = V̂(s_t) + ρ_t (r_t + γ V_DR(t+1) − Q̂(s_t, a_t)), per episode, averaged."""
    d = {k: np.asarray(v) for k, v in random_episodes(4).items()}
    rho = np.exp(d["target_log_probs"] - d["behaviour_log_probs"])
    values = []
    for i in range(d["rewards"].shape[1]):
        v_dr = 0.0
        for t in reversed(range(int(d["mask"][:, i].sum()))):
            v_dr = d["state_values"][t, i] + rho[t, i] * (
                d["rewards"][t, i] + GAMMA * v_dr - d["q_values"][t, i])
        values.append(v_dr)
    got = E.doubly_robust(*(jnp.asarray(d[k]) for k in ("rewards", "target_log_probs",
                          "behaviour_log_probs", "q_values", "state_values")), GAMMA,
                          mask=jnp.asarray(d["mask"]))
    np.testing.assert_allclose(got, np.mean(values), rtol=1e-5)


def test_on_policy_importance_sampling_is_the_mean_return():
    d = random_episodes(5, on_policy=True)
    args = d["rewards"], d["target_log_probs"], d["behaviour_log_probs"], GAMMA
    mean_return = np.mean(((GAMMA ** np.arange(5))[:, None] * d["rewards"] * d["mask"]).sum(0))
    for fn in (E.trajectory_importance_sampling, E.per_decision_importance_sampling,
               E.weighted_importance_sampling):
        np.testing.assert_allclose(fn(*args, mask=d["mask"]), mean_return, rtol=1e-5)
    np.testing.assert_allclose(E.weighted_importance_sampling(*args, d["mask"], per_decision=False),
                               mean_return, rtol=1e-5)


def test_zero_model_reduces_doubly_robust_to_importance_sampling():
    d = random_episodes(6)
    args = d["rewards"], d["target_log_probs"], d["behaviour_log_probs"]
    zeros = jnp.zeros_like(d["rewards"])
    np.testing.assert_allclose(E.doubly_robust(*args, zeros, zeros, GAMMA, d["mask"]),
                               E.per_decision_importance_sampling(*args, GAMMA, d["mask"]),
                               rtol=1e-5)
    np.testing.assert_allclose(E.weighted_doubly_robust(*args, zeros, zeros, GAMMA, d["mask"]),
                               E.weighted_importance_sampling(*args, GAMMA, d["mask"]), rtol=1e-5)


def test_one_step_closed_forms():
    """T = 1 (a contextual bandit): IS = mean(ρ r), WIS = Σ ρ r / Σ ρ."""
    rng = np.random.default_rng(7)
    r, pi, mu = rng.normal(size=(1, 6)), rng.uniform(0.1, 1, (1, 6)), rng.uniform(0.1, 1, (1, 6))
    args = jnp.asarray(r, jnp.float32), jnp.log(jnp.asarray(pi, jnp.float32)), jnp.log(
        jnp.asarray(mu, jnp.float32)), GAMMA
    rho = pi / mu
    for fn in (E.trajectory_importance_sampling, E.per_decision_importance_sampling):
        np.testing.assert_allclose(fn(*args), np.mean(rho * r), rtol=1e-5)
    np.testing.assert_allclose(E.weighted_importance_sampling(*args),
                               np.sum(rho * r) / np.sum(rho), rtol=1e-5)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_masked_steps_are_ignored(name):
    """Garbage after each episode's end (under mask = 0) changes no estimate."""
    fn, with_q = ESTIMATORS[name]
    d = random_episodes(8)
    noise = random_episodes(9)
    garbage = {k: jnp.where(d["mask"] > 0, v, noise[k]) for k, v in d.items() if k != "mask"}
    keys = ["rewards", "target_log_probs", "behaviour_log_probs"] + (
        ["q_values", "state_values"] if with_q else [])
    clean = fn(*(d[k] for k in keys), GAMMA, mask=d["mask"])
    np.testing.assert_allclose(fn(*(garbage[k] for k in keys), GAMMA, mask=d["mask"]), clean,
                               rtol=1e-5)


def test_episode_batch_needs_rank_two():
    with pytest.raises(ValueError, match="`rewards` must have rank >= 2"):
        E.per_decision_importance_sampling(jnp.ones(3), jnp.zeros(3), jnp.zeros(3), GAMMA)
    with pytest.raises(AssertionError, match="`state_values` must have the shape of `rewards`"):
        E.doubly_robust(jnp.ones((3, 2)), jnp.zeros((3, 2)), jnp.zeros((3, 2)),
                        jnp.zeros((3, 2)), jnp.zeros((3, 1)), GAMMA)
