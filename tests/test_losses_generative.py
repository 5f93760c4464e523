"""The VAE / conditional-VAE ELBO on linear-Gaussian models whose evidence and posterior are exact.

Model: p(z|s) = N(m, diag τ²), p(x|z, s) = N(W z + c, σ² I) (unconditional: m = 0, τ = 1, c = b).
Then p(x|s) = N(W m + c, W diag τ² Wᵀ + σ² I), the posterior p(z|x, s) is Gaussian with
Σ_post = (diag τ⁻² + WᵀW / σ²)⁻¹ and μ_post = Σ_post (m / τ² + Wᵀ(x − c) / σ²), and for
q = N(μ, diag s²) the expected log-likelihood is exact:
E_q log p(x|z) = log N(x; W μ + c, σ² I) − Σ_j s_j² ‖W_{:j}‖² / (2σ²).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl.losses.generative import vae_elbo

DX, DZ, N = 3, 2, 4
SIGMA = 0.5
SAMPLES = 1 << 15


def _gaussian_log_pdf(x, mean, cov):
    d = x - mean
    return -0.5 * (d @ np.linalg.solve(cov, d) + np.linalg.slogdet(2 * np.pi * cov)[1])


def _gaussian_kl(mu0, cov0, mu1, cov1):
    """KL(N(mu0, cov0) ‖ N(mu1, cov1)) for full covariances."""
    inv1 = np.linalg.inv(cov1)
    d = mu1 - mu0
    log_det_ratio = np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1]
    return 0.5 * (np.trace(inv1 @ cov0) + d @ inv1 @ d - len(mu0) + log_det_ratio)


class LinearGaussian:
    """Closed forms of the model, in float64; c, m and tau have one row per example."""

    def __init__(self, W, c, prior_mean, prior_std):
        self.W, self.c, self.m, self.tau = W, c, prior_mean, prior_std

    def log_likelihood(self, x):
        """z -> log N(x; W z + c, σ² I) for z of shape [N, DZ]: the decoder given to the library."""
        x, W, c = (jnp.asarray(v, jnp.float32) for v in (x, self.W, self.c))
        log_norm = 0.5 * np.log(2 * np.pi * SIGMA**2)
        return lambda z: jnp.sum(-0.5 * ((x - z @ W.T - c) / SIGMA) ** 2 - log_norm, -1)

    def log_evidence(self, x):
        cov = [self.W @ np.diag(t**2) @ self.W.T + SIGMA**2 * np.eye(DX) for t in self.tau]
        return np.array([_gaussian_log_pdf(x[i], self.W @ self.m[i] + self.c[i], cov[i]) for i in range(N)])

    def posterior(self, x):
        covs = np.array([np.linalg.inv(np.diag(t**-2.0) + self.W.T @ self.W / SIGMA**2) for t in self.tau])
        rhs = self.m / self.tau**2 + (x - self.c) @ self.W / SIGMA**2
        return np.einsum("nij,nj->ni", covs, rhs), covs

    def kl_to_prior(self, mu, s):
        prior_cov = [np.diag(t**2) for t in self.tau]
        return np.array([_gaussian_kl(mu[i], np.diag(s[i] ** 2), self.m[i], prior_cov[i]) for i in range(N)])

    def kl_to_posterior(self, x, mu, s):
        post_mean, post_cov = self.posterior(x)
        return np.array([_gaussian_kl(mu[i], np.diag(s[i] ** 2), post_mean[i], post_cov[i]) for i in range(N)])

    def exact_log_likelihood(self, x, mu, s):
        r = x - mu @ self.W.T - self.c
        gauss = -0.5 * np.sum(r**2, -1) / SIGMA**2 - 0.5 * DX * np.log(2 * np.pi * SIGMA**2)
        return gauss - np.sum(s**2 * np.sum(self.W**2, 0), -1) / (2 * SIGMA**2)

    def exact_elbo_grad(self, x, mu, s):
        """∇_μ, ∇_s of the batch-mean ELBO, differentiating the closed forms by hand."""
        g_mu = (x - mu @ self.W.T - self.c) @ self.W / SIGMA**2 - (mu - self.m) / self.tau**2
        g_s = -s * np.sum(self.W**2, 0) / SIGMA**2 - s / self.tau**2 + 1 / s
        return g_mu / N, g_s / N

    def log_likelihood_se(self, x, mu, s, num_samples):
        """Standard error of the Monte-Carlo mean of log p(x|z), from
        Var ‖r − Aε‖² = 2 tr((AAᵀ)²) + 4 rᵀAAᵀr with A = W diag(s), r = x − Wμ − c."""
        r = x - mu @ self.W.T - self.c
        AAt = np.einsum("ij,nj,kj->nik", self.W, s**2, self.W)
        var = 2 * np.einsum("nij,nji->n", AAt, AAt) + 4 * np.einsum("ni,nij,nj->n", r, AAt, r)
        return np.sqrt(var / (4 * SIGMA**4) / num_samples)


def _model(key, conditional):
    rng = np.random.default_rng(key)
    # Orthogonal columns and an isotropic prior make the true posterior diagonal, so q can equal it.
    W = np.linalg.qr(rng.normal(size=(DX, DZ)))[0] * np.array([1.5, 0.7])
    if not conditional:
        return LinearGaussian(W, np.tile(rng.normal(size=DX), (N, 1)), np.zeros((N, DZ)), np.ones((N, DZ)))
    s = rng.normal(size=(N, 2))  # the condition
    A, V = rng.normal(size=(DZ, 2)), rng.normal(size=(DX, 2))
    tau = np.exp(0.3 * rng.normal(size=(N, 1))) * np.ones((N, DZ))
    return LinearGaussian(W, s @ V.T + rng.normal(size=DX), s @ A.T + 0.5, tau)


@pytest.fixture(scope="module", params=[False, True], ids=["vae", "cvae"])
def setting(request):
    conditional = request.param
    model = _model(1 + conditional, conditional)
    x = np.random.default_rng(0).normal(size=(N, DX)) * 2.0

    prior = _f32(model.m, model.tau) if conditional else (None, None)

    @jax.jit
    def elbo(key, mu, s, beta):
        return vae_elbo(key, mu, s, model.log_likelihood(x), *prior, beta=beta, num_samples=SAMPLES)

    return model, x, elbo


def _f32(*xs):
    return tuple(jnp.asarray(x, jnp.float32) for x in xs)


MU, STD = np.full((N, DZ), 0.3), np.full((N, DZ), 0.8)  # a q away from the posterior


def test_closed_forms_agree(setting):
    """The test's own algebra: log p(x) − E_q[log p(x|z)] + KL(q ‖ p(z)) = KL(q ‖ p(z|x))."""
    model, x, _ = setting
    elbo = model.exact_log_likelihood(x, MU, STD) - model.kl_to_prior(MU, STD)
    np.testing.assert_allclose(model.log_evidence(x) - elbo, model.kl_to_posterior(x, MU, STD), rtol=1e-9)


