"""BCQ and its behaviour model (fnrl.behaviour): the conditional VAE fitted by the ELBO, checked
against a quadrature of its own likelihood and as a support estimate; BCQ acting only near the
VAE's samples (exactly on them with Φ = 0); BCQ learning pendulum from a medium dataset.

The behaviour model is fitted on states s ~ N(0, I₃) with the action a known function of them,
f(s) = 0.7 tanh(1.5 s₀ − s₁), or that plus N(0, 0.1²) noise. The learning test uses seed 0 and
(64, 64) networks; its threshold sits well below what it reached when written (in its comment).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import offline_data
from fnrl import algorithms, behaviour, envs, networks, transforms
from fnrl.algorithms import bcq
from fnrl.config import ConfigError
from fnrl.loops import offline
from fnrl.types import Transition

PENDULUM = envs.make("pendulum").spec
TORSO = networks.Torso((64, 64))
N, UPDATES = 4096, 800


def f(obs):
    return 0.7 * jnp.tanh(1.5 * obs[..., :1] - obs[..., 1:2])


def _states(seed, n=N):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, 3))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _fit_scan(model, obs, action, updates, params, key):
    optimizer = optax.adam(1e-3)

    def step(carry, key):
        params, opt = carry
        index_key, loss_key = jax.random.split(key)
        index = jax.random.randint(index_key, (256,), 0, obs.shape[0])
        (_, terms), grads = jax.value_and_grad(model.loss, has_aux=True)(params, obs[index], action[index], loss_key)
        return transforms.optimizer_step(optimizer, grads, opt, params), jnp.mean(terms.elbo)

    (params, _), elbo = jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, updates))
    return params, elbo


def _fit(model, obs, action, updates=UPDATES, seed=0):
    """The model's parameters after ``updates`` Adam steps on minibatches of 256, and the
    minibatch ELBO along the way (one compilation for every fit of the same shapes)."""
    params = model.init(jax.random.PRNGKey(seed), obs[:1], action[:1])
    params, elbo = _fit_scan(model, obs, action, updates, params, jax.random.PRNGKey(seed + 1))
    return params, np.asarray(elbo)


@pytest.fixture(scope="module")
def fitted():
    """The behaviour model fitted to a = f(s) (deterministic), to a = f(s) + N(0, 0.1²), and to
    a = ±0.8 + N(0, 0.05²) with either sign equally likely whatever the state (two modes, so z
    must carry the sign and the posterior is not the prior)."""
    model = behaviour.make_behaviour_model(PENDULUM, TORSO)
    obs = _states(0)
    noise = jax.random.normal(jax.random.PRNGKey(9), (N, 1))
    sign = jnp.where(jax.random.bernoulli(jax.random.PRNGKey(10), 0.5, (N, 1)), 1.0, -1.0)
    return model, {"exact": _fit(model, obs, f(obs)), "noisy": _fit(model, obs, f(obs) + 0.1 * noise),
                   "bimodal": _fit(model, obs, 0.8 * sign + 0.05 * noise)}


# ----------------------------------------------------------------------------- the behaviour model
def test_elbo_rises_and_samples_concentrate_on_the_dataset_actions(fitted):
    model, fits = fitted
    params, elbo = fits["exact"]
    assert model.latent_size == 2  # 2 · action dim
    # from the initial parameters' ELBO to within 0.01 of its ceiling, log N(0; 0, σ²) at σ = ½ (exact
    # reconstruction, KL 0); seed 0: -1.50 -> -0.2267
    ceiling = -0.5 * np.log(2 * np.pi * 0.25)
    assert elbo[0] < ceiling - 1.0 and np.mean(elbo[-100:]) > ceiling - 0.01, (elbo[0], elbo[-100:].mean())
    obs = _states(5, 512)  # unseen states
    samples = model.sample(params, jnp.repeat(obs[:, None], 10, axis=1), jax.random.PRNGKey(6))  # [512, 10, 1]
    assert samples.shape == (512, 10, 1) and np.all(np.abs(samples) < 1.0)
    error = float(jnp.mean(jnp.abs(samples - f(obs)[:, None])))
    uniform = jax.random.uniform(jax.random.PRNGKey(7), samples.shape, minval=-1.0, maxval=1.0)
    uniform_error = float(jnp.mean(jnp.abs(uniform - f(obs)[:, None])))
    # seed 0: 0.025 against 0.64 for uniform actions
    assert error < 0.05 and uniform_error > 0.4, (error, uniform_error)


def _quadrature(model, params, obs, action, q_mean, q_std, half_width=6.0, points=161):
    """log p_θ(a|s) = log ∫ N(z; 0, I) p_θ(a|s, z) dz and KL(q ‖ p_θ(z|s, a)) on a grid over the
    2-D latent, for each of the given (s, a)."""
    axis = jnp.linspace(-half_width, half_width, points)
    grid = jnp.stack(jnp.meshgrid(axis, axis), -1).reshape(-1, 2)  # [G, 2]
    log_cell = 2 * jnp.log(axis[1] - axis[0])

    def one(s, a, m, sd):
        z = grid
        log_prior = jnp.sum(jax.scipy.stats.norm.logpdf(z), -1)
        log_lik = model.vae.decode(params, z, jnp.broadcast_to(s, (z.shape[0], 3))).log_prob(
            jnp.broadcast_to(a, (z.shape[0], 1)))
        log_joint = log_prior + log_lik
        log_p = jax.scipy.special.logsumexp(log_joint) + log_cell
        log_q = jnp.sum(jax.scipy.stats.norm.logpdf(z, m, sd), -1)
        q = jnp.exp(log_q + log_cell)
        kl = jnp.sum(q * (log_q - (log_joint - log_p))) / jnp.sum(q)
        return log_p, kl

    return jax.jit(jax.vmap(one))(obs, action, q_mean, q_std)


def test_elbo_is_below_the_exact_log_likelihood_by_the_posterior_kl(fitted):
    model, fits = fitted
    params, _ = fits["bimodal"]
    obs = _states(11, 8)
    action = jnp.array([0.8, -0.8] * 4)[:, None] + 0.05 * jax.random.normal(jax.random.PRNGKey(12), (8, 1))
    q = model.vae.encode(params, action, obs)
    elbo = model.elbo(params, obs, action, jax.random.PRNGKey(13), num_samples=1 << 14)
    log_p, kl = _quadrature(model, params, obs, action, q.mean(), q.stddev())
    assert np.all(np.asarray(elbo) < np.asarray(log_p)), (elbo, log_p)
    # log p − ELBO = KL(q ‖ p(z|s, a)) ≥ 0 (up to the Monte-Carlo error of E_q log p(a|s, z))
    np.testing.assert_allclose(log_p - elbo, kl, atol=0.02)
    assert np.all(kl > 0.05)  # a resolved gap: seed 0: KL 0.10 to 0.22, the identity holds to 0.008


def test_elbo_is_a_support_estimate(fitted):
    model, fits = fitted
    params, _ = fits["noisy"]
    obs = _states(14, 512)
    obs = obs[np.abs(np.asarray(f(obs)[:, 0])) > 0.3]  # states where −f(s) is far from f(s)
    key = jax.random.PRNGKey(15)
    seen = model.elbo(params, obs, f(obs), key, num_samples=64)
    unseen = model.elbo(params, obs, -f(obs), key, num_samples=64)
    # seed 0: means −0.23 and −3.2, the smallest difference 0.67 (σ = ½ keeps the density wide)
    assert np.all(seen > unseen) and float(jnp.mean(seen - unseen)) > 1.0


def test_behaviour_model_refuses_bad_arguments():
    with pytest.raises(ValueError, match="continuous"):
        behaviour.make_behaviour_model(envs.make("cartpole").spec)
    with pytest.raises(ValueError, match="latent_clip"):
        behaviour.make_behaviour_model(PENDULUM, latent_clip=0.0)
    with pytest.raises(ValueError, match="decoder_std"):
        behaviour.make_behaviour_model(PENDULUM, decoder_std=-1.0)


# ----------------------------------------------------------------------------- BCQ
def test_bcq_is_a_registered_offline_algorithm_with_the_papers_defaults():
    assert "bcq" in algorithms.names() and algorithms.get("bcq") is bcq
    assert bcq.SUPPORTS == ("continuous",) and issubclass(bcq.Config, offline.OfflineConfig)
    c = bcq.Config()
    assert (c.num_samples, c.phi, c.lmbda, c.tau, c.kl_weight, c.latent_clip) == (10, 0.05, 0.75, 0.005, 0.5, 0.5)
    assert c.actor_learning_rate == c.critic_learning_rate == c.vae_learning_rate == 1e-3
    with pytest.raises(ConfigError, match="phi"):
        bcq.Config(phi=-0.1)
    with pytest.raises(ConfigError, match="lmbda"):
        bcq.Config(lmbda=1.5)


def _train_agent(phi, updates=300):
    """BCQ's agent after ``updates`` on a fixed dataset whose action is f(s)."""
    config = bcq.Config(phi=phi, hidden_sizes=(32, 32), vae_hidden_sizes=(64, 64))
    agent = bcq.make_agent(config, PENDULUM)
    obs = _states(0, 128)
    batch = Transition(obs=obs, action=f(obs), reward=-jnp.sum(obs ** 2, -1), termination=jnp.zeros(128),
                       truncation=jnp.zeros(128), next_obs=obs[::-1],
                       extras={"weight": jnp.ones(128), "n_steps": jnp.ones(128)})

    def body(learner, key):
        return agent.update(learner, batch, key).learner, None

    learner = jax.jit(lambda l: jax.lax.scan(body, l, jax.random.split(jax.random.PRNGKey(2), updates))[0])(
        agent.init(jax.random.PRNGKey(0), obs))
    model = behaviour.make_behaviour_model(PENDULUM, networks.Torso(config.vae_hidden_sizes))
    return config, agent, learner, model


