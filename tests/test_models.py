"""fnrl.models (issue 13): the Gaussian NLL with learned bounds, probabilistic ensembles
(bootstrap, normalisation, validation, early stopping) and a learned model as an environment."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import envs, losses, models, networks
from fnrl.envs.classic import CartPole, Pendulum
from fnrl.envs.core import EnvState, Spec
from fnrl.envs.wrappers import Batch, TimeLimit
from fnrl.rollout import rollout
from fnrl.types import Transition

LINEAR = Spec(observation_shape=(2,), action_shape=(1,), action_low=-1.0, action_high=1.0)
A = np.array([[0.9, 0.2], [-0.1, 0.8]], np.float32)
B = np.array([[0.5], [1.0]], np.float32)
NOISE = 0.05


def _flat(traj):
    return jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), traj)


def _random_transitions(env, key, num_steps, num_envs, scale=1.0):
    """Uniformly random actions in the environment's own units (continuous ones times
    ``scale``: beyond the bounds for ``scale > 1``), flattened to [T·B, ...]."""
    wrapped = envs.wrap(env, num_envs=num_envs, rescale_actions=False)

    def policy(params, obs, key):
        action = env.spec.sample_action(key, (num_envs,))
        return (action if env.spec.discrete else scale * action), {}

    reset_key, key = jax.random.split(key)
    _, traj, _ = jax.jit(lambda s, k: rollout(wrapped, policy, None, s, k, num_steps))(wrapped.reset(reset_key), key)
    return _flat(traj)


def _linear_data(key, n, noise=NOISE):
    """s' = A s + B a + noise, r = s_0 − a/2 + noise."""
    k = jax.random.split(key, 4)
    s = jax.random.normal(k[0], (n, 2))
    a = jax.random.uniform(k[1], (n, 1), minval=-1.0, maxval=1.0)
    next_s = s @ A.T + a @ B.T + noise * jax.random.normal(k[2], (n, 2))
    r = s[:, 0] - 0.5 * a[:, 0] + noise * jax.random.normal(k[3], (n,))
    zeros = jnp.zeros((n,))
    return Transition(s, a, r, zeros, zeros, next_s)


# --------------------------------------------------------------------------- the loss


def test_gaussian_nll_equals_its_closed_form_and_distrax():
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    mean, log_std, y = (jax.random.normal(ki, (7, 3)) for ki in k[:3])
    weights = jax.random.uniform(k[3], (7,))
    terms = losses.gaussian_nll_loss(mean, log_std, y)
    m, s, t = (np.asarray(x, np.float64) for x in (mean, log_std, y))
    closed = np.sum((t - m) ** 2 / (2 * np.exp(2 * s)) + s + 0.5 * np.log(2 * np.pi), axis=-1)
    np.testing.assert_allclose(terms.nll, closed.mean(), rtol=1e-5)
    log_prob = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)).log_prob(y)
    np.testing.assert_allclose(terms.nll, -jnp.mean(log_prob), rtol=1e-5)
    np.testing.assert_allclose(terms.mse, np.mean((t - m) ** 2), rtol=1e-5)
    assert terms.loss == terms.nll and terms.bound_penalty == 0.0
    # Per-sample weights (bootstrap counts, masks) give the weighted mean.
    weighted = losses.gaussian_nll_loss(mean, log_std, y, weights)
    np.testing.assert_allclose(weighted.nll, np.sum(np.asarray(weights) * closed) / np.sum(weights), rtol=1e-5)
    # The penalty on learned bounds: λ (Σ max − Σ min).
    low, high = jnp.full((3,), -4.0), jnp.array([0.5, 1.0, 0.25])
    bounded = losses.gaussian_nll_loss(mean, log_std, y, min_log_std=low, max_log_std=high, bound_penalty=0.1)
    np.testing.assert_allclose(bounded.bound_penalty, 0.1 * (1.75 + 12.0), rtol=1e-6)
    np.testing.assert_allclose(bounded.loss, terms.nll + bounded.bound_penalty, rtol=1e-6)
    # Its gradient pulls the bounds together.
    grad = jax.grad(lambda lo, hi: losses.gaussian_nll_loss(mean, log_std, y, None, lo, hi).loss, (0, 1))(low, high)
    np.testing.assert_allclose(grad[0], -0.01)
    np.testing.assert_allclose(grad[1], 0.01)


