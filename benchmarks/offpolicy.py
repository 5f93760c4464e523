"""Off-policy throughput: the replay buffer, and SAC updates inside and outside the training loop.

1. Replay: one jitted ``lax.scan`` of ``--rounds`` rounds, each inserting ``--insert`` transitions
   (observations of dimension ``--obs-dim``, as a Brax locomotion task) and sampling a batch of
   ``--batch``; printed as transitions inserted + sampled per second, for uniform and
   prioritised sampling (with the priority update a TD learner does), at each capacity. With
   flashbax importable (it is not a dependency: install it in a separate venv that sees fnrl),
   its item buffers run the same rounds and the ratio fnrl/flashbax is printed.
2. SAC: updates/s of the bare update (``sac.make_agent(config, spec).update`` scanned over one
   replayed batch) and of the whole training program with one update per environment step
   (acting, replay, updates, evaluation); the ratio is the share of time spent in the update.

    python benchmarks/offpolicy.py
    python benchmarks/offpolicy.py --capacities 100000 --rounds 200 --sac-hidden 256 256
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from fnrl import envs, replay
from fnrl.algorithms import sac
from fnrl.types import Transition


def _best(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def _batch(key, size: int, obs_dim: int, act_dim: int = 6) -> Transition:
    k = jax.random.split(key, 3)
    obs = jax.random.normal(k[0], (size, obs_dim))
    return Transition(obs=obs, action=jax.random.uniform(k[1], (size, act_dim)),
                      reward=jax.random.normal(k[2], (size,)), termination=jnp.zeros(size), truncation=jnp.zeros(size), next_obs=obs + 1.0)


def fnrl_replay(capacity: int, args, prioritized: bool):
    example = jax.tree_util.tree_map(lambda x: x[0], _batch(jax.random.PRNGKey(0), 1, args.obs_dim))

    def round_(state, key):
        data_key, sample_key = jax.random.split(key)
        state = replay.insert(state, _batch(data_key, args.insert, args.obs_dim))
        if prioritized:
            batch, indices, weights = replay.sample_prioritized(state, sample_key, args.batch, 0.4)
            state = replay.update_priorities(state, indices, jnp.abs(batch.reward) + 1e-6, 0.6)
            return state, jnp.sum(batch.obs) + jnp.sum(weights)
        batch, _ = replay.sample(state, sample_key, args.batch)
        return state, jnp.sum(batch.obs)

    @jax.jit
    def run(key):
        state = replay.init(example, capacity, prioritized)
        state = replay.insert(state, _batch(key, capacity, args.obs_dim))  # start full
        return jax.lax.scan(round_, state, jax.random.split(key, args.rounds))[1]

    return run


def flashbax_replay(capacity: int, args, prioritized: bool):
    import flashbax as fbx

    example = jax.tree_util.tree_map(lambda x: x[0], _batch(jax.random.PRNGKey(0), 1, args.obs_dim))
    if prioritized:
        buffer = fbx.make_prioritised_item_buffer(capacity, 1, args.batch, add_batches=True, priority_exponent=0.6)
    else:
        buffer = fbx.make_item_buffer(capacity, 1, args.batch, add_batches=True)

    def round_(state, key):
        data_key, sample_key = jax.random.split(key)
        state = buffer.add(state, _batch(data_key, args.insert, args.obs_dim))
        sample = buffer.sample(state, sample_key)
        if prioritized:
            state = buffer.set_priorities(state, sample.indices, jnp.abs(sample.experience.reward) + 1e-6)
            return state, jnp.sum(sample.experience.obs) + jnp.sum(sample.probabilities)
        return state, jnp.sum(sample.experience.obs)

    @jax.jit
    def run(key):
        state = buffer.add(buffer.init(example), _batch(key, capacity, args.obs_dim))
        return jax.lax.scan(round_, state, jax.random.split(key, args.rounds))[1]

    return run


def bench_replay(args) -> None:
    try:
        import flashbax  # noqa: F401
        peer = True
    except ImportError:
        peer = False
    per_round = args.insert + args.batch
    print(f"replay: {args.rounds} rounds of insert {args.insert} + sample {args.batch}, obs dim {args.obs_dim}; "
          f"transitions/s (inserted + sampled), best of {args.repeats}" + ("" if peer else "; flashbax not installed"))
    columns = f" {'flashbax':>12} {'fnrl/flashbax':>14}" if peer else ""
    print(f"{'capacity':>10} {'sampling':>12} {'fnrl':>12}" + columns)
    key = jax.random.PRNGKey(1)
    for capacity in args.capacities:
        for prioritized in (False, True):
            ours = args.rounds * per_round / _best(fnrl_replay(capacity, args, prioritized), key, repeats=args.repeats)
            line = f"{capacity:>10} {'prioritised' if prioritized else 'uniform':>12} {ours:>12,.0f}"
            if peer:
                theirs = args.rounds * per_round / _best(flashbax_replay(capacity, args, prioritized), key,
                                                         repeats=args.repeats)
                line += f" {theirs:>12,.0f} {ours / theirs:>14.2f}"
            print(line, flush=True)


def bench_sac(args) -> None:
    config = sac.Config(env="pendulum", total_steps=args.sac_steps, num_envs=1, hidden_sizes=tuple(args.sac_hidden),
                        batch_size=args.batch, learning_starts=1000, num_evals=1, eval_episodes=4)
    env = envs.make(config.env)
    agent = sac.make_agent(config, env.spec)
    key = jax.random.PRNGKey(0)
    env_state = jax.vmap(env.reset)(jax.random.split(key, config.batch_size))
    learner = agent.init(key, env_state.obs)
    actions = jax.random.uniform(key, (config.batch_size, 1), minval=-1.0, maxval=1.0)
    batch = Transition(obs=env_state.obs, action=actions, reward=jnp.zeros(config.batch_size),
                       termination=jnp.zeros(config.batch_size), truncation=jnp.zeros(config.batch_size),
                       next_obs=env_state.obs, extras={"n_steps": jnp.ones(config.batch_size, jnp.int32),
                                                       "weight": jnp.ones(config.batch_size)})

    @jax.jit
    def bare(learner, key):
        def step(learner, key):
            learner, metrics, _ = agent.update(learner, batch, key)
            return learner, metrics["critic_loss"]
        return jax.lax.scan(step, learner, jax.random.split(key, args.sac_updates))[1]

    bare_rate = args.sac_updates / _best(bare, learner, key, repeats=args.repeats)
    train = jax.jit(sac.make_train(config))
    updates = config.periods.iterations * config.updates_per_rollout
    loop_rate = updates / _best(train, key, repeats=args.repeats)
    print(f"\nSAC on pendulum, networks {tuple(args.sac_hidden)}, batch {config.batch_size}, one update per env step:")
    print(f"{'bare updates/s':>16} {'train updates/s':>16} {'train/bare':>11}")
    print(f"{bare_rate:>16,.0f} {loop_rate:>16,.0f} {loop_rate / bare_rate:>11.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacities", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--insert", type=int, default=256, help="transitions inserted per round")
    parser.add_argument("--batch", type=int, default=256, help="transitions sampled per round (and SAC batch)")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sac-hidden", nargs="+", type=int, default=[64, 64])
    parser.add_argument("--sac-updates", type=int, default=2000)
    parser.add_argument("--sac-steps", type=int, default=6000, help="environment steps of the timed SAC run")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    bench_replay(args)
    bench_sac(args)


if __name__ == "__main__":
    main()
