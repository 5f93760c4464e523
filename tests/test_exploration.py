"""Exploration bonuses (fnrl.exploration) and bootstrapped DQN (fnrl.algorithms.bootdqn):
exact count bonuses, SimHash's collision law, error bonuses that fall on trained states, the
wiring into both loops, and the bootstrap heads' masks, draws and priors."""
import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from fnrl import exploration, networks
from fnrl.algorithms import bootdqn, dqn, ppo
from fnrl.cli import main
from fnrl.types import Trajectory


def trajectory(obs, next_obs, action=None):
    """A [T, B] trajectory with the given observations (zero rewards, no episode ends)."""
    obs, next_obs = jnp.asarray(obs, jnp.float32), jnp.asarray(next_obs, jnp.float32)
    zeros = jnp.zeros(obs.shape[:2])
    action = jnp.zeros(obs.shape[:2], jnp.int32) if action is None else action
    return Trajectory(obs, action, zeros, zeros, zeros, next_obs, {})


@pytest.mark.parametrize("form, expected", [
    ("ucb", lambda n, N: math.sqrt(2 * math.log(n) / N)),
    ("mbie_eb", lambda n, N: math.sqrt(1 / N)),
    ("beb", lambda n, N: 1 / N),
])
def test_count_bonus_is_the_lectures_form_of_exact_visit_counts(form, expected):
    """Next states 2, 2, 0 then 2, 1, 2 (one-hot of 4 states): after the first trajectory
    N = (1, 0, 2, 0), after the second N = (1, 1, 4, 0), n = 3 then 6; each step's bonus is
    the form of its next state's count, counting the trajectory it is in."""
    spec = fnrl.envs.make("tabular/chain(num_states=4)").spec
    bonus = exploration.count_bonus(spec, form)
    eye = np.eye(4)
    state = bonus.init(jax.random.PRNGKey(0), jnp.zeros((3, 4)))
    state, b1 = bonus.observe(state, trajectory(eye[[[0, 0, 0]]], eye[[[2, 2, 0]]]))
    state, b2 = bonus.observe(state, trajectory(eye[[[0, 0, 0]]], eye[[[2, 1, 2]]]))
    np.testing.assert_allclose(state.counts.counts, [1, 1, 4, 0])
    np.testing.assert_allclose(b1[0], [expected(3, 2), expected(3, 2), expected(3, 1)], rtol=1e-6)
    np.testing.assert_allclose(b2[0], [expected(6, 4), expected(6, 1), expected(6, 4)], rtol=1e-6)


def test_count_forms_refuse_an_unknown_form():
    with pytest.raises(ValueError, match="unknown count-bonus form 'ucb2'; accepted: ucb, mbie_eb, beb"):
        exploration.counts("ucb2", jnp.ones(2), jnp.ones(()))


def test_simhash_codes_collide_as_the_angle_says():
    """Charikar (2002): one random hyperplane separates x and y with probability θ(x, y)/π, so
    codes of positively scaled vectors are equal, x and −x differ in every bit, and the
    fraction of differing bits over many hyperplanes estimates θ/π."""
    projection = jax.random.normal(jax.random.PRNGKey(0), (24, 3))
    x = jnp.array([0.3, -1.2, 0.5])
    code = exploration.simhash_codes(projection, x)
    assert int(exploration.simhash_codes(projection, 7.5 * x)) == int(code)
    assert int(exploration.simhash_codes(projection, -x)) == int(code) ^ (2**24 - 1)
    projections = jax.random.normal(jax.random.PRNGKey(1), (1000, 24, 2))
    for angle in (0.3, 1.0, 2.5):
        u, v = jnp.array([1.0, 0.0]), jnp.array([math.cos(angle), math.sin(angle)])
        a, b = (jax.vmap(exploration.simhash_codes, (0, None))(projections, w) for w in (u, v))
        differ = ((a ^ b)[:, None] >> jnp.arange(24)) & 1  # [1000, 24] bits
        assert float(jnp.mean(differ)) == pytest.approx(angle / math.pi, abs=0.015)


def test_simhash_codes_check_their_shapes():
    with pytest.raises(ValueError, match=r"simhash_codes: x of shape \(3,\) must end in D = 2"):
        exploration.simhash_codes(jnp.ones((4, 2)), jnp.ones(3))


def test_simhash_bonus_counts_codes_of_standardised_observations():
    spec = fnrl.envs.make("cartpole").spec
    bonus = exploration.simhash_bonus(spec, bits=8)
    state = bonus.init(jax.random.PRNGKey(0), jnp.zeros((2, 4)))
    chex.assert_shape(state.counts.counts, (256,))
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 4))
    state, b = bonus.observe(state, trajectory(obs, obs))
    assert float(state.counts.total) == 10 and float(jnp.sum(state.counts.counts)) == 10
    # MBIE-EB of the codes' counts: 1/√N, and N ≥ 1 because the step itself is counted.
    assert np.all((np.asarray(b) > 0) & (np.asarray(b) <= 1))


