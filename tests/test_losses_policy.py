"""Policy losses against closed forms, rlax, and the properties of the PPO objectives."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from hypothesis import given, settings
from hypothesis import strategies as st

from fnrl.losses import policy as P

EPS = 0.2


def grad(f, argnums=0):
    """jit(grad(f)): one compiled program instead of op-by-op dispatch (the tests run on 2 cores)."""
    return jax.jit(jax.grad(f, argnums=argnums))


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def tabular():
    """A softmax policy over S=3 states and A=4 actions, and a batch of N=8 (s, a, Â)."""
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    theta = jax.random.normal(k1, (3, 4))
    s = jax.random.randint(k2, (8,), 0, 3)
    a = jax.random.randint(k3, (8,), 0, 4)
    adv = jax.random.normal(k4, (8,))
    return theta, s, a, adv


def _log_prob(theta, s, a):
    return jax.nn.log_softmax(theta[s])[jnp.arange(s.shape[0]), a]


# --- score-function policy gradient -------------------------------------------------------


def test_policy_gradient_is_the_score_function_estimate(tabular):
    theta, s, a, adv = tabular
    g = grad(lambda th: P.policy_gradient_loss(_log_prob(th, s, a), adv))(theta)
    # ∇_θ log softmax(θ_s)[a] = onehot(a) − π(·|s) in row s, zero elsewhere.
    pi = np.asarray(jax.nn.softmax(theta))
    expected = np.zeros_like(pi)
    for si, ai, ad in zip(np.asarray(s), np.asarray(a), np.asarray(adv)):
        expected[si] -= ad * (np.eye(4)[ai] - pi[si]) / len(s)
    _close(g, expected)


def test_policy_gradient_matches_rlax(tabular):
    theta, s, a, adv = tabular
    mask = jnp.array([1, 1, 0, 1, 1, 0, 1, 1], jnp.float32)

    def ours(th, m=None):
        return P.policy_gradient_loss(_log_prob(th, s, a), adv, m)

    def theirs(th, w):
        return rlax.policy_gradient_loss(th[s], a, adv, w)

    _close(ours(theta), theirs(theta, jnp.ones(8)))
    _close(grad(ours)(theta), grad(theirs)(theta, jnp.ones(8)))
    # rlax divides by T; the masked mean divides by the number of unmasked samples.
    _close(ours(theta, mask), theirs(theta, mask) * 8 / mask.sum())


def test_state_baseline_leaves_the_expected_gradient_unchanged(tabular):
    """Curriculum claim 2: E_{a~π}[∇log π(a|s) b(s)] = 0, exact by enumerating (s, a) with weights π."""
    theta = tabular[0]
    s, a = (x.ravel() for x in jnp.meshgrid(jnp.arange(3), jnp.arange(4), indexing="ij"))
    weights = jax.nn.softmax(theta)[s, a]
    q = jax.random.normal(jax.random.PRNGKey(9), (12,))
    baseline = jnp.array([5.0, -3.0, 0.7])[s]

    def expected_grad(adv):
        return grad(lambda th: P.policy_gradient_loss(_log_prob(th, s, a), adv, weights))(theta)

    _close(expected_grad(q - baseline), expected_grad(q))
    assert np.abs(np.asarray(expected_grad(q))).max() > 1e-2


def test_advantage_gets_no_gradient(tabular):
    theta, s, a, adv = tabular
    g = grad(P.policy_gradient_loss, argnums=1)(_log_prob(theta, s, a), adv)
    _close(g, jnp.zeros_like(adv))


def test_surrogates_have_the_policy_gradient_at_the_old_policy(tabular):
    """Curriculum claim 4: at θ = θ_old the IS, PPO-clip and KL-penalty gradients are the PG."""
    theta, s, a, adv = tabular
    old_log_prob = _log_prob(theta, s, a)
    old = distrax.Categorical(logits=theta[s])

    def kl(th):
        return old.kl_divergence(distrax.Categorical(logits=th[s]))

    losses = {
        "surrogate": lambda th: P.surrogate_loss(_log_prob(th, s, a), old_log_prob, adv),
        "ppo_clip": lambda th: P.ppo_clip_loss(_log_prob(th, s, a), old_log_prob, adv, EPS),
        "kl_penalty": lambda th: P.kl_penalty_loss(_log_prob(th, s, a), old_log_prob, adv, kl(th), 3.0),
    }
    pg = grad(lambda th: P.policy_gradient_loss(_log_prob(th, s, a), adv))(theta)
    assert np.abs(np.asarray(pg)).max() > 1e-2
    for name, loss in losses.items():
        np.testing.assert_allclose(grad(loss)(theta), pg, rtol=1e-5, atol=1e-6, err_msg=name)
    # Away from θ_old the KL term matters: the KL-penalty gradient differs from the IS one.
    moved = theta.at[0].add(jnp.array([1.0, -1.0, 0.0, 0.0]))
    assert not np.allclose(grad(losses["kl_penalty"])(moved), grad(losses["surrogate"])(moved), atol=1e-3)


# --- PPO clipped surrogate -----------------------------------------------------------------


RATIOS = jnp.array([0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6])  # none on the boundary 1 ± ε


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ppo_clip_gradient_by_region(sign):
    """Curriculum claim 14: no gradient if r > 1+ε with Â > 0 or r < 1−ε with Â < 0, else L^CPI's."""
    old_log_prob = jnp.linspace(-2.0, -0.5, RATIOS.size)
    log_prob = old_log_prob + jnp.log(RATIOS)
    adv = sign * jnp.linspace(0.5, 2.0, RATIOS.size)
    g_clip = grad(P.ppo_clip_loss)(log_prob, old_log_prob, adv, EPS)
    g_is = grad(P.surrogate_loss)(log_prob, old_log_prob, adv)
    _close(g_is, -RATIOS * adv / RATIOS.size)  # ∂(−r Â)/∂log π = −r Â
    outside = (RATIOS > 1 + EPS) if sign > 0 else (RATIOS < 1 - EPS)
    assert outside.sum() >= 2
    _close(g_clip[outside], 0.0)
    _close(g_clip[~outside], g_is[~outside])


