"""Classic control as pure JAX: cart-pole, pendulum, acrobot and the two mountain cars.

Each environment follows Gymnasium's reference implementation (``CartPole-v1``,
``Pendulum-v1``, ``Acrobot-v1``, ``MountainCar-v0``, ``MountainCarContinuous-v0``): the same
dynamics, constants, start-state distribution, observation, reward and termination, and the
same standard time limits (500, 200, 500, 200, 999 steps, applied by :func:`fnrl.envs.make`).
They are written here from the published equations (each class cites its source) rather than
adapted from gymnax, because gymnax 1.0.1 (the newest on PyPI when this was written, checked
with jax 0.10.2 and flax 0.12.8 in a fresh virtual environment) does not work cleanly: ``import gymnax`` fails
with ``ModuleNotFoundError: six`` (an undeclared dependency of its bsuite MNIST loader), it
pins ``gymnasium<1.4`` (so installing it downgrades the Gymnasium we test against) and it
pulls in pandas and seaborn for five small environments. Its dynamics, once ``six`` is added,
do agree with Gymnasium. The tests compare every environment with Gymnasium (1.4) step by step.

Conventions: the state is computed in float32 (Gymnasium uses float64, so trajectories agree
step by step to ~1e-6 and drift apart slowly in the chaotic systems); observations, rewards
and flags are float32; discrete actions are int32 scalars, continuous ones float32 of shape
``(1,)``. ``state.internal`` holds the physical state, e.g. ``(x, ẋ, θ, θ̇)`` for cart-pole.
As in Gymnasium, stepping an episode that has already terminated is allowed but meaningless.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import chex
import jax
import jax.numpy as jnp

from fnrl.envs import register
from fnrl.envs.core import Env, EnvState, Spec, as_float


def _angle_normalize(theta):
    """Wraps an angle to [-π, π)."""
    return jnp.mod(theta + jnp.pi, 2 * jnp.pi) - jnp.pi


class _Classic(Env):
    """Shared reset/step plumbing. Subclasses define ``spec``, ``_sample_initial(key) -> x``,
    ``_observe(x) -> obs`` and ``_dynamics(x, action) -> (x', reward, terminated)``."""

    name: str

    def reset(self, key: chex.PRNGKey) -> EnvState:
        x = self._sample_initial(key)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=self._observe(x), reward=zero, termination=zero, truncation=zero, internal=x)

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        action = self.spec.check_action(action, self.name)
        x, reward, terminated = self._dynamics(state.internal, action)
        return state.replace(
            obs=self._observe(x),
            reward=as_float(reward),
            termination=as_float(terminated),
            truncation=jnp.zeros((), jnp.float32),
            internal=x,
        )


@dataclasses.dataclass(frozen=True)
class CartPole(_Classic):
    """Cart-pole balancing (Barto, Sutton & Anderson 1983), as Gymnasium's ``CartPole-v1``.

    With F = ±force_mag (action 1 pushes right, 0 left), M = m_cart + m_pole and l the
    half-length of the pole::

        temp = (F + m_pole l θ̇² sin θ) / M
        θ̈    = (g sin θ − cos θ · temp) / (l (4/3 − m_pole cos²θ / M))
        ẍ    = temp − m_pole l θ̈ cos θ / M

    integrated by explicit Euler with τ = 0.02 s (positions from the old velocities). Reward
    +1 per step, including the terminating one; the episode terminates when |x| > 2.4 or
    |θ| > 12°. Start state ~ U(−0.05, 0.05)⁴; observation (x, ẋ, θ, θ̇).
    """

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold: float = 12 * 2 * math.pi / 360
    x_threshold: float = 2.4
    name = "cartpole"

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(4,), num_actions=2)

    def _sample_initial(self, key):
        return jax.random.uniform(key, (4,), jnp.float32, -0.05, 0.05)

    def _observe(self, x):
        return x

    def _dynamics(self, s, action):
        x, x_dot, theta, theta_dot = s
        total_mass = self.masscart + self.masspole
        polemass_length = self.masspole * self.length
        force = jnp.where(action == 1, self.force_mag, -self.force_mag)
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        s = jnp.stack([
            x + self.tau * x_dot,
            x_dot + self.tau * x_acc,
            theta + self.tau * theta_dot,
            theta_dot + self.tau * theta_acc,
        ])
        terminated = (jnp.abs(s[0]) > self.x_threshold) | (jnp.abs(s[2]) > self.theta_threshold)
        return s, 1.0, terminated


