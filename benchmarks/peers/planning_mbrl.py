"""mbrl-lib's side of ``benchmarks/planning.py``: CEM on a GaussianMLP ensemble, and PETS's MPC step.

Runs in a venv with mbrl-lib and PyTorch (not fnrl's; see ``benchmarks/planning.py`` for the set-up)
and prints ``RESULT`` lines that ``benchmarks/planning.py`` reads:

- ``name=mbrl_cem``: one CEM optimisation (``TrajectoryOptimizerAgent.plan``) from a pendulum
  observation, the objective being ``ModelEnv.evaluate_action_sequences`` on a
  ``OneDTransitionRewardModel`` wrapping a ``GaussianMLP`` ensemble (randomly initialised);
  ``plan_s`` is the best of ``--repeats`` timed calls after one untimed warm-up (``first_s``).
- ``name=mbrl_pets_step``: PETS acting, as ``mbrl.algorithms.pets`` does it: per real step
  ``agent.act(obs)`` (a full CEM replan) and ``env.step(action)`` on gymnasium's pendulum, over
  ``--steps`` steps; ``step_s`` is the best of ``--repeats`` episodes' mean time per step, after
  one untimed warm-up step.

Work per candidate step: ``--propagation expectation`` runs every member on the candidate's state
(``num_particles=1``); ``fixed_model`` (TS∞) or ``random_model`` (TS1) send each particle through one
member, so ``num_particles`` is set to the ensemble size. Either way every candidate step costs
``--members`` member evaluations, as in fnrl's ModelEnv (which computes every member each step).

mbrl-lib has no pendulum reward function; :func:`pendulum_reward` is gymnasium Pendulum-v1's cost in
mbrl-lib's ``reward_fn(act, next_obs)`` form (the angle and velocity read from ``next_obs``).

    /work/mbrl-venv/bin/python benchmarks/peers/planning_mbrl.py --members 5 --hidden 200 --layers 4 \\
        --horizon 30 --population 400 --elites 40 --iterations 5
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import omegaconf
import torch

import mbrl
import mbrl.env.termination_fns
import mbrl.models
import mbrl.planning
from gymnasium.envs.classic_control.pendulum import PendulumEnv

PROPAGATIONS = ("expectation", "fixed_model", "random_model")


def pendulum_reward(act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """r = −(θ² + 0.1 θ̇² + 0.001 u²), θ = atan2(sin θ, cos θ), u = clip(a, ±2); ``[B, 1]``."""
    assert len(next_obs.shape) == len(act.shape) == 2
    theta = torch.atan2(next_obs[:, 1], next_obs[:, 0])
    u = act[:, 0].clamp(-2.0, 2.0)
    return -(theta**2 + 0.1 * next_obs[:, 2] ** 2 + 0.001 * u**2).view(-1, 1)


def make_agent(args, env, generator):
    """(agent, model_env, num_particles): mbrl-lib's PETS agent on an untrained ensemble (pets.yaml's
    choices: normalised inputs in double precision, deltas as targets, SiLU)."""
    obs_size, act_size = env.observation_space.shape[0], env.action_space.shape[0]
    # out_size = obs + 1 (a reward output, as fnrl's members have); the known reward_fn is used.
    net = mbrl.models.GaussianMLP(
        in_size=obs_size + act_size, out_size=obs_size + 1, device=args.device, num_layers=args.layers,
        ensemble_size=args.members, hid_size=args.hidden, deterministic=False,
        propagation_method=args.propagation, learn_logvar_bounds=False,
        activation_fn_cfg={"_target_": "torch.nn.SiLU"})
    model = mbrl.models.OneDTransitionRewardModel(
        net, target_is_delta=True, normalize=True, normalize_double_precision=True, learned_rewards=True)
    model_env = mbrl.models.ModelEnv(env, model, mbrl.env.termination_fns.no_termination, pendulum_reward,
                                     generator=generator)
    optimizer_cfg = omegaconf.OmegaConf.create({
        "_target_": "mbrl.planning.CEMOptimizer", "num_iterations": args.iterations,
        "elite_ratio": args.elites / args.population, "population_size": args.population, "alpha": args.momentum,
        "lower_bound": "???", "upper_bound": "???", "return_mean_elites": True, "device": args.device,
        "clipped_normal": False})
    agent_cfg = omegaconf.OmegaConf.create({
        "_target_": "mbrl.planning.TrajectoryOptimizerAgent", "action_lb": "???", "action_ub": "???",
        "planning_horizon": args.horizon, "optimizer_cfg": optimizer_cfg, "replan_freq": 1, "verbose": False})
    particles = 1 if args.propagation == "expectation" else args.members
    agent = mbrl.planning.create_trajectory_optim_agent_for_model(model_env, agent_cfg, num_particles=particles)
    cem = agent.optimizer.optimizer
    cem.elite_num = args.elites  # elite_ratio * population rounds up; keep the count exact
    return agent, model_env, particles


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=200, help="units per hidden layer")
    parser.add_argument("--layers", type=int, default=4, help="hidden layers per member")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--population", type=int, default=400)
    parser.add_argument("--elites", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--momentum", type=float, default=0.1)
    parser.add_argument("--propagation", choices=PROPAGATIONS, default="expectation")
    parser.add_argument("--steps", type=int, default=10, help="real steps per timed PETS episode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.population % args.members:
        sys.exit(f"planning_mbrl: population={args.population} must be a multiple of members={args.members} "
                 "(mbrl-lib's GaussianMLP splits the batch among its members)")
    if not 0 < args.elites < args.population:
        sys.exit(f"planning_mbrl: elites={args.elites} must be in [1, population={args.population})")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=args.device)
    generator.manual_seed(args.seed)
    env = PendulumEnv()
    obs, _ = env.reset(seed=args.seed)
    agent, model_env, particles = make_agent(args, env, generator)
    info = (f"propagation={args.propagation} particles={particles} threads={torch.get_num_threads()} "
            f"torch={torch.__version__} mbrl={mbrl.__version__}")

    # CEM: one optimisation from the same observation each time. The untimed warm-up also counts
    # the rows the model environment steps (candidates x particles, each step of the horizon).
    rows = []
    step = model_env.step
    model_env.step = lambda actions, *a, **k: (rows.append(actions.shape[0]), step(actions, *a, **k))[1]
    start = time.perf_counter()
    agent.plan(obs)
    first_s = time.perf_counter() - start
    del model_env.step  # back to the class's method
    member_evals = sum(rows) * (args.members if args.propagation == "expectation" else 1)
    best = math.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        agent.plan(obs)
        best = min(best, time.perf_counter() - start)
    candidates = args.population * args.iterations
    print(f"RESULT name=mbrl_cem candidates_per_s={candidates / best:.1f} "
          f"candidate_steps_per_s={candidates * args.horizon / best:.1f} plan_s={best:.6f} first_s={first_s:.6f} "
          f"model_rows_per_plan={sum(rows)} member_evals_per_plan={member_evals} "
          f"{info}", flush=True)

    # PETS acting: replan every real step (replan_freq=1), step the real pendulum.
    agent.reset()
    start = time.perf_counter()
    action = agent.act(obs)
    first_s = time.perf_counter() - start
    obs, *_ = env.step(action)
    best = math.inf
    for _ in range(args.repeats):
        agent.reset()
        obs, _ = env.reset()
        start = time.perf_counter()
        for _ in range(args.steps):
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
        best = min(best, (time.perf_counter() - start) / args.steps)
    print(f"RESULT name=mbrl_pets_step step_s={best:.6f} first_s={first_s:.6f} steps={args.steps} {info}",
          flush=True)


if __name__ == "__main__":
    main()
