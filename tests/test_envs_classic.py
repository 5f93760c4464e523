"""Classic control (envs/classic.py) against Gymnasium's reference implementations.

Gymnasium steps in float64 and we step in float32, so the comparison is made two ways:
every transition of Gymnasium's trajectories is recomputed from Gymnasium's own state (one
vmapped step: observation, reward and termination to 1e-5), and our environment is run
free from the same start state on the same actions for as long as the float32 trajectory
stays within 1e-5 of Gymnasium's (whole episodes except for the chaotic acrobot and
pendulum, which drift apart by more than 1e-5 after ~100 and ~30 steps).
"""
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from fnrl.envs import classic

# name -> (Gymnasium id, our class, policy(obs, rng) on Gymnasium's observation, free-run steps)
ENVS = {
    "cartpole": ("CartPole-v1", classic.CartPole, lambda o, rng: int(rng.integers(2)), None),
    # Pumping energy with the first joint's velocity swings the acrobot up in ~100 steps.
    "acrobot": ("Acrobot-v1", classic.Acrobot,
                lambda o, rng: int(rng.integers(3)) if rng.random() < 0.2 else (0 if o[4] > 0 else 2), 60),
    # Pushing along the velocity reaches the goal; random actions cover the rest.
    "mountaincar": ("MountainCar-v0", classic.MountainCar,
                    lambda o, rng: int(rng.integers(3)) if rng.random() < 0.2 else (2 if o[1] > 0 else 0), None),
    # Actions beyond the bounds exercise the clipping (physics) and the unclipped action cost.
    "mountaincar_continuous": ("MountainCarContinuous-v0", classic.MountainCarContinuous,
                               lambda o, rng: np.array([np.sign(o[1]) * 1.5 + rng.normal() * 0.5], np.float32), None),
    "pendulum": ("Pendulum-v1", classic.Pendulum, lambda o, rng: rng.uniform(-3, 3, (1,)).astype(np.float32), 25),
}
SEEDS = (0, 1, 2)


def _gymnasium_episodes(gym_id, policy, seeds):
    """Rolls Gymnasium out; returns per-episode dicts of states, actions, next obs, rewards, flags."""
    env = gym.make(gym_id).unwrapped
    limit = gym.spec(gym_id).max_episode_steps
    rng = np.random.default_rng(0)
    episodes = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        ep = {k: [] for k in ("state", "action", "obs", "reward", "termination")}
        for _ in range(limit):
            action = policy(obs, rng)
            ep["state"].append(np.array(env.state, np.float64))
            obs, reward, terminated, _, _ = env.step(action)
            for k, v in zip(("action", "obs", "reward", "termination"), (action, obs, reward, terminated)):
                ep[k].append(v)
            if terminated:
                break
        episodes.append({k: np.asarray(v) for k, v in ep.items()})
    return episodes


@pytest.fixture(scope="module", params=sorted(ENVS))
def case(request):
    name = request.param
    gym_id, cls, policy, free_steps = ENVS[name]
    return name, cls(), _gymnasium_episodes(gym_id, policy, SEEDS), free_steps


def _from_internal(env, x):
    return env.reset(jax.random.PRNGKey(0)).replace(internal=jnp.asarray(x, jnp.float32))


