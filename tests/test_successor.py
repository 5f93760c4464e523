"""Successor representations and features (fnrl.successor): closed forms against the exact
tabular solvers, TD learners against the closed forms, least-squares reward weights, and GPI's
guarantee (Barreto et al. 2017, Theorem 1) checked exactly by policy evaluation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import successor as SF
from fnrl.envs import tabular as T

# Jitted once per module (and per shape): each test compiles a few programs, not many eager ops.
_sr = jax.jit(SF.successor_representation)
_sf = jax.jit(SF.successor_features)
_sr_update = jax.jit(SF.sr_td_update)
_sf_update = jax.jit(SF.sf_td_update)
_weights = jax.jit(SF.reward_weights)
_evaluate = jax.jit(T.policy_evaluation)

FOUR_GOALS = ("G.S.G",
              ".#.#.",
              ".....",
              ".#.#.",
              "G...G")


def _random_policy(seed, num_states, num_actions):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(num_actions), size=num_states).astype(np.float32)


def _numpy(mdp):
    """P [S, A, S], r(s, a) [S, A] and γ in float64."""
    p, r = np.asarray(mdp.transitions, np.float64), np.asarray(mdp.rewards, np.float64)
    return p, (np.sum(p * r, -1) if r.ndim == 3 else r), float(mdp.discount)


def _draw(rng, probs):
    """One index per row of ``probs`` [N, K] by inverting the CDF (numpy: no compilation)."""
    return np.minimum((np.cumsum(probs, -1) < rng.random((len(probs), 1))).sum(-1), probs.shape[-1] - 1)


def _transitions(mdp, policy, num, seed):
    """``num`` sampled transitions: s uniform over the non-terminal states, a ~ ``policy`` (for
    the SR: on-policy) and b uniform (for ψ: off-policy, as ψ evaluates ``policy``), with their
    next states s' ~ P(·|s, a) and s'_b ~ P(·|s, b)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(mdp.transitions, np.float64)
    s = rng.choice(np.flatnonzero(~np.asarray(mdp.terminal)), num)
    a = _draw(rng, policy[s])
    b = rng.integers(0, p.shape[1], num)
    return tuple(x.astype(np.int32) for x in (s, a, b, _draw(rng, p[s, a]), _draw(rng, p[s, b])))


@jax.jit
def _learn(mdp, policy, features, transitions):
    """TD(0) over the :func:`_transitions` (s, a, b, s', s'_b) in order, with termination on
    landing in a terminal state and step size n^-0.7 for the n-th visit of s (SR) or (s, b) (ψ),
    which satisfies Robbins-Monro. Returns (M, ψ), learned from M = I and ψ = 0."""
    num_states, num_actions, _ = mdp.transitions.shape

    def body(carry, x):
        sr, psi, n_s, n_sb = carry
        s, _, b, s_next, s_next_b = x
        n_s, n_sb = n_s.at[s].add(1.0), n_sb.at[s, b].add(1.0)
        sr = SF.sr_td_update(sr, s, s_next, mdp.terminal[s_next], mdp.discount, n_s[s] ** -0.7)
        psi = SF.sf_td_update(psi, policy, s, b, features[s, b, s_next_b], s_next_b, mdp.terminal[s_next_b],
                              mdp.discount, n_sb[s, b] ** -0.7)
        return (sr, psi, n_s, n_sb), None

    init = (jnp.eye(num_states), jnp.zeros(features.shape[:2] + features.shape[3:]), jnp.zeros(num_states),
            jnp.zeros((num_states, num_actions)))
    (sr, psi, _, _), _ = jax.lax.scan(body, init, transitions)
    return sr, psi


