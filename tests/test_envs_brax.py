"""Brax adapter (issue 3): every Brax environment resets and steps under jit+vmap (traced, and run
for two of them), and the adapter passes Brax's own results through unchanged."""
import brax.envs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs as envs
from fnrl.envs.brax_envs import brax_names

pytestmark = pytest.mark.brax

# Brax programs are large; XLA's backend optimisations roughly double their CPU compile time
# and buy nothing for a couple of steps.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def test_every_brax_name_is_registered_with_the_standard_time_limit():
    assert set(brax_names()) == {f"brax/{n}" for n in brax.envs._envs}
    assert set(brax_names()) <= set(envs.list())
    env = envs.make("brax/ant")
    assert env.max_episode_steps == 1000
    assert env.unwrapped.backend == "generalized"  # Brax's default for ant


# Compiling a Brax environment's reset and step takes 15-45 s on a 2-core CPU (humanoid, pusher the
# most), so these two run; every other environment is traced under jit and vmap (its shapes and
# dtypes checked, ~5 s each); test_adapter_passes_brax_results_through runs inverted_pendulum for
# 40 steps against Brax's own.
RUN = ("brax/fast", "brax/inverted_pendulum")


@pytest.mark.slow
@pytest.mark.parametrize("name", brax_names())
def test_every_brax_env_resets_and_steps_under_jit_and_vmap(name):
    env = envs.wrap(envs.make(name), num_envs=2, auto_reset=False)
    spec = env.spec

    def reset_and_step(key):
        state = env.reset(key)
        return state, env.step(state, spec.sample_action(key, (2,)))

    jitted = jax.jit(reset_and_step, compiler_options=FAST_COMPILE)
    if name not in RUN:
        first, second = jax.eval_shape(jitted, jax.random.PRNGKey(0))
    else:
        first, second = jitted(jax.random.PRNGKey(0))
    (obs_size,) = spec.observation_shape
    for state in (first, second):
        assert state.obs.shape == (2, obs_size) and state.obs.dtype == jnp.float32
        for flag in (state.reward, state.termination, state.truncation):
            assert flag.shape == (2,) and flag.dtype == jnp.float32
        assert state.info["steps"].shape == (2,)
    if name not in RUN:
        return
    for state in (first, second):
        assert np.all(np.isfinite(state.obs))
        assert set(np.unique(state.termination)) <= {0.0, 1.0}
        assert np.all(state.truncation == 0)
        np.testing.assert_array_equal(state.info["steps"], [0, 0] if state is first else [1, 1])
    assert np.all(np.isfinite(second.reward))
    assert not np.allclose(first.obs, second.obs) or name == "brax/fast"  # the physics moved
    assert not np.allclose(first.obs[0], first.obs[1]) or name == "brax/fast"  # two different resets


@pytest.fixture(scope="module")
def pendulum():
    return envs.make("brax/inverted_pendulum", max_episode_steps=None)


def test_adapter_passes_brax_results_through(pendulum):
    raw = brax.envs.get_environment("inverted_pendulum")
    assert pendulum.spec.observation_shape == (raw.observation_size,)
    assert pendulum.spec.action_shape == (raw.action_size,)
    assert (pendulum.spec.action_low, pendulum.spec.action_high) == ((-1.0,), (1.0,))

    @jax.jit(compiler_options=FAST_COMPILE)
    def both(key, actions):
        def body(carry, a):
            ours, theirs = carry
            ours, theirs = pendulum.step(ours, a), raw.step(theirs, a)
            return (ours, theirs), (ours, theirs)

        return jax.lax.scan(body, (pendulum.reset(key), raw.reset(key)), actions)[1]

    ours, theirs = both(jax.random.PRNGKey(3), jnp.full((40, 1), 0.8))
    np.testing.assert_array_equal(ours.obs, theirs.obs)
    np.testing.assert_array_equal(ours.reward, theirs.reward)
    np.testing.assert_array_equal(ours.termination, theirs.done)  # Brax's done is a termination
    assert ours.termination.any()  # the pole fell: the termination path was exercised
    np.testing.assert_array_equal(ours.truncation, 0.0)


def test_backend_is_selectable_and_checked():
    assert envs.make("brax/inverted_pendulum", backend="positional").unwrapped.backend == "positional"
    with pytest.raises(ValueError, match=r"^brax/swimmer: Unsupported backend: spring\.$"):
        envs.make("brax/swimmer", backend="spring")
    with pytest.raises(ValueError, match=r"^brax/ant: unknown backend 'warp'; choose one of generalized, "):
        envs.make("brax/ant", backend="warp")
    with pytest.raises(ValueError, match=r"^brax/ant: .*unexpected keyword argument 'legs'$"):
        envs.make("brax/ant", legs=6)


def test_wrong_action_shape_names_the_argument(pendulum):
    state = pendulum.reset(jax.random.PRNGKey(0))
    with pytest.raises(AssertionError, match=r"action of brax/inverted_pendulum must have shape \(1,\)"):
        pendulum.step(state, jnp.zeros(3))