def test_gaussian_nll_bad_input_fails_with_the_argument_name():
    x = jnp.zeros((4, 2))
    with pytest.raises(AssertionError, match="`mean`, `log_std`, `target` must have the same shape"):
        losses.gaussian_nll_loss(x, x, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="give both `min_log_std` and `max_log_std`"):
        losses.gaussian_nll_loss(x, x, x, min_log_std=jnp.zeros(2))
    with pytest.raises(ValueError, match="`bound_penalty` must be >= 0"):
        losses.gaussian_nll_loss(x, x, x, bound_penalty=-1.0)


def test_learned_bounds_bound_log_std_and_learn():
    """soft_clamp keeps log σ inside the bounds; the bounds are parameters that get gradients."""
    x = jnp.linspace(-30.0, 30.0, 101)
    y = networks.soft_clamp(x, -5.0, 0.5)
    assert np.all(y >= -5.0) and np.all(y <= 0.5 + np.log1p(np.exp(-5.5)) + 1e-6)
    np.testing.assert_allclose(networks.soft_clamp(jnp.array(-2.0), -20.0, 20.0), -2.0, atol=1e-6)
    model = models.make_ensemble(LINEAR, models.EnsembleConfig(num_models=2, hidden_sizes=(8,)))
    params = model.init(jax.random.PRNGKey(0))
    low, high = networks.dynamics_log_std_bounds(params.net)
    assert low.shape == high.shape == (2, 3)
    np.testing.assert_allclose(low, -5.0)
    np.testing.assert_allclose(high, 0.25)


# --------------------------------------------------------------------------- fitting


@pytest.fixture(scope="module")
def linear_fit():
    data = _linear_data(jax.random.PRNGKey(0), 2000)
    config = models.EnsembleConfig(num_models=3, hidden_sizes=(32,), num_epochs=60, batch_size=64, patience=None)
    model = models.make_ensemble(LINEAR, config)
    params, metrics = jax.jit(lambda k, d: models.fit(k, model, d))(jax.random.PRNGKey(1), data)
    return model, params, metrics


def test_ensemble_fits_a_linear_system_and_its_noise(linear_fit):
    model, params, metrics = linear_fit
    test = _linear_data(jax.random.PRNGKey(7), 500)
    mean, std = model.predict(params, test.obs, test.action)
    assert mean.shape == std.shape == (3, 500, 3)
    true_next = test.obs @ A.T + test.action @ B.T
    error = np.asarray(test.obs + mean[..., :2] - true_next)
    # The mean is learnt to a fraction of the noise; the noise level itself is recovered.
    assert np.sqrt(np.mean(error**2)) < 0.25 * NOISE
    np.testing.assert_allclose(np.mean(std, axis=(0, 1)), NOISE, rtol=0.3)
    # Standardised validation MSE ≈ the noise's share of the targets' variance (~1%).
    assert np.all(metrics["best_score"] < 0.02) and metrics["num_epochs"] == 60  # patience=None: every epoch
    assert np.all(metrics["val_mse"][-1] < 0.1 * metrics["val_mse"][0])


def test_normalisation_statistics_are_those_of_the_training_rows(linear_fit):
    model, params, _ = linear_fit
    data = _linear_data(jax.random.PRNGKey(0), 2000)
    y = np.asarray(models.targets(data))
    # 80% of the rows: close to, but not exactly, the statistics of all of them.
    np.testing.assert_allclose(params.obs_stats.mean, np.mean(data.obs, 0), atol=0.1)
    np.testing.assert_allclose(params.target_stats.var, np.var(y, 0), rtol=0.1)
    assert params.obs_stats.count == 1600 and params.action_stats.count == 1600