def test_sr_of_a_two_state_chain_by_hand():
    """0 → 1 (absorbing), γ = 0.5: from 0 the future-state distribution is (1 − γ) at 0 and γ on 1."""
    mdp = T.MDP(jnp.array([[[0.0, 1.0]], [[0.0, 1.0]]]), jnp.zeros((2, 1)), jnp.array([1.0, 0.0]),
                jnp.float32(0.5), jnp.array([False, True]))
    np.testing.assert_allclose(_sr(mdp, jnp.ones((2, 1))), [[0.5, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize("make", [lambda: T.random_mdp(6, 3, discount=0.9, seed=1), lambda: T.gridworld(discount=0.9)],
                         ids=["random_mdp", "gridworld"])
def test_sr_gives_the_exact_values_and_occupancy(make):
    """M^π rows are distributions solving M = (1 − γ)I + γ P_π M; V^π = M^π r_π / (1 − γ) is
    policy_evaluation's V; μ₀ᵀM^π is state_occupancy's d^π; terminal rows are e_t."""
    mdp = make().mdp
    p, r, gamma = _numpy(mdp)
    num_states, num_actions, _ = p.shape
    policy = _random_policy(0, num_states, num_actions)
    m = np.asarray(_sr(mdp, policy), np.float64)
    p_pi = np.einsum("sa,sat->st", policy, p)
    np.testing.assert_allclose(m, (1 - gamma) * np.eye(num_states) + gamma * p_pi @ m, atol=1e-6)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-5)
    assert m.min() >= -1e-6
    np.testing.assert_allclose(m @ np.sum(policy * r, 1) / (1 - gamma), _evaluate(mdp, policy).v, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mdp.initial) @ m, jax.jit(T.state_occupancy)(mdp, policy), atol=1e-6)
    terminal = np.flatnonzero(mdp.terminal)
    np.testing.assert_allclose(m[terminal], np.eye(num_states)[terminal], atol=1e-6)


def test_sr_td_update_by_hand():
    """γ = 0.5: the target (1 − γ)e_s + γ M(s') (γ e_{s'} if s' is terminal); α = 1 replaces row s."""
    sr = jnp.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    out = _sr_update(sr, jnp.int32(0), jnp.int32(1), jnp.float32(0), 0.5, 1.0)
    np.testing.assert_allclose(out, [[0.6, 0.15, 0.25], sr[1], sr[2]], atol=1e-7)
    out = _sr_update(sr, jnp.int32(0), jnp.int32(1), jnp.float32(1), 0.5, 0.5)  # half-way to (0.5, 0.5, 0)
    np.testing.assert_allclose(out, [[0.75, 0.25, 0.0], sr[1], sr[2]], atol=1e-7)


def test_successor_features_give_q_exactly_for_linear_rewards():
    """R(s, a, s') = φ(s, a, s')ᵀw ⇒ Q^π = ψ^π w (policy_evaluation's Q), for φ [S, A, S, D] and
    for its expectation [S, A, D]; ψ solves its Bellman equation; one-hot state features
    φ(s, a) = e_s give Σ_a π(a|s) ψ(s, a) = M^π(s) / (1 − γ)."""
    mdp = T.random_mdp(6, 3, discount=0.9, seed=2).mdp
    p, _, gamma = _numpy(mdp)
    policy = _random_policy(4, 6, 3)
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(6, 3, 6, 4)).astype(np.float32)
    w = rng.normal(size=4).astype(np.float32)
    psi = np.asarray(_sf(mdp, policy, phi), np.float64)
    np.testing.assert_allclose(psi @ w, _evaluate(mdp._replace(rewards=jnp.asarray(phi @ w)), policy).q, atol=1e-4)
    phi_sa = np.einsum("sat,satd->sad", p, phi)
    np.testing.assert_allclose(_sf(mdp, policy, phi_sa.astype(np.float32)), psi, atol=1e-5)
    np.testing.assert_allclose(psi, phi_sa + gamma * np.einsum("sat,tb,tbd->sad", p, policy, psi), atol=1e-5)
    one_hot = np.broadcast_to(np.eye(6, dtype=np.float32)[:, None, :], (6, 3, 6))
    psi_v = np.einsum("sa,sad->sd", policy, _sf(mdp, policy, one_hot))
    np.testing.assert_allclose(psi_v, np.asarray(_sr(mdp, policy)) / (1 - gamma), atol=1e-4)


def test_sf_td_update_by_hand():
    """ψ(s, a) += α [φ + γ (1 − term) π(s')ᵀψ(s') − ψ(s, a)] with γ = 0.5, α = 0.5; only (s, a) changes."""
    psi = np.zeros((2, 2, 2), np.float32)
    psi[1] = [[2.0, 0.0], [0.0, 4.0]]
    policy = np.array([[1.0, 0.0], [0.25, 0.75]], np.float32)
    args = (jnp.int32(0), jnp.int32(1), jnp.array([1.0, -1.0]), jnp.int32(1))
    expected = psi.copy()
    expected[0, 1] = 0.5 * (np.array([1.0, -1.0]) + 0.5 * np.array([0.5, 3.0]))
    np.testing.assert_allclose(_sf_update(psi, policy, *args, jnp.float32(0), 0.5, 0.5), expected)
    expected[0, 1] = [0.5, -0.5]
    np.testing.assert_allclose(_sf_update(psi, policy, *args, jnp.float32(1), 0.5, 0.5), expected)


