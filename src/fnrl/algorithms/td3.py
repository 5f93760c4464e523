"""Twin delayed DDPG (Fujimoto, van Hoof & Meger 2018): DDPG with three changes.

    y = G + γ^m (1 − term) min_{i=1,2} Q_φ'_i(s', ã'),   ã' = clip(μ_θ'(s') + clip(σ̃ ε, −c, c), −1, 1)

1. clipped double Q: two critics, each regressed on the minimum of the two target critics;
2. target policy smoothing: clipped Gaussian noise on the target action (σ̃ = 0.2, c = 0.5);
3. delayed policy updates: the actor (trained on the first critic) and both target networks move
   once every ``policy_delay`` = 2 critic updates.

Everything else -- the losses (:func:`fnrl.losses.td_target`, :func:`fnrl.losses.ensemble_td_loss`,
:func:`fnrl.losses.deterministic_actor_loss`), Polyak targets and Gaussian exploration -- is
DDPG's: the agent is :func:`fnrl.algorithms.ddpg.make_agent` with these three switches.
"""
from __future__ import annotations

import dataclasses

from fnrl.agent import Agent
from fnrl.algorithms import ddpg
from fnrl.config import non_negative, positive_int
from fnrl.loops import core, offpolicy

SUPPORTS = ddpg.SUPPORTS


@dataclasses.dataclass(frozen=True)
class Config(ddpg.Config):
    target_noise: float = non_negative(0.2)
    noise_clip: float = non_negative(0.5)
    policy_delay: int = positive_int(2)


def make_agent(config: Config, spec) -> Agent:
    """TD3's agent: :func:`fnrl.algorithms.ddpg.make_agent` with its three switches."""
    return ddpg.make_agent(config, spec, num_critics=2, target_noise=config.target_noise,
                           noise_clip=config.noise_clip, policy_delay=config.policy_delay)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for TD3; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return offpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
