"""Where a training run's time goes: the environment, the policy, the learner, and fnrl itself.

For one configuration it times, in one process and on the same machine load (each program
compiled ahead of time, then run ``--repeats`` times alternately, best time kept):

* env:      the run's environment steps with uniformly random actions, in the same batched,
            auto-resetting environments the loop uses (``fnrl.rollout`` with no network);
* acting:   the same steps with the agent's exploring policy (``act(explore=True)``), minus env;
* updates:  the run's number of ``update`` calls on fixed data (one on-policy trajectory, or one
            replayed batch per update), with the same networks, batch sizes and optimiser;
* evaluate: the run's evaluations (``Train.evaluate``);
* whole:    the whole run, ``jit(train)(key)``;
* overhead: whole − env − acting − updates − evaluate: what the loop adds (trajectory and
            advantage plumbing, replay insertion and sampling, key schedule, episode tallies).

The configurations are those of ``../shared/peers`` side-by-side rows, by name:

    python benchmarks/breakdown.py                       # ppo-cartpole, dqn-cartpole, sac-pendulum
    python benchmarks/breakdown.py --runs ppo-brax-inverted_pendulum sac-brax-inverted_pendulum
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from fnrl import algorithms, envs
from fnrl.config import override
from fnrl.loops import core
from fnrl.rollout import rollout

# name -> (algorithm, env, total steps, --set overrides)
RUNS = {
    # PureJaxRL's PPO cartpole configuration (issue 16's first row).
    "ppo-cartpole": ("ppo", "cartpole", 499_712, ["num_envs=16", "rollout_length=128", "num_epochs=4",
                                                  "num_minibatches=4", "hidden_sizes=64,64", "num_evals=1"]),
    "dqn-cartpole": ("dqn", "cartpole", 100_000, ["num_evals=1"]),
    "sac-pendulum": ("sac", "pendulum", 50_000, ["num_evals=1"]),
    # Brax's preset shapes (issue 16's second and third rows).
    "ppo-brax-inverted_pendulum": ("ppo", "brax/inverted_pendulum", 1_013_760,
                                   ["num_envs=256", "rollout_length=40", "num_epochs=4", "num_minibatches=32",
                                    "hidden_sizes=32,32,32,32", "normalize_obs=true", "num_evals=1"]),
    "sac-brax-inverted_pendulum": ("sac", "brax/inverted_pendulum", 100_000,
                                   ["num_envs=128", "rollout_length=1", "updates_per_rollout=32", "batch_size=256",
                                    "hidden_sizes=256,256", "learning_starts=8192", "num_evals=1"]),
}


def programs(algo: str, env_name: str, steps: int, sets: list[str]):
    """``{part: (compiled program, args)}`` for one configuration, the whole run's compile
    time, and a description."""
    module = algorithms.get(algo)
    config = override(module.Config(env=env_name, total_steps=steps), sets)
    env = core.make_env(config)
    agent = module.make_agent(config, env.spec)
    train = module.make_train(config)
    offpolicy = hasattr(config, "updates_per_rollout")
    batched = envs.wrap(env, num_envs=config.num_envs, normalize_obs=getattr(config, "normalize_obs", False))
    iterations = config.periods.iterations
    length = config.rollout_length
    updates = iterations * (config.updates_per_rollout if offpolicy else 1)
    key = jax.random.PRNGKey(0)
    carry = jax.jit(train.init)(key)

    warmup = config.warmup_length if offpolicy else 0  # random-action steps per environment

    def collect(policy):
        def run(learner, env_state, key):
            warmup_key, key = jax.random.split(key)
            if warmup:
                env_state, _, _ = rollout(batched, random_policy, None, env_state, warmup_key, warmup)

            def one(state, k):
                state, _, _ = rollout(batched, policy, learner, state, k, length)
                return state, None
            return jax.lax.scan(one, env_state, jax.random.split(key, iterations))[0].obs
        return run

    def random_policy(_, obs, key):
        return batched.spec.sample_action(key, (obs.shape[0],)), {}

    def agent_policy(learner, obs, key):
        return agent.act(learner, obs, key, True)

    if offpolicy:
        from fnrl import replay

        batch, _ = replay.sample(carry.data.buffer, key, config.batch_size)
        batch = batch._replace(extras={**batch.extras, "weight": jnp.ones(config.batch_size)})
    else:
        _, batch, _ = rollout(batched, agent_policy, carry.learner, carry.env_state, key, length)

    def learn(learner, key):
        def one(learner, k):
            return agent.update(learner, batch, k).learner, None
        return jax.lax.scan(one, learner, jax.random.split(key, updates))[0]

    def evaluate(carry, key):
        metrics = jax.eval_shape(train.advance, carry)[1]
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), metrics)
        def one(carry, _):
            carry, row = train.evaluate(carry, zeros)
            return carry, row["episode_return"]  # returned, so that the evaluation is not dead code
        return jax.lax.scan(one, carry, None, config.num_evals)[1]

    parts = {
        "env": (collect(random_policy), (carry.learner, carry.env_state, key)),
        "policy": (collect(agent_policy), (carry.learner, carry.env_state, key)),
        "updates": (learn, (carry.learner, key)),
        "evaluate": (evaluate, (carry, key)),
        "whole": (train, (key,)),
    }
    compiled = {}
    for name, (fn, args) in parts.items():
        start = time.perf_counter()
        compiled[name] = (jax.jit(fn).lower(*args).compile(), args)
        compile_s = time.perf_counter() - start  # the last part's: the whole run
    env_steps = iterations * config.num_envs * length + train.initial_steps
    return compiled, compile_s, (f"{algo} on {env_name}: {env_steps:,} env steps, {updates:,} updates, "
                                 f"{config.num_evals} evals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["ppo-cartpole", "dqn-cartpole", "sac-pendulum"],
                        choices=sorted(RUNS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; best of {args.repeats}; seconds")
    print(f"{'run':<28} {'env':>8} {'acting':>8} {'updates':>8} {'evaluate':>8} {'whole':>8} "
          f"{'overhead':>9} {'overhead %':>10} {'compile':>8}")
    for name in args.runs:
        compiled, compile_s, description = programs(*RUNS[name])
        seconds = {part: float("inf") for part in compiled}
        for _ in range(args.repeats):  # alternate the programs, so all see the same load
            for part, (fn, fn_args) in compiled.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(*fn_args))
                seconds[part] = min(seconds[part], time.perf_counter() - start)
        acting = max(seconds["policy"] - seconds["env"], 0.0)
        overhead = seconds["whole"] - seconds["policy"] - seconds["updates"] - seconds["evaluate"]
        print(f"{name:<28} {seconds['env']:>8.2f} {acting:>8.2f} {seconds['updates']:>8.2f} "
              f"{seconds['evaluate']:>8.2f} {seconds['whole']:>8.2f} {overhead:>9.2f} "
              f"{100 * overhead / seconds['whole']:>9.1f}% {compile_s:>8.1f}", flush=True)
        print(f"  ({description})")


if __name__ == "__main__":
    main()