@pytest.mark.parametrize("make, num, tol_sr", [
    (lambda: T.random_mdp(5, 2, discount=0.9, seed=0), 50_000, 0.015),
    (lambda: T.gridworld(("G.S", ".#.", "S.G"), slip=0.1, discount=0.9), 100_000, 0.03),
], ids=["random_mdp", "gridworld"])
def test_td_learners_converge_to_the_closed_forms(make, num, tol_sr):
    """From sampled transitions (:func:`_transitions`, :func:`_learn`) the SR and ψ reach their closed forms: every SR
    entry within ``tol_sr`` and every ψ entry within 5% of max |ψ^π| (measured with sample seeds
    0-3: SR ≤ 0.008 and ≤ 0.015, ψ ≤ 3.3% and ≤ 1.7%); the SR's rows stay distributions. Features:
    the random MDP's indicate s' (D = S, so ψ is an unnormalised SR of (s, a); max |ψ| = 2.7),
    the gridworld's arrival at its two goals (terminal states; max |ψ| = 0.96)."""
    mdp = make().mdp
    num_states, num_actions, _ = mdp.transitions.shape
    policy = _random_policy(3, num_states, num_actions)
    if mdp.terminal.any():
        features = SF.arrival_features(mdp, jnp.flatnonzero(mdp.terminal))
    else:
        features = np.broadcast_to(np.eye(num_states, dtype=np.float32), (num_states, num_actions) + (num_states,) * 2)
    sr, psi = map(np.asarray, _learn(mdp, policy, features, _transitions(mdp, policy, num, seed=0)))
    assert np.max(np.abs(sr - _sr(mdp, policy))) < tol_sr
    exact = np.asarray(_sf(mdp, policy, features))
    assert np.max(np.abs(psi - exact)) < 0.05 * np.max(np.abs(exact))
    np.testing.assert_allclose(sr.sum(1), 1.0, atol=1e-4)


def test_reward_weights_least_squares():
    """Noise-free r = Φw recovers w; ridge equals (ΦᵀΦ + λI)⁻¹Φᵀr; a feature never seen gets 0."""
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(50, 3)).astype(np.float32)
    w = np.array([0.5, -2.0, 1.0], np.float32)
    np.testing.assert_allclose(_weights(phi, phi @ w), w, atol=1e-5)
    r = (phi @ w + rng.normal(size=50)).astype(np.float32)
    ridge = np.linalg.solve(phi.T.astype(np.float64) @ phi + 3.0 * np.eye(3), phi.T.astype(np.float64) @ r)
    np.testing.assert_allclose(_weights(phi, r, 3.0), ridge, rtol=1e-4)
    phi[:, 2] = 0.0
    np.testing.assert_allclose(_weights(phi, phi @ w), [0.5, -2.0, 0.0], atol=1e-5)


@pytest.fixture(scope="module")
def four_goals():
    """A gridworld with a goal in each corner, φ = arrival at goal k, and the optimal policies
    of the four one-hot tasks with their successor features."""
    mdp = T.gridworld(FOUR_GOALS, slip=0.1, discount=0.9).mdp

    @jax.jit
    def build(mdp, goals):
        phi = SF.arrival_features(mdp, goals)
        policies = jax.vmap(lambda w: T.value_iteration(mdp._replace(rewards=phi @ w)).policy)(jnp.eye(4))
        return phi, policies, jax.vmap(SF.successor_features, (None, 0, None))(mdp, policies, phi)

    return (mdp, *build(mdp, jnp.flatnonzero(mdp.terminal)))


def test_arrival_features_are_the_gridworld_reward(four_goals):
    """φᵀ(1, 1, 1, 1) is tabular/gridworld's own reward (1 on arriving at any goal)."""
    mdp, phi, _, _ = four_goals
    np.testing.assert_array_equal(np.asarray(phi) @ np.ones(4, np.float32), mdp.rewards)


