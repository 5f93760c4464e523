"""The agent contract and the loop core (fnrl.agent, fnrl.loops): what every loop shares.

An agent's ``act`` extras reach the on-policy trajectory and the off-policy replay buffer (NaN for
the random warm-up steps); ``eval_policy`` switches evaluation between ``explore=False`` and
``explore=True`` in both loops; the carry and the learners are typed; a config field keeps the
constraint it was declared with when a subclass changes its default.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import envs
from fnrl.agent import Agent, UpdateOutput
from fnrl.algorithms import dqn, ppo
from fnrl.config import ConfigError
from fnrl.loops import core, modelbased, offpolicy, onpolicy
from fnrl.loops.evaluation import evaluate

ENV = envs.make("cartpole")


def _recording_agent(seen):
    """Acts 0 while exploring (with a made-up log-probability extra) and 1 greedily; its
    learner counts updates; ``update`` records (while tracing) the extras and their shapes, and
    logs the sum of the importance weights it got (ones without prioritised replay)."""

    def act(learner, obs, key, explore):
        action = jnp.full(obs.shape[0], 0 if explore else 1, jnp.int32)
        return action, {"log_prob": jnp.full(obs.shape[0], -0.5)}

    def update(learner, batch, key):
        batch = getattr(batch, "data", batch)  # the model-based loop hands over the whole buffer
        seen.append({name: value.shape for name, value in batch.extras.items()})
        metrics = {"updates": (learner + 1).astype(jnp.float32),
                   "weight_sum": jnp.sum(batch.extras.get("weight", jnp.zeros(())))}
        return UpdateOutput(learner + 1, metrics, jnp.ones(batch.reward.shape[0]))

    return Agent(init=lambda key, obs: jnp.zeros((), jnp.int32), act=act, update=update)


def test_on_policy_extras_reach_the_trajectory_and_the_carry_is_typed():
    seen = []
    config = onpolicy.OnPolicyConfig(total_steps=64, num_envs=4, rollout_length=8, num_evals=2, eval_episodes=2)
    train = onpolicy.make_train(config, ENV, _recording_agent(seen))
    carry = train.init(jax.random.PRNGKey(0))
    assert isinstance(carry, core.Carry) and isinstance(carry.tally, core.Tally)
    carry, metrics = jax.jit(train.advance)(carry)
    assert seen[-1] == {"log_prob": (8, 4)}
    assert int(carry.learner) == 1 and int(carry.chunk) == 1 and float(metrics["updates"]) == 1.0


def test_off_policy_extras_reach_the_buffer_and_the_warm_up_stores_nan():
    seen = []
    config = offpolicy.OffPolicyConfig(total_steps=200, num_envs=2, batch_size=256, buffer_size=256,
                                       learning_starts=40, num_evals=2, eval_episodes=2)
    train = offpolicy.make_train(config, ENV, _recording_agent(seen))
    carry, _ = jax.jit(train.advance)(train.init(jax.random.PRNGKey(0)))
    stored = carry.data.buffer.data.extras["log_prob"][: int(carry.data.buffer.size)]
    warmup = config.warmup_transitions
    assert np.all(np.isnan(stored[:warmup])) and np.all(stored[warmup:] == -0.5)
    carry, metrics = jax.jit(train.advance)(carry)
    assert seen[-1] == {"log_prob": (256,), "n_steps": (256,), "weight": (256,)}
    assert float(metrics["weight_sum"]) == 256.0


@pytest.mark.parametrize("loop, config, seed", [
    (onpolicy, onpolicy.OnPolicyConfig(total_steps=32, num_envs=4, rollout_length=8, num_evals=1, eval_episodes=4), 0),
    (offpolicy, offpolicy.OffPolicyConfig(total_steps=64, num_envs=2, batch_size=8, buffer_size=64,
                                          learning_starts=16, num_evals=1, eval_episodes=4), 0),
    (modelbased, modelbased.ModelBasedConfig(total_steps=48, num_envs=2, rollout_length=4, buffer_size=64,
                                             learning_starts=10, num_evals=1, eval_episodes=4), 1),
])
def test_eval_policy_chooses_explore_in_every_loop(loop, config, seed):
    """The recording agent pushes left (0) while exploring and right (1) greedily: the
    evaluation row equals the return of "always 1" under eval_policy="greedy" and of "always 0"
    under "stochastic", with the evaluation's own key (a seed where the two returns differ)."""
    returns = {}
    for mode, action in (("greedy", 1), ("stochastic", 0)):
        train = loop.make_train(dataclasses.replace(config, eval_policy=mode), ENV, _recording_agent([]))
        carry, advance = train.init(jax.random.PRNGKey(seed)), jax.jit(train.advance)
        for _ in range(train.chunks_per_eval):
            carry, metrics = advance(carry)
        _, row = jax.jit(train.evaluate)(carry, metrics)
        key = core.eval_key(carry.key, carry.chunk, 1, train.chunks_per_eval)
        fixed = lambda learner, obs, key, a=action: (jnp.full(obs.shape[0], a, jnp.int32), {})  # noqa: E731
        assert float(row["episode_return"]) == float(evaluate(ENV, fixed, None, key, 4, 500))
        returns[mode] = float(row["episode_return"])
    assert returns["greedy"] != returns["stochastic"]  # the two policies are told apart