@dataclasses.dataclass(frozen=True)
class Pendulum(_Classic):
    """Torque-limited pendulum swing-up, as Gymnasium's ``Pendulum-v1``.

    With u = clip(a, −2, 2), semi-implicit Euler with dt = 0.05::

        θ̇' = clip(θ̇ + (3g / (2l) sin θ + 3 / (m l²) u) dt, −8, 8),   θ' = θ + θ̇' dt
        r  = −(normalize(θ)² + 0.1 θ̇² + 0.001 u²)

    with θ = 0 upright, l = ``length`` and normalize wrapping to [−π, π). Never terminates. Start state
    θ ~ U(−π, π), θ̇ ~ U(−1, 1); observation (cos θ, sin θ, θ̇).
    """

    g: float = 10.0
    m: float = 1.0
    length: float = 1.0
    dt: float = 0.05
    max_speed: float = 8.0
    max_torque: float = 2.0
    name = "pendulum"

    @property
    def spec(self) -> Spec:
        return Spec(
            observation_shape=(3,),
            action_shape=(1,),
            action_low=(-self.max_torque,),
            action_high=(self.max_torque,),
        )

    def _sample_initial(self, key):
        high = jnp.array([jnp.pi, 1.0], jnp.float32)
        return jax.random.uniform(key, (2,), jnp.float32, -high, high)

    def _observe(self, x):
        return jnp.stack([jnp.cos(x[0]), jnp.sin(x[0]), x[1]])

    def _dynamics(self, x, action):
        theta, theta_dot = x
        u = jnp.clip(action[0], -self.max_torque, self.max_torque)
        cost = _angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2
        acc = 3 * self.g / (2 * self.length) * jnp.sin(theta) + 3.0 / (self.m * self.length**2) * u
        theta_dot = jnp.clip(theta_dot + acc * self.dt, -self.max_speed, self.max_speed)
        return jnp.stack([theta + theta_dot * self.dt, theta_dot]), -cost, False


@dataclasses.dataclass(frozen=True)
class Acrobot(_Classic):
    """Acrobot swing-up (Sutton 1996; Sutton & Barto 1998, §11.3), as Gymnasium's ``Acrobot-v1``.

    Two links (masses m₁ = m₂ = 1, lengths l₁ = 1, centres of mass lc₁ = lc₂ = 0.5, moments
    of inertia I₁ = I₂ = 1), torque τ ∈ {−1, 0, +1} on the middle joint, with the book's
    equations of motion::

        d₁ = m₁lc₁² + m₂(l₁² + lc₂² + 2l₁lc₂ cos θ₂) + I₁ + I₂,   d₂ = m₂(lc₂² + l₁lc₂ cos θ₂) + I₂
        φ₂ = m₂lc₂g cos(θ₁ + θ₂ − π/2)
        φ₁ = −m₂l₁lc₂θ̇₂² sin θ₂ − 2m₂l₁lc₂θ̇₂θ̇₁ sin θ₂ + (m₁lc₁ + m₂l₁)g cos(θ₁ − π/2) + φ₂
        θ̈₂ = (τ + d₂/d₁ φ₁ − m₂l₁lc₂θ̇₁² sin θ₂ − φ₂) / (m₂lc₂² + I₂ − d₂²/d₁),   θ̈₁ = −(d₂θ̈₂ + φ₁)/d₁

    integrated by one classical Runge–Kutta-4 step of dt = 0.2 s; then the angles are wrapped
    to [−π, π) and the velocities clipped to ±4π, ±9π. Reward −1 per step and 0 on the step
    that terminates, which happens when the tip rises above the bar: −cos θ₁ − cos(θ₁+θ₂) > 1.
    Start state ~ U(−0.1, 0.1)⁴; observation (cos θ₁, sin θ₁, cos θ₂, sin θ₂, θ̇₁, θ̇₂).
    """

    dt: float = 0.2
    link_length_1: float = 1.0
    link_mass_1: float = 1.0
    link_mass_2: float = 1.0
    link_com_pos_1: float = 0.5
    link_com_pos_2: float = 0.5
    link_moi: float = 1.0
    max_vel_1: float = 4 * math.pi
    max_vel_2: float = 9 * math.pi
    gravity: float = 9.8
    name = "acrobot"

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(6,), num_actions=3)

    def _sample_initial(self, key):
        return jax.random.uniform(key, (4,), jnp.float32, -0.1, 0.1)

    def _observe(self, x):
        return jnp.stack([jnp.cos(x[0]), jnp.sin(x[0]), jnp.cos(x[1]), jnp.sin(x[1]), x[2], x[3]])

    def _derivatives(self, x, torque):
        m1, m2, l1 = self.link_mass_1, self.link_mass_2, self.link_length_1
        lc1, lc2, inertia, g = self.link_com_pos_1, self.link_com_pos_2, self.link_moi, self.gravity
        theta1, theta2, dtheta1, dtheta2 = x
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2)) + 2 * inertia
        d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + inertia
        phi2 = m2 * lc2 * g * jnp.cos(theta1 + theta2 - jnp.pi / 2)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * jnp.cos(theta1 - jnp.pi / 2)
            + phi2
        )
        ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2) - phi2) / (
            m2 * lc2**2 + inertia - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2])

    def _dynamics(self, x, action):
        torque = (action - 1).astype(jnp.float32)
        f = functools.partial(self._derivatives, torque=torque)
        k1 = f(x)
        k2 = f(x + self.dt / 2 * k1)
        k3 = f(x + self.dt / 2 * k2)
        k4 = f(x + self.dt * k3)
        x = x + self.dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        x = jnp.stack([
            _angle_normalize(x[0]),
            _angle_normalize(x[1]),
            jnp.clip(x[2], -self.max_vel_1, self.max_vel_1),
            jnp.clip(x[3], -self.max_vel_2, self.max_vel_2),
        ])
        terminated = -jnp.cos(x[0]) - jnp.cos(x[1] + x[0]) > 1.0
        return x, jnp.where(terminated, 0.0, -1.0), terminated


