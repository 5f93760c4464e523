"""fnrl.networks: shapes, distributions' densities, initialisation and ensembles."""
import math

import chex
import haiku as hk
import hypothesis.strategies as st
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import fnrl.networks as nw
from fnrl.envs.core import Spec

DISCRETE = Spec(observation_shape=(2,), num_actions=3)
CONTINUOUS = Spec(observation_shape=(3,), action_shape=(2,), action_low=-1.0, action_high=1.0)
TORSO = nw.Torso((8, 8), "tanh")
ORTHOGONAL = nw.Torso((8, 8), "tanh", orthogonal_init=True)
T, B = 5, 2  # time-major batch [T, B, ...]
N = 3  # ensemble members
KEY = jax.random.PRNGKey(0)


def _obs(spec, key=KEY, scale=1.0):
    return scale * jax.random.normal(key, (T, B) + spec.observation_shape)


def _transformed(f):
    return hk.without_apply_rng(hk.transform(f))


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("spec,distribution", [
    (DISCRETE, "auto"), (CONTINUOUS, "gaussian"), (CONTINUOUS, "tanh_gaussian")])
@pytest.mark.parametrize("shared_torso", [False, True])
def test_actor_critic_shapes(spec, distribution, shared_torso):
    net = nw.make_actor_critic(spec, TORSO, distribution=distribution, shared_torso=shared_torso)

    def run(key, obs):
        dist, value = net.apply(net.init(key, obs), obs)
        return dist.sample_and_log_prob(seed=key) + (value,)

    # Shapes by abstract evaluation (no compilation); values are checked by the tests below.
    action, log_prob, value = jax.eval_shape(run, KEY, _obs(spec))
    assert action.shape == (T, B) + spec.action_shape  # batch [T, B], event spec.action_shape
    assert log_prob.shape == (T, B) and value.shape == (T, B)


def test_multi_dimensional_observations_are_flattened():
    image = Spec((1, 2), num_actions=3)  # flattens to DISCRETE's observation
    obs = _obs(image)
    net_image, net_flat = nw.make_policy(image, TORSO), nw.make_policy(DISCRETE, TORSO)
    params = net_image.init(KEY, obs)
    assert _leaves_equal(params, net_flat.init(KEY, obs.reshape(T, B, 2)))
    np.testing.assert_array_equal(
        net_image.apply(params, obs).logits, net_flat.apply(params, obs.reshape(T, B, 2)).logits)


def test_q_network_and_deterministic_policy_shapes():
    def q_shape(net, *inputs):
        return jax.eval_shape(lambda k: net.apply(net.init(k, *inputs), *inputs), KEY).shape

    obs, action = _obs(CONTINUOUS), jnp.zeros((T, B, 2))
    assert q_shape(nw.make_q_network(DISCRETE, TORSO), _obs(DISCRETE)) == (T, B, 3)
    assert q_shape(nw.make_q_network(DISCRETE, TORSO, num_critics=N), _obs(DISCRETE)) == (N, T, B, 3)
    assert q_shape(nw.make_q_network(CONTINUOUS, TORSO), obs, action) == (T, B)
    mu = nw.make_deterministic_policy(CONTINUOUS, TORSO)
    a = mu.apply(mu.init(KEY, obs), _obs(CONTINUOUS, scale=100.0))
    assert a.shape == (T, B, 2) and bool(jnp.all(jnp.abs(a) < 1.0))


