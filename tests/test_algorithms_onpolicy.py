"""On-policy algorithms A2C, PPO, NPG and TRPO: learning on cartpole, every algorithm from the
command line on a discrete and a continuous environment, PPO's adaptive KL coefficient, the
trust regions of NPG and TRPO, and config validation."""
import json

import jax
import numpy as np
import pytest

from fnrl import losses
from fnrl.algorithms import a2c, npg, ppo, trpo
from fnrl.cli import main
from fnrl.config import ConfigError

# Logged as NaN after an update in which no training episode ended (by design).
MAY_BE_NAN = {"train_episode_return"}


def _run(module, config, seed=0):
    _, metrics = jax.jit(module.make_train(config))(jax.random.PRNGKey(seed))
    return {k: np.asarray(v) for k, v in metrics.items()}


def _assert_finite(metrics):
    for name, value in metrics.items():
        if name not in MAY_BE_NAN:
            assert np.all(np.isfinite(value)), f"{name} is not finite: {value}"


# --------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def ppo_cartpole():
    config = ppo.Config(env="cartpole", total_steps=100_000, num_evals=4)
    return config, _run(ppo, config, seed=0)


@pytest.fixture(scope="module")
def trpo_cartpole():
    config = trpo.Config(env="cartpole", total_steps=100_000, num_evals=10)
    return config, _run(trpo, config, seed=0)


def test_ppo_learns_cartpole(ppo_cartpole):
    """PPO with the default config (seed 0) reaches a mean evaluation return >= 400 within 100k
    environment steps (a random policy scores ~22). Measured with this config, seeds 0-9: 500
    for all ten at 100k (and at 50k), >= 342 at 25k."""
    config, metrics = ppo_cartpole
    _assert_finite(metrics)
    assert metrics["step"][-1] <= 1.01 * config.total_steps
    assert metrics["episode_return"][-1] >= 400.0, metrics["episode_return"]


def test_trpo_learns_cartpole(trpo_cartpole):
    """TRPO with the default config (seed 0) reaches a mean evaluation return >= 400 within
    ~100k environment steps (102,400: 50 updates of 2048). Measured with this config, seeds 0-9:
    500 for nine and 459 for one at 102,400 steps; all >= 429 from 61k steps on."""
    config, metrics = trpo_cartpole
    _assert_finite(metrics)
    assert metrics["step"][-1] <= 1.05 * config.total_steps
    assert metrics["episode_return"][-1] >= 400.0, metrics["episode_return"]


def test_trpo_steps_stay_in_the_trust_region(trpo_cartpole):
    """Every logged TRPO step accepted by the line search has a measured KL(π_old ‖ π_new) in
    (0, max_kl], a positive surrogate improvement and a fraction β^k of the full step; a
    rejected one leaves the policy unchanged (fraction, KL and improvement 0)."""
    config, metrics = trpo_cartpole
    accepted = metrics["accepted"] == 1.0
    assert accepted.any(), metrics["accepted"]
    assert np.all(metrics["kl"][accepted] > 0.0) and np.all(metrics["kl"] <= config.max_kl), metrics["kl"]
    assert np.all(metrics["improvement"][accepted] > 0.0), metrics["improvement"]
    fractions = config.backtrack_ratio ** np.arange(config.max_backtracks)
    distance = np.min(np.abs(metrics["step_fraction"][:, None] - fractions), axis=1)
    assert np.all(distance[accepted] < 1e-6), metrics["step_fraction"]
    for name in ("step_fraction", "kl", "improvement"):
        assert np.all(metrics[name][~accepted] == 0.0), metrics[name]


def test_npg_step_is_scaled_to_the_kl_radius():
    """NPG on pendulum (Gaussian policy): the step α F⁻¹g with α = sqrt(2δ / gᵀF⁻¹g) moves the
    policy by a measured KL of order δ = max_kl -- not a vanishing step, and (up to the
    quadratic model's error and the damping, which shrinks the step) not beyond it."""
    config = npg.Config(env="pendulum", total_steps=8 * 2048, num_evals=8, eval_episodes=2)
    metrics = _run(npg, config)
    _assert_finite(metrics)
    assert np.all(metrics["kl"] <= 1.5 * config.max_kl), metrics["kl"]
    assert np.all(metrics["kl"] >= 0.2 * config.max_kl), metrics["kl"]
    assert np.all(metrics["improvement"] > 0.0), metrics["improvement"]


