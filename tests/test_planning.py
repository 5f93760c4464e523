"""Planners on known models: CEM and MPPI find a known optimum, the warm start shifts the plan,
MCTS picks the better arm of a tiny tree (terminal states included), MPC beats a random policy
on pendulum, and bad input is refused in one line."""
from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from fnrl import planning, presets
from fnrl.cli import main
from fnrl.config import ConfigError
from fnrl.envs.core import Env, EnvState, Spec
from fnrl.loops.evaluation import evaluate

KEY = jax.random.PRNGKey(0)


def _state(obs, internal) -> EnvState:
    zero = jnp.zeros((), jnp.float32)
    return EnvState(obs=jnp.asarray(obs, jnp.float32), reward=zero, termination=zero, truncation=zero,
                    internal=internal)


@dataclasses.dataclass(frozen=True)
class Reach(Env):
    """x' = x + a with a ∈ [−1, 1]², r = −‖x' − x*‖²: from x = 0 the best first action is x*,
    then 0."""

    target: tuple = (0.5, -0.3)
    spec = Spec(observation_shape=(2,), action_shape=(2,), action_low=-1.0, action_high=1.0)

    def reset(self, key):
        return _state(jnp.zeros(2), jnp.zeros(2))

    def step(self, state, action):
        x = state.internal + action
        return state.replace(obs=x, internal=x, reward=-jnp.sum((x - jnp.asarray(self.target)) ** 2))


@dataclasses.dataclass(frozen=True)
class Code(Env):
    """Discrete: reward 1 for each step t whose action is ``code[t]`` (a combination lock)."""

    code: tuple = (2, 0, 1)
    spec = Spec(observation_shape=(1,), num_actions=3)

    def reset(self, key):
        return _state(jnp.zeros(1), jnp.zeros((), jnp.int32))

    def step(self, state, action):
        t = state.internal
        reward = (action == jnp.asarray(self.code)[jnp.minimum(t, len(self.code) - 1)]).astype(jnp.float32)
        return state.replace(internal=t + 1, reward=reward)


@dataclasses.dataclass(frozen=True)
class TwoArms(Env):
    """A two-armed deterministic tree. Arm ``short`` pays 0.6 and terminates; the other pays 0,
    then 1 on the next step and terminates. Past a termination this model keeps paying 1 per
    step, which a search must not believe: with γ = 0.9 the better arm is the long one (0.9 > 0.6),
    while counting the rewards after termination would make it the short one."""

    short: int = 0
    spec = Spec(observation_shape=(2,), num_actions=2)

    def reset(self, key):
        return _state(jnp.zeros(2), (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)))

    def step(self, state, action):
        depth, done = state.internal
        at_root = (depth == 0) & (done == 0)
        reward = jnp.where(done > 0, 1.0, jnp.where(at_root, jnp.where(action == self.short, 0.6, 0.0), 1.0))
        terminated = jnp.where(at_root, action == self.short, True).astype(jnp.float32)
        done = jnp.maximum(done, terminated)
        return state.replace(internal=(depth + 1, done), reward=reward.astype(jnp.float32), termination=done)


# ------------------------------------------------------------------------------- optimisers

def test_cem_finds_the_minimum_of_a_quadratic():
    env = Reach()
    planner = planning.cem(planning.CEMConfig(horizon=2, population=200, elites=20, iterations=10))
    out = jax.jit(lambda key: planner.plan(env, env.reset(key), planner.init(env.spec), key))(KEY)
    np.testing.assert_allclose(out.action, env.target, atol=0.03)
    np.testing.assert_allclose(out.info["plan"][1], [0.0, 0.0], atol=0.05)
    assert out.info["return"] > -0.01


def test_mppi_and_random_shooting_approach_the_same_minimum():
    env = Reach()
    for planner, tolerance in ((planning.mppi(planning.MPPIConfig(horizon=2, population=400, iterations=8,
                                                                  temperature=0.01, noise_std=0.3)), 0.05),
                               (planning.random_shooting(planning.ShootingConfig(horizon=2, population=4000)), 0.15)):
        out = jax.jit(lambda key: planner.plan(env, env.reset(key), planner.init(env.spec), key))(KEY)
        np.testing.assert_allclose(out.action, env.target, atol=tolerance, err_msg=planner.name)


