"""Offline-to-online fine-tuning: an offline run's learner, trained on in the off-policy loop,
the replay buffer starting with the offline run's dataset.

AWAC (Nair, Gupta, Dalal & Levine 2020) and IQL (Kostrikov, Nair & Levine 2022) pre-train on a
dataset and then continue *the same algorithm* online, their replay buffer initialised with that
dataset; so do TD3+BC and CQL here. An update of each of these agents takes a replayed
:class:`~fnrl.types.Transition` batch, which is what :mod:`fnrl.loops.offpolicy` gives, so the
online run is that loop around the offline run's agent:

- the learner is the newest checkpoint's of the offline run ``source`` (parameters, optimiser
  states and all), the agent is built from the offline run's config (its hyperparameters,
  networks, discount and -- TD3+BC -- the dataset's observation statistics), and the buffer
  holds the offline run's dataset (:func:`fnrl.loops.offpolicy.make_train` with ``learner`` and
  ``dataset``); ``learning_starts`` (0 by default) steps of the offline policy's own exploration
  follow before the first update;
- ``algo`` is the offline run's algorithm, or ``sac`` from a ``cql`` run on continuous actions,
  whose learner holds SAC's (:mod:`fnrl.algorithms.cql`): the common baseline "SAC from an
  offline checkpoint", which often collapses at first as the unpenalised critic meets new
  actions (Nair et al. 2020, Fig. 2; Lee et al. 2021). That SAC keeps the CQL run's
  networks, learning rates and temperature, with SAC's own soft target (``backup_entropy``).

:class:`Config` holds the online loop's fields (:class:`fnrl.loops.offpolicy.OffPolicyConfig`);
:func:`config` starts one from the offline run's ``env``, ``gamma``, ``hidden_sizes`` (these
three must stay the offline run's), ``batch_size``, ``eval_episodes`` and ``eval_policy``.
``fnrl train ALGO --finetune RUN_DIR`` runs it; its ``config.json`` records ``finetune`` (the
offline run) with these fields, from which ``--resume``, ``fnrl eval`` and ``fnrl render``
rebuild the run -- reading the offline run again, which must stay where it was.
"""
from __future__ import annotations

import dataclasses
import inspect
import os

from fnrl import config as fnrl_config, runs
from fnrl.config import non_negative
from fnrl.loops import core, offpolicy

__all__ = ["CONTINUES", "Config", "config", "load", "make_train"]

# Offline algorithms whose agent continues online unchanged; and online algorithms that start
# from the learner inside an offline one's.
CONTINUES = ("iql", "awac", "td3_bc", "cql")
STARTS = {"sac": "cql"}
INHERITED = ("env", "gamma", "hidden_sizes", "batch_size", "eval_episodes", "eval_policy")  # the offline run's
SAME = ("env", "gamma", "hidden_sizes")  # must be the offline run's: its environment, discount and networks


@dataclasses.dataclass(frozen=True)
class Config(offpolicy.OffPolicyConfig):
    """``source``: the offline run's directory; ``algo``: the algorithm continued online (the
    source's, or ``sac`` from a continuous ``cql`` run); ``learning_starts``: steps of the offline
    policy's exploration before the first update (the dataset fills the buffer already)."""

    source: str = ""
    algo: str = ""
    learning_starts: int = non_negative(0)


def config(source: str, algo: str | None = None, **fields) -> Config:
    """A :class:`Config` fine-tuning the run in ``source`` with ``algo`` (default: the source's
    algorithm): the offline run's :data:`INHERITED` fields, then ``fields``.

    Raises:
      fnrl.runs.RunError: one line, when ``source`` holds no readable run.
    """
    run = runs.read(source)
    inherited = {name: run["config"][name] for name in INHERITED if name in run["config"]}
    fields = {**inherited, "source": os.path.abspath(source), "algo": algo or run["algo"], **fields}
    return fnrl_config.apply(Config(), fields, source=f"--finetune {source}")


def load(config: Config):
    """``(agent, learner, dataset, env)`` of the online run ``config``: the online agent, the
    learner it starts from, the offline run's dataset and its environment.

    Raises:
      fnrl.runs.RunError: one line: no run in ``config.source``, one that is not offline or holds
        several runs, an algorithm that cannot continue it, a mismatched field.
    """
    from fnrl import algorithms
    from fnrl.algorithms import sac
    from fnrl.loops import offline

    if not config.source:
        raise runs.RunError("fine-tuning needs the offline run to start from: source=RUN_DIR (--finetune RUN_DIR)")
    where = f"--finetune {config.source}"
    run = runs.read(config.source)
    source_algo = run["algo"]
    if run["seeds"] is not None:
        raise runs.RunError(f"{where}: holds {run['members']} runs (--seeds/--sweep); fine-tune a single run")
    if "dataset" not in run["config"]:
        kind = f"{source_algo} fine-tuning" if run["finetune"] else source_algo
        raise runs.RunError(f"{where}: not an offline run (a {kind} run, with no dataset to start the buffer "
                            f"with); fine-tune a run of {', '.join(CONTINUES)}")
    algo = config.algo or source_algo
    if algo == source_algo and algo not in CONTINUES:
        raise runs.RunError(f"{where}: {algo} cannot continue online (it learns no critic from rewards); "
                            f"fine-tune a run of {', '.join(CONTINUES)}")
    if algo != source_algo and STARTS.get(algo) != source_algo:
        wanted = f"starts from a {STARTS[algo]} run's learner" if algo in STARTS else f"continues {algo} runs"
        raise runs.RunError(f"{where}: an offline {source_algo} run, and {algo} --finetune {wanted}")
    _, carry, source_config = runs.load(config.source)
    for name in SAME:
        if getattr(config, name) != getattr(source_config, name):
            raise runs.RunError(f"{where}: {name}={getattr(config, name)!r}, but the offline run's is "
                                f"{getattr(source_config, name)!r}; fine-tuning keeps it")
    env = core.make_env(source_config)
    dataset = offline.load_dataset(source_config, env)
    module = algorithms.get(source_algo)
    if algo == source_algo:  # the same agent, now fed by the off-policy loop
        takes_dataset = "dataset" in inspect.signature(module.make_agent).parameters  # e.g. TD3+BC's statistics
        agent = module.make_agent(source_config, env.spec, **({"dataset": dataset} if takes_dataset else {}))
        return agent, carry.learner, dataset, env
    inner = getattr(carry.learner, "agent", None)
    if not isinstance(inner, sac.Learner):
        raise runs.RunError(f"{where}: {algo} needs SAC's learner, and this {source_algo} run on {source_config.env} "
                            f"holds a {type(inner).__name__} (SAC's is inside a cql run on continuous actions)")
    sac_config = dataclasses.replace(source_config.sac_config(), backup_entropy=sac.Config().backup_entropy)
    return sac.make_agent(sac_config, env.spec), inner, dataset, env


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)``: the offline run ``config.source`` continued online
    (module docstring; :func:`load`, :func:`fnrl.loops.offpolicy.make_train`)."""
    agent, learner, dataset, env = load(config)
    return offpolicy.make_train(config, env, agent, on_eval, learner=learner, dataset=dataset)