def test_bootstrap_gives_members_different_data():
    rows = np.asarray(models.bootstrap_indices(jax.random.PRNGKey(0), 1000, 4, "resample"))
    assert rows.shape == (4, 1000) and rows.min() >= 0 and rows.max() < 1000
    unique = [len(np.unique(r)) / 1000 for r in rows]
    assert all(0.58 < u < 0.68 for u in unique), unique  # 1 − 1/e ≈ 0.632 of the rows, some repeated
    assert all(not np.array_equal(np.sort(rows[i]), np.sort(rows[j])) for i in range(4) for j in range(i))
    every = np.asarray(models.bootstrap_indices(jax.random.PRNGKey(0), 1000, 4, "none"))
    assert all(np.array_equal(np.sort(r), np.arange(1000)) for r in every)
    assert not np.array_equal(every[0], every[1])  # each in its own order
    with pytest.raises(ValueError, match="mode must be 'resample' or 'none'"):
        models.bootstrap_indices(jax.random.PRNGKey(0), 10, 2, "jackknife")


def test_early_stopping_keeps_each_members_best_validation_parameters():
    """Three members overfit 48 noisy rows: the validation MSE falls, then rises. Each member
    keeps the parameters of its best epoch; training stops `patience` epochs after the last
    epoch in which some member improved, and nothing changes after that."""
    patience = 4
    config = models.EnsembleConfig(num_models=3, hidden_sizes=(64, 64), num_epochs=60, batch_size=16,
                                   learning_rate=3e-3, patience=patience, min_improvement=0.0)
    model = models.make_ensemble(LINEAR, config)
    data = _linear_data(jax.random.PRNGKey(3), 48, noise=1.0)
    val_data = _linear_data(jax.random.PRNGKey(4), 200, noise=1.0)
    params, metrics = jax.jit(lambda k: models.fit(k, model, data, validation=val_data))(jax.random.PRNGKey(5))
    val, best_epoch = np.asarray(metrics["val_mse"]), np.asarray(metrics["best_epoch"])
    trained, stop = np.asarray(metrics["trained"]), int(metrics["num_epochs"])
    assert 1 < stop < 60 and np.all(trained[:stop]) and not np.any(trained[stop:])
    assert stop - best_epoch.max() == patience
    assert np.all(np.isnan(metrics["train_loss"][stop:])) and np.all(np.isfinite(metrics["train_loss"][:stop]))
    np.testing.assert_array_equal(val[stop:], np.broadcast_to(val[stop - 1], val[stop:].shape))  # frozen
    for i, b in enumerate(best_epoch):
        assert 0 < b < stop and metrics["best_score"][i] == val[b - 1, i] == val[:, i].min()
        assert val[stop - 1, i] > val[b - 1, i]  # it got worse after its best epoch
    # The returned parameters score best_score on the validation rows (standardised MSE).
    mean, _ = model.predict(params, val_data.obs, val_data.action)
    scale = np.sqrt(np.asarray(params.target_stats.var) + 1e-8)
    mse = np.mean(((np.asarray(mean) - np.asarray(models.targets(val_data))) / scale) ** 2, axis=(1, 2))
    np.testing.assert_allclose(mse, metrics["best_score"], rtol=1e-4)
    np.testing.assert_array_equal(params.elites, np.argsort(metrics["best_score"]))  # best first


def test_fit_bad_input_is_one_line():
    model = models.make_ensemble(LINEAR, models.EnsembleConfig(num_models=2, hidden_sizes=(8,), num_epochs=1))
    data = _linear_data(jax.random.PRNGKey(0), 10)
    with pytest.raises(ValueError, match=r"^fit: data.action of shape \(10, 2\) must be \(10, 1\)"):
        models.fit(jax.random.PRNGKey(0), model, data._replace(action=jnp.zeros((10, 2))))
    with pytest.raises(ValueError, match=r"^fit: data.obs of shape \(10, 3\) must be"):
        models.fit(jax.random.PRNGKey(0), model, data._replace(obs=jnp.zeros((10, 3))))
    # size: the number of valid rows, checked when it is concrete.
    with pytest.raises(ValueError, match=r"^fit: 0 transitions leave none to train on with validation_fraction=0.2$"):
        models.fit(jax.random.PRNGKey(0), model, data, size=0)
    held_out = models.make_ensemble(LINEAR, models.EnsembleConfig(num_models=2, hidden_sizes=(8,), validation_fraction=0.9))
    with pytest.raises(ValueError, match=r"^fit: 3 transitions leave none to train on with validation_fraction=0.9$"):
        models.fit(jax.random.PRNGKey(0), held_out, data, size=3)
    with pytest.raises(ValueError, match=r"^fit: size=11 must be between 0 and the 10 rows of data$"):
        models.fit(jax.random.PRNGKey(0), model, data, size=11)
    for bad in (2.5, jnp.zeros(2, jnp.int32)):
        with pytest.raises(ValueError, match=r"^fit: size must be None or an integer scalar"):
            models.fit(jax.random.PRNGKey(0), model, data, size=bad)
    with pytest.raises(ValueError, match=r"^invalid num_elites=3: must be at most num_models=2$"):
        models.EnsembleConfig(num_models=2, num_elites=3)
    with pytest.raises(ValueError, match=r"^invalid bootstrap='x'"):
        models.EnsembleConfig(bootstrap="x")