@pytest.mark.parametrize("activation", sorted(nw.ACTIVATIONS))
def test_torso_activations(activation):
    torso = _transformed(lambda x: nw.Torso((8, 8), activation)(x))
    x = _obs(CONTINUOUS)
    params = torso.init(KEY, x)
    h = torso.apply(params, x)
    pre = x @ params["torso/linear_0"]["w"] + params["torso/linear_0"]["b"]
    pre = nw.ACTIVATIONS[activation](pre) @ params["torso/linear_1"]["w"] + params["torso/linear_1"]["b"]
    np.testing.assert_allclose(h, nw.ACTIVATIONS[activation](pre), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- distributions


def test_categorical_probabilities_sum_to_one_and_start_near_uniform():
    net = nw.make_policy(DISCRETE, ORTHOGONAL)
    obs = _obs(DISCRETE, scale=10.0)
    dist = net.apply(net.init(KEY, obs), obs)
    np.testing.assert_allclose(dist.probs.sum(-1), 1.0, rtol=1e-6)
    # Orthogonal gain 0.01 on tanh features: |logit| <= 0.01 * sqrt(8), near-uniform policy.
    assert float(jnp.max(jnp.abs(dist.logits - dist.logits.mean(-1, keepdims=True)))) < 0.06
    np.testing.assert_allclose(dist.entropy(), math.log(3), atol=1e-3)


@jax.jit
def _tanh_normal_terms(loc, scale, key):
    dist = nw.TanhNormal(loc, scale)
    a, log_prob = dist.sample_and_log_prob(seed=key, sample_shape=(64,))
    return a, log_prob, dist.log_prob(a), dist.mode()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2),
       st.lists(st.floats(-2.0, 1.0), min_size=2, max_size=2),
       st.integers(0, 2**31 - 1))
