"""APG (fnrl.algorithms.apg): the gradient of the rollout return through pendulum's true dynamics
is the finite-difference one; training through the true dynamics swings pendulum up from a poor
initial policy; the learned-model variant trains end to end under ``jax.jit(train)``."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
import pytest

from fnrl import envs, networks
from fnrl.algorithms import apg
from fnrl.config import ConfigError
from fnrl.loops.evaluation import evaluate


def test_rollout_gradient_matches_finite_differences_through_true_pendulum():
    """∇_θ of the 20-step discounted return of a tiny tanh policy from 8 reset states, by
    reverse mode through the real environment's step, against central differences along three
    random directions (float32, as the environment computes: ε = 1e-2; they agreed to 1e-4,
    where a gradient that left out the path through the dynamics is 2-20% off)."""
    env = envs.wrap(envs.make("pendulum"), num_envs=8, auto_reset=False)
    policy = networks.make_deterministic_policy(env.spec, networks.Torso((8,), "tanh"))
    state = env.reset(jax.random.PRNGKey(0))
    params = policy.init(jax.random.PRNGKey(1), state.obs)
    value = jax.jit(lambda p: apg.policy_return(policy.apply, p, env, state, 20, 0.99))

    flat, unflatten = ravel_pytree(params)
    grad = ravel_pytree(jax.grad(value)(params))[0]
    assert float(jnp.linalg.norm(grad)) > 1.0
    eps = 1e-2
    for key in jax.random.split(jax.random.PRNGKey(2), 3):
        v = jax.random.normal(key, flat.shape)
        v = v / jnp.linalg.norm(v)
        fd = (value(unflatten(flat + eps * v)) - value(unflatten(flat - eps * v))) / (2 * eps)
        np.testing.assert_allclose(float(jnp.dot(grad, v)), float(fd), rtol=5e-3)


def test_policy_return_drops_rewards_after_a_termination():
    """Cart-pole's reward is 1 per step until it terminates: pushing right forever from upright
    ends the episode after k steps, so the undiscounted return of a 100-step rollout is k."""
    class PushRight(envs.core.Wrapper):  # cart-pole with a continuous action that is ignored
        spec = envs.Spec(observation_shape=(4,), action_shape=(1,), action_low=-1.0, action_high=1.0)

        def step(self, state, action):
            return self.env.step(state, jnp.ones((), jnp.int32))

    single = PushRight(envs.make("cartpole"))
    env = envs.wrap(single, num_envs=2, rescale_actions=False, auto_reset=False)
    state = env.reset(jax.random.PRNGKey(0))
    k = []
    for i in range(2):
        s, steps = jax.tree_util.tree_map(lambda x: x[i], state), 0
        while not s.termination:
            s, steps = single.step(s, jnp.zeros(1)), steps + 1
        k.append(steps)
    total = apg.policy_return(lambda p, obs: jnp.zeros(obs.shape[:-1] + (1,)), None, env, state, 100, 1.0)
    assert 5 < np.mean(k) < 100 and float(total) == pytest.approx(np.mean(k))


def test_true_dynamics_training_improves_pendulum():
    """Three updates of 50 gradient steps each (H = 50, 64 starts) through pendulum's own step:
    the greedy policy's return on 16 episodes rises from the initial policy's (-1550 on this
    seed) by more than 500 and above -500 (it measured -190)."""
    config = apg.Config(total_steps=600, learning_starts=0, num_evals=1, buffer_size=600)
    train = apg.make_train(config)
    key = jax.random.PRNGKey(0)
    learner, metrics = jax.jit(train)(key)
    initial = jax.jit(train.init)(key).learner
    eval_key = jax.random.PRNGKey(7)
    before = float(evaluate(train.env, train.act, initial, eval_key, 16, 200))
    after = float(evaluate(train.env, train.act, learner, eval_key, 16, 200))
    assert int(metrics["step"][-1]) == 600
    assert after > before + 500 and after > -500, (before, after)


def test_learned_model_variant_trains_under_jit():
    """model="learned": two updates, each fitting the ensemble to the real data so far and
    taking gradient steps through it; both the model and the policy move."""
    config = apg.Config(model="learned", total_steps=200, learning_starts=0, rollout_length=100, num_evals=1,
                        eval_episodes=2, buffer_size=200, horizon=10, num_starts=16, policy_updates=5,
                        model_num_models=2, model_hidden_sizes=(16, 16), model_num_epochs=5, model_batch_size=64)
    train = apg.make_train(config)
    key = jax.random.PRNGKey(0)
    learner, metrics = jax.jit(train)(key)
    fresh = apg.make_agent(config, train.env).init(jax.random.split(key, 5)[0], jnp.zeros((1, 3)))
    for part in ("policy", "model"):
        leaves = zip(jax.tree_util.tree_leaves(getattr(learner, part)), jax.tree_util.tree_leaves(getattr(fresh, part)))
        assert not all(np.array_equal(x, y) for x, y in leaves), part
    assert int(metrics["step"][-1]) == 200
    assert all(np.isfinite(float(metrics[k][-1])) for k in ("episode_return", "imagined_return", "grad_norm"))
    assert float(metrics["model_val_mse"][-1]) > 0 and int(metrics["model_epochs"][-1]) >= 1


def test_bad_settings_fail_in_one_line():
    with pytest.raises(ConfigError, match=r"^invalid model='sim': must be one of \('true', 'learned'\)$"):
        apg.Config(model="sim")
    with pytest.raises(ValueError, match=r"^apg needs a continuous-action environment; cartpole has discrete"):
        apg.make_train(apg.Config(env="cartpole"))
    with pytest.raises(ValueError, match=r"^apg: no known reward function for MountainCarContinuous; .*known_reward=false"):
        apg.make_train(apg.Config(env="mountaincar_continuous", model="learned"))
    apg.make_train(apg.Config(env="mountaincar_continuous", model="learned", known_reward=False))