# --------------------------------------------------------------------------- fitting part of a fixed-capacity buffer


def _padded(data, capacity, fill):
    """``data [k, ...]`` as the first ``k`` rows of a buffer of ``capacity`` rows, the rest ``fill``."""
    def pad(x):
        return jnp.concatenate([x, jnp.full((capacity - x.shape[0], *x.shape[1:]), fill, x.dtype)])

    return jax.tree_util.tree_map(pad, data)


def _assert_same_fit(got, want):
    """Same parameters, statistics, elites and metrics, to float rounding (NaN where NaN)."""
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)


@pytest.fixture(scope="module")
def sized_fit():
    """50 linear-system transitions (10 held out, 40 to train on: two minibatches of 16 and
    a remainder) and fit with a traced size, jitted once for the tests below."""
    config = models.EnsembleConfig(num_models=2, hidden_sizes=(16,), num_epochs=8, batch_size=16, patience=3)
    model = models.make_ensemble(LINEAR, config)
    data = _linear_data(jax.random.PRNGKey(0), 50)
    fit_sized = jax.jit(lambda key, buffer, size: models.fit(key, model, buffer, size=size))
    return model, data, fit_sized


def test_fit_on_a_padded_buffer_equals_fit_on_its_valid_rows(sized_fit):
    """Every random draw depends on row and position indices only: the first 50 rows of a
    buffer of 128 (padding NaN or huge) give the fit of the 50 rows alone, whether the size
    is traced or a Python int."""
    model, data, fit_sized = sized_fit
    key = jax.random.PRNGKey(1)
    want = jax.jit(lambda k: models.fit(k, model, data))(key)
    assert want[0].obs_stats.count == 40 and np.all(np.isfinite(want[1]["val_mse"]))
    for fill in (jnp.nan, 1e30):
        _assert_same_fit(fit_sized(key, _padded(data, 128, fill), jnp.int32(50)), want)
    python_int = jax.jit(lambda k, buffer: models.fit(k, model, buffer, size=50))(key, _padded(data, 128, jnp.nan))
    _assert_same_fit(python_int, want)


def test_fit_with_a_traced_size_under_vmap_over_keys_and_sizes(sized_fit):
    """vmap over keys and sizes (a batched number of minibatch steps) gives each seed's own fit."""
    model, data, fit_sized = sized_fit
    buffer, keys, sizes = _padded(data, 128, jnp.nan), jax.random.split(jax.random.PRNGKey(2), 2), jnp.array([50, 37])
    batched = jax.jit(jax.vmap(fit_sized, in_axes=(0, None, 0)))(keys, buffer, sizes)
    for i in range(2):
        _assert_same_fit(jax.tree_util.tree_map(lambda x: x[i], batched), fit_sized(keys[i], buffer, sizes[i]))
    assert not np.allclose(batched[1]["val_mse"][0], batched[1]["val_mse"][1])