def _buffer_agent():
    """Acts 0 while exploring; its learner records the buffer's fill count at each update and
    the sum of the rewards stored in it."""

    def act(learner, obs, key, explore):
        return jnp.full(obs.shape[0], 0 if explore else 1, jnp.int32), {"log_prob": jnp.full(obs.shape[0], -0.5)}

    def update(learner, data, key):
        count, sizes = learner
        filled = jnp.arange(data.data.reward.shape[0]) < data.size
        sizes = sizes.at[count].set(data.size)
        return UpdateOutput((count + 1, sizes), {"stored_reward": jnp.sum(jnp.where(filled, data.data.reward, 0.0))})

    return Agent(init=lambda key, obs: (jnp.zeros((), jnp.int32), jnp.zeros(8, jnp.int32)), act=act, update=update)


def test_model_based_loop_hands_the_whole_buffer_to_update_after_learning_from_the_warm_up():
    config = modelbased.ModelBasedConfig(total_steps=7 + 3 * 12, num_envs=2, rollout_length=6, buffer_size=1000,
                                         learning_starts=7, num_evals=1, eval_episodes=1)
    train = modelbased.make_train(config, ENV, _buffer_agent())
    assert config.warmup_steps == 8 and train.steps_per_chunk == 12 and train.num_chunks == 3
    carry = train.init(jax.random.PRNGKey(0))
    assert int(carry.learner[0]) == 1 and int(carry.learner[1][0]) == 8  # one update on the 8 random steps
    log_prob = carry.data.data.extras["log_prob"]
    assert np.all(np.isnan(log_prob[:8]))
    advance = jax.jit(train.advance)
    for _ in range(3):
        carry, metrics = advance(carry)
    count, sizes = carry.learner
    assert int(count) == 4 and sizes[:4].tolist() == [8, 20, 32, 44]
    assert np.all(carry.data.data.extras["log_prob"][8:44] == -0.5) and int(carry.data.size) == 44
    # Cart-pole pays 1 per step, so the buffer holds a reward of 1 for every real step taken.
    assert float(metrics["stored_reward"]) == 44.0 == train.step(train.num_chunks)


def test_learners_are_named_tuples():
    learner = ppo.make_train(ppo.Config(total_steps=512, num_envs=2, rollout_length=8, num_evals=1,
                                        eval_episodes=1)).init(jax.random.PRNGKey(0)).learner
    assert isinstance(learner, ppo.Learner) and learner._fields == ("params", "opt_state", "kl_beta")
    agent = dqn.make_agent(dqn.Config(), ENV.spec)
    assert isinstance(agent.init(jax.random.PRNGKey(0), jnp.zeros((1, 4))), dqn.Learner)


def test_a_subclass_default_keeps_the_declared_constraint():
    assert dqn.Config().num_envs == 10  # DQN's default, declared positive in RunConfig
    with pytest.raises(ConfigError, match=r"^invalid num_envs=0: must be a positive integer$"):
        dqn.Config(num_envs=0)
    with pytest.raises(ConfigError, match=r"^invalid eval_policy='sampled': must be one of \('greedy', 'stochastic'\)$"):
        ppo.Config(eval_policy="sampled")


def test_distribution_action_samples_while_exploring_and_takes_the_mode_otherwise():
    import distrax

    from fnrl.agent import distribution_action

    dist, key = distrax.Normal(jnp.array([0.5, -1.0]), jnp.array([1.0, 2.0])), jax.random.PRNGKey(3)
    np.testing.assert_array_equal(distribution_action(dist, key, False)[0], [0.5, -1.0])
    action, extras = distribution_action(dist, key, True, with_log_prob=True)
    np.testing.assert_array_equal(action, dist.sample(seed=key))
    np.testing.assert_allclose(extras["log_prob"], dist.log_prob(action), rtol=1e-6)
    assert distribution_action(dist, key, True)[1] == {}


def test_prioritized_replay_without_priorities_is_one_line():
    agent = _recording_agent([])
    silent = agent._replace(update=lambda learner, batch, key: UpdateOutput(learner, {}))
    config = offpolicy.OffPolicyConfig(total_steps=64, num_envs=2, batch_size=8, buffer_size=64, learning_starts=16,
                                       num_evals=1, eval_episodes=1, prioritized=True)
    train = offpolicy.make_train(config, ENV, silent)
    with pytest.raises(ValueError, match=r"^prioritized replay needs priorities from the agent's update"):
        jax.eval_shape(train.advance, jax.eval_shape(train.init, jax.random.PRNGKey(0)))
