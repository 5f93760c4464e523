"""Tutorial (README, "Build a new algorithm from primitives"): PPO with an expectile critic.

Its critic minimises IQL's Ê[|τ − 1(Ĝ < V)| (Ĝ − V)²] on λ-returns Ĝ (Kostrikov et al. 2021); τ > ½ is optimistic.
"""
import argparse
import dataclasses

import jax
import optax

from fnrl import estimators, losses, networks, training
from fnrl.config import ConfigError, check


@dataclasses.dataclass(frozen=True)
class Config(training.OnPolicyConfig):
    expectile: float = 0.9  # τ; 0.5 is PPO's least squares
    def __post_init__(self):
        super().__post_init__()
        check(0 < self.expectile < 1, "expectile", self.expectile, "in (0, 1)")


def make_train(config: Config):
    """``train(key) -> (learner, metrics)``: fnrl's on-policy loop around this init / act / update."""
    env = training.make_env(config)
    net = networks.make_actor_critic(env.spec, networks.Torso(config.hidden_sizes, "tanh", orthogonal_init=True))
    optimizer = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))
    def init(key, obs):  # the learner is (params, optimiser state)
        return (params := net.init(key, obs)), optimizer.init(params)
    def act(learner, obs, key):
        return net.apply(learner[0], obs)[0].sample(seed=key), {}
    def loss(params, batch):
        dist, values = net.apply(params, batch["obs"])
        policy_loss = losses.ppo_clip_loss(dist.log_prob(batch["action"]), batch["log_prob"], batch["adv"], 0.2)
        value_loss = losses.expectile_loss(values, batch["target"], config.expectile)  # the new idea
        return policy_loss + value_loss, dict(policy_loss=policy_loss, value_loss=value_loss, value=values.mean())
    def step(learner, batch):  # one Adam step on a minibatch
        grads, metrics = jax.grad(loss, has_aux=True)(learner[0], batch)
        updates, opt_state = optimizer.update(grads, learner[1])
        return (optax.apply_updates(learner[0], updates), opt_state), metrics
    def update(learner, traj, key):  # GAE, left unnormalised so that τ's optimism reaches the policy
        (dist, values), (_, next_values) = net.apply(learner[0], traj.obs), net.apply(learner[0], traj.next_obs)
        adv = estimators.gae(traj.reward, values, next_values, traj.termination, traj.truncation, config.gamma, 0.95)
        batch = dict(obs=traj.obs, action=traj.action, log_prob=dist.log_prob(traj.action), adv=adv, target=adv + values)
        return training.minibatch_epochs(key, learner, batch, step, num_epochs=8, num_minibatches=16)
    return training.make_on_policy_train(config, env, init, act, update)


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
    _, metrics = jax.jit(jax.vmap(train))(jax.numpy.stack([jax.random.PRNGKey(seed) for seed in args.seeds]))
    print(f"evaluation return per seed after {metrics['step'][0, -1]} steps:", metrics["episode_return"][:, -1])
