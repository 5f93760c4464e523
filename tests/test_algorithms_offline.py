"""The offline loop and the offline algorithms on small scripted datasets (tests/offline_data.py)."""
import dataclasses

import jax
import numpy as np
import pytest

import offline_data
from fnrl import runner
from fnrl.algorithms import bc
from fnrl.loops import offline


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline")
    return {
        "cartpole-expert": offline_data.make(root / "cp-expert", "cartpole", offline_data.expert("cartpole"), 4000),
        "pendulum-expert": offline_data.make(root / "pd-expert", "pendulum", offline_data.expert("pendulum"), 4000),
    }


@pytest.mark.parametrize("task, threshold", [("cartpole", 475.0), ("pendulum", -300.0)])
def test_bc_clones_a_scripted_expert(data, task, threshold):
    dataset = data[f"{task}-expert"]
    config = bc.Config(env=task, dataset=dataset.path, total_steps=2000, num_evals=2, eval_episodes=16)
    _, metrics = jax.jit(bc.make_train(config))(jax.random.PRNGKey(0))
    assert metrics["step"].tolist() == [1000, 2000]  # gradient updates
    assert metrics["episode_return"][-1] >= threshold
    assert metrics["bc_loss"][-1] < metrics["bc_loss"][0]


def test_offline_loop_samples_the_dataset_and_resumes_exactly(data):
    dataset = data["cartpole-expert"]
    seen = []

    def update(learner, batch, key):
        # every sampled transition is one of the dataset's, with the loop's extras
        seen.append(batch)
        return learner + 1, {"n": learner.astype(float)}, None

    from fnrl.agent import Agent
    from fnrl.loops import core

    agent = Agent(init=lambda key, obs: jax.numpy.zeros((), jax.numpy.int32),
                  act=lambda learner, obs, key, explore: (jax.numpy.zeros(obs.shape[:1], jax.numpy.int32), {}),
                  update=update)
    config = bc.Config(env="cartpole", dataset=dataset.path, total_steps=40, num_evals=2, eval_episodes=2,
                       batch_size=8)
    train = offline.make_train(config, core.make_env(config), agent, dataset)
    learner, metrics = jax.jit(train)(jax.random.PRNGKey(0))
    assert int(learner) == 40 and metrics["step"].tolist() == [20, 40]
    batch = seen[0]
    assert batch.obs.shape == (8, 4) and set(batch.extras) == {"weight", "n_steps"}

    # chunk by chunk through the runner (what `fnrl train` runs) computes the same run
    result = runner.run(train, jax.random.PRNGKey(0))
    assert [row["step"] for row in result.rows] == [20, 40]
    np.testing.assert_allclose([row["episode_return"] for row in result.rows], metrics["episode_return"])


def test_offline_configs_refuse_what_they_cannot_do(data):
    with pytest.raises(ValueError, match="needs a dataset"):
        bc.make_train(bc.Config(env="cartpole"))
    with pytest.raises(ValueError, match="recorded on cartpole, not pendulum"):
        bc.make_train(bc.Config(env="pendulum", dataset=data["cartpole-expert"].path))
    with pytest.raises(ValueError, match="bonus must be 'none'"):
        bc.make_train(dataclasses.replace(bc.Config(env="cartpole", dataset=data["cartpole-expert"].path),
                                          bonus="count"))
