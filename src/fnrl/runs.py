"""A training run's directory, read back: its config, its rebuilt ``Train`` and its newest checkpoint.

What ``fnrl eval``, ``render``, ``collect`` and ``ope`` (and :mod:`fnrl.algorithms.fqe`, whose
``policy`` is a run directory) load a policy with. ``DIR/config.json`` names the algorithm, the
seed (or seeds and sweep) and every config field; the run is rebuilt from the algorithm's
defaults and those fields (no preset: the fields are the whole config), checked, and its newest
usable checkpoint restored (:class:`fnrl.checkpoint.Checkpoints`). Every problem is a
:class:`RunError`, one line naming the file and what is wrong.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

__all__ = ["RunError", "build", "check", "load", "make_train", "observations", "policy", "read"]


class RunError(ValueError):
    """A run directory that cannot be used, in one line."""


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def read(run_dir: str) -> dict:
    """``DIR/config.json`` of a run: algo, seed (or seeds and sweep), preset and config fields, and
    ``finetune``: the offline run a fine-tuning run started from (None for others), whose config
    fields are a :class:`fnrl.finetune.Config`'s."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            run = json.load(f)
        multi = run.get("seeds") is not None
        return {"algo": run["algo"], "seed": None if multi else int(run["seed"]), "config": dict(run["config"]),
                "preset": run.get("preset"), "seeds": [int(s) for s in run["seeds"]] if multi else None,
                "sweep": {k: list(v) for k, v in run["sweep"].items()} if multi else None,
                "members": len(run["members"]) if multi else 1,
                "finetune": None if run.get("finetune") is None else str(run["finetune"])}
    except FileNotFoundError:
        raise RunError(f"{run_dir!r} holds no run: {path} is missing") from None
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{path} is corrupt: {_first_line(e)}") from None


def check(algo: str, module, config) -> None:
    """Raises a one-line ``ValueError`` when ``config`` cannot be run: an unknown environment,
    one ``algo`` cannot act in, an offline algorithm's missing or unfitting dataset, too few
    devices."""
    from fnrl import envs, parallel
    from fnrl.loops.core import check_env, make_env

    envs.make(config.env)
    check_env(algo, getattr(module, "SUPPORTS", ("discrete", "continuous")), make_env(config), config.env)
    if getattr(config, "dataset", None) is not None:  # an offline algorithm: its dataset, read and checked
        from fnrl.loops.offline import load_dataset

        load_dataset(config, make_env(config))
    parallel.make_mesh(getattr(config, "num_devices", 1))  # enough devices?


def build(algo: str, fields: dict, source: str = "config.json", finetune: bool = False):
    """The algorithm module and its config: the defaults with ``fields`` (from ``source``), checked;
    with ``finetune``, :mod:`fnrl.finetune` and its config (``algo`` continued online).

    Raises:
      ValueError: one line (a :class:`fnrl.config.ConfigError`, an unknown algorithm, ...).
    """
    from fnrl import algorithms, config as fnrl_config, finetune as fine_tuning

    module = fine_tuning if finetune else algorithms.get(algo)
    config = fnrl_config.apply(module.Config(), fields, source=source)
    check(algo, module, config)
    return module, config


def make_train(module, config, seeds: list[int] | None = None, grid: dict | None = None, check: bool = False):
    """The run to compile: ``module.make_train(config)``, or the :class:`fnrl.sweep.Sweep` of
    ``seeds`` × ``grid``; ``check`` traces a sweep once to refuse keys that cannot be traced.
    Raises ``ValueError`` for what the algorithm cannot build (e.g. a bonus)."""
    from fnrl import sweep

    if seeds is None:
        return module.make_train(config)
    runs = sweep.make_sweep(module, config, seeds, grid)
    if check and grid:
        sweep.check_traceable(runs)
    return runs


def load(run_dir: str, eval_policy: str | None = None, report: Callable[[str], None] | None = None):
    """The run in ``run_dir``: its :class:`fnrl.loops.core.Train` (a :class:`fnrl.sweep.Sweep` for
    ``--seeds`` or ``--sweep`` runs), its newest checkpointed carry and its config.
    ``eval_policy`` (greedy or stochastic) replaces the config's, which is how ``train.act``
    acts; ``report`` gets a line about each unusable checkpoint passed over.

    Raises:
      RunError: one line: no run, a corrupt config, a config that cannot be built, no checkpoint.
    """
    import jax

    from fnrl.checkpoint import Checkpoints

    run = read(run_dir)
    try:
        module, config = build(run["algo"], run["config"], finetune=run["finetune"] is not None)
        if eval_policy is not None:
            config = dataclasses.replace(config, eval_policy=eval_policy)
        train = make_train(module, config, run["seeds"], run["sweep"])
    except (ValueError, TypeError) as e:
        raise RunError(f"{run_dir}: {_first_line(e)}") from None
    key = train.keys if run["seeds"] else jax.random.PRNGKey(run["seed"])
    # Concrete arrays even when called while a program is traced (an algorithm that loads its
    # expert or evaluated policy in make_train, vmapped by --seeds): a checkpoint is data on disk.
    with jax.ensure_compile_time_eval(), Checkpoints(os.path.join(run_dir, "checkpoints"), create=False) as checkpoints:
        chunks, carry = checkpoints.restore_usable(jax.eval_shape(train.init, key), report=report)
    if chunks is None:
        raise RunError(f"{run_dir!r} holds no checkpoint: nothing to evaluate yet")
    return train, carry, config


def observations(carry) -> Callable:
    """What a loaded run's learner sees of a raw observation: the observation normalised by the
    run's frozen statistics when it trained on normalised ones, else the observation itself."""
    from fnrl.envs.wrappers import normalize
    from fnrl.loops.core import obs_stats

    stats = obs_stats(carry)
    return (lambda obs: obs) if stats is None else (lambda obs: normalize(stats, obs, 1e-8, 10.0))


def policy(train, carry) -> Callable:
    """``policy(obs, key) -> (action, extras)``: ``train.act`` with the learner of ``carry``, on
    raw observations (:func:`observations`), giving the actions the environment applies: a
    continuous action is clipped to the action box ``[-1, 1]`` (an unbounded Gaussian policy's,
    e.g. PPO's, can fall outside it), so that what is recorded (``fnrl collect``) or imitated
    (DAgger's expert labels) is what was done."""
    import jax.numpy as jnp

    see = observations(carry)
    if train.env.spec.discrete:
        return lambda obs, key: train.act(carry.learner, see(obs), key)

    def act(obs, key):
        action, extras = train.act(carry.learner, see(obs), key)
        return jnp.clip(action, -1.0, 1.0), extras

    return act
