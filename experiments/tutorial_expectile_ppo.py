"""Tutorial (README, "Build a new algorithm from primitives"): PPO with an expectile critic.

The critic minimises IQL's expectile loss Ê[|τ − 1(Ĝ < V)| (Ĝ − V)²] on λ-returns Ĝ
(Kostrikov et al. 2021) instead of least squares; τ > ½ makes it an optimistic baseline.

An algorithm is a ``Config`` and a ``make_train(config)``. Everything between them is an
:class:`fnrl.agent.Agent` -- ``init``, ``act`` and ``update`` -- handed to the on-policy loop,
which owns the environments, the rollouts, evaluation and the key schedule.

    python experiments/tutorial_expectile_ppo.py --seeds 0 1 2 --expectile 0.9
    fnrl train experiments/tutorial_expectile_ppo.py --env cartpole --steps 100000 --out runs/tau
"""
import argparse
import dataclasses
from typing import Any, NamedTuple

import jax
import optax

from fnrl import estimators, losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import ConfigError, constrained
from fnrl.loops import core, onpolicy

# PPO's constants, written inline; any of them becomes a config field like `expectile`.
CLIP_EPSILON = 0.2
GAE_LAMBDA = 0.95
NUM_EPOCHS, NUM_MINIBATCHES = 8, 16
LEARNING_RATE, MAX_GRAD_NORM = 1e-3, 0.5


@dataclasses.dataclass(frozen=True)
class Config(onpolicy.OnPolicyConfig):
    """The on-policy loop's fields (environment, steps, num_envs × rollout_length, γ,
    evaluation) and the one this algorithm adds."""

    expectile: float = constrained(0.9, lambda tau: 0 < tau < 1, "in (0, 1)")  # 0.5: least squares


class Learner(NamedTuple):
    params: Any  # the actor-critic's
    opt_state: Any


def make_train(config: Config):
    """``train(key) -> (learner, metrics)``: the on-policy loop around this agent."""
    env = core.make_env(config)
    torso = networks.Torso(config.hidden_sizes, "tanh", orthogonal_init=True)
    net = networks.make_actor_critic(env.spec, torso)  # categorical on cartpole, Gaussian on pendulum
    optimizer = optax.chain(optax.clip_by_global_norm(MAX_GRAD_NORM), optax.adam(LEARNING_RATE))

    def init(key, obs):
        params = net.init(key, obs)
        return Learner(params, optimizer.init(params))

    def act(learner, obs, key, explore):
        dist, _ = net.apply(learner.params, obs)
        return distribution_action(dist, key, explore)

    def loss(params, batch):
        dist, values = net.apply(params, batch["obs"])
        log_prob = dist.log_prob(batch["action"])
        policy_loss = losses.ppo_clip_loss(log_prob, batch["old_log_prob"], batch["advantage"], CLIP_EPSILON)
        value_loss = losses.expectile_loss(values, batch["target"], config.expectile)  # the new idea
        metrics = {"policy_loss": policy_loss, "value_loss": value_loss, "value": values.mean()}
        return policy_loss + value_loss, metrics

    def minibatch_step(learner, minibatch):
        grads, metrics = jax.grad(loss, has_aux=True)(learner.params, minibatch)
        return Learner(*transforms.optimizer_step(optimizer, grads, learner.opt_state, learner.params)), metrics

    def update(learner, trajectory, key):
        # GAE from the parameters that collected the rollout (so their log-probabilities are
        # recomputed here rather than stored by act), left unnormalised so that the critic's
        # optimism reaches the policy.
        dist, values = net.apply(learner.params, trajectory.obs)
        _, next_values = net.apply(learner.params, trajectory.next_obs)
        advantages = estimators.gae(trajectory.reward, values, next_values, trajectory.termination,
                                    trajectory.truncation, config.gamma, GAE_LAMBDA)
        batch = {"obs": trajectory.obs, "action": trajectory.action, "advantage": advantages,
                 "old_log_prob": dist.log_prob(trajectory.action), "target": advantages + values}
        learner, metrics = onpolicy.minibatch_epochs(key, learner, batch, minibatch_step, NUM_EPOCHS,
                                                     NUM_MINIBATCHES)
        return UpdateOutput(learner, metrics)

    return onpolicy.make_train(config, env, Agent(init, act, update))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="PPO with an expectile critic on cartpole")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--expectile", type=float, default=0.9)
    args = parser.parse_args()
    try:
        train = make_train(Config(total_steps=args.steps, expectile=args.expectile))
    except ConfigError as error:
        parser.error(str(error))
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed in args.seeds])
    _, metrics = jax.jit(jax.vmap(train))(keys)  # every seed in one program
    print(f"evaluation return per seed after {metrics['step'][0, -1]} steps:", metrics["episode_return"][:, -1])