def test_fewer_training_rows_than_the_batch_size_is_a_full_batch_step():
    """8 valid rows (and a validation set) in a buffer of 64 with batches of 16: each
    minibatch wraps around the 8 rows twice, so it is the full-batch step that fitting the 8
    rows alone takes (batch size capped at 8). Bootstrap "none"."""
    config = models.EnsembleConfig(num_models=2, hidden_sizes=(16,), num_epochs=5, batch_size=16, bootstrap="none")
    model = models.make_ensemble(LINEAR, config)
    data, val = _linear_data(jax.random.PRNGKey(0), 8), _linear_data(jax.random.PRNGKey(1), 20)
    key = jax.random.PRNGKey(3)
    want = jax.jit(lambda k: models.fit(k, model, data, validation=val))(key)
    got = jax.jit(lambda k, size: models.fit(k, model, _padded(data, 64, jnp.nan), validation=val, size=size))(key, 8)
    _assert_same_fit(got, want)
    assert got[1]["num_epochs"] == 5 and np.all(np.isfinite(got[1]["train_loss"]))
    assert got[0].obs_stats.count == 8


def test_pendulum_ensemble_predicts_held_out_next_states():
    """Learning check: 3,200 random pendulum transitions (2,560 to train on), one-step next
    states of 1,000 fresh transitions. Measured (seed 0, "resample"): RMSE (0.0025, 0.0025,
    0.0075) on (cos θ, sin θ, θ̇), against (0.11, 0.13, 0.53) for predicting no change."""
    real = Pendulum()
    data = _random_transitions(real, jax.random.PRNGKey(0), 200, 16)
    test = _random_transitions(real, jax.random.PRNGKey(1), 100, 10)
    config = models.EnsembleConfig(num_models=3, hidden_sizes=(64, 64), num_epochs=50, batch_size=64)
    model = models.make_ensemble(real.spec, config)
    params, metrics = jax.jit(lambda k, d: models.fit(k, model, d))(jax.random.PRNGKey(2), data)
    mean, _ = model.predict(params, test.obs, test.action, elites_only=True)
    rmse = np.sqrt(np.mean((test.obs + mean.mean(0)[:, :3] - test.next_obs) ** 2, axis=0))
    no_change = np.sqrt(np.mean((test.obs - test.next_obs) ** 2, axis=0))
    assert np.all(rmse < 0.03), rmse
    assert np.all(rmse < 0.1 * no_change), (rmse, no_change)


# --------------------------------------------------------------------------- the model as an environment


def _perfect_cartpole(obs, action):
    """The true cart-pole dynamics as a deterministic one-member predictor of y = [s' − s, r]."""
    next_state, reward, _ = CartPole()._dynamics(obs, action)
    return jnp.concatenate([next_state - obs, jnp.array([reward], jnp.float32)])[None], jnp.zeros((1, 5))


def _perfect_pendulum(obs, action):
    """The true pendulum dynamics from its observation (θ = atan2(sin θ, cos θ))."""
    real = Pendulum()
    state = jnp.stack([jnp.arctan2(obs[1], obs[0]), obs[2]])
    next_state, reward, _ = real._dynamics(state, action)
    y = jnp.concatenate([real._observe(next_state) - obs, jnp.array([reward], jnp.float32)])
    return y[None], jnp.zeros((1, 4))


def _perfect(name):
    real = {"cartpole": CartPole(), "pendulum": Pendulum()}[name]
    predict = {"cartpole": _perfect_cartpole, "pendulum": _perfect_pendulum}[name]
    model = models.ModelEnv(real.spec, predict, lambda k: real.reset(k).obs,
                            models.reward_function(real), models.termination_function(real))
    return real, model


def _policy(spec):
    """A policy that depends on the observation (so a wrong observation changes the actions)."""
    def policy(params, obs, key):
        noise = jax.random.normal(key, obs.shape[:1])
        if spec.discrete:
            return (obs[:, 2] + 0.05 * noise > 0).astype(jnp.int32), {}
        return jnp.tanh(-obs[:, 2:3] + noise[:, None]), {}

    return policy


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_a_perfect_model_reproduces_the_real_environment(name):
    """wrap (rescaling, batch, auto-reset), TimeLimit and rollout run on the model unchanged;
    with the true dynamics as its predictor it walks the real environment's trajectory,
    terminations, truncations and resets included."""
    real, model = _perfect(name)
    trajectories = []
    for env in (real, model):
        wrapped = envs.wrap(TimeLimit(env, 30), num_envs=4)
        state = wrapped.reset(jax.random.PRNGKey(0))
        run = jax.jit(lambda s: rollout(wrapped, _policy(env.spec), None, s, jax.random.PRNGKey(1), 90))
        trajectories.append(run(state)[1:])
    (real_traj, real_eps), (model_traj, model_eps) = trajectories
    for field in ("obs", "action", "reward", "next_obs"):
        np.testing.assert_allclose(getattr(model_traj, field), getattr(real_traj, field), atol=2e-4, err_msg=field)
    for field in ("termination", "truncation"):
        np.testing.assert_array_equal(getattr(model_traj, field), getattr(real_traj, field), err_msg=field)
    np.testing.assert_allclose(model_eps.episode_return, real_eps.episode_return, rtol=1e-4)
    assert real_traj.truncation.sum() > 0
    if name == "cartpole":
        assert real_traj.termination.sum() > 0


