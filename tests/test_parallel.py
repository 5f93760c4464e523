"""Data parallelism (issue 4): a training run sharded over two devices equals the
single-device run with the same global batch and seed -- for REINFORCE and for PPO, whose
minibatch epochs shuffle the sharded batch -- and configuration and command-line errors.

The two-device run happens in a subprocess, which sets
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before it imports JAX; this process
sees one CPU device.
"""
import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import envs, parallel
from fnrl.algorithms import ppo, reinforce
from fnrl.cli import main
from fnrl.config import ConfigError

# Small, but with everything that must agree across devices: observation normalisation
# (global running statistics), advantage normalisation (global batch mean and std),
# episode metrics, gradients that are means over the sharded environment axis and, for PPO,
# minibatches drawn by one permutation of the whole global batch.
CONFIG = dict(env="cartpole", total_steps=3 * 8 * 16, num_envs=8, rollout_length=16, num_evals=3,
              eval_episodes=4, hidden_sizes=(16,), normalize_obs=True)
ALGORITHMS = {"reinforce": (reinforce, {}), "ppo": (ppo, {"num_epochs": 2, "num_minibatches": 2})}


def _config(name, **changes):
    module, own = ALGORITHMS[name]
    return module.Config(**{**CONFIG, **own, **changes})


TWO_DEVICES = textwrap.dedent("""
    import importlib, json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, numpy as np

    assert jax.device_count() == 2, jax.devices()
    for name, fields in json.loads(sys.argv[1]).items():
        module = importlib.import_module(f"fnrl.algorithms.{name}")
        fields.update(hidden_sizes=tuple(fields["hidden_sizes"]), num_devices=2)  # JSON made it a list
        steps = []
        train = jax.jit(module.make_train(module.Config(**fields), on_eval=lambda s, *_: steps.append(int(s))))
        compiled = train.lower(jax.random.PRNGKey(0)).compile()
        learner, metrics = jax.block_until_ready(compiled(jax.random.PRNGKey(0)))
        leaves = jax.tree_util.tree_leaves(learner)
        np.savez(f"{sys.argv[2]}/{name}.npz", *leaves, **{f"metric_{k}": v for k, v in metrics.items()},
                 callback_steps=np.sort(steps),
                 all_reduces=compiled.as_text().count(" all-reduce("),
                 replicated=all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 2 for x in leaves))

    # The command line on two devices: checkpoints of the sharded state, then a resume from one.
    from fnrl.cli import main
    fields = json.loads(sys.argv[1])["reinforce"]
    sets = [f"{k}={v}" for k, v in fields.items() if k not in ("env", "total_steps", "hidden_sizes")]
    argv = ["train", "reinforce", "--env", "cartpole", "--steps", str(fields["total_steps"]),
            "--out", f"{sys.argv[2]}/cli", "--set", "hidden_sizes=16", "--set", "num_devices=2", "--no-preset"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    assert main(["train", "--resume", f"{sys.argv[2]}/cli"]) == 0  # resumes after the last chunk: nothing to do
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{algorithm: (single-device result, two-device result)} for the same configuration and seed;
    the two-device runs go on in a subprocess while this one computes the single-device runs."""
    out = tmp_path_factory.mktemp("parallel")
    fields = {name: {**CONFIG, **own} for name, (_, own) in ALGORITHMS.items()}
    child = subprocess.Popen([sys.executable, "-c", TWO_DEVICES, json.dumps(fields), str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    one = {}
    for name, (module, _) in ALGORITHMS.items():
        learner, metrics = jax.jit(module.make_train(_config(name)))(jax.random.PRNGKey(0))
        one[name] = {"learner": [np.asarray(p) for p in jax.tree_util.tree_leaves(learner)],
                     "metrics": {k: np.asarray(v) for k, v in metrics.items()}}
    log, _ = child.communicate(timeout=600)
    assert child.returncode == 0, log
    return {name: (one[name], dict(np.load(out / f"{name}.npz"))) for name in ALGORITHMS}


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_two_devices_train_exactly_like_one(runs, algo):
    one, two = runs[algo]
    assert len(one["learner"]) == sum(k.startswith("arr_") for k in two)
    # Parameters and optimiser state, to float tolerance (the devices sum in another order).
    for i, p in enumerate(one["learner"]):
        np.testing.assert_allclose(two[f"arr_{i}"], p, rtol=1e-5, atol=1e-6)
    # The runs learned something (the value loss moved), so the agreement is not vacuous.
    assert not np.allclose(one["metrics"]["value_loss"][0], one["metrics"]["value_loss"][-1])
    for name, value in one["metrics"].items():
        np.testing.assert_allclose(two[f"metric_{name}"], value, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(two["metric_step"], [128, 256, 384])


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_two_devices_split_the_batch_and_average_gradients(runs, algo):
    _, two = runs[algo]
    assert two["replicated"], "the learner must end up replicated on both devices"
    # Each device holds half the environments, so the gradient mean needs an all-reduce.
    assert two["all_reduces"] > 0
    # Evaluation callbacks reach the host once per evaluation point (unordered across devices).
    np.testing.assert_array_equal(two["callback_steps"], [128, 256, 384])


def test_the_command_line_trains_on_two_devices(runs, tmp_path_factory):
    """`fnrl train --set num_devices=2` (in the subprocess) logs the single-device run's returns."""
    one, _ = runs["reinforce"]
    out = next(tmp_path_factory.getbasetemp().glob("parallel*")) / "cli"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["episode_return"] for r in rows], one["metrics"]["episode_return"], rtol=1e-5)
    assert json.loads((out / "summary.json").read_text())["config"]["num_devices"] == 2


def test_num_devices_must_divide_num_envs_and_exist():
    with pytest.raises(ConfigError, match=r"invalid num_devices=3: must be a positive divisor of num_envs=8"):
        _config("reinforce", num_devices=3)
    with pytest.raises(ConfigError, match="num_devices=0"):
        _config("ppo", num_devices=0)
    with pytest.raises(ValueError, match=r"num_devices=2 but 1 device\(s\) are available .*xla_force_host_platform"):
        reinforce.make_train(_config("reinforce", num_devices=2))


def test_batch_axes_finds_the_environment_axis():
    def make(n):
        return envs.wrap(envs.make("cartpole"), num_envs=n, normalize_obs=True).reset(jax.random.PRNGKey(0))

    axes = parallel.batch_axes(make, 4)
    assert axes.obs == 0 and axes.reward == 0 and axes.info["final_obs"] == 0
    # Shared across the batch: the observation statistics (here [4], the size of the batch,
    # which a rule on shapes alone would mistake for it) and the auto-reset key.
    assert axes.info["obs_stats"].mean is None and axes.info["obs_stats"].count is None
    assert axes.info["reset_key"] is None


def test_shard_batch_keeps_values_and_checks_axes():
    x = jnp.arange(12.0).reshape(4, 3)
    assert parallel.shard_batch(x, None) is x
    mesh = parallel.make_mesh(1)
    np.testing.assert_array_equal(jax.jit(lambda t: parallel.shard_batch(t, mesh, 1))(x), x)
    with pytest.raises(ValueError, match=r"shard_batch: axis 2 is out of range for a leaf of shape \(4, 3\)"):
        parallel.shard_batch(x, mesh, 2)
    with pytest.raises(ValueError, match="num_devices=0 but 1 device"):
        parallel.make_mesh(0)


def test_initialize_needs_a_complete_address():
    with pytest.raises(ValueError, match="together, or none of them"):
        parallel.initialize("127.0.0.1:1234")
    with pytest.raises(ValueError, match=r"process id must be in \[0, 2\) for 2 processes, got 2"):
        parallel.initialize("127.0.0.1:1234", 2, 2)


@pytest.mark.parametrize("extra, expected", [
    (["--coordinator", "127.0.0.1:1234"], "--coordinator, --num-processes and --process-id need --distributed"),
    (["--distributed", "--num-processes", "2"], "distributed: give the coordinator address"),
    (["--distributed", "--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "5"],
     "process id must be in [0, 2)"),
    (["--set", "num_devices=3"], "invalid num_devices=3: must be a positive divisor of num_envs=16"),
    (["--set", "num_devices=2"], "num_devices=2 but 1 device(s) are available"),
])
def test_cli_parallel_errors_are_one_line_exit_2(tmp_path, capsys, extra, expected):
    out = tmp_path / "run"
    code = main(["train", "reinforce", "--env", "cartpole", "--steps", "1000", "--out", str(out)] + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not out.exists()