@pytest.mark.parametrize("make", [exploration.rnd_bonus, exploration.prediction_error_bonus])
def test_error_bonuses_fall_on_the_states_they_train_on(make):
    """After 300 trajectories of the states A, the bonus of A is far below that of states B
    never seen (cartpole-shaped observations)."""
    spec = fnrl.envs.make("cartpole").spec
    bonus = make(spec, (32, 32), 3e-3)
    seen = jax.random.normal(jax.random.PRNGKey(0), (1, 64, 4))
    unseen = 3.0 + jax.random.normal(jax.random.PRNGKey(1), (1, 64, 4))
    state = bonus.init(jax.random.PRNGKey(2), seen[0])
    observe = jax.jit(bonus.observe)
    state, first = observe(state, trajectory(seen, seen))
    for _ in range(300):
        state, b_seen = observe(state, trajectory(seen, seen))
    _, b_unseen = observe(state, trajectory(unseen, unseen))
    assert float(jnp.mean(b_seen)) < 0.1 * float(jnp.mean(first))
    assert float(jnp.mean(b_seen)) < 0.1 * float(jnp.mean(b_unseen))


def test_count_bonus_refuses_observations_that_are_not_one_hot():
    with pytest.raises(ValueError, match="bonus=count counts one-hot observations .* cartpole's are not"):
        dqn.make_train(dqn.Config(env="cartpole", bonus="count"))


SMALL_DQN = dict(total_steps=600, num_envs=2, batch_size=8, buffer_size=256, learning_starts=64, num_evals=2,
                 eval_episodes=2, hidden_sizes=(8,))
SMALL_PPO = dict(total_steps=512, num_envs=4, rollout_length=16, num_evals=2, eval_episodes=2, hidden_sizes=(8,),
                 num_minibatches=2, num_epochs=1)


@pytest.mark.parametrize("module, config", [
    (dqn, dict(env="tabular/chain", bonus="count", **SMALL_DQN)),
    (ppo, dict(env="cartpole", bonus="rnd", **SMALL_PPO)),
], ids=["dqn-count", "ppo-rnd"])
def test_a_zero_bonus_leaves_the_run_as_it_was_and_a_bonus_changes_it(module, config):
    """The bonus wraps the agent without touching its keys: with bonus_scale = 0 the agent's
    learner and every evaluation equal the run without a bonus bit for bit; with a bonus the
    learning changes and ``intrinsic_reward`` is logged."""
    def run(**changes):
        return jax.jit(module.make_train(module.Config(**{**config, **changes})))(jax.random.PRNGKey(0))

    plain, plain_metrics = run(bonus="none")
    zero, zero_metrics = run(bonus_scale=0.0)
    chex.assert_trees_all_equal(zero.agent, plain)
    np.testing.assert_array_equal(zero_metrics["episode_return"], plain_metrics["episode_return"])
    assert float(zero_metrics["intrinsic_reward"][-1]) > 0
    bonus, _ = run(bonus_scale=1.0)
    assert not np.allclose(jax.tree_util.tree_leaves(bonus.agent.params)[0], jax.tree_util.tree_leaves(plain.params)[0])


def test_with_bonus_adds_the_scaled_bonus_to_the_observed_rewards():
    env = fnrl.envs.make("tabular/chain(num_states=3)")
    agent = dqn.make_agent(dqn.Config(env="tabular/chain(num_states=3)", hidden_sizes=(4,)), env.spec)
    wrapped = exploration.with_bonus(agent, exploration.count_bonus(env.spec, "beb"), 0.5)
    learner = wrapped.init(jax.random.PRNGKey(0), jnp.asarray(np.eye(3)[[0, 0]]))
    eye = np.eye(3)
    data = trajectory(eye[[[0, 0]]], eye[[[1, 1]]])._replace(reward=jnp.array([[2.0, 3.0]]))
    learner, observed = wrapped.observe(learner, data, jax.random.PRNGKey(1))
    np.testing.assert_allclose(observed.reward, [[2.0 + 0.5 / 2, 3.0 + 0.5 / 2]])
    assert float(learner.intrinsic_reward) == pytest.approx(0.5)


