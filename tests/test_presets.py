"""Presets: the tuned settings live in fnrl/presets.yaml, and the command line and the
experiments build the same configs from them."""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import pytest

from fnrl import algorithms, envs, planning, presets
from fnrl.cli import main
from fnrl.config import read_yaml, to_dict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))
import common  # noqa: E402  (experiments/common.py)
import offpolicy_brax, offpolicy_cartpole, offpolicy_pendulum, onpolicy_brax  # noqa: E401, E402
import onpolicy_cartpole, onpolicy_pendulum  # noqa: E401, E402
import exploration_chain, exploration_deepsea, exploration_mountaincar  # noqa: E401, E402
import apg_pendulum  # noqa: E402
import dyna_q as dyna_q_experiment  # noqa: E402  (experiments/dyna_q.py)
import modelbased_pendulum  # noqa: E402

VARIANTS = (onpolicy_cartpole.VARIANTS + onpolicy_pendulum.VARIANTS + offpolicy_cartpole.VARIANTS
            + offpolicy_pendulum.VARIANTS + offpolicy_brax.VARIANTS
            + [common.Variant("PPO", "ppo", f"brax/{env}", steps) for env, (steps, _) in onpolicy_brax.TASKS.items()]
            + exploration_chain.VARIANTS + exploration_mountaincar.VARIANTS
            + [common.Variant(label, algo, "deepsea/10", 100_000, changes)
               for label, (algo, changes) in exploration_deepsea.AGENTS.items()]
            + apg_pendulum.VARIANTS + dyna_q_experiment.VARIANTS + modelbased_pendulum.VARIANTS)


def _printed_config(capsys, argv) -> dict:
    assert main(argv + ["--print-config"]) == 0
    return read_yaml(capsys.readouterr().out)


def test_every_preset_is_a_valid_config_of_a_known_algorithm_and_environment():
    assert presets.table(), "no presets"
    for algo, by_env in presets.table().items():
        planner = algo in planning.names()
        assert algo in algorithms.names() or planner
        for key, fields in by_env.items():
            # a family (deepsea/*) is checked on its first listed member
            env = next(e for e in envs.list() if e.startswith(key[:-1])) if key.endswith("/*") else key
            assert env in envs.list()
            assert presets.key(algo, env) == key
            config = presets.config(algo, env)
            assert planner or config.env == env
            assert all(getattr(config, k) == (tuple(v) if isinstance(v, list) else v) for k, v in fields.items())
            defaults = planning.config_class(algo)() if planner else algorithms.get(algo).Config(env=env)
            assert config != defaults, f"{algo}/{key} changes nothing"
            if planner:
                planning.make(algo, config).init(envs.make(env).spec)  # the planner fits the environment


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v.algo}-{v.env}-{v.label}")
def test_the_experiments_and_the_command_line_build_the_same_config(variant, capsys):
    """Each experiment's row is the command it prints: `fnrl train ... --print-config` gives the
    config the experiment trains (the preset, the variant's changes, the budget)."""
    assert _printed_config(capsys, variant.command()) == to_dict(variant.config())


def test_preset_precedence_on_the_command_line(tmp_path, capsys):
    """defaults < preset < --config FILE < --set; --no-preset starts from the defaults."""
    base = ["train", "ppo", "--env", "pendulum", "--steps", "1000"]
    tuned = _printed_config(capsys, base)
    assert tuned == to_dict(presets.config("ppo", "pendulum", total_steps=1000))
    assert tuned["gamma"] == 0.95 and tuned["anneal_lr"] is True
    plain = _printed_config(capsys, base + ["--no-preset"])
    assert plain == to_dict(algorithms.get("ppo").Config(env="pendulum", total_steps=1000))
    config_file = tmp_path / "c.yaml"
    config_file.write_text("gamma: 0.9\nnum_epochs: 3\n")
    mixed = _printed_config(capsys, base + ["--config", str(config_file), "--set", "num_epochs=2"])
    assert (mixed["gamma"], mixed["num_epochs"], mixed["num_minibatches"]) == (0.9, 2, 16)
    # The preset follows the environment, wherever it is named.
    (tmp_path / "env.json").write_text(json.dumps({"env": "pendulum"}))
    assert _printed_config(capsys, ["train", "ppo", "--config", str(tmp_path / "env.json")])["gamma"] == 0.95
    assert _printed_config(capsys, ["train", "ppo", "--env", "acrobot"]) == to_dict(
        dataclasses.replace(algorithms.get("ppo").Config(), env="acrobot"))  # no preset: the defaults
