"""Planning throughput: fnrl's CEM on a learned ensemble against mbrl-lib's (PyTorch), side by side.

Both sides plan on pendulum's sizes (3-d observation, 1-d action) with untrained, randomly
initialised ensembles of the same shape (``--members`` Gaussian MLPs of ``--layers`` × ``--hidden``
SiLU units predicting the state change and the reward; throughput does not depend on the weights)
and the same CEM: ``--population`` candidates of ``--horizon`` steps, ``--elites`` elites,
``--iterations`` iterations, momentum 0.1, initial σ a quarter of the action range.

1. CEM: candidate action sequences evaluated per second by one plan from a pendulum state,
   population × iterations sequences (× horizon candidate steps, each through every member).
   fnrl: ``jit(planner.plan)`` of ``pets.Config(...).planner()`` on ``models.model_env`` of the
   ensemble (its parameters an argument of the compiled function, as in PETS). mbrl-lib:
   ``TrajectoryOptimizerAgent.plan`` with a ``CEMOptimizer`` on ``ModelEnv.evaluate_action_sequences``
   of a ``OneDTransitionRewardModel`` wrapping a ``GaussianMLP`` ensemble.
2. PETS: wall time per real step (one MPC action, a full replan, and the real environment's step).
   fnrl: ``pets.make_agent(config, env).act`` -- ``planning.mpc_policy(planner, models.model_env(...))``
   -- in ``rollout`` over ``--steps`` steps of the real pendulum, one compiled program, as
   ``fnrl.algorithms.pets`` acts. mbrl-lib: ``agent.act(obs)`` then ``env.step`` on gymnasium's
   pendulum, a Python loop of ``--steps`` steps, as ``mbrl.algorithms.pets`` acts.

Equal work: fnrl's ``ModelEnv`` computes every member at every step (``propagation``, default
PETS's ``tsinf``, then picks one member's prediction or their mean), so a candidate step costs
``--members`` member evaluations. mbrl-lib's ``expectation`` propagation with one particle does
the same (every member on the candidate's state, then the mean); ``fixed_model`` (TS∞, mbrl-lib's
PETS) and ``random_model`` (TS1) send each particle through one member, so they run with
``num_particles = members``. ``--mbrl-propagation`` chooses which are measured (default both
``expectation`` and ``fixed_model``); mbrl-lib's side prints the member evaluations it made.

Timing: steady state, best of ``--repeats`` after an untimed first call; fnrl's compilation
(``jit(...).lower(...).compile()``) and mbrl-lib's first call are printed apart. PyTorch runs with
``--threads`` threads (``torch.set_num_threads``, default 2 for a 2-core machine); XLA's CPU
backend uses every core. Ratios are fnrl's rate over mbrl-lib's (> 1: fnrl is faster). Measure on a
quiet machine: both sides run one after the other in this one process and its subprocesses.

mbrl-lib 0.2.0 (the newest) pins hydra-core 1.0.3, which does not import on Python 3.11 (a
dataclass with a mutable default), so its venv uses Python 3.10, here pyenv's. mbrl does not
depend on torch: install it beside it (PyPI's build, CUDA libraries included; it runs on the CPU)::

    "$(pyenv root)"/versions/3.10.13/bin/python -m venv /work/mbrl-venv
    /work/mbrl-venv/bin/pip install mbrl torch      # tested: mbrl 0.2.0, torch 2.14.1, numpy 2.2.6

    MBRL_PY=/work/mbrl-venv/bin/python python benchmarks/planning.py          # PETS's sizes
    MBRL_PY=/work/mbrl-venv/bin/python python benchmarks/planning.py --quick  # tiny smoke run
    python benchmarks/planning.py --mbrl-python /work/mbrl-venv/bin/python --population 1000 --steps 5

Without ``MBRL_PY`` or ``--mbrl-python`` only fnrl's side runs. The peer script,
``benchmarks/peers/planning_mbrl.py``, runs on its own too and prints ``RESULT`` lines.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

from fnrl import envs, models, planning
from fnrl.algorithms import pets
from fnrl.rollout import rollout

PEER = pathlib.Path(__file__).resolve().parent / "peers" / "planning_mbrl.py"
SIZES = ("members", "hidden", "layers", "horizon", "population", "elites", "iterations", "steps", "repeats")
DEFAULTS = dict(members=5, hidden=200, layers=4, horizon=30, population=400, elites=40, iterations=5, steps=10,
                repeats=3)
QUICK = dict(members=2, hidden=16, layers=2, horizon=5, population=20, elites=4, iterations=2, steps=3, repeats=2)


def _compile(fn, *args):
    """``(compiled, seconds)``: ``jax.jit(fn)`` lowered and compiled for ``args``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _best(compiled, *args, repeats: int) -> float:
    """The fastest of ``repeats`` calls, after one untimed call."""
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best