def _state_signature(state: EnvState):
    return {f: (jnp.shape(getattr(state, f)), jnp.asarray(getattr(state, f)).dtype)
            for f in ("obs", "reward", "termination", "truncation")}


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_model_env_has_the_real_interface(name):
    real, model = _perfect(name)
    assert model.spec == real.spec and model.unwrapped is model
    key = jax.random.PRNGKey(0)
    action = real.spec.sample_action(key)
    for env in (real, model):
        # reset and step under jit and vmap, with the real environment's shapes and dtypes.
        state = jax.jit(env.reset)(key)
        batch = jax.vmap(env.reset)(jax.random.split(key, 3))
        stepped = jax.jit(env.step)(state, action)
        assert _state_signature(stepped) == _state_signature(real.step(real.reset(key), action))
        assert batch.obs.shape == (3, *real.spec.observation_shape)
    # Wrong actions fail as they do in the real environment.
    bad = jnp.zeros((2,), jnp.int32 if real.spec.discrete else jnp.float32)
    with pytest.raises(AssertionError, match="model: the action must be"):
        model.step(model.reset(key), bad)


def _random_ensemble(spec, **kw):
    """An untrained ensemble (its members disagree) with fixed standardisation."""
    model = models.make_ensemble(spec, models.EnsembleConfig(num_models=4, hidden_sizes=(16,), **kw))
    return model, model.init(jax.random.PRNGKey(3))


