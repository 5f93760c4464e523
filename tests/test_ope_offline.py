"""Off-policy evaluation end to end (fnrl.ope, fnrl.algorithms.fqe, `fnrl ope`).

- A small tabular MDP (episodes end in a terminal state, ~3 steps): a known behaviour policy
  records datasets of 100 and 2,000 episodes; the target policy's true value comes from a linear
  solve. Importance sampling is unbiased (within 3 standard errors), every estimator's error
  shrinks as the dataset grows, and FQE on one-hot data with a linear (tabular) Q reaches the
  exact solution of the empirical Bellman equation Q = R̂ + γ P̂^π Q.
- Cart-pole with softmax versions of the scripted expert (tests/offline_data.py) as behaviour
  and target: the estimates land near the on-policy Monte Carlo truth, much nearer than the
  behaviour policy's own value.
- The command line: `fnrl ope` prints every estimator and the truth; one-line errors, exit 2.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import datasets, envs, estimators, ope
from fnrl.algorithms import fqe
from fnrl.cli import main
from fnrl.envs import tabular
from fnrl.envs.wrappers import TimeLimit

GAMMA = 0.9
S, A = 4, 2


def _mdp():
    """4 states and an absorbing terminal one, reached with probability 0.3 from every step."""
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.dirichlet(np.ones(S), size=(S, A)) * 0.7, np.full((S, A, 1), 0.3)], -1)
    p = np.concatenate([p, np.zeros((1, A, S + 1))], 0)
    p[S, :, S] = 1.0
    r = np.concatenate([rng.normal(size=(S, A)) + 1.0, np.zeros((1, A))], 0)
    mu0 = np.r_[rng.dirichlet(np.ones(S)), 0.0]
    mdp = tabular.MDP(p, r, mu0, GAMMA, np.r_[np.zeros(S, bool), True])
    behaviour = np.full((S + 1, A), 0.5)
    behaviour[:S, 0] = rng.uniform(0.3, 0.7, S)
    behaviour[:S, 1] = 1.0 - behaviour[:S, 0]
    target = np.full((S + 1, A), 0.5)
    target[:S, 0] = np.clip(1.0 - behaviour[:S, 0] + 0.1 * np.sign(behaviour[:S, 0] - 0.5), 0.05, 0.95)
    target[:S, 1] = 1.0 - target[:S, 0]
    return mdp, behaviour, target


def _with_log_prob(policy: ope.Policy):
    def act(obs, key):
        action = policy.act(obs, key)
        return action, {"log_prob": policy.log_prob(obs, action)}

    return act


@pytest.fixture(scope="module")
def tab():
    mdp, behaviour, target = _mdp()
    env = TimeLimit(tabular.TabularEnv(mdp, name="test"), 100)
    truth = float(mdp.initial @ tabular.policy_evaluation(mdp, jnp.asarray(target)).v)
    act = _with_log_prob(ope.tabular_policy(behaviour))
    data = {}
    for seed in range(4):  # 2,000 episodes of ~3.3 steps, and their first 100
        eps = datasets.collect(env, act, jax.random.PRNGKey(seed), 7000, num_envs=16)
        data[seed, 100], data[seed, 2000] = datasets.from_episodes(eps[:100]), datasets.from_episodes(eps[:2000])
    return env, mdp, ope.tabular_policy(target), target, truth, data


def test_tabular_importance_sampling_unbiased_and_converges(tab):
    env, mdp, policy, _, truth, data = tab
    errors = {}
    for (seed, n), dataset in data.items():
        out = ope.estimate(dataset, policy, GAMMA, time_limit=100)
        for name in ("IS", "PDIS", "WIS"):
            errors.setdefault((name, n), []).append(abs(out[name] - truth))
    for name in ("IS", "PDIS", "WIS"):
        small, large = np.mean(errors[name, 100]), np.mean(errors[name, 2000])
        print(name, "mean |error| over 4 seeds: 100 episodes", small, "2000 episodes", large)
        assert large < small / 2, (name, small, large)
        assert large < (0.15 if name == "IS" else 0.1), (name, large)
    # Unbiased IS: the 8,000 episodes of the four large datasets, one per column, within 3 s.e.
    per_episode = []
    for seed in range(4):
        ep = ope.episodes(data[seed, 2000], 100)
        target = np.where(ep.mask > 0, np.asarray(policy.log_prob(jnp.asarray(ep.obs), jnp.asarray(ep.action))), 0.0)
        per_episode.append(np.asarray(estimators.trajectory_importance_sampling(
            jnp.asarray(ep.reward)[:, None], jnp.asarray(target, jnp.float32)[:, None],
            jnp.asarray(ep.behaviour_log_prob)[:, None], GAMMA, mask=jnp.asarray(ep.mask)[:, None])))
    values = np.concatenate(per_episode)
    se = values.std(ddof=1) / np.sqrt(len(values))
    print("IS over 8000 episodes", values.mean(), "s.e.", se, "truth", truth)
    assert abs(values.mean() - truth) < 3 * se, (values.mean(), truth, se)


def _fqe(env, dataset, policy, steps=8000):
    config = fqe.Config(env="tabular/gridworld", hidden_sizes=(), total_steps=steps, batch_size=512,
                        learning_rate=3e-3, gamma=GAMMA, tau=1.0, target_period=400, num_evals=1, eval_episodes=1)
    learner, metrics = jax.jit(fqe.make_train(config, policy=policy, dataset=dataset, env=env))(jax.random.PRNGKey(0))
    net = fqe.make_q(config, env.spec)
    value = float(jnp.mean(fqe.value(config, env.spec, policy, learner, jnp.asarray(ope.initial_obs(dataset)),
                                     jax.random.PRNGKey(0))))
    np.testing.assert_allclose(value, float(metrics["fqe_estimate"][-1]), rtol=1e-5)
    return lambda obs: net.apply(learner.q, obs), value


def _empirical_bellman(dataset, target):
    """The solution of Q = R̂ + γ P̂^π Q from the dataset's counts, and its value at the initial states."""
    t = dataset.transitions
    s, s_next, a = np.argmax(t.obs, -1), np.argmax(t.next_obs, -1), np.asarray(t.action)
    n = np.zeros((S + 1, A))
    r, p = np.zeros((S + 1, A)), np.zeros((S + 1, A, S + 1))
    np.add.at(n, (s, a), 1)
    np.add.at(r, (s, a), t.reward)
    np.add.at(p, (s, a, s_next), 1.0 - t.termination)
    r, p = r / np.maximum(n, 1), p / np.maximum(n, 1)[..., None]
    m = np.einsum("sat,tb->satb", p, target).reshape((S + 1) * A, (S + 1) * A)
    q = np.linalg.solve(np.eye((S + 1) * A) - GAMMA * m, r.reshape(-1)).reshape(S + 1, A)
    s0 = np.argmax(ope.initial_obs(dataset), -1)
    return q, float(np.mean(np.sum(q[s0] * target[s0], -1)))