def pets_config(args) -> pets.Config:
    return pets.Config(env="pendulum", model_num_models=args.members, model_hidden_sizes=(args.hidden,) * args.layers,
                       horizon=args.horizon, population=args.population, elites=args.elites,
                       iterations=args.iterations, propagation=args.propagation)


def fnrl_cem(args) -> dict:
    """One CEM plan from a pendulum state on the ensemble as PETS builds its model environment."""
    config = pets_config(args)
    env = envs.make(config.env)
    agent_env = envs.wrap(env, auto_reset=False)  # what PETS's model models: actions in [-1, 1]
    spec = agent_env.spec
    ensemble = models.make_ensemble(spec, config.ensemble_config())
    planner = config.planner()
    reward_fn, termination_fn = models.reward_function(agent_env), models.termination_function(agent_env)
    key = jax.random.PRNGKey(args.seed)
    params = ensemble.init(key)
    obs = env.reset(jax.random.fold_in(key, 1)).obs

    def model_env(params):
        return models.model_env(ensemble, params, lambda k: jnp.zeros(spec.observation_shape), reward_fn,
                                termination_fn, config.propagation)

    initial = planner.init(spec)

    def plan(params, obs, key):
        model = model_env(params)
        state_key, plan_key = jax.random.split(key)
        return planner.plan(model, planning.observed_state(model)(obs, state_key), initial, plan_key).action

    compiled, compile_s = _compile(plan, params, obs, key)
    plan_s = _best(compiled, params, obs, key, repeats=args.repeats)
    candidates = args.population * args.iterations
    return {"candidates_per_s": candidates / plan_s, "candidate_steps_per_s": candidates * args.horizon / plan_s,
            "plan_s": plan_s, "compile_s": compile_s, "model_steps_per_plan": planner.model_steps,
            "member_evals_per_plan": planner.model_steps * args.members}


def fnrl_pets_step(args) -> dict:
    """PETS acting for ``args.steps`` real steps in one compiled rollout, as its loop acts."""
    config = pets_config(args)
    env = envs.make(config.env)
    agent = pets.make_agent(config, env)
    train_env = envs.wrap(env, num_envs=1)
    key = jax.random.PRNGKey(args.seed)
    env_state = train_env.reset(jax.random.fold_in(key, 1))
    learner = agent.init(key, env_state.obs)

    def explore(learner, obs, key):
        return agent.act(learner, obs, key, True)

    def run(learner, env_state, key):
        env_state, trajectory, _ = rollout(train_env, explore, learner, env_state, key, args.steps)
        return env_state, trajectory.reward

    compiled, compile_s = _compile(run, learner, env_state, key)
    episode_s = _best(compiled, learner, env_state, key, repeats=args.repeats)
    return {"step_s": episode_s / args.steps, "compile_s": compile_s}


def mbrl(args, propagation: str) -> dict[str, dict]:
    """The peer script's ``RESULT`` lines, by name, run with ``args.mbrl_python``."""
    command = [args.mbrl_python, str(PEER), "--propagation", propagation, "--threads", str(args.threads),
               "--seed", str(args.seed)] + [part for name in SIZES for part in (f"--{name}", str(getattr(args, name)))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"planning: mbrl-lib's side failed ({' '.join(command)}): {tail[0]}")
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            print(line, flush=True)
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            results[fields.pop("name")] = fields
    return results


