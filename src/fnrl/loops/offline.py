"""The offline loop: a fixed dataset on the device, minibatches drawn from it, no acting.

Each iteration samples ``batch_size`` transitions uniformly from the dataset
(:mod:`fnrl.datasets`) and applies one ``update``; ``total_steps`` counts these gradient
updates, and the environment is only stepped by the evaluations, which run the agent's policy
as every loop's do. A batch is a :class:`~fnrl.types.Transition` ``[batch_size, ...]`` like an
off-policy loop's -- ``extras`` hold ``weight`` (ones) and ``n_steps`` (ones), and the
behaviour ``log_prob`` when the dataset recorded it -- so off-policy agents learn offline
unchanged (and offline agents, e.g. CQL on SAC, are off-policy agents with a penalty).

The dataset is part of the carry (the loop's ``data``), so a checkpoint holds it with the learner
and a resumed run samples exactly what it would have.

``make_train(..., sample=...)`` replaces how the batch at the drawn indices is formed (by default
the dataset's transitions at those indices): :func:`hindsight_relabel` is such a sampler, which
rewrites each transition's goal with one the same episode achieved later.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnrl import datasets, envs
from fnrl.agent import Agent
from fnrl.config import positive_int
from fnrl.loops import core
from fnrl.rollout import Episodes

__all__ = ["OfflineConfig", "hindsight_relabel", "load_dataset", "make_train", "normalize_observations", "take"]


@dataclasses.dataclass(frozen=True)
class OfflineConfig(core.RunConfig):
    """Fields every offline algorithm shares; algorithms subclass it with their own.

    ``dataset``: a Minari dataset directory or a local Minari dataset id (``fnrl train ALGO
    --dataset ...``); ``total_steps``: gradient updates.
    """

    dataset: str = ""
    batch_size: int = positive_int(256)
    num_envs: int = positive_int(1)  # unused: an offline run steps no training environments
    hidden_sizes: tuple[int, ...] = (256, 256)

    @property
    def periods(self) -> core.Schedule:
        return self.schedule(1)


def load_dataset(config: OfflineConfig, env: envs.Env) -> datasets.Dataset:
    """``config.dataset`` loaded and checked against ``env`` (``config.env``).

    Raises:
      fnrl.datasets.DatasetError: one line, when there is no dataset or it does not fit.
    """
    if not config.dataset:
        raise datasets.DatasetError("an offline algorithm needs a dataset: --dataset DIR_OR_MINARI_ID "
                                    "(`fnrl collect` records one)")
    dataset = datasets.load(config.dataset)
    datasets.check(dataset, env, config.env)
    return dataset


def normalize_observations(agent: Agent, dataset: datasets.Dataset, eps: float = 1e-3) -> Agent:
    """``agent`` seeing observations standardised by the dataset's statistics,
    ``s̃ = (s − μ) / (σ + eps)`` per component, with ``μ``, ``σ`` the mean and standard deviation
    of the dataset's observations (TD3+BC's normalisation, Fujimoto & Gu 2021, Sec. 5; eps = 10⁻³
    as there). The statistics are constants of the agent, computed once from the dataset, so the
    learner holds nothing new: a resumed run or ``fnrl eval`` rebuilds them from the same dataset,
    and an evaluation (which calls ``act``) standardises as the updates did."""
    obs = np.asarray(dataset.transitions.obs, np.float64)
    mean, scale = np.mean(obs, axis=0).astype(np.float32), (np.std(obs, axis=0) + eps).astype(np.float32)

    def norm(x):
        return (x - mean) / scale

    def init(key, obs):
        return agent.init(key, norm(obs))

    def act(learner, obs, key, explore):
        return agent.act(learner, norm(obs), key, explore)

    def update(learner, batch, key):
        return agent.update(learner, batch._replace(obs=norm(batch.obs), next_obs=norm(batch.next_obs)), key)

    return Agent(init, act, update, agent.observe)


def take(data, indices, key):
    """The default sampler: the transitions of ``data`` at ``indices`` (``key`` is unused)."""
    return jax.tree_util.tree_map(lambda x: x[indices], data)


def hindsight_relabel(dataset: datasets.Dataset, achieved: slice, desired: slice,
                      probability: float = 1.0) -> Callable:
    """A sampler for :func:`make_train` that relabels goals in hindsight, with the "future"
    strategy of HER (Andrychowicz et al. 2017, Sec. 4.5) as GCSL (Ghosh et al. 2019) and
    play-GCBC (Lynch et al. 2019) use it: with probability ``probability``, the desired goal of
    a transition at step t of an episode ending at step T (``dataset.episode_ends``) is replaced
    by the goal achieved at a uniformly drawn step t' ∈ {t, ..., T},

        g ← φ(s_{t'+1}),   t' ~ U{t, ..., T},

    where φ(s) = ``s[..., achieved]`` and s_{t'+1} is the observation after step t' (t' = t: the
    state the action led to; t' = T: the episode's final observation), written into
    ``obs[..., desired]`` and ``next_obs[..., desired]`` alike. Every trajectory, a random one
    too, is then a demonstration of reaching the places it reached. Rewards and terminations are
    left as recorded (for the original goal), so the sampler suits learners that do not read them
    (goal-conditioned BC); ``achieved`` and ``desired`` come from
    :func:`fnrl.envs.goal.goal_slices`.
    """
    ends = jnp.asarray(dataset.episode_ends)

    def sample(data, indices, key):
        batch = take(data, indices, key)
        future_key, coin_key = jax.random.split(key)
        future = jax.random.randint(future_key, indices.shape, indices, ends[indices] + 1)  # t' in [t, T]
        goal = data.next_obs[future][..., achieved]
        relabel = jax.random.uniform(coin_key, indices.shape) < probability
        goal = jnp.where(relabel[:, None], goal, batch.obs[..., desired])
        return batch._replace(obs=batch.obs.at[..., desired].set(goal),
                              next_obs=batch.next_obs.at[..., desired].set(goal))

    return sample


def make_train(config: OfflineConfig, env: envs.Env, agent: Agent, dataset: datasets.Dataset,
               on_eval: Callable | None = None, sample: Callable = take) -> core.Train:
    """``train(key) -> (learner, metrics)`` of ``agent`` on ``dataset`` (see :mod:`fnrl.loops.core`),
    evaluated in ``env``; ``step`` counts gradient updates. ``sample(data, indices, key) -> batch``
    forms the batch from the uniformly drawn ``indices`` ``[batch_size]`` of the device ``data``
    (:func:`take` by default; :func:`hindsight_relabel`)."""
    if config.bonus != "none":
        raise ValueError("an offline run has no exploration: bonus must be 'none'")
    data = dataset.device_put()
    size = dataset.size
    no_episodes = Episodes(jnp.zeros(()), jnp.zeros(()), jnp.zeros((), jnp.int32))

    def start(learner_key):
        return agent.init(learner_key, data.obs[:1]), None, data

    def iterate(learner, env_state, data, key, index):
        sample_key, update_key = jax.random.split(key)
        indices = jax.random.randint(sample_key, (config.batch_size,), 0, size)
        batch = sample(data, indices, jax.random.fold_in(sample_key, 1))
        ones = jnp.ones(config.batch_size)
        batch = batch._replace(extras={**batch.extras, "weight": ones, "n_steps": ones})
        learner, metrics, _ = agent.update(learner, batch, update_key)
        return core.Iteration(learner, env_state, data, no_episodes, metrics)

    return core.make_train(config, env, agent, start=start, iterate=iterate, schedule=config.periods,
                           steps_per_iteration=1, start_keys=1, on_eval=on_eval)