def test_elbo_bounds_the_evidence_with_the_posterior_kl_as_gap(setting):
    model, x, elbo = setting
    terms = elbo(jax.random.PRNGKey(0), *_f32(MU, STD), 1.0)
    se = model.log_likelihood_se(x, MU, STD, SAMPLES)
    np.testing.assert_allclose(terms.kl, model.kl_to_prior(MU, STD), rtol=1e-5)
    assert np.all(np.abs(terms.log_likelihood - model.exact_log_likelihood(x, MU, STD)) < 5 * se)
    evidence, gap = model.log_evidence(x), model.kl_to_posterior(x, MU, STD)
    assert np.all(gap > 20 * se)  # the gap is well resolved by the sample size
    assert np.all(terms.elbo < evidence)
    assert np.all(np.abs((evidence - terms.elbo) - gap) < 5 * se)


def test_gap_vanishes_at_the_true_posterior(setting):
    model, x, elbo = setting
    post_mean, post_cov = model.posterior(x)
    std = np.sqrt(np.diagonal(post_cov, axis1=1, axis2=2))
    np.testing.assert_allclose(post_cov, np.eye(DZ) * std[:, None, :] ** 2, atol=1e-12)  # diagonal
    terms = elbo(jax.random.PRNGKey(1), *_f32(post_mean, std), 1.0)
    se = model.log_likelihood_se(x, post_mean, std, SAMPLES)
    assert np.all(np.abs(terms.elbo - model.log_evidence(x)) < 5 * se + 1e-4)


def test_beta_weights_only_the_kl_of_the_loss(setting):
    _, _, elbo = setting
    mu, s = _f32(np.full((N, DZ), -0.2), np.full((N, DZ), 1.3))
    key = jax.random.PRNGKey(2)
    one, half = elbo(key, mu, s, 1.0), elbo(key, mu, s, 0.5)
    np.testing.assert_allclose(one.loss, -np.mean(one.elbo), rtol=1e-6)
    np.testing.assert_allclose(half.elbo, one.elbo, rtol=1e-6)  # the bound itself is β-free
    np.testing.assert_allclose(half.loss, one.loss - 0.5 * np.mean(one.kl), rtol=1e-6)


def test_reparameterised_gradient_matches_the_exact_one(setting):
    """∇_μ,σ of the sampled ELBO ≈ ∇ of its closed form: gradients reach q through z = μ + σε."""
    model, x, elbo = setting
    def mean_elbo(mu, std):
        return -elbo(jax.random.PRNGKey(3), mu, std, 1.0).loss

    g_mu, g_s = jax.jit(jax.grad(mean_elbo, argnums=(0, 1)))(*_f32(MU, STD))
    e_mu, e_s = model.exact_elbo_grad(x, MU, STD)
    # Standard errors of the per-sample pathwise gradients ∂ll/∂μ = Wᵀρ/σ² and
    # ∂ll/∂s = ε ⊙ Wᵀρ/σ², ρ = x − W(μ + s ⊙ ε) − c, simulated independently of the library.
    eps = np.random.default_rng(4).normal(size=(4096, N, DZ))
    pathwise = (x - (MU + STD * eps) @ model.W.T - model.c) @ model.W / SIGMA**2 / N
    se_mu, se_s = (p.std(0) / np.sqrt(SAMPLES) for p in (pathwise, eps * pathwise))
    assert np.abs(e_mu).max() > 20 * se_mu.max() and np.abs(e_s).max() > 20 * se_s.max()
    assert np.all(np.abs(g_mu - e_mu) < 5 * se_mu)
    assert np.all(np.abs(g_s - e_s) < 5 * se_s)


def test_errors_name_the_argument():
    key, z = jax.random.PRNGKey(0), jnp.zeros((N, DZ))

    def ll(z):
        return jnp.zeros(z.shape[:-1])

    with pytest.raises(AssertionError, match="`posterior_mean`, `posterior_std` must have the same shape"):
        vae_elbo(key, z, jnp.ones((N, DZ + 1)), ll)
    with pytest.raises(ValueError, match="give both `prior_mean` and `prior_std`"):
        vae_elbo(key, z, jnp.ones_like(z), ll, prior_mean=z)
    with pytest.raises(ValueError, match="`num_samples` must be a positive int"):
        vae_elbo(key, z, jnp.ones_like(z), ll, num_samples=0)
    with pytest.raises(AssertionError, match="`log_likelihood\\(z\\)` must return one value per example"):
        vae_elbo(key, z, jnp.ones_like(z), lambda z: z)