@pytest.mark.parametrize("phi", [0.0, 0.05])
def test_bcq_acts_within_phi_of_a_vae_sample(phi):
    config, agent, learner, model = _train_agent(phi)
    obs, key = _states(21, 128), jax.random.PRNGKey(22)
    action, _ = agent.act(learner, obs, key, False)
    assert action.shape == (128, 1)
    np.testing.assert_array_equal(agent.act(learner, obs, key, True)[0], action)  # no exploration noise
    candidates = model.sample(learner.vae, jnp.repeat(obs[:, None], config.num_samples, axis=1), key)  # [128, n, 1]
    distance = np.min(np.abs(np.asarray(candidates - action[:, None]))[..., 0], axis=1)
    if phi == 0.0:
        assert np.all(distance == 0.0)  # exactly one of the VAE's candidates
    else:
        assert np.all(distance <= phi + 1e-6) and np.max(distance) > 0.0
    # and the VAE puts its mass near the dataset's action f(s): seed 0: 0.063 and 0.077 (uniform
    # actions: 0.64)
    assert float(jnp.mean(jnp.abs(action - f(obs)))) < 0.2


def test_bcq_learns_pendulum_from_medium_data(tmp_path):
    # 40% uniformly random actions; the paper's batch of 100. seed 0: -869, -170 at 1,500 and 3,000
    # updates (-955, -126 with batches of 256; random: about
    # -1200, the expert: about -150; the VAE's samples alone, Φ = 0 and n = 1, imitate the
    # expert's data to -129 at 4,000 updates)
    dataset = offline_data.make(tmp_path / "pd-medium", "pendulum", offline_data.expert("pendulum", 0.4), 10_000)
    config = bcq.Config(dataset=dataset.path, total_steps=3000, batch_size=100, hidden_sizes=(64, 64),
                        vae_hidden_sizes=(64, 64), num_evals=2, eval_episodes=16)
    _, metrics = jax.jit(bcq.make_train(config))(jax.random.PRNGKey(0))
    assert metrics["step"].tolist() == [1500, 3000]
    assert metrics["episode_return"][-1] >= -400.0
    assert np.all(np.isfinite(metrics["critic_loss"])) and np.all(np.isfinite(metrics["elbo"]))