class _MountainCarBase(_Classic):
    """The mountain car's shared physics (Moore 1990; Sutton & Barto 2018, Example 10.1)::

        v' = clip(v + force · power − 0.0025 cos(3p), −0.07, 0.07)
        p' = clip(p + v', −1.2, 0.6),   v' = 0 if p' = −1.2 and v' < 0

    terminated when p' ≥ goal_position and v' ≥ goal_velocity. Start state p ~ U(−0.6, −0.4),
    v = 0; observation (p, v).
    """

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    gravity = 0.0025

    def _sample_initial(self, key):
        return jnp.stack([jax.random.uniform(key, (), jnp.float32, -0.6, -0.4), jnp.zeros((), jnp.float32)])

    def _observe(self, x):
        return x

    def _move(self, x, push):
        position, velocity = x
        velocity = velocity + push - self.gravity * jnp.cos(3 * position)
        velocity = jnp.clip(velocity, -self.max_speed, self.max_speed)
        position = jnp.clip(position + velocity, self.min_position, self.max_position)
        velocity = jnp.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return jnp.stack([position, velocity]), terminated


@dataclasses.dataclass(frozen=True)
class MountainCar(_MountainCarBase):
    """Discrete mountain car, as Gymnasium's ``MountainCar-v0``: actions {0: push left,
    1: no push, 2: push right} give force · power = (a − 1) · 0.001; goal p ≥ 0.5; reward −1
    per step. Physics: see :class:`_MountainCarBase`."""

    goal_position: float = 0.5
    goal_velocity: float = 0.0
    force: float = 0.001
    name = "mountaincar"

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(2,), num_actions=3)

    def _dynamics(self, x, action):
        x, terminated = self._move(x, (action - 1).astype(jnp.float32) * self.force)
        return x, -1.0, terminated


@dataclasses.dataclass(frozen=True)
class MountainCarContinuous(_MountainCarBase):
    """Continuous mountain car, as Gymnasium's ``MountainCarContinuous-v0``: force =
    clip(a, −1, 1), power = 0.0015, goal p ≥ 0.45; reward r = 100 · terminated − 0.1 a²
    (on the unclipped action, as Gymnasium). Physics: see :class:`_MountainCarBase`."""

    goal_position: float = 0.45
    goal_velocity: float = 0.0
    power: float = 0.0015
    name = "mountaincar_continuous"

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(2,), action_shape=(1,), action_low=(-1.0,), action_high=(1.0,))

    def _dynamics(self, x, action):
        x, terminated = self._move(x, jnp.clip(action[0], -1.0, 1.0) * self.power)
        return x, 100.0 * terminated - 0.1 * action[0] ** 2, terminated


register("cartpole", CartPole, max_episode_steps=500)
register("pendulum", Pendulum, max_episode_steps=200)
register("acrobot", Acrobot, max_episode_steps=500)
register("mountaincar", MountainCar, max_episode_steps=200)
register("mountaincar_continuous", MountainCarContinuous, max_episode_steps=999)

__all__ = ["CartPole", "Pendulum", "Acrobot", "MountainCar", "MountainCarContinuous"]