def test_cem_over_categorical_distributions_opens_a_combination_lock():
    env = Code()
    planner = planning.cem(planning.CEMConfig(horizon=3, population=100, elites=10, iterations=5))
    out = planner.plan(env, env.reset(KEY), planner.init(env.spec), KEY)
    assert out.info["plan"].tolist() == list(env.code) and float(out.info["return"]) == 3.0


def test_sequence_returns_stop_at_termination():
    """J counts the terminating step's reward and nothing after it; γ^t weights the rest."""
    env = TwoArms()
    state = env.reset(KEY)
    short, long = jnp.array([0, 1, 1]), jnp.array([1, 0, 1])
    assert float(planning.sequence_returns(env, state, short, 0.9)) == pytest.approx(0.6)
    assert float(planning.sequence_returns(env, state, long, 0.9)) == pytest.approx(0.9)
    returns = planning.candidate_returns(env, state, jnp.stack([short, long]), 1.0)
    np.testing.assert_allclose(returns, [0.6, 1.0])


# ------------------------------------------------------------------------------- warm start

def test_shift_drops_the_executed_step_and_appends_the_fill():
    plan = jnp.array([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(planning.shift(plan, jnp.zeros((3, 1))), [[2.0], [3.0], [0.0]])


@pytest.mark.parametrize("name", ["random_shooting", "cem", "mppi"])
def test_the_warm_start_shifts_the_plan(name):
    env = fnrl.envs.make("pendulum")
    small = {"random_shooting": {"population": 50}, "cem": {"population": 50, "elites": 5, "iterations": 2},
             "mppi": {"population": 50}}[name]
    kind = planning.config_class(name)
    planner = planning.make(name, kind(horizon=6, **small))
    initial = planner.init(env.spec)
    state = env.reset(KEY)
    out = planner.plan(env, state, initial, KEY)
    following = out.carry.mean if name == "cem" else out.carry
    np.testing.assert_array_equal(out.action, out.info["plan"][0])
    np.testing.assert_array_equal(following, planning.shift(out.info["plan"], out.info["plan"] * 0))
    if name == "cem":  # the spread starts afresh
        np.testing.assert_array_equal(out.carry.std, initial.std)
    if name != "random_shooting":  # the next step samples around that carry: not a cold start's plan
        warm = planner.plan(env, state, out.carry, jax.random.PRNGKey(1))
        cold = planner.plan(env, state, initial, jax.random.PRNGKey(1))
        assert not np.array_equal(warm.info["plan"], cold.info["plan"])
    # Without warm starts the carry is the initial guess, whatever came in.
    planner = planning.make(name, kind(horizon=6, warm_start=False, **small))
    out = planner.plan(env, state, initial, KEY)
    jax.tree_util.tree_map(np.testing.assert_array_equal, out.carry, initial)


def test_random_shooting_keeps_the_previous_best_under_an_exact_model():
    """The shifted best sequence is one of the candidates, so its return is never lost."""
    env = Reach()
    planner = planning.random_shooting(planning.ShootingConfig(horizon=2, population=2))
    best = jnp.array([[0.5, -0.3], [0.0, 0.0]])
    out = planner.plan(env, env.reset(KEY), best, KEY)
    np.testing.assert_allclose(out.info["plan"], best)


# ----------------------------------------------------------------------------------- MCTS

@pytest.mark.parametrize("short", [0, 1])
@pytest.mark.parametrize("rollout_steps", [0, 3])
def test_mcts_picks_the_better_arm_and_ignores_rewards_after_termination(short, rollout_steps):
    env = TwoArms(short=short)
    planner = planning.mcts(planning.MCTSConfig(num_simulations=64, rollout_steps=rollout_steps, discount=0.9))
    out = jax.jit(lambda key: planner.plan(env, env.reset(key), (), key))(KEY)
    assert int(out.action) == 1 - short
    q = np.asarray(out.info["q_values"])
    assert q[short] == pytest.approx(0.6)  # the terminating reward, nothing after it
    # The long arm's Q is the mean of its backups: 0.9 each once its second step is in the tree
    # (a random rollout sees it at once; a zero leaf value counts 0 for the first visit).
    assert q[1 - short] == pytest.approx(0.9) if rollout_steps else 0.6 < q[1 - short] < 0.9


def test_mcts_finds_the_optimal_actions_of_a_deterministic_gridworld_near_the_goal():
    """Every state within two steps of the goal: the search's action is one of value iteration's."""
    env = fnrl.envs.make("tabular/gridworld(slip=0.0)")
    q = np.asarray(fnrl.envs.tabular.value_iteration(env.mdp).q)
    optimal = q >= q.max(1, keepdims=True) - 1e-6
    near = [s for s in range(q.shape[0]) if not env.mdp.terminal[s] and q[s].max() >= 0.95 - 1e-6]
    planner = planning.mcts(planning.MCTSConfig(num_simulations=32, rollout_steps=10, discount=0.95))
    from_obs = planning.observed_state(env)

    def act(s, key):
        return planner.plan(env, from_obs(jax.nn.one_hot(s, q.shape[0]), key), (), key).action

    actions = jax.jit(jax.vmap(act))(jnp.array(near), jax.random.split(KEY, len(near)))
    assert len(near) == 4 and all(optimal[s, a] for s, a in zip(near, np.asarray(actions)))


# ------------------------------------------------------------------------------------- MPC

def test_mpc_on_pendulum_beats_a_random_policy():
    """Two 100-step episodes from the same start states: CEM-MPC against uniform random torques."""
    env = fnrl.envs.make("pendulum")
    planner = planning.cem(planning.CEMConfig(horizon=15, population=64, elites=8, iterations=3))
    episodes = jax.jit(functools.partial(planning.run_mpc, env, planner, num_episodes=2, max_steps=100))(KEY)
    random_policy = lambda learner, obs, key: (jax.random.uniform(key, (obs.shape[0], 1), minval=-1, maxval=1), {})
    random_return = float(evaluate(env, random_policy, None, KEY, 2, 100))
    assert np.all(np.asarray(episodes.lengths) == 100)
    assert float(episodes.returns.mean()) > random_return + 200, (episodes.returns, random_return)


def test_mpc_policy_is_run_mpc_without_memory():
    """Through `evaluate` (observations only, no memory) MCTS, whose carry is empty, plays exactly
    the episodes `run_mpc` plays from the real states."""
    env = fnrl.envs.make("cartpole")
    planner = planning.mcts(planning.MCTSConfig(num_simulations=4, rollout_steps=4, num_rollouts=2))
    act = planning.mpc_policy(planner, env)
    evaluated = jax.jit(lambda key: evaluate(env, act, None, key, 2, 30))(KEY)
    episodes = jax.jit(functools.partial(planning.run_mpc, env, planner, num_episodes=2, max_steps=30))(KEY)
    assert float(evaluated) == float(episodes.returns.mean())


def test_mpc_policy_acts_in_the_rescaled_units_of_evaluate_and_renders():
    from fnrl.render import episode_states

    env = fnrl.envs.make("pendulum")
    planner = planning.cem(planning.CEMConfig(horizon=10, population=64, elites=8, iterations=3))
    act = planning.mpc_policy(planner, env)
    total = float(jax.jit(lambda key: evaluate(env, act, None, key, 2, 60))(KEY))
    random_policy = lambda learner, obs, key: (jax.random.uniform(key, (obs.shape[0], 1), minval=-1, maxval=1), {})
    assert total > float(evaluate(env, random_policy, None, KEY, 2, 60)) + 50
    assert len(episode_states(env, act, None, KEY, max_steps=5)) == 6


@pytest.mark.parametrize("name", ["cartpole", "pendulum", "acrobot", "mountaincar_continuous", "tabular/chain"])
def test_the_state_rebuilt_from_an_observation_steps_like_the_real_one(name):
    env = fnrl.envs.make(name)
    real = env.reset(KEY)
    for t in range(3):
        real = env.step(real, env.spec.sample_action(jax.random.PRNGKey(t)))
    rebuilt = planning.observed_state(env)(real.obs, KEY)
    np.testing.assert_allclose(rebuilt.obs, real.obs, atol=1e-6)
    action = env.spec.sample_action(jax.random.PRNGKey(9))
    if name.startswith("tabular"):  # the same next-state distribution; compare a deterministic step
        env = fnrl.envs.make("tabular/chain(slip=0.0)")
    a, b = env.step(real, action), env.step(rebuilt, action)
    np.testing.assert_allclose(a.obs, b.obs, atol=1e-5)
    assert float(a.reward) == pytest.approx(float(b.reward), abs=1e-5)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kind, values, message", [
    (planning.CEMConfig, {"elites": 400}, "invalid elites=400: must be smaller than population=400"),
    (planning.CEMConfig, {"momentum": 1.0}, "invalid momentum=1.0: must be in [0, 1)"),
    (planning.CEMConfig, {"horizon": 0}, "invalid horizon=0: must be a positive integer"),
    (planning.MPPIConfig, {"temperature": 0.0}, "invalid temperature=0.0: must be positive"),
    (planning.MCTSConfig, {"rollout_steps": -1}, "invalid rollout_steps=-1: must be >= 0"),
    (planning.MCTSConfig, {"max_depth": 0}, "invalid max_depth=0: must be a positive integer or null"),
])
def test_invalid_configs_are_refused_in_one_line(kind, values, message):
    with pytest.raises(ConfigError) as error:
        kind(**values)
    assert str(error.value) == message


