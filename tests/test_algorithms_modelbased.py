"""The model-based algorithms on the model-based loop: PETS learns pendulum from a few episodes
under ``jax.jit(train)``; MBPO refits on its schedule, branches its rollouts from real states
and trains SAC on mixed batches; the known reward of an environment is right in the units an
agent acts in; the ``model_*`` fields reach the ensemble."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import envs, models, replay
from fnrl.algorithms import mbpo, pets
from fnrl.config import ConfigError
from fnrl.envs.wrappers import rescale_action
from fnrl.rollout import rollout

SMALL_MODEL = dict(model_num_models=3, model_hidden_sizes=(32, 32), model_num_epochs=50, model_batch_size=64)


def test_pets_learns_pendulum_from_four_episodes():
    """Random actions score about -1200 here; after one random and three MPC episodes PETS's
    greedy MPC policy (a small ensemble, 100 sequences of 20 steps, 3 CEM iterations) must
    score above -600 on 4 evaluation episodes (it measured -290 on this seed)."""
    config = pets.Config(total_steps=800, num_evals=1, eval_episodes=4, horizon=20, population=100, elites=10,
                         iterations=3, plan_discount=0.98, buffer_size=1000, **SMALL_MODEL)
    _, metrics = jax.jit(pets.make_train(config))(jax.random.PRNGKey(0))
    assert int(metrics["step"][-1]) == 800 and int(metrics["real_transitions"][-1]) == 800
    assert float(metrics["episode_return"][-1]) > -600


@pytest.fixture(scope="module")
def mbpo_updates():
    """Three updates of MBPO's agent on a buffer of 300 random pendulum steps (refit every 2)."""
    config = mbpo.Config(model_every=2, model_rollouts=16, rollout_horizon=3, model_buffer_size=200,
                         policy_updates=2, batch_size=20, real_ratio=0.25, **SMALL_MODEL)
    env = envs.make("pendulum")
    agent = mbpo.make_agent(config, env)
    batch = envs.wrap(env, num_envs=3)
    state = batch.reset(jax.random.PRNGKey(0))
    uniform = lambda p, obs, key: (batch.spec.sample_action(key, (3,)), {})  # noqa: E731
    _, traj, _ = rollout(batch, uniform, None, state, jax.random.PRNGKey(1), 100)
    data = replay.insert(replay.init(jax.tree_util.tree_map(lambda x: x[0, 0], traj), 400), traj)
    learner = agent.init(jax.random.PRNGKey(2), state.obs)
    update = jax.jit(agent.update)
    learners, metrics = [learner], []
    for i in range(3):
        out = update(learners[-1], data, jax.random.PRNGKey(10 + i))
        learners.append(out.learner)
        metrics.append(out.metrics)
    return config, data, learners, metrics


def test_mbpo_refits_on_its_schedule(mbpo_updates):
    config, data, learners, metrics = mbpo_updates
    nets = [learner.model.net for learner in learners]
    changed = [not all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)))
               for x, y in zip(nets, nets[1:])]
    assert changed == [True, False, True]  # updates 0 and 2 refit (model_every = 2 real steps = 2 updates)
    assert [int(learner.updates) for learner in learners] == [0, 1, 2, 3]
    assert float(metrics[0]["model_val_mse"]) == float(metrics[1]["model_val_mse"]) > 0


def test_mbpo_branches_start_from_real_states_and_fill_the_imagined_buffer(mbpo_updates):
    config, data, learners, _ = mbpo_updates
    imagined = learners[1].imagined
    per_update = config.model_rollouts * config.rollout_horizon
    assert [int(learner.imagined.size) for learner in learners] == [0, per_update, 2 * per_update, 3 * per_update]
    stored = imagined.data  # time-major branches flattened: the first model_rollouts rows are their starts
    real = np.asarray(data.data.obs[: int(data.size)])
    starts = np.asarray(stored.obs[: config.model_rollouts])
    assert all(np.any(np.all(np.isclose(real, s), axis=1)) for s in starts)
    # A branch's steps follow each other and its last step is cut by the time limit.
    steps = np.asarray(stored.obs[:per_update]).reshape(config.rollout_horizon, config.model_rollouts, -1)
    following = np.asarray(stored.next_obs[:per_update]).reshape(steps.shape)
    np.testing.assert_allclose(steps[1:], following[:-1], rtol=1e-6)
    truncation = np.asarray(stored.truncation[:per_update]).reshape(config.rollout_horizon, -1)
    assert np.all(truncation[-1] == 1) and np.all(truncation[:-1] == 0)


def test_mbpo_trains_sac(mbpo_updates):
    _, _, learners, metrics = mbpo_updates
    before, after = (jax.tree_util.tree_leaves(learner.policy.actor) for learner in (learners[0], learners[-1]))
    assert not all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(np.isfinite(float(m["critic_loss"])) for m in metrics)


def test_known_reward_in_the_units_an_agent_acts_in():
    """Through ``wrap``'s action rescaling the known pendulum reward takes [-1, 1] actions."""
    env = envs.wrap(envs.make("pendulum"), auto_reset=False)
    reward_fn = models.reward_function(env)
    state = env.reset(jax.random.PRNGKey(0))
    for a in (-1.0, -0.3, 0.7, 1.0):
        action = jnp.array([a])
        next_state = env.step(state, action)
        np.testing.assert_allclose(reward_fn(state.obs, action, next_state.obs), next_state.reward, rtol=1e-6)
        # ... which is the reward of the environment's own torque 2a.
        raw = models.reward_function(envs.make("pendulum"))(state.obs, rescale_action(action, -2.0, 2.0), None)
        np.testing.assert_allclose(raw, next_state.reward, rtol=1e-6)


def test_model_fields_reach_the_ensemble_and_keep_their_constraints():
    config = pets.Config(model_num_models=3, model_hidden_sizes=(8,), model_bootstrap="none")
    ensemble = config.ensemble_config()
    assert (ensemble.num_models, ensemble.hidden_sizes, ensemble.bootstrap) == (3, (8,), "none")
    with pytest.raises(ConfigError, match=r"^invalid model_num_models=0: must be a positive integer$"):
        pets.Config(model_num_models=0)
    with pytest.raises(ConfigError, match=r"^invalid elites=400: must be smaller than population=400$"):
        pets.Config(elites=400)
    with pytest.raises(ConfigError, match=r"^invalid model_every=100: must be a multiple of the 3 real steps"):
        mbpo.Config(num_envs=3, model_every=100)


def test_an_environment_without_a_known_reward_needs_known_reward_false():
    with pytest.raises(ValueError, match=r"^pets: no known reward function for Acrobot; .* set known_reward=false"):
        pets.make_train(pets.Config(env="acrobot"))
    config = dataclasses.replace(pets.Config(env="acrobot", total_steps=400, num_evals=1, eval_episodes=1,
                                             horizon=4, population=8, elites=2, iterations=1), known_reward=False,
                                 **SMALL_MODEL)
    train = pets.make_train(config)
    assert jax.eval_shape(train, jax.random.PRNGKey(0))[1]["episode_return"].shape == (1,)