def test_ppo_kl_penalty_adapts_beta():
    """PPO's KL-penalty objective: after every update β follows the adaptive rule of Schulman
    et al. (2017) on the measured mean KL, starting from ``init_kl_beta``, and it moves."""
    config = ppo.Config(env="cartpole", objective="kl", kl_target=0.003, num_envs=4, rollout_length=64,
                        num_minibatches=2, num_evals=12, total_steps=12 * 256, eval_episodes=2)
    assert config.periods.iterations_per_eval == 1  # every update is logged
    metrics = _run(ppo, config)
    _assert_finite(metrics)
    beta = config.init_kl_beta
    for kl, logged in zip(metrics["kl"], metrics["kl_beta"], strict=True):
        beta = float(losses.adaptive_kl_beta(beta, kl, config.kl_target))
        assert logged == beta
    assert len(set(metrics["kl_beta"].tolist())) > 1, metrics["kl_beta"]


# --------------------------------------------------------------------------- command line

TINY = ["num_envs=4", "rollout_length=32", "num_evals=2", "eval_episodes=2", "hidden_sizes=16"]


@pytest.mark.parametrize(
    "algo, env, overrides",
    [
        ("a2c", "cartpole", []),
        ("a2c", "pendulum", ["advantage=n_step", "n_steps=4"]),
        ("ppo", "pendulum", ["distribution=tanh_gaussian", "clip_value=true", "anneal_lr=true", "normalize_obs=true"]),
        ("npg", "cartpole", ["step_size=0.05"]),
        ("trpo", "pendulum", ["distribution=tanh_gaussian"]),
    ],
)
def test_every_algorithm_trains_from_the_command_line(tmp_path, algo, env, overrides):
    """``fnrl train`` runs each algorithm on a discrete (cartpole) or continuous (pendulum)
    environment and logs finite metrics; the other pairs are covered by the tests above."""
    out = tmp_path / "run"
    argv = ["train", algo, "--env", env, "--steps", "256", "--out", str(out)]
    for item in TINY + overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [128, 256]
    _assert_finite({k: np.array([r[k] for r in rows]) for k in rows[0]})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == algo and summary["env"] == env


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ppo.Config(num_envs=3, rollout_length=5, num_minibatches=4),
         "invalid num_minibatches=4: must be a divisor of the batch num_envs * rollout_length = 15"),
        (lambda: npg.Config(num_envs=3, rollout_length=5, value_minibatches=2),
         "invalid value_minibatches=2: must be a divisor of the batch num_envs * rollout_length = 15"),
        (lambda: trpo.Config(num_envs=3, rollout_length=5, value_minibatches=2), "invalid value_minibatches=2"),
        (lambda: ppo.Config(objective="trust"), "invalid objective='trust': must be one of ('clip', 'kl')"),
        (lambda: ppo.Config(clip_epsilon=1.5), "invalid clip_epsilon=1.5"),
        (lambda: ppo.Config(distribution="beta"), "invalid distribution='beta'"),
        (lambda: a2c.Config(advantage="td"), "invalid advantage='td': must be one of ('gae', 'n_step')"),
        (lambda: a2c.Config(distribution="tanh_gaussian"), "invalid distribution='tanh_gaussian'"),
        (lambda: npg.Config(step_size=-1.0), "invalid step_size=-1.0"),
        (lambda: npg.Config(max_kl=0.0), "invalid max_kl=0.0"),
        (lambda: trpo.Config(backtrack_ratio=1.5), "invalid backtrack_ratio=1.5: must be in (0, 1]"),
        (lambda: trpo.Config(gae_lambda=2.0), "invalid gae_lambda=2.0"),
    ],
)
def test_invalid_configs_fail_with_one_line(make, message):
    with pytest.raises(ConfigError) as error:
        make()
    text = str(error.value)
    assert message in text and len(text.splitlines()) == 1, text


@pytest.mark.parametrize(
    "algo, item, expected",
    [
        ("ppo", "num_minibatches=3", "invalid num_minibatches=3: must be a divisor of the batch"),
        ("trpo", "value_minibatches=3", "invalid value_minibatches=3"),
        ("npg", "max_kl=-1", "invalid max_kl=-1.0"),
        ("a2c", "advantage=mc", "invalid advantage='mc'"),
        ("trpo", "step_size=0.1", "unknown config key 'step_size' for trpo"),
    ],
)
def test_command_line_rejects_bad_configs_before_compiling(tmp_path, capsys, algo, item, expected):
    out = tmp_path / "run"
    code = main(["train", algo, "--env", "cartpole", "--steps", "1000", "--out", str(out), "--set", item])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not out.exists()