def _result(name: str, values: dict, **extra) -> None:
    parts = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in {**values, **extra}.items()]
    print(f"RESULT name={name} " + " ".join(parts), flush=True)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in SIZES:
        parser.add_argument(f"--{name}", type=int, default=None,
                            help=f"default {DEFAULTS[name]} ({QUICK[name]} with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--propagation", choices=models.PROPAGATIONS, default="tsinf", help="fnrl's (PETS's default)")
    parser.add_argument("--mbrl-propagation", nargs="+", choices=("expectation", "fixed_model", "random_model"),
                        default=["expectation", "fixed_model"])
    parser.add_argument("--mbrl-python", default=os.environ.get("MBRL_PY"),
                        help="python of a venv with mbrl-lib and torch (default $MBRL_PY; none: fnrl only)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in SIZES:
        if getattr(args, name) is None:
            setattr(args, name, (QUICK if args.quick else DEFAULTS)[name])
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.elites >= args.population:
        parser.error(f"--elites ({args.elites}) must be smaller than --population ({args.population})")
    if args.mbrl_python and args.population % args.members:
        parser.error(f"--population ({args.population}) must be a multiple of --members ({args.members}): "
                     "mbrl-lib's GaussianMLP splits its batch among the members")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    candidates = args.population * args.iterations
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; best of {args.repeats}"
          + ("; --quick: tiny sizes, a smoke run, not a measurement" if args.quick else ""))
    print(f"ensemble: {args.members} members of {args.layers} x {args.hidden} SiLU, pendulum (3-d obs, 1-d action), "
          f"untrained; CEM: horizon {args.horizon}, population {args.population}, {args.elites} elites, "
          f"{args.iterations} iterations = {candidates:,} sequences, {candidates * args.horizon:,} candidate steps, "
          f"{candidates * args.horizon * args.members:,} member evaluations per plan", flush=True)

    cem = fnrl_cem(args)
    _result("fnrl_cem", cem, propagation=args.propagation, jax=jax.__version__)
    step = fnrl_pets_step(args)
    _result("fnrl_pets_step", step, steps=args.steps, propagation=args.propagation)
    peers = {}
    if args.mbrl_python:
        for propagation in args.mbrl_propagation:
            peers[propagation] = mbrl(args, propagation)
    else:
        print("mbrl-lib not run: give --mbrl-python or MBRL_PY (see this script's docstring)")

    print(f"\n1. CEM: candidate sequences per second (one plan of {candidates:,}; first s = fnrl's compilation, mbrl-lib's first call)")
    print(f"{'':<42} {'plan s':>10} {'sequences/s':>12} {'steps/s':>12} {'first s':>8} {'fnrl/this':>10}")
    print(f"{'fnrl (' + args.propagation + ')':<42} {cem['plan_s']:>10.4f} {cem['candidates_per_s']:>12,.0f} "
          f"{cem['candidate_steps_per_s']:>12,.0f} {cem['compile_s']:>8.2f} {'':>10}")
    for propagation, results in peers.items():
        peer = results["mbrl_cem"]
        label = f"mbrl-lib ({propagation}, {peer['particles']} particle{'s' if peer['particles'] != '1' else ''})"
        rate = float(peer["candidates_per_s"])
        print(f"{label:<42} {float(peer['plan_s']):>10.4f} {rate:>12,.0f} {float(peer['candidate_steps_per_s']):>12,.0f} "
              f"{float(peer['first_s']):>8.2f} {cem['candidates_per_s'] / rate:>10.2f}")
        if int(peer["member_evals_per_plan"]) != cem["member_evals_per_plan"]:
            print(f"  (unequal work: mbrl-lib made {peer['member_evals_per_plan']} member evaluations, fnrl "
                  f"{cem['member_evals_per_plan']})")

    print(f"\n2. PETS: wall time per real step (one MPC action + the real step; mean over {args.steps} steps; first s as above)")
    print(f"{'':<42} {'step s':>10} {'steps/s':>12} {'first s':>8} {'fnrl/this':>10}")
    print(f"{'fnrl (' + args.propagation + ', one compiled rollout)':<42} {step['step_s']:>10.4f} "
          f"{1 / step['step_s']:>12,.2f} {step['compile_s']:>8.2f} {'':>10}")
    for propagation, results in peers.items():
        peer = results["mbrl_pets_step"]
        step_s = float(peer["step_s"])
        print(f"{'mbrl-lib (' + propagation + ', Python loop)':<42} {step_s:>10.4f} {1 / step_s:>12,.2f} "
              f"{float(peer['first_s']):>8.2f} {step_s / step['step_s']:>10.2f}")
    print()
    for propagation, results in peers.items():
        _result(f"ratio_fnrl_over_mbrl_{propagation}",
                {"cem": cem["candidates_per_s"] / float(results["mbrl_cem"]["candidates_per_s"]),
                 "pets_step": float(results["mbrl_pets_step"]["step_s"]) / step["step_s"]})


if __name__ == "__main__":
    sys.exit(main())