def test_planners_refuse_what_they_cannot_plan():
    with pytest.raises(ValueError, match="unknown planner 'cme' \\(did you mean cem\\?\\)"):
        planning.make("cme")
    with pytest.raises(ValueError, match="mppi needs continuous actions; this model's actions are discrete"):
        planning.mppi().init(fnrl.envs.make("cartpole").spec)
    with pytest.raises(ValueError, match="mcts needs discrete actions; this model's actions are continuous"):
        planning.mcts().init(fnrl.envs.make("pendulum").spec)
    with pytest.raises(ValueError, match="Reach: its observation does not determine its state"):
        planning.mpc_policy(planning.cem(), Reach())
    with pytest.raises(ValueError, match="num_episodes must be a positive integer"):
        planning.run_mpc(fnrl.envs.make("pendulum"), planning.cem(), KEY, 0)
    with pytest.raises(TypeError, match="planner 'cem' takes a CEMConfig"):
        planning.make("cem", planning.MPPIConfig())


# ------------------------------------------------------------------------- command line

def test_fnrl_plan_writes_its_summary_and_a_drawing(tmp_path, capsys):
    out = tmp_path / "plan"
    argv = ["plan", "cem", "--env", "pendulum", "--episodes", "2", "--max-steps", "5", "--set", "horizon=4",
            "--set", "population=16", "--set", "elites=4", "--set", "iterations=2", "--out", str(out), "--render"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mean return" in printed and "tuned preset cem/pendulum" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["planner"] == "cem" and summary["env"] == "pendulum" and summary["episodes"] == 2
    assert len(summary["episode_returns"]) == 2 and summary["episode_lengths"] == [5, 5]
    assert summary["episode_return"] == pytest.approx(np.mean(summary["episode_returns"]))
    assert summary["model_steps_per_action"] == 2 * 16 * 4 and summary["config"]["horizon"] == 4
    assert (out / "episode.gif").read_bytes()[:6] == b"GIF89a"


def test_fnrl_plan_builds_its_config_from_the_preset(capsys):
    """defaults < preset < --set, as `fnrl train`; --no-preset starts from the defaults."""
    from fnrl.config import read_yaml, to_dict

    assert main(["plan", "mppi", "--env", "pendulum", "--print-config"]) == 0
    assert read_yaml(capsys.readouterr().out) == to_dict(presets.config("mppi", "pendulum"))
    assert main(["plan", "mppi", "--env", "pendulum", "--no-preset", "--set", "horizon=7", "--print-config"]) == 0
    assert read_yaml(capsys.readouterr().out) == to_dict(planning.MPPIConfig(horizon=7))


def test_fnrl_list_names_the_planners(capsys):
    assert main(["list"]) == 0
    assert "planners (fnrl plan): random_shooting cem mppi mcts" in capsys.readouterr().out