def test_ppo_clip_equals_surrogate_inside_the_trust_region():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(3), 3)
    old_log_prob = jax.random.normal(k1, (5, 4)) - 2.0
    log_prob = old_log_prob + jax.random.uniform(k2, (5, 4), minval=np.log(0.85), maxval=np.log(1.15))
    adv = jax.random.normal(k3, (5, 4))

    def clip(lp):
        return P.ppo_clip_loss(lp, old_log_prob, adv, EPS)

    def cpi(lp):
        return P.surrogate_loss(lp, old_log_prob, adv)

    _close(clip(log_prob), cpi(log_prob))
    _close(grad(clip)(log_prob), grad(cpi)(log_prob))


@jax.jit
def _per_sample(lp, olp, adv, eps):
    return P.ppo_clip_loss(lp, olp, adv, eps), P.surrogate_loss(lp, olp, adv)


@settings(max_examples=200, deadline=None)
@given(
    log_ratio=st.floats(-3.0, 3.0),
    adv=st.floats(-10.0, 10.0),
    eps=st.floats(0.01, 0.9),
)
def test_ppo_clip_is_a_pessimistic_bound(log_ratio, adv, eps):
    """L^CLIP ≤ L^CPI pointwise (losses: clip ≥ IS), with equality inside [1−ε, 1+ε]."""
    clip, cpi = _per_sample(*(jnp.float32(v) for v in (log_ratio - 1.0, -1.0, adv, eps)))
    assert clip >= cpi - 1e-5 * (1 + abs(float(cpi)))
    r = np.exp(log_ratio)
    if 1 - eps + 1e-4 < r < 1 + eps - 1e-4:
        assert abs(float(clip - cpi)) <= 1e-5 * (1 + abs(float(cpi)))


def test_ppo_clip_matches_rlax():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(5), 3)
    old_log_prob = jax.random.normal(k1, (32,)) - 1.0
    log_prob = old_log_prob + 0.4 * jax.random.normal(k2, (32,))
    adv = jax.random.normal(k3, (32,))

    def ours(lp):
        return P.ppo_clip_loss(lp, old_log_prob, adv, EPS)

    def theirs(lp):
        return rlax.clipped_surrogate_pg_loss(jnp.exp(lp - old_log_prob), adv, EPS)

    _close(ours(log_prob), theirs(log_prob))
    _close(grad(ours)(log_prob), grad(theirs)(log_prob))


