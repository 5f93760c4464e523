"""Twin delayed DDPG (Fujimoto, van Hoof & Meger 2018): DDPG with three changes.

    y = G + γ^m (1 − term) min_{i=1,2} Q_φ'_i(s', ã'),   ã' = clip(μ_θ'(s') + clip(σ̃ ε, −c, c), −1, 1)

1. clipped double Q: two critics, each regressed on the minimum of the two target critics;
2. target policy smoothing: clipped Gaussian noise on the target action (σ̃ = 0.2, c = 0.5);
3. delayed policy updates: the actor (trained on the first critic) and both target networks move
   once every ``policy_delay`` = 2 critic updates.

Everything else -- the losses (:func:`fnrl.losses.td_target`, :func:`fnrl.losses.mse_loss`,
:func:`fnrl.losses.deterministic_actor_loss`), Polyak targets and Gaussian exploration -- is
DDPG's: the agent is :func:`fnrl.algorithms.ddpg.make_agent` with these three switches.
"""
from __future__ import annotations

import dataclasses

from fnrl.algorithms import ddpg
from fnrl.config import check
from fnrl.offpolicy import Agent, make_off_policy_train

SUPPORTS = ddpg.SUPPORTS


@dataclasses.dataclass(frozen=True)
class Config(ddpg.Config):
    target_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2

    def __post_init__(self):
        super().__post_init__()
        check(self.target_noise >= 0, "target_noise", self.target_noise, ">= 0")
        check(self.noise_clip >= 0, "noise_clip", self.noise_clip, ">= 0")
        check(self.policy_delay > 0, "policy_delay", self.policy_delay, "a positive integer")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for TD3; see :mod:`fnrl.offpolicy`."""
    return make_off_policy_train(config, make_agent(config), on_eval)


def make_agent(config: Config) -> Agent:
    """TD3's environment, ``init``, ``explore``, ``act`` and ``update`` (see :mod:`fnrl.offpolicy`)."""
    return ddpg.make_agent(config, num_critics=2, target_noise=config.target_noise, noise_clip=config.noise_clip,
                           policy_delay=config.policy_delay)