def test_tabular_fqe_is_the_empirical_bellman_solution_and_dr_converges(tab):
    env, mdp, policy, target, truth, data = tab
    errors = {}
    for n in (100, 2000):
        dataset = data[0, n]
        q, value = _fqe(env, dataset, policy)
        q_exact, value_exact = _empirical_bellman(dataset, target)
        visited = np.unique(np.argmax(dataset.transitions.obs, -1))
        np.testing.assert_allclose(np.asarray(q(jnp.eye(S + 1)))[visited], q_exact[visited], atol=0.05)
        assert abs(value - value_exact) < 0.02, (n, value, value_exact)
        out = ope.estimate(dataset, policy, GAMMA, time_limit=100, q=q, fqe_value=value)
        assert set(ope.ESTIMATORS) <= set(out)
        print(n, "episodes: truth", truth, out, "empirical Bellman", value_exact)
        for name in ("FQE", "DR", "WDR"):
            errors[name, n] = abs(out[name] - truth)
    for name in ("FQE", "DR", "WDR"):
        assert errors[name, 2000] < errors[name, 100], (name, errors)
        assert errors[name, 2000] < 0.1, (name, errors)


def _softmax_expert(beta: float, eps: float) -> ope.Policy:
    """tests/offline_data.py's cart-pole expert (push where a + 0.5 ω points) as a softmax of
    inverse temperature ``beta``, mixed with a uniform action with probability ``eps``."""
    def log_probs(obs):
        x = beta * (obs[..., 2] + 0.5 * obs[..., 3])
        return jnp.log((1.0 - eps) * jax.nn.softmax(jnp.stack([-x, x], -1)) + eps / 2.0)

    def act(obs, key):
        return jax.random.categorical(key, log_probs(obs)).astype(jnp.int32)

    def log_prob(obs, action):
        return jnp.take_along_axis(log_probs(obs), action[..., None].astype(jnp.int32), -1)[..., 0]

    return ope.Policy(act, log_prob, True, 2)


def test_cartpole_estimates_near_the_rollout_truth():
    env, gamma = envs.make("cartpole"), 0.95
    behaviour, target = _softmax_expert(10.0, 0.8), _softmax_expert(5.0, 0.5)
    truth, se = ope.true_value(env, target, jax.random.PRNGKey(9), 1000, gamma)
    behaviour_value, _ = ope.true_value(env, behaviour, jax.random.PRNGKey(9), 300, gamma)
    assert truth - behaviour_value > 2.5 and se < 0.15  # ~18.2 and ~14.9: the data's own value is far off
    dataset = datasets.from_episodes(datasets.collect(env, _with_log_prob(behaviour), jax.random.PRNGKey(1), 20_000, 8),
                                     env="cartpole")
    config = fqe.Config(env="cartpole", hidden_sizes=(64, 64), total_steps=5000, learning_rate=1e-3, tau=0.02,
                        gamma=gamma, num_evals=1, eval_episodes=1)
    learner, metrics = jax.jit(fqe.make_train(config, policy=target, dataset=dataset))(jax.random.PRNGKey(0))
    net = fqe.make_q(config, env.spec)
    out = ope.estimate(dataset, target, gamma, time_limit=500, q=lambda obs: net.apply(learner.q, obs),
                       fqe_value=float(metrics["fqe_estimate"][-1]))
    print("cartpole truth", truth, "±", se, "behaviour", behaviour_value, out)
    assert out["dropped"] == 8  # the last episode of each of the 8 environments is cut short
    for name, tolerance in (("FQE", 0.6), ("WIS", 0.6), ("DR", 0.6), ("WDR", 0.6), ("PDIS", 1.5)):
        assert abs(out[name] - truth) < tolerance, (name, out[name], truth)
    assert np.isfinite(out["IS"])  # trajectory-wise IS over ~40-step products: unbiased but far noisier