def test_ppo_diagnostics_exact_kl_and_clip_fraction():
    old = jax.nn.softmax(jnp.array([[0.2, -1.0, 0.5, 1.0], [0.0, 0.3, -0.3, 2.0]]))
    new = jax.nn.softmax(jnp.array([[0.9, -0.2, 0.1, 1.0], [0.5, 0.0, -0.1, 1.5]]))
    # Enumerating the actions with weights π_old makes the k3 estimator the exact KL[π_old‖π].
    d = P.ppo_diagnostics(jnp.log(new), jnp.log(old), EPS, mask=old)
    exact_kl = np.sum(old * np.log(old / new)) / 2
    _close(d.approx_kl, exact_kl)
    ratio = np.asarray(new / old)
    _close(d.clip_fraction, np.sum(old * (np.abs(ratio - 1) > EPS)) / 2)
    unweighted = P.ppo_diagnostics(jnp.log(RATIOS), jnp.zeros_like(RATIOS), EPS)
    _close(unweighted.clip_fraction, 4 / 7)  # 0.5, 0.7, 1.3, 1.6 lie outside [0.8, 1.2]
    assert unweighted.approx_kl > 0


# --- KL penalty and adaptive β ---------------------------------------------------------------


def test_kl_penalty_value():
    lp, olp = jnp.log(jnp.array([0.5, 0.2])), jnp.log(jnp.array([0.25, 0.4]))
    adv, kl = jnp.array([1.0, -2.0]), jnp.array([0.1, 0.3])
    # −mean(r Â − β KL) with r = (2, 0.5), β = 1.5.
    expected = -np.mean([2.0 * 1.0 - 1.5 * 0.1, 0.5 * -2.0 - 1.5 * 0.3])
    _close(P.kl_penalty_loss(lp, olp, adv, kl, 1.5), expected)


@pytest.mark.parametrize(
    "kl,scale",
    [
        (0.5, 0.5), (0.999, 0.5),  # below d_targ/1.5 = 1.0: halve
        (1.0, 1.0), (1.5, 1.0), (2.25, 1.0),  # inside the band, thresholds included: unchanged
        (2.251, 2.0), (10.0, 2.0),  # above 1.5·d_targ = 2.25: double
    ],
)
def test_adaptive_beta_thresholds(kl, scale):
    beta = jnp.float32(0.3)
    new = P.adaptive_kl_beta(beta, jnp.float32(kl), kl_target=1.5)
    assert float(new) == float(beta * scale)


# --- entropy ----------------------------------------------------------------------------------


entropy_loss = jax.jit(P.entropy_loss)


def test_entropy_categorical_closed_form_and_rlax():
    logits = jax.random.normal(jax.random.PRNGKey(6), (7, 5))
    p = np.asarray(jax.nn.softmax(logits), np.float64)
    expected = np.mean(np.sum(p * np.log(p), axis=-1))  # −H averaged
    _close(entropy_loss(distrax.Categorical(logits=logits)), expected)
    _close(entropy_loss(distrax.Categorical(logits=logits)), rlax.entropy_loss(logits, jnp.ones(7)))
    uniform = distrax.Categorical(logits=jnp.zeros((3, 5)))
    _close(entropy_loss(uniform), -np.log(5))


def test_entropy_gaussian_closed_form_with_mask():
    std = jnp.array([[0.5, 1.0, 2.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]])
    dist = distrax.MultivariateNormalDiag(jnp.ones_like(std), std)
    mask = jnp.array([1.0, 0.0, 1.0])
    h = np.sum(0.5 * np.log(2 * np.pi * np.e * np.asarray(std, np.float64) ** 2), axis=-1)
    _close(entropy_loss(dist, mask), -(h[0] + h[2]) / 2)


# --- DDPG / TD3 and SAC -------------------------------------------------------------------------


def _quadratic_critic(K, obs, action):
    """Q(s, a) = −‖a − K s‖², maximised by a = K s."""
    return -jnp.sum((action - obs @ K.T) ** 2, axis=-1)


@pytest.fixture(scope="module")
def continuous():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(7), 3)
    obs = jax.random.normal(k1, (6, 3))
    K = jax.random.normal(k2, (2, 3))
    theta = jax.random.normal(k3, (2, 3))  # linear actor μ_θ(s) = θ s
    return obs, K, theta


