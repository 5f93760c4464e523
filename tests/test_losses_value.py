"""Value losses and bootstrap targets (issue 2, "Losses"): exact small cases, termination,
stop-gradient, agreement with rlax / optax, Huber and clipped-value properties."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import rlax
from hypothesis import given, settings
from hypothesis import strategies as st

from fnrl.losses import value as V

GAMMA = 0.9
BATCH, A = (3, 4), 5  # two batch dims, to exercise "any batch shape"


@pytest.fixture(scope="module")
def data():
    k = jax.random.split(jax.random.PRNGKey(0), 8)
    return dict(
        q=jax.random.normal(k[0], (*BATCH, A)),
        actions=jax.random.randint(k[1], BATCH, 0, A),
        reward=jax.random.normal(k[2], BATCH),
        termination=jax.random.bernoulli(k[3], 0.3, BATCH).astype(jnp.float32),
        next_q=jax.random.normal(k[4], (*BATCH, A)),
        next_q_online=jax.random.normal(k[5], (*BATCH, A)),
        next_probs=jax.nn.softmax(2 * jax.random.normal(k[6], (*BATCH, A))),
        next_v=jax.random.normal(k[7], BATCH),
    )


def _flat(x, trailing=0):
    """Collapse the batch dims so a per-transition rlax function can be vmapped once."""
    return x.reshape(-1, *x.shape[x.ndim - trailing:])


# ----------------------------------------------------------------------------- exact values
def test_targets_small_hand_computed_example():
    r = jnp.array([1.0, -1.0])
    term = jnp.array([0.0, 1.0])
    next_q = jnp.array([[0.0, 2.0, 1.0], [5.0, 6.0, 7.0]])
    selector = jnp.array([[0.0, 0.0, 3.0], [9.0, 0.0, 0.0]])
    probs = jnp.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(V.td_target(r, term, jnp.array([3.0, 4.0]), GAMMA), [1 + 0.9 * 3, -1])
    np.testing.assert_allclose(V.q_learning_target(r, term, next_q, GAMMA), [1 + 0.9 * 2, -1])
    np.testing.assert_allclose(V.double_q_target(r, term, next_q, selector, GAMMA), [1 + 0.9 * 1, -1])
    np.testing.assert_allclose(V.expected_sarsa_target(r, term, next_q, probs, GAMMA), [1 + 0.9 * 0.75, -1])
    # 3-step return G with bootstrap gamma**3, and per-sample n (window cut to 2 steps).
    np.testing.assert_allclose(V.n_step_q_target(r, term, next_q, GAMMA, 3), [1 + 0.9**3 * 2, -1], rtol=1e-6)
    np.testing.assert_allclose(V.n_step_q_target(r, jnp.zeros(2), next_q, GAMMA, jnp.array([2, 1])),
                               [1 + 0.9**2 * 2, -1 + 0.9 * 7], rtol=1e-6)
    np.testing.assert_allclose(V.n_step_q_target(r, term, next_q, GAMMA, 2, selector), [1 + 0.9**2 * 1, -1],
                               rtol=1e-6)


def test_n_step_with_n_1_is_the_one_step_target(data):
    args = data["reward"], data["termination"], data["next_q"]
    np.testing.assert_allclose(V.n_step_q_target(*args, GAMMA, 1), V.q_learning_target(*args, GAMMA))
    np.testing.assert_allclose(V.n_step_q_target(*args, GAMMA, 1, data["next_q_online"]),
                               V.double_q_target(*args, data["next_q_online"], GAMMA))


def _all_targets(d, next_q, next_v):
    r, t = d["reward"], d["termination"]
    return {
        "td": V.td_target(r, t, next_v, GAMMA),
        "q_learning": V.q_learning_target(r, t, next_q, GAMMA),
        "double_q": V.double_q_target(r, t, next_q, d["next_q_online"], GAMMA),
        "n_step": V.n_step_q_target(r, t, next_q, GAMMA, 3, d["next_q_online"]),
        "expected_sarsa": V.expected_sarsa_target(r, t, next_q, d["next_probs"], GAMMA),
    }


def test_termination_removes_the_bootstrap(data):
    d = dict(data, termination=jnp.ones(BATCH))
    targets = _all_targets(d, d["next_q"], d["next_v"])
    shifted = _all_targets(d, d["next_q"] + 100.0, d["next_v"] + 100.0)
    for name in targets:
        np.testing.assert_array_equal(targets[name], d["reward"], err_msg=name)
        np.testing.assert_array_equal(shifted[name], d["reward"], err_msg=name)
    # boolean termination works the same; a non-terminal step does bootstrap.
    d_bool = dict(data, termination=jnp.zeros(BATCH, bool))
    live = _all_targets(d_bool, d["next_q"] + 1.0, d["next_v"] + 1.0)
    base = _all_targets(d_bool, d["next_q"], d["next_v"])
    for name in live:
        gain = GAMMA**3 if name == "n_step" else GAMMA
        np.testing.assert_allclose(live[name] - base[name], gain, rtol=1e-5, err_msg=name)


def test_no_gradient_flows_through_any_target(data):
    def loss(next_q, next_v, q, name):
        y = _all_targets(data, next_q, next_v)[name]
        return V.td_loss(q, data["actions"], y, loss="mse")

    for name in ("td", "q_learning", "double_q", "n_step", "expected_sarsa"):
        g_next_q, g_next_v, g_q = jax.grad(loss, argnums=(0, 1, 2))(data["next_q"], data["next_v"], data["q"], name)
        np.testing.assert_array_equal(g_next_q, 0.0, err_msg=name)
        np.testing.assert_array_equal(g_next_v, 0.0, err_msg=name)
        assert np.abs(g_q).sum() > 0, name


# ----------------------------------------------------------------------------- rlax agreement
def test_td_errors_agree_with_rlax(data):
    d = data
    q_sa = jnp.take_along_axis(d["q"], d["actions"][..., None], -1)[..., 0]
    v = d["q"][..., 0]
    discount_t = GAMMA * (1 - d["termination"])
    f = lambda x: _flat(x)
    fa = lambda x: _flat(x, 1)
    ours = _all_targets(d, d["next_q"], d["next_v"])
    theirs = {
        "td": jax.vmap(rlax.td_learning)(f(v), f(d["reward"]), f(discount_t), f(d["next_v"])),
        "q_learning": jax.vmap(rlax.q_learning)(fa(d["q"]), f(d["actions"]), f(d["reward"]), f(discount_t),
                                                fa(d["next_q"])),
        "double_q": jax.vmap(rlax.double_q_learning)(fa(d["q"]), f(d["actions"]), f(d["reward"]), f(discount_t),
                                                     fa(d["next_q"]), fa(d["next_q_online"])),
        "expected_sarsa": jax.vmap(rlax.expected_sarsa)(fa(d["q"]), f(d["actions"]), f(d["reward"]),
                                                        f(discount_t), fa(d["next_q"]), fa(d["next_probs"])),
    }
    for name, td_error in theirs.items():
        prediction = v if name == "td" else q_sa
        np.testing.assert_allclose(f(ours[name] - prediction), td_error, rtol=1e-5, atol=1e-6, err_msg=name)


def test_td_loss_agrees_with_rlax_huber_of_the_q_learning_error(data):
    d = data
    y = V.q_learning_target(d["reward"], d["termination"], d["next_q"], GAMMA)
    td_error = jax.vmap(rlax.q_learning)(_flat(d["q"], 1), _flat(d["actions"]), _flat(d["reward"]),
                                         _flat(GAMMA * (1 - d["termination"])), _flat(d["next_q"], 1))
    for delta in (0.3, 1.0):
        np.testing.assert_allclose(V.td_loss(d["q"], d["actions"], y, "huber", delta),
                                   jnp.mean(rlax.huber_loss(td_error, delta)), rtol=1e-6)
    np.testing.assert_allclose(V.td_loss(d["q"], d["actions"], y, "mse"), jnp.mean(rlax.l2_loss(td_error)), rtol=1e-6)


def test_tabular_q_update_steps_by_the_rlax_q_learning_error_on_one_entry():
    q = jax.random.normal(jax.random.PRNGKey(3), (4, 3))
    for s, a, r, term, s_next in ((0, 2, 0.7, 0.0, 3), (3, 1, -1.5, 1.0, 2), (2, 0, 0.2, 0.0, 2)):
        updated = V.tabular_q_update(q, s, a, jnp.float32(r), jnp.float32(term), s_next, GAMMA, 0.3)
        td_error = rlax.q_learning(q[s], a, r, GAMMA * (1 - term), q[s_next])
        expected = np.asarray(q).copy()
        expected[s, a] += 0.3 * td_error
        np.testing.assert_allclose(updated, expected, rtol=1e-6, atol=1e-6)
    # By hand: Q(0, 1) = 0.5, r = 1, max Q(1, .) = 2, γ = 0.9, α = 0.5 -> 0.5 + 0.5 (1 + 1.8 - 0.5).
    table = jnp.array([[0.0, 0.5], [1.0, 2.0]])
    np.testing.assert_allclose(V.tabular_q_update(table, 0, 1, 1.0, 0.0, 1, 0.9, 0.5), [[0.0, 1.65], [1.0, 2.0]])
    np.testing.assert_allclose(V.tabular_q_update(table, 0, 1, 1.0, 1.0, 1, 0.9, 0.5), [[0.0, 0.75], [1.0, 2.0]])
    with pytest.raises(AssertionError, match="tabular_q_update: `state` must be an integer scalar"):
        V.tabular_q_update(table, jnp.array([0]), 1, 1.0, 0.0, 1, 0.9, 0.5)


def test_td_loss_gradient_only_touches_the_taken_action(data):
    d = data
    y = d["reward"]
    g = jax.grad(V.td_loss)(d["q"], d["actions"], y, "mse")
    q_sa = jnp.take_along_axis(d["q"], d["actions"][..., None], -1)[..., 0]
    expected = jax.nn.one_hot(d["actions"], A) * ((q_sa - y) / q_sa.size)[..., None]
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- double Q / expected SARSA
def test_double_q_selects_with_online_and_evaluates_with_target():
    target_net = jnp.array([[10.0, 1.0, 2.0]])  # its own argmax would be action 0
    online_net = jnp.array([[0.0, 0.0, 5.0]])  # selects action 2
    y = V.double_q_target(jnp.zeros(1), jnp.zeros(1), target_net, online_net, 1.0)
    np.testing.assert_allclose(y, [2.0])  # target value of the online argmax, not 10 or 5
    # Using the target net for both (the notes' misprint) is the plain max target instead.
    np.testing.assert_allclose(V.double_q_target(jnp.zeros(1), jnp.zeros(1), target_net, target_net, 1.0), [10.0])


def test_expected_sarsa_with_greedy_policy_is_q_learning(data):
    d = data
    greedy = jax.nn.one_hot(jnp.argmax(d["next_q"], -1), A)
    np.testing.assert_allclose(
        V.expected_sarsa_target(d["reward"], d["termination"], d["next_q"], greedy, GAMMA),
        V.q_learning_target(d["reward"], d["termination"], d["next_q"], GAMMA), rtol=1e-6)
    # With a uniform policy it is the mean over next actions.
    uniform = jnp.full_like(d["next_q"], 1 / A)
    np.testing.assert_allclose(
        V.expected_sarsa_target(d["reward"], d["termination"], d["next_q"], uniform, GAMMA),
        V.td_target(d["reward"], d["termination"], d["next_q"].mean(-1), GAMMA), rtol=1e-5)


# ----------------------------------------------------------------------------- MSE / Huber / clipped value
_huber_value_and_grad = jax.jit(jax.value_and_grad(V.huber_loss))  # delta traced: one compile


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-10, 10), delta=st.floats(0.1, 3.0))
def test_huber_quadratic_inside_linear_outside(x, delta):
    v, y = jnp.array([x], jnp.float32), jnp.zeros(1)
    x32, delta = float(v[0]), float(np.float32(delta))
    value, grad = _huber_value_and_grad(v, y, jnp.float32(delta))
    if abs(x32) <= delta:
        np.testing.assert_allclose(value, 0.5 * x32**2, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(grad, [x32], rtol=1e-5, atol=1e-7)
    else:
        np.testing.assert_allclose(value, delta * (abs(x32) - 0.5 * delta), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(grad, [np.sign(x32) * delta], rtol=1e-5)
    np.testing.assert_allclose(value, rlax.huber_loss(v - y, delta)[0], rtol=1e-6)


def test_mse_and_huber_values_gradients_and_mask(data):
    v, y = 3 * data["q"][..., 0], data["next_v"]
    n = v.size
    np.testing.assert_allclose(V.mse_loss(v, y), jnp.mean(0.5 * (v - y) ** 2), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(V.mse_loss)(v, y), (v - y) / n, rtol=1e-5)
    np.testing.assert_allclose(jax.grad(V.huber_loss)(v, y, 0.7), jnp.clip(v - y, -0.7, 0.7) / n, rtol=1e-5)
    np.testing.assert_allclose(V.huber_loss(v, y, 0.7), jnp.mean(optax.huber_loss(v, y, delta=0.7)), rtol=1e-6)
    np.testing.assert_array_equal(jax.grad(V.mse_loss, argnums=1)(v, y), 0.0)  # the target is a constant
    # A 0/1 mask is the mean over the kept entries; an all-zero mask gives 0 with finite gradients.
    mask = (data["termination"] == 0).astype(jnp.float32)
    kept = np.asarray(mask, bool)
    np.testing.assert_allclose(V.mse_loss(v, y, mask), np.mean(0.5 * (np.asarray(v) - np.asarray(y))[kept] ** 2),
                               rtol=1e-5)
    zero = jnp.zeros_like(mask)
    assert float(V.huber_loss(v, y, 1.0, zero)) == 0.0
    np.testing.assert_array_equal(jax.grad(V.huber_loss)(v, y, 1.0, zero), 0.0)


_clipped_value_and_grad = jax.jit(jax.value_and_grad(V.clipped_value_loss))
_mse_value_and_grad = jax.jit(jax.value_and_grad(V.mse_loss))


@settings(max_examples=60, deadline=None)
@given(old=st.floats(-3, 3), step=st.floats(-1, 1), y=st.floats(-3, 3),
       eps=st.floats(0.05, 0.5))
def test_clipped_value_loss(old, step, y, eps):
    v, v_old, t = (jnp.array([z], jnp.float32) for z in (old + step, old, y))
    eps = float(np.float32(eps))
    loss, grad = _clipped_value_and_grad(v, v_old, t, jnp.float32(eps))
    unclipped, unclipped_grad = _mse_value_and_grad(v, t)
    moved = float(v[0]) - float(v_old[0])
    if abs(moved) <= eps:  # within the trust region: the plain squared error
        np.testing.assert_allclose(loss, unclipped, rtol=1e-6)
        if abs(moved) < eps - 1e-6:  # (at the kink, to float32 rounding, the gradient is a subgradient)
            np.testing.assert_allclose(grad, unclipped_grad, rtol=1e-6)
    else:
        v_clip = float(v_old[0]) + np.sign(moved) * eps
        np.testing.assert_allclose(loss, max(float(unclipped), 0.5 * (v_clip - float(t[0])) ** 2),
                                   rtol=1e-5, atol=1e-6)
    assert float(loss) >= float(unclipped) - 1e-7


def test_clipped_value_loss_blocks_moving_past_the_clip():
    # v moved 0.5 towards y from v_old=0, beyond eps=0.2: the clipped error dominates, no gradient.
    loss, grad = jax.value_and_grad(V.clipped_value_loss)(jnp.array([0.5]), jnp.array([0.0]), jnp.array([1.0]), 0.2)
    np.testing.assert_allclose(loss, 0.5 * 0.8**2, rtol=1e-6)
    np.testing.assert_array_equal(grad, 0.0)


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_fail_with_the_argument_name(data):
    r, t, q = data["reward"], data["termination"], data["next_q"]
    with pytest.raises(AssertionError, match="`next_q` must have shape"):
        V.q_learning_target(r, t, q[:1], GAMMA)
    with pytest.raises(AssertionError, match="`reward`, `termination`, `next_value`"):
        V.td_target(r, t[:1], r, GAMMA)
    with pytest.raises(AssertionError, match="`actions` must be an integer"):
        V.td_loss(data["q"], data["actions"].astype(jnp.float32), r)
    with pytest.raises(AssertionError, match="`mask` must have"):
        V.mse_loss(r, r, jnp.ones(3))
    with pytest.raises(ValueError, match="unknown `loss` 'l1'"):
        V.td_loss(data["q"], data["actions"], r, loss="l1")
    with pytest.raises(ValueError, match="`discount` must be in"):
        V.td_target(r, t, r, 1.5)
    with pytest.raises(ValueError, match="`n` must be"):
        V.n_step_q_target(r, t, q, GAMMA, 0)
    with pytest.raises(ValueError, match="`delta` must be > 0"):
        V.huber_loss(r, r, delta=0.0)


def test_action_value_picks_each_rows_action():
    q = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(V.action_value(q, jnp.array([2, 0])), [3.0, 4.0])
    with pytest.raises(AssertionError, match="integer"):
        V.action_value(q, jnp.array([2.0, 0.0]))


def test_ensemble_td_loss_sums_the_critics_weighted_regressions():
    q = jnp.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])  # 2 critics, 3 samples
    target, weights = jnp.array([0.0, 1.0, 1.0]), jnp.array([1.0, 0.5, 2.0])
    loss, td_error = V.ensemble_td_loss(q, target, weights)
    expected = sum(V.mse_loss(q[k], target, mask=weights) for k in range(2))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(td_error, [2.0, 0.0, -0.5])
    grad = jax.grad(lambda q: V.ensemble_td_loss(q, target)[0])(q)
    np.testing.assert_allclose(grad, (q - target) / 3.0, rtol=1e-6)  # each critic its own gradient