# --- the command line


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """A random cart-pole dataset (with the uniform policy's log_prob), one without log_prob, and
    a short bc run on the first (a stochastic policy)."""
    import offline_data

    root = tmp_path_factory.mktemp("ope")
    data = str(root / "random")
    assert main(["collect", "--env", "cartpole", "--policy", "random", "--steps", "2000", "--num-envs", "4",
                 "--out", data]) == 0
    assert "log_prob" in datasets.load(data).transitions.extras
    plain = offline_data.make(root / "plain", "cartpole", offline_data.expert("cartpole", eps=0.3), 500).path
    bc = str(root / "bc")
    assert main(["train", "bc", "--dataset", data, "--steps", "200", "--out", bc, "--set", "num_evals=1",
                 "--set", "eval_episodes=2", "--set", "hidden_sizes=16,16", "--set", "batch_size=64"]) == 0
    return {"data": data, "plain": plain, "bc": bc, "root": root}


def test_ope_command_prints_every_estimator(cli_runs, capsys):
    capsys.readouterr()
    argv = ["ope", "--dataset", cli_runs["data"], "--policy", cli_runs["bc"], "--gamma", "0.9", "--fqe-steps", "500",
            "--true-episodes", "200", "--set", "hidden_sizes=32,32"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    values = {line.split()[0]: float(line.split()[1]) for line in lines[1:] if line.split()[0] in
              ope.ESTIMATORS + ("true",)}
    assert set(values) == set(ope.ESTIMATORS) | {"true"}, lines
    # A policy that barely learnt on random data is near uniform: every estimate near the truth.
    for name in ("PDIS", "WIS", "DR", "WDR"):
        assert abs(values[name] - values["true"]) < 1.0, (name, values)


@pytest.mark.parametrize("case, message", [
    ("no-log-prob", "has no behaviour log_prob: IS, PDIS, WIS, DR and WDR need them; pass --fqe-only"),
    ("mismatch", "was recorded on pendulum, but the --policy run trained on cartpole"),
    ("no-run", "holds no run"),
    ("gamma", "invalid --gamma 1.5"),
    ("bad-set", "no_such_field"),
])
def test_ope_command_errors(cli_runs, capsys, case, message):
    argv = {"no-log-prob": ["--dataset", cli_runs["plain"], "--policy", cli_runs["bc"]],
            "no-run": ["--dataset", cli_runs["data"], "--policy", str(cli_runs["root"] / "nothing")],
            "gamma": ["--dataset", cli_runs["data"], "--policy", cli_runs["bc"], "--gamma", "1.5"],
            "bad-set": ["--dataset", cli_runs["data"], "--policy", cli_runs["bc"], "--set", "no_such_field=1"]}
    if case == "mismatch":
        pendulum = str(cli_runs["root"] / "pendulum")
        assert main(["collect", "--env", "pendulum", "--policy", "random", "--steps", "200", "--out", pendulum]) == 0
        argv[case] = ["--dataset", pendulum, "--policy", cli_runs["bc"]]
    capsys.readouterr()
    assert main(["ope"] + argv[case]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_ope_fqe_only_without_log_prob(cli_runs, capsys):
    capsys.readouterr()
    assert main(["ope", "--dataset", cli_runs["plain"], "--policy", cli_runs["bc"], "--fqe-only", "--fqe-steps",
                 "200", "--set", "hidden_sizes=16,16"]) == 0
    out = capsys.readouterr().out
    assert "FQE" in out and "PDIS" not in out


def test_train_fqe_through_the_cli(cli_runs, tmp_path):
    out = tmp_path / "fqe"
    assert main(["train", "fqe", "--dataset", cli_runs["data"], "--steps", "200", "--out", str(out),
                 "--set", f"policy={cli_runs['bc']}", "--set", "num_evals=1", "--set", "eval_episodes=2",
                 "--set", "hidden_sizes=16,16"]) == 0
    import json

    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(row["fqe_estimate"])
    assert main(["train", "fqe", "--dataset", cli_runs["data"], "--steps", "200", "--out", str(tmp_path / "x")]) == 2