def test_propagation_ts1_tsinf_and_mean():
    spec = Pendulum().spec
    model, params = _random_ensemble(spec)
    start = jnp.array([[1.0, 0.0, 0.5]])  # one start state for all
    action = jnp.full((6, 1), 0.3)

    def run(propagation, sample=False, steps=5):
        """(the reset state, the states of `steps` steps stacked) of 6 model environments."""
        env = Batch(models.model_env(model, params, start, propagation=propagation, sample=sample), 6)

        def go():
            state = env.reset(jax.random.PRNGKey(0))
            return state, jax.lax.scan(lambda s, _: (env.step(s, action),) * 2, state, None, length=steps)[1]

        return jax.jit(go)()

    @jax.jit
    def member_paths():
        """Every member's own deterministic path from the start: final obs [4, 3], rewards [5, 4]."""
        obs, rewards = jnp.broadcast_to(start[0], (4, 3)), []
        for _ in range(5):
            mean, _ = model.predict(params, obs, jnp.broadcast_to(action[0], (4, 1)))
            mean = mean[jnp.arange(4), jnp.arange(4)]  # member i on path i
            obs = obs + mean[:, :3]
            rewards.append(mean[:, 3])
        return obs, jnp.stack(rewards)

    # TS∞: each trajectory follows the member drawn at reset, with the predicted reward.
    first, states = run("tsinf")
    members = np.asarray(first.internal.member)
    assert len(set(members.tolist())) > 1
    np.testing.assert_array_equal(states.internal.member, np.broadcast_to(members, (5, 6)))
    path_obs, path_rewards = member_paths()
    np.testing.assert_allclose(states.obs[-1], path_obs[members], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(states.reward, path_rewards[:, members], rtol=1e-5, atol=1e-5)
    # TS1: a member per step, so trajectories from the same start spread out.
    ts1 = run("ts1")[1].obs[-1]
    assert not np.allclose(ts1[0], ts1[1:]) and np.all(np.isfinite(ts1))
    # Mean: deterministic (even with sample=True), the members' average.
    mean_obs = run("mean", sample=True, steps=1)[1].obs[0]
    predicted, _ = model.predict(params, start[0], action[0])
    np.testing.assert_allclose(mean_obs, np.broadcast_to(start[0] + predicted.mean(0)[:3], (6, 3)), rtol=1e-5)
    # Sampling adds the member's own noise.
    assert not np.allclose(run("tsinf", sample=True)[1].obs[-1], states.obs[-1])


def test_fit_and_model_env_in_one_program_vmapped_over_seeds():
    """Fit a cart-pole ensemble (discrete actions, bootstrap "none") and roll a policy out in
    its environment — dataset start states, the known termination, a short horizon (MBPO's
    branched rollouts) — all in one jitted program, vmapped over seeds."""
    real = CartPole()
    data = _random_transitions(real, jax.random.PRNGKey(0), 25, 8)
    config = models.EnsembleConfig(num_models=3, num_elites=2, hidden_sizes=(16,), num_epochs=3, batch_size=32,
                                   bootstrap="none")
    model = models.make_ensemble(real.spec, config)

    def program(key):
        fit_key, reset_key, run_key = jax.random.split(key, 3)
        params, metrics = models.fit(fit_key, model, data)
        env = models.model_env(model, params, start=data.obs, termination_fn=models.termination_function(real))
        wrapped = envs.wrap(TimeLimit(env, 5), num_envs=8)
        _, traj, episodes = rollout(wrapped, _policy(real.spec), None, wrapped.reset(reset_key), run_key, 12)
        return params, metrics, traj, episodes

    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    params, metrics, traj, episodes = jax.jit(jax.vmap(program))(keys)
    assert metrics["val_mse"].shape == (2, 3, 3) and params.elites.shape == (2, 2) and params.action_stats is None
    assert traj.obs.shape == (2, 12, 8, 4) and traj.action.shape == (2, 12, 8)
    assert np.all(np.isfinite(traj.next_obs))
    # Episodes end by the known termination of the model's next states, or at the horizon.
    termination = models.termination_function(real)(traj.obs, traj.action, traj.next_obs)
    np.testing.assert_array_equal(traj.termination, termination)
    assert np.all(episodes.episode_length[episodes.done > 0] <= 5)
    assert np.all(traj.truncation * traj.termination == 0)
    # Start states come from the dataset.
    starts = np.asarray(traj.obs[:, 0]).reshape(-1, 4)
    assert all(np.any(np.all(np.isclose(np.asarray(data.obs), s), axis=1)) for s in starts)
    assert not np.allclose(metrics["val_mse"][0], metrics["val_mse"][1])  # the seeds' models differ


def test_model_env_bad_input_is_one_line():
    spec = Pendulum().spec
    with pytest.raises(ValueError, match="propagation must be one of"):
        models.ModelEnv(spec, _perfect_pendulum, jnp.zeros((1, 3)), propagation="ts2")
    with pytest.raises(ValueError, match=r"start must be a function of a key or an array \[K, \*\(3,\)\]"):
        models.ModelEnv(spec, _perfect_pendulum, jnp.zeros((3,)))
    env = models.ModelEnv(spec, lambda o, a: (jnp.zeros((2, 3)), jnp.zeros((2, 3))), jnp.zeros((1, 3)))
    with pytest.raises(AssertionError, match=r"predict\(obs, action\) must return \(mean, std\), each \[num_members, 4\]"):
        env.reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="no known reward function for Acrobot; known for: pendulum, cartpole"):
        models.reward_function(envs.make("acrobot"))


# --------------------------------------------------------------------------- known rewards and terminations


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_known_rewards_and_terminations_equal_the_real_ones(name):
    real = envs.make(name)  # through its TimeLimit
    data = _random_transitions(real, jax.random.PRNGKey(0), 300, 8, scale=1.5)  # pendulum: clipped torques too
    reward = models.reward_function(real)(data.obs, data.action, data.next_obs)
    termination = models.termination_function(real)(data.obs, data.action, data.next_obs)
    np.testing.assert_allclose(reward, data.reward, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(termination, data.termination > 0)
    if name == "cartpole":
        assert data.termination.sum() > 20