@pytest.fixture(scope="module")
def gpi_values(four_goals):
    """On the :func:`four_goals` tasks e_1..e_4 then 20 random w ∈ [−1, 1]⁴, with the four goal
    policies plus a random one: per task, V and Q of the GPI policy (by policy evaluation), its
    bound max_k ψ_kᵀw, every π_k's V and the optimal V* (value iteration)."""
    mdp, phi, policies, psis = four_goals
    extra = _random_policy(0, *policies.shape[1:])
    ws = np.concatenate([np.eye(4), np.random.default_rng(0).uniform(-1, 1, size=(20, 4))]).astype(np.float32)

    @jax.jit
    def values(ws):
        pis = jnp.concatenate([policies, extra[None]])
        both = jnp.concatenate([psis, SF.successor_features(mdp, extra, phi)[None]])

        def one(w):
            task = mdp._replace(rewards=phi @ w)
            out = SF.gpi(both, w)
            gpi = T.policy_evaluation(task, out.policy)
            v_k = jax.vmap(T.policy_evaluation, (None, 0))(task, pis).v
            return gpi.v, gpi.q, out.q, v_k, T.value_iteration(task).v

        return jax.vmap(one)(ws)

    return tuple(map(np.asarray, values(ws)))


def test_gpi_is_at_least_every_policy_everywhere(gpi_values):
    """Barreto et al. (2017), Theorem 1 with exact ψ: in every task, V^{GPI} ≥ max_k V^{π_k} and
    Q^{GPI} ≥ max_k ψ_kᵀw in every state (to float precision). The guarantee is not vacuous: in
    9 of the 20 random tasks GPI beats the best single π_k by more than 10⁻³ in some state
    (asserted: at least 5)."""
    v, q, q_bound, v_k, _ = gpi_values
    assert np.min(v[:, None] - v_k) >= -1e-5
    assert np.min(q - q_bound) >= -1e-5
    assert np.sum(np.max(v - v_k.max(1), axis=-1)[4:] > 1e-3) >= 5


def test_gpi_recovers_the_optimal_values_of_a_training_task(gpi_values):
    """On task w = e_k, one of the policies is optimal, so GPI's values are V* exactly; on the
    random tasks they are at most V*."""
    v, _, _, _, optimal = gpi_values
    np.testing.assert_allclose(v[:4], optimal[:4], atol=1e-6)
    assert np.max(v - optimal) <= 1e-5


def test_gpi_of_one_policy_is_one_step_of_policy_improvement(four_goals):
    """K = 1: ψ_1ᵀw is Q^{π_1} and the GPI policy is greedy in it (the lectures' "idea 1")."""
    mdp, phi, policies, psis = four_goals
    w = jnp.array([0.3, -0.5, 1.0, 0.2])
    q = np.asarray(_evaluate(mdp._replace(rewards=phi @ w), policies[0]).q)
    out = jax.jit(SF.gpi)(psis[:1], w)
    np.testing.assert_allclose(out.q, q, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(out.policy, -1), np.argmax(q, -1))


def test_shape_errors_name_the_argument(four_goals):
    mdp, phi, policies, psis = four_goals
    num_states = mdp.transitions.shape[0]
    cases = [
        (lambda: SF.successor_representation(mdp, policies[0, :3]), "policy must be"),
        (lambda: SF.successor_features(mdp, policies[0], phi[:3]), "successor_features: `features` must be"),
        (lambda: SF.sr_td_update(jnp.eye(3)[:2], 0, 1, 0.0, 0.9, 0.1), "sr_td_update: `sr` must be square"),
        (lambda: SF.sr_td_update(jnp.eye(3), jnp.array([0]), 1, 0.0, 0.9, 0.1), "sr_td_update: `state` must be a scalar"),
        (lambda: SF.sr_td_update(jnp.eye(3), 0.0, 1, 0.0, 0.9, 0.1), "sr_td_update: `state` must be an integer"),
        (lambda: SF.sf_td_update(psis[0], policies[0, :2], 0, 0, jnp.zeros(4), 1, 0.0, 0.9, 0.1),
         "sf_td_update: `policy` must be"),
        (lambda: SF.sf_td_update(psis[0], policies[0], 0, 0, jnp.zeros(3), 1, 0.0, 0.9, 0.1),
         "sf_td_update: `features` must be"),
        (lambda: SF.reward_weights(jnp.ones((5, 2)), jnp.ones(4)), "reward_weights: `rewards` must be"),
        (lambda: SF.gpi(psis[0], jnp.ones(4)), "gpi: `successor_features` must be"),
        (lambda: SF.gpi(psis, jnp.ones(3)), "gpi: `w` must be"),
        (lambda: SF.arrival_features(mdp, jnp.array([0.0, float(num_states - 1)])), "arrival_features: `states`"),
    ]
    for call, message in cases:
        with pytest.raises(AssertionError, match=message):
            call()
    with pytest.raises(ValueError, match="reward_weights: `l2` must be >= 0, got -1.0"):
        SF.reward_weights(jnp.ones((5, 2)), jnp.ones(5), l2=-1.0)