def test_a_bonus_trains_through_the_command_line(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "dqn", "--env", "tabular/chain(num_states=6)", "--steps", "600", "--out", str(out),
                 "--set", "bonus=count", "--set", "bonus_form=ucb", "--set", "num_envs=2", "--set", "batch_size=8",
                 "--set", "learning_starts=64", "--set", "num_evals=2", "--set", "hidden_sizes=8"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["intrinsic_reward"] > 0
    assert json.loads((out / "config.json").read_text())["config"]["bonus"] == "count"


# --------------------------------------------------------------------------- bootstrapped DQN

BOOT = bootdqn.Config(env="tabular/chain(num_states=5)", num_envs=3, num_heads=4, mask_prob=0.3, hidden_sizes=(8,),
                      batch_size=8, buffer_size=256, learning_starts=64, total_steps=600, num_evals=2)


@pytest.fixture(scope="module")
def boot():
    env = fnrl.envs.make(BOOT.env)
    agent = bootdqn.make_agent(BOOT, env.spec)
    return env, agent, agent.init(jax.random.PRNGKey(0), jnp.asarray(np.eye(5)[[0, 0, 0]]))


def test_bootstrap_masks_are_independent_bernoulli_draws(boot):
    """Each step stores a mask per head, drawn independently with probability mask_prob: over
    many steps the rate is mask_prob and the heads' masks are uncorrelated."""
    env, agent, learner = boot
    keys = jax.random.split(jax.random.PRNGKey(1), 3000)
    _, extras = jax.vmap(lambda k: agent.act(learner, jnp.asarray(np.eye(5)[[0, 1, 2]]), k, True))(keys)
    masks = np.asarray(extras["mask"]).reshape(-1, BOOT.num_heads)  # [steps · envs, K]
    assert masks.mean() == pytest.approx(BOOT.mask_prob, abs=0.02)
    correlation = np.corrcoef(masks.T)[np.triu_indices(BOOT.num_heads, 1)]
    assert np.all(np.abs(correlation) < 0.05), correlation


def test_a_head_is_drawn_again_only_where_an_episode_ended(boot):
    env, agent, learner = boot
    ended = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # [T = 2, B = 3]: environment 1's episode ended
    data = trajectory(jnp.zeros((2, 3, 5)), jnp.zeros((2, 3, 5)))._replace(termination=ended)
    heads = np.stack([np.asarray(agent.observe(learner, data, k)[0].heads) for k in jax.random.split(jax.random.PRNGKey(2), 40)])
    assert np.all(heads[:, [0, 2]] == np.asarray(learner.heads)[[0, 2]])
    assert len(set(heads[:, 1])) == BOOT.num_heads  # every head is drawn for environment 1
    # Acting explores with each environment's own head: greedy in that head's Q-values.
    q = networks.make_multi_head_q_network(env.spec, networks.Torso((8,)), num_heads=4, prior_scale=BOOT.prior_scale)
    obs = jnp.asarray(np.eye(5)[[0, 1, 2]])
    values = q.apply(learner.params, obs)
    action, _ = agent.act(learner, obs, jax.random.PRNGKey(3), True)
    np.testing.assert_array_equal(action, jnp.argmax(values[learner.heads, jnp.arange(3)], axis=-1))
    greedy, _ = agent.act(learner, obs, jax.random.PRNGKey(3), False)
    np.testing.assert_array_equal(greedy, jnp.argmax(values.mean(0), axis=-1))


def test_the_prior_shifts_the_heads_and_gets_no_gradient():
    spec = fnrl.envs.make("tabular/chain(num_states=5)").spec
    obs = jnp.eye(5)
    with_prior = networks.make_multi_head_q_network(spec, networks.Torso((8,)), num_heads=3, prior_scale=2.0)
    without = networks.make_multi_head_q_network(spec, networks.Torso((8,)), num_heads=3, prior_scale=0.0)
    params = with_prior.init(jax.random.PRNGKey(0), obs)
    chex.assert_shape(with_prior.apply(params, obs), (3, 5, 2))
    prior_part = (with_prior.apply(params, obs) - without.apply(params, obs)) / 2.0
    assert float(jnp.max(jnp.abs(prior_part))) > 0
    grads = jax.grad(lambda p: jnp.sum(with_prior.apply(p, obs) ** 2))(params)
    for name, leaves in grads.items():
        norm = sum(float(jnp.sum(jnp.abs(x))) for x in jax.tree_util.tree_leaves(leaves))
        assert (norm == 0) == name.startswith("prior"), name


def test_the_warm_up_steps_count_for_every_head(boot):
    """NaN masks (the random warm-up's, which no agent took) weigh like all-ones masks."""
    env, agent, learner = boot
    eye = np.eye(5)
    batch = trajectory(eye[[[0, 1, 2, 3]]], eye[[[1, 2, 3, 4]]])
    batch = jax.tree_util.tree_map(lambda x: x[0], batch)._replace(
        action=jnp.array([1, 1, 0, 1]), reward=jnp.array([0.0, 0.0, 2.0, 10.0]))
    extras = {"n_steps": jnp.ones(4, jnp.int32), "weight": jnp.ones(4)}
    nan = agent.update(learner, batch._replace(extras={**extras, "mask": jnp.full((4, 4), jnp.nan)}), jax.random.PRNGKey(0))
    ones = agent.update(learner, batch._replace(extras={**extras, "mask": jnp.ones((4, 4))}), jax.random.PRNGKey(0))
    chex.assert_trees_all_close(nan.learner.params, ones.learner.params)
    zeros = agent.update(learner, batch._replace(extras={**extras, "mask": jnp.zeros((4, 4))}), jax.random.PRNGKey(0))
    assert float(zeros.metrics["loss"]) == 0.0
