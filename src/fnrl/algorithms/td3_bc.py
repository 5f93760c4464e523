"""TD3+BC (Fujimoto & Gu 2021): TD3 learning from a dataset, its actor held near the data's actions.

    critics: L(φ_i) = Ê[(Q_φi(s, a) − y)²],   y = r + γ (1 − term) min_{j=1,2} Q_φ'j(s', ã'),
             ã' = clip(μ_θ'(s') + clip(σ̃ ε, −c, c), −1, 1)                      (TD3's target)
    actor:   L(θ) = −λ Ê[Q_φ1(s, μ_θ(s))] + Ê[(μ_θ(s) − a)²],   λ = α / sg(Ê|Q_φ1(s, μ_θ(s))|),  α = 2.5
    states:  s̃ = (s − μ_D) / (σ_D + 10⁻³), with the dataset's mean and standard deviation

The critic, its targets, target policy smoothing and the delayed actor are TD3's unchanged
(:mod:`fnrl.algorithms.td3`); the one change to the actor is the behavioural-cloning term, and
λ's normalisation by the mean |Q| makes α independent of the reward's scale. The observations
are standardised by the dataset's statistics (``normalize_obs``) in the updates and in the
evaluations alike. Evaluated with the deterministic actor μ_θ(s).

Composed of:
- :func:`fnrl.algorithms.ddpg.make_agent` with TD3's switches and ``bc_alpha`` (so
  :func:`fnrl.losses.td_target`, :func:`fnrl.losses.ensemble_td_loss`,
  :func:`fnrl.transforms.polyak_update`), whose actor loss becomes
  :func:`fnrl.losses.td3_bc_actor_loss`;
- :func:`fnrl.loops.offline.normalize_observations`; the dataset loop of :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses

from fnrl.agent import Agent
from fnrl.algorithms import ddpg, td3
from fnrl.config import field_of, non_negative, positive
from fnrl.loops import core, offline

SUPPORTS = ("continuous",)


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    env: str = "pendulum"
    alpha: float = non_negative(2.5)  # α: the weight of the normalised Q term against BC
    normalize_obs: bool = True  # standardise observations by the dataset's mean and std
    # TD3's (fnrl.algorithms.td3.Config), with the paper's learning rates; networks are `hidden_sizes`.
    actor_learning_rate: float = positive(3e-4)
    critic_learning_rate: float = positive(3e-4)
    tau: float = field_of(td3.Config, "tau")
    target_noise: float = field_of(td3.Config, "target_noise")
    noise_clip: float = field_of(td3.Config, "noise_clip")
    policy_delay: int = field_of(td3.Config, "policy_delay")
    exploration_noise: float = field_of(td3.Config, "exploration_noise")  # eval_policy="stochastic" only


def make_agent(config: Config, spec, dataset=None) -> Agent:
    """TD3's agent (:func:`fnrl.algorithms.ddpg.make_agent`) with ``bc_alpha=config.alpha``; with
    ``dataset`` and ``config.normalize_obs``, seeing observations standardised by its statistics."""
    agent = ddpg.make_agent(config, spec, num_critics=2, target_noise=config.target_noise,
                            noise_clip=config.noise_clip, policy_delay=config.policy_delay, bc_alpha=config.alpha)
    if dataset is not None and config.normalize_obs:
        agent = offline.normalize_observations(agent, dataset)
    return agent


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for TD3+BC on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    dataset = offline.load_dataset(config, env)
    return offline.make_train(config, env, make_agent(config, env.spec, dataset), dataset, on_eval)