def test_every_step_matches_gymnasium(case):
    name, env, episodes, _ = case
    cat = {k: np.concatenate([ep[k] for ep in episodes]) for k in episodes[0]}
    step = jax.jit(jax.vmap(lambda x, a: env.step(_from_internal(env, x), a)))
    out = step(cat["state"], jnp.asarray(cat["action"]))
    np.testing.assert_allclose(out.obs, cat["obs"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.reward, cat["reward"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.termination, cat["termination"].astype(np.float32))
    np.testing.assert_array_equal(out.truncation, 0.0)
    if name != "pendulum":  # the only one that never terminates
        assert all(ep["termination"][-1] for ep in episodes), "the policies must reach termination"


def test_free_run_matches_gymnasium(case):
    _, env, episodes, free_steps = case
    steps = [len(ep["action"]) if free_steps is None else free_steps for ep in episodes]
    # One compiled scan for all episodes: pad the action sequences, compare each episode's prefix.
    actions = np.stack([np.resize(ep["action"], (max(steps),) + ep["action"].shape[1:]) for ep in episodes])

    def run(x0, actions):
        def body(state, action):
            state = env.step(state, action)
            return state, (state.obs, state.reward, state.termination)

        return jax.lax.scan(body, _from_internal(env, x0), actions)[1]

    starts = np.stack([ep["state"][0] for ep in episodes])
    obs, reward, termination = jax.jit(jax.vmap(run))(starts, jnp.asarray(actions))
    for i, (ep, n) in enumerate(zip(episodes, steps)):
        np.testing.assert_allclose(obs[i, :n], ep["obs"][:n], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reward[i, :n], ep["reward"][:n], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(termination[i, :n], ep["termination"][:n])


# Gymnasium's start-state bounds, per component of the internal state.
START_BOUNDS = {
    "cartpole": ([-0.05] * 4, [0.05] * 4),
    "acrobot": ([-0.1] * 4, [0.1] * 4),
    "mountaincar": ([-0.6, 0.0], [-0.4, 0.0]),
    "mountaincar_continuous": ([-0.6, 0.0], [-0.4, 0.0]),
    "pendulum": ([-np.pi, -1.0], [np.pi, 1.0]),
}


def test_reset_distribution(case):
    name, env, _, _ = case
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 2000))
    low, high = map(np.asarray, START_BOUNDS[name])
    x = np.asarray(states.internal)
    slack = 1e-6  # float32 rounding of the bounds (e.g. π)
    assert np.all(x >= low - slack) and np.all(x <= high + slack)
    # Uniform on [low, high]: the sample's min and max lie within 1% of the width of the bounds.
    width = 0.01 * (high - low) + slack
    assert np.all(x.min(0) - low <= width) and np.all(high - x.max(0) <= width)
    # And the observation is Gymnasium's function of that state: one step from it is compared above.
    assert states.obs.dtype == jnp.float32 and states.reward.shape == (2000,)


@pytest.mark.parametrize("name", sorted(ENVS))
def test_make_gives_gymnasium_spec_and_time_limit(name):
    gym_id = ENVS[name][0]
    reference = gym.make(gym_id)
    env = fnrl.envs.make(name)
    assert env.max_episode_steps == gym.spec(gym_id).max_episode_steps
    assert env.spec.observation_shape == reference.observation_space.shape
    if isinstance(reference.action_space, gym.spaces.Discrete):
        assert env.spec.discrete and env.spec.num_actions == reference.action_space.n
        assert env.spec.action_shape == ()
    else:
        assert not env.spec.discrete and env.spec.action_shape == reference.action_space.shape
        np.testing.assert_array_equal(env.spec.action_low, reference.action_space.low)
        np.testing.assert_array_equal(env.spec.action_high, reference.action_space.high)


@pytest.mark.parametrize("name", sorted(ENVS))
def test_made_env_resets_and_steps_under_jit_and_vmap(name):
    env = fnrl.envs.make(name)
    batch = 4

    @jax.jit
    def run(key):
        keys = jax.random.split(key, batch + 1)
        state = jax.vmap(env.reset)(keys[1:])
        state = state.replace(info={**state.info, "tag": jnp.arange(batch)})
        return jax.vmap(env.step)(state, env.spec.sample_action(keys[0], (batch,)))

    state = run(jax.random.PRNGKey(3))
    assert state.obs.shape == (batch,) + env.spec.observation_shape and state.obs.dtype == jnp.float32
    for flag in (state.reward, state.termination, state.truncation):
        assert flag.shape == (batch,) and flag.dtype == jnp.float32
    np.testing.assert_array_equal(state.info["tag"], np.arange(batch))  # info is carried unchanged
    np.testing.assert_array_equal(state.info["steps"], 1)


def test_time_limit_truncates_the_never_ending_pendulum_at_gymnasiums_limit():
    env = fnrl.envs.make("pendulum")
    limit = gym.spec("Pendulum-v1").max_episode_steps

    def body(state, _):
        state = env.step(state, jnp.zeros((1,)))
        return state, (state.termination, state.truncation)

    _, (termination, truncation) = jax.jit(lambda s: jax.lax.scan(body, s, None, limit))(
        env.reset(jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(termination, 0.0)
    np.testing.assert_array_equal(truncation, np.arange(1, limit + 1) == limit)


def test_bad_actions_fail_with_a_message_naming_the_action():
    cartpole, pendulum = classic.CartPole(), classic.Pendulum()
    with pytest.raises(AssertionError, match="cartpole: the action must be an int32 scalar"):
        cartpole.step(cartpole.reset(jax.random.PRNGKey(0)), jnp.float32(1.0))
    with pytest.raises(AssertionError, match=r"pendulum: the action must be a float array of shape \(1,\)"):
        pendulum.step(pendulum.reset(jax.random.PRNGKey(0)), jnp.zeros(()))