def test_deterministic_actor_gradient_flows_only_through_the_action(continuous):
    obs, K, theta = continuous

    def loss(theta, K, obs):
        return P.deterministic_actor_loss(_quadratic_critic, K, obs, obs @ theta.T)

    # Deterministic policy gradient: ∇_θ = −Ê[∇_a Q ∇_θ μ] = (2/N) Σ (θ s − K s) sᵀ.
    expected = 2 * (obs @ theta.T - obs @ K.T).T @ obs / obs.shape[0]
    g_theta, g_K, g_obs = grad(loss, argnums=(0, 1, 2))(theta, K, obs)
    _close(g_theta, expected)
    _close(g_K, 0.0)
    # obs reaches the loss through the actor only: ∂/∂s = −∂Q/∂a · θ, not via the critic's s.
    grad_a = -2 * (obs @ theta.T - obs @ K.T)
    _close(g_obs, -grad_a @ theta / obs.shape[0])
    _close(loss(K, K, obs), 0.0)  # the optimal actor


def test_sac_actor_loss_value_and_gradients(continuous):
    obs, K, theta = continuous
    action = obs @ theta.T
    log_prob = -jnp.linspace(0.5, 2.0, obs.shape[0])
    alpha = jnp.float32(0.2)
    loss = P.sac_actor_loss(_quadratic_critic, K, obs, action, log_prob, alpha)
    _close(loss, np.mean(0.2 * log_prob - _quadratic_critic(K, obs, action)))
    g_action, g_log_prob, g_alpha, g_K = grad(
        lambda a, lp, al, k: P.sac_actor_loss(_quadratic_critic, k, obs, a, lp, al), argnums=(0, 1, 2, 3)
    )(action, log_prob, alpha, K)
    _close(g_action, 2 * (action - obs @ K.T) / obs.shape[0])  # −∂Q/∂a / N
    _close(g_log_prob, jnp.full_like(log_prob, 0.2 / obs.shape[0]))
    _close(g_alpha, 0.0)
    _close(g_K, 0.0)


@pytest.mark.parametrize("entropy,target", [(0.5, 2.0), (3.0, 1.0)])
def test_sac_temperature_gradient_sign(entropy, target):
    log_prob = -entropy + jnp.array([0.3, -0.3, 0.1, -0.1])  # Ĥ = −mean(log π) = entropy
    log_alpha = jnp.float32(np.log(0.1))
    g_alpha, g_lp = grad(P.sac_temperature_loss, argnums=(0, 1))(log_alpha, log_prob, target)
    _close(g_alpha, entropy - target)  # ∂L/∂log α = Ĥ − H̄
    _close(g_lp, 0.0)
    alpha_after_step = np.exp(log_alpha - 0.1 * g_alpha)
    assert (alpha_after_step > 0.1) == (entropy < target)


# --- input checking -------------------------------------------------------------------------------


def test_errors_name_the_argument():
    x = jnp.zeros(4)
    with pytest.raises(AssertionError, match="`log_prob`, `advantage` must have the same shape"):
        P.policy_gradient_loss(x, jnp.zeros(5))
    with pytest.raises(AssertionError, match="ppo_clip_loss: `advantage` must be a float array"):
        P.ppo_clip_loss(x, x, jnp.zeros(4, jnp.int32))
    with pytest.raises(AssertionError, match="`mask` must have the per-sample shape"):
        P.ppo_clip_loss(x, x, x, mask=jnp.ones(3))
    with pytest.raises(ValueError, match="`epsilon` must be in"):
        P.ppo_clip_loss(x, x, x, epsilon=1.5)
    with pytest.raises(AssertionError, match="`beta` must be a scalar"):
        P.kl_penalty_loss(x, x, x, x, jnp.ones(4))
    with pytest.raises(ValueError, match="`kl_target` must be > 0"):
        P.adaptive_kl_beta(1.0, 0.1, kl_target=0.0)
    with pytest.raises(TypeError, match="`dist` must be a distrax.Distribution"):
        P.entropy_loss(jnp.zeros((3, 2)))
    with pytest.raises(AssertionError, match="`q_apply` must return one Q per action"):
        P.deterministic_actor_loss(lambda p, s, a: a, None, x, jnp.zeros((4, 2)))
    with pytest.raises(AssertionError, match="`log_alpha` must be a scalar"):
        P.sac_temperature_loss(x, x, -1.0)