def test_tanh_normal_log_prob_is_the_change_of_variables(loc, log_scale, seed):
    loc, scale = np.asarray(loc, np.float64), np.exp(np.asarray(log_scale, np.float64))
    a, sampled_log_prob, log_prob, mode = _tanh_normal_terms(
        jnp.asarray(loc, jnp.float32), jnp.asarray(scale, jnp.float32), jax.random.PRNGKey(seed))
    assert bool(jnp.all(jnp.abs(a) < 1.0))
    # By hand in float64: log N(u; loc, scale) - sum log(1 - tanh(u)^2), u = atanh(a).
    u = np.arctanh(np.asarray(a, np.float64))
    gauss = -0.5 * ((u - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gauss - np.log1p(-np.tanh(u) ** 2), axis=-1)
    moderate = np.all(np.abs(u) < 4.0, axis=-1)  # where float32 atanh(a) recovers u accurately
    np.testing.assert_allclose(log_prob[moderate], expected[moderate], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(sampled_log_prob[moderate], expected[moderate], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(mode, np.tanh(loc), rtol=1e-5, atol=1e-7)


def test_tanh_normal_density_integrates_to_one():
    dist = nw.TanhNormal(jnp.array([0.3]), jnp.array([0.8]))
    a = jnp.linspace(-1.0, 1.0, 20001)[1:-1, None]
    density = np.exp(np.asarray(dist.log_prob(a), np.float64))
    np.testing.assert_allclose(np.trapezoid(density, np.asarray(a[:, 0], np.float64)), 1.0, atol=1e-3)


def test_tanh_normal_is_stable_at_the_boundary():
    loc, scale = jnp.array([20.0, -20.0]), jnp.array([0.1, 0.1])
    dist = nw.TanhNormal(loc, scale)
    a, log_prob = dist.sample_and_log_prob(seed=KEY, sample_shape=(16,))
    assert bool(jnp.all(jnp.abs(a) < 1.0)) and bool(jnp.all(jnp.isfinite(log_prob)))
    # log_prob of actions exactly on the boundary is finite, and so are its gradients.
    value, grads = jax.jit(jax.value_and_grad(
        lambda l, s: nw.TanhNormal(l, s).log_prob(jnp.array([1.0, -1.0])), (0, 1)))(loc, scale)
    assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@settings(max_examples=15, deadline=None)
@given(st.floats(-8.0, 0.0), st.floats(0.5, 4.0), st.floats(0.05, 0.95), st.booleans())
def test_gaussian_log_std_stays_within_bounds(lo, width, init_fraction, state_dependent):
    bounds, init_log_std = (lo, lo + width), lo + init_fraction * width
    head = _transformed(lambda h: nw.gaussian_head(
        h, 2, state_dependent_std=state_dependent, log_std_bounds=bounds, init_log_std=init_log_std))
    h = jax.random.normal(KEY, (B, 6))
    params = head.init(KEY, h)
    if not state_dependent:  # starts exactly at init_log_std
        np.testing.assert_allclose(jnp.log(head.apply(params, h).stddev()), init_log_std, atol=1e-5)
    # Push the raw log-std far out in both directions: log sigma saturates inside the bounds.
    for sign in (1.0, -1.0):
        pushed = jax.tree.map(lambda p: p + sign * 100.0, params)
        log_std = jnp.log(head.apply(pushed, 100.0 * h).stddev())
        assert bool(jnp.all(log_std >= lo - 1e-5)) and bool(jnp.all(log_std <= lo + width + 1e-5))


def test_state_independent_log_std_is_one_parameter_vector():
    net = nw.make_policy(CONTINUOUS, TORSO, init_log_std=-0.5)
    obs = _obs(CONTINUOUS)
    params = net.init(KEY, obs)
    assert params["gaussian_head"]["log_std"].shape == (2,)
    np.testing.assert_allclose(net.apply(params, obs).stddev(), np.exp(-0.5), rtol=1e-5)
    # SAC's tanh-Gaussian defaults to a state-dependent log-std (an output layer).
    sac = nw.make_policy(CONTINUOUS, TORSO, distribution="tanh_gaussian")
    sac_shapes = jax.tree.map(jnp.shape, jax.eval_shape(sac.init, KEY, obs))
    assert sac_shapes["tanh_gaussian_head/log_std"] == {"w": (8, 2), "b": (2,)}


# --------------------------------------------------------------------------- initialisation


def test_orthogonal_initialisation_gains():
    net = nw.make_actor_critic(DISCRETE, ORTHOGONAL)
    params = net.init(KEY, _obs(DISCRETE))
    w0 = params["policy_torso/linear_0"]["w"]  # [2, 8]: orthogonal rows, gain sqrt(2)
    np.testing.assert_allclose(w0 @ w0.T, 2.0 * np.eye(2), atol=1e-5)
    w1 = params["policy_torso/linear_1"]["w"]
    np.testing.assert_allclose(w1.T @ w1, 2.0 * np.eye(8), atol=1e-5)
    wp = params["logits"]["w"]  # [8, 3]: gain 0.01
    np.testing.assert_allclose(wp.T @ wp, 1e-4 * np.eye(3), atol=1e-8)
    np.testing.assert_allclose(jnp.sum(params["value"]["w"] ** 2), 1.0, rtol=1e-5)
    assert all(not np.any(p["b"]) for p in params.values())


def test_layer_norm_makes_the_torso_scale_invariant_at_init():
    x = _obs(CONTINUOUS)
    for layer_norm in (True, False):
        torso = _transformed(lambda v, ln=layer_norm: nw.Torso((8, 8), "tanh", layer_norm=ln)(v))
        params = torso.init(KEY, x)
        assert ("torso/norm_0" in params) == layer_norm
        same = np.allclose(torso.apply(params, 5.0 * x), torso.apply(params, x), atol=1e-3)
        assert same == layer_norm  # biases start at zero, so LN(W 5x) = LN(W x)


def test_init_is_deterministic_and_vmaps_over_seeds():
    net = nw.make_policy(DISCRETE, TORSO)
    obs = _obs(DISCRETE)
    assert _leaves_equal(net.init(KEY, obs), net.init(KEY, obs))
    keys = jax.random.split(KEY, 4)
    stacked = jax.jit(jax.vmap(net.init, in_axes=(0, None)))(keys, obs)
    for i, key in enumerate(keys):
        one = jax.tree.map(lambda p: p[i], stacked)
        chex.assert_trees_all_close(one, net.init(key, obs), rtol=1e-6)
    flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(stacked)
    for i in range(4):
        for j in range(i):
            assert not np.allclose(flat[i], flat[j])


def test_shared_and_separate_torsos():
    obs = _obs(DISCRETE)
    for shared in (True, False):
        net = nw.make_actor_critic(DISCRETE, TORSO, shared_torso=shared)
        params = net.init(KEY, obs)
        assert ("shared_torso/linear_0" in params) == shared
        assert ("value_torso/linear_0" in params) == (not shared)
        grads = jax.grad(lambda p: net.apply(p, obs)[1].sum())(params)
        assert not np.any(grads["logits"]["w"])  # the value never reaches the policy head
        torso_grad = grads["shared_torso/linear_0" if shared else "policy_torso/linear_0"]["w"]
        assert np.any(torso_grad) == shared  # ... but trains a shared torso
    value_only = nw.make_value(DISCRETE, TORSO)
    assert set(value_only.init(KEY, obs)) == {"value", "value_torso/linear_0", "value_torso/linear_1"}


# --------------------------------------------------------------------------- ensembles


def test_critic_ensemble_members_are_independent():
    n, obs, action = N, _obs(CONTINUOUS), jax.random.uniform(KEY, (T, B, 2), minval=-1, maxval=1)
    critics = nw.make_q_network(CONTINUOUS, TORSO, num_critics=n)
    single = nw.make_q_network(CONTINUOUS, TORSO)
    params = critics.init(KEY, obs, action)
    single_shapes = jax.tree.map(jnp.shape, jax.eval_shape(single.init, KEY, obs, action))
    for name, leaves in params.items():  # stacked: [n, *member shape]
        member = single_shapes[name.removeprefix("critics/")]
        assert {k: v.shape for k, v in leaves.items()} == {k: (n,) + s for k, s in member.items()}
    q = critics.apply(params, obs, action)
    assert q.shape == (n, T, B)
    for i in range(n):  # member i is the single network with slice i of the parameters
        member_params = {k.removeprefix("critics/"): jax.tree.map(lambda p: p[i], v) for k, v in params.items()}
        np.testing.assert_allclose(q[i], single.apply(member_params, obs, action), rtol=1e-5, atol=1e-6)
        for j in range(i):
            assert not np.allclose(q[i], q[j])
    # The gradient of member 0's output touches only slice 0 of every parameter.
    grads = jax.grad(lambda p: critics.apply(p, obs, action)[0].sum())(params)
    for g in jax.tree.leaves(grads):
        assert np.any(g[0]) and not np.any(g[1:])


def test_dynamics_ensemble_shapes_and_likelihood():
    for spec, action in ((CONTINUOUS, jnp.zeros((T, B, 2))), (DISCRETE, jnp.ones((T, B), jnp.int32))):
        model = nw.make_dynamics_ensemble(spec, TORSO, num_models=N)
        obs = _obs(spec)
        params = model.init(KEY, obs, action)
        dist = model.apply(params, obs, action)
        size = spec.observation_shape[0] + 1
        assert dist.batch_shape == (N, T, B) and dist.event_shape == (size,)
        assert not np.allclose(dist.mean()[0], dist.mean()[1])
        y = jnp.zeros((T, B, size))
        assert dist.log_prob(y).shape == (N, T, B)
    # A discrete action enters one-hot: it changes the prediction.
    other = model.apply(params, obs, jnp.zeros((T, B), jnp.int32))
    assert not np.allclose(other.mean(), dist.mean())


def test_dynamics_ensemble_per_member_inputs_and_learned_bounds():
    model = nw.make_dynamics_ensemble(CONTINUOUS, TORSO, num_models=N, log_std_bounds=(-3.0, 0.5),
                                      learned_log_std_bounds=True)
    obs = jax.random.normal(KEY, (N, B, 3))
    action = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (N, B, 2)))
    params = model.init(KEY, obs[0], action[0])
    low, high = nw.dynamics_log_std_bounds(params)
    assert low.shape == high.shape == (N, 4)
    np.testing.assert_array_equal(low, -3.0)
    np.testing.assert_array_equal(high, 0.5)
    # per_member=True: member i predicts for its own slice i of the inputs.
    own = model.apply(params, obs, action, per_member=True)
    assert own.batch_shape == (N, B)
    for i in range(N):
        shared = model.apply(params, obs[i], action[i])
        np.testing.assert_allclose(own.mean()[i], shared.mean()[i], rtol=1e-6)
        np.testing.assert_allclose(own.stddev()[i], shared.stddev()[i], rtol=1e-6)
    with pytest.raises(AssertionError, match="per_member=True obs needs a leading axis of 3 members"):
        model.apply(params, obs[:2], action[:2], per_member=True)
    # log σ lies within the (soft) bounds, which receive gradients.
    far = model.apply(params, 100.0 * obs, action, per_member=True)
    assert np.all(np.log(far.stddev()) >= -3.0 - 1e-5) and np.all(np.log(far.stddev()) <= 0.5 + 0.03)
    grads = jax.grad(lambda p: model.apply(p, 100.0 * obs, action, per_member=True).stddev().sum())(params)
    assert np.any(grads["models/model_head"]["max_log_std"] != 0)
    with pytest.raises(ValueError, match="no learned log-std bounds"):
        nw.dynamics_log_std_bounds(nw.make_dynamics_ensemble(CONTINUOUS, TORSO, num_models=N).init(KEY, obs[0], action[0]))


# --------------------------------------------------------------------------- VAE


def test_vae_shapes_and_conditioning():
    vae = nw.make_vae(2, 3, TORSO, condition_size=3)
    x, c = jnp.zeros((T, B, 2)), _obs(CONTINUOUS)
    params = vae.init(KEY, x, c)
    q = vae.encode(params, x, c)
    assert q.batch_shape == (T, B) and q.event_shape == (3,)
    p = vae.decode(params, q.mean(), c)
    assert p.batch_shape == (T, B) and p.event_shape == (2,)
    np.testing.assert_allclose(p.stddev(), 1.0, rtol=1e-5)  # learned decoder sigma starts at 1
    # The condition is used by both the encoder and the decoder.
    assert not np.allclose(vae.encode(params, x, c + 1.0).mean(), q.mean())
    assert not np.allclose(vae.decode(params, q.mean(), c + 1.0).mean(), p.mean())
    with pytest.raises(ValueError, match="is conditional"):
        vae.encode(params, x)
    plain = nw.make_vae(2, 3, TORSO)
    plain_params = plain.init(KEY, x)
    assert plain.decode(plain_params, jnp.zeros((B, 3))).event_shape == (2,)
    with pytest.raises(ValueError, match="unconditional"):
        plain.encode(plain_params, x, c)


# --------------------------------------------------------------------------- errors


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        nw.Torso(activation="sigmoid")
    with pytest.raises(ValueError, match="hidden_sizes"):
        nw.Torso((8, 0))
    with pytest.raises(ValueError, match="continuous"):
        nw.make_policy(CONTINUOUS, distribution="categorical")
    with pytest.raises(ValueError, match="discrete"):
        nw.make_deterministic_policy(DISCRETE)
    with pytest.raises(ValueError, match="distribution must be one of"):
        nw.make_policy(DISCRETE, distribution="beta")
    with pytest.raises(ValueError, match="init_log_std"):
        nw.make_policy(CONTINUOUS, log_std_bounds=(-5.0, 2.0), init_log_std=3.0)
    with pytest.raises(ValueError, match="shared_torso"):
        nw.make_actor_critic(DISCRETE, shared_torso=True, critic_torso=TORSO)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        nw.make_q_network(DISCRETE, num_critics=0)
    with pytest.raises(AssertionError, match="value_head: h must be"):
        _transformed(nw.value_head).init(KEY, jnp.zeros(()))
    with pytest.raises(AssertionError, match="diag_gaussian: loc and scale"):
        nw.diag_gaussian(jnp.zeros(2), jnp.ones(3))
    net = nw.make_policy(DISCRETE, TORSO)
    with pytest.raises(AssertionError, match="obs must be"):
        net.init(KEY, jnp.zeros((B, 5)))
    q = nw.make_q_network(CONTINUOUS, TORSO)
    with pytest.raises(AssertionError, match="action must be"):
        q.init(KEY, _obs(CONTINUOUS), jnp.zeros((T, B, 3)))
    with pytest.raises(ValueError, match="Q\\(s, a\\)"):
        q.init(KEY, _obs(CONTINUOUS))
