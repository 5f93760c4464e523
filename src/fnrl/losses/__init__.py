"""Loss primitives, by family.

- :mod:`fnrl.losses.policy` -- policy gradient, PPO clip / KL penalty, entropy, DDPG/TD3 and SAC actors.
- :mod:`fnrl.losses.value` -- value regression, TD(0), Q-learning, double-Q, n-step, expected SARSA.
- :mod:`fnrl.losses.offline` -- behavioural cloning, AWR/AWAC weights, IQL expectile, CQL penalty.
- :mod:`fnrl.losses.generative` -- ELBO of a Gaussian VAE and its conditional variant.
- :mod:`fnrl.losses.model` -- Gaussian NLL of a dynamics model with PETS's learned log-σ bounds.

Every name is re-exported here, so ``fnrl.losses.ppo_clip_loss`` works.
"""
from fnrl.losses.generative import *  # noqa: F401,F403
from fnrl.losses.model import *  # noqa: F401,F403
from fnrl.losses.offline import *  # noqa: F401,F403
from fnrl.losses.policy import *  # noqa: F401,F403
from fnrl.losses.value import *  # noqa: F401,F403
from fnrl.losses import generative, model, offline, policy, value

__all__ = [*policy.__all__, *value.__all__, *offline.__all__, *generative.__all__, *model.__all__]
