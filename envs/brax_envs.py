"""Brax environments behind fnrl's functional interface: ``brax/<name>`` for every Brax env.

Brax's own environment classes (``brax.envs.get_environment``) are used as they are; this
module only translates states. Every name in Brax's registry is registered with Brax's
standard time limit of 1000 steps (applied by :func:`fnrl.envs.make` through
:class:`fnrl.envs.wrappers.TimeLimit`)::

    env = fnrl.envs.make("brax/ant", backend="positional")

``backend`` picks the physics pipeline ('generalized', 'positional', 'spring' or 'mjx'); left
out, each environment uses Brax's own default for it (``generalized`` for the locomotion
tasks). Brax's ``done`` from the raw environment is a true termination (e.g. the ant fell);
``truncation`` only ever comes from the time limit. Actions are in ``[-1, 1]^action_size``.

Reference: Freeman et al., "Brax -- A Differentiable Physics Engine for Large Scale Rigid
Body Simulation", NeurIPS Datasets and Benchmarks 2021.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import warnings

import chex
import jax
import jax.numpy as jnp

from fnrl.envs import register
from fnrl.envs.core import Env, EnvState, Spec, as_float

# mujoco.mjx prints "Failed to import warp" to stdout when the optional GPU package `warp` is
# absent (it is not needed on CPU or for Brax's own pipelines); keep that out of our output.
with contextlib.redirect_stdout(io.StringIO()):
    import brax.envs

BACKENDS = ("generalized", "positional", "spring", "mjx")
MAX_EPISODE_STEPS = 1000


class BraxEnv(Env):
    """One Brax environment; ``state.internal`` is Brax's own ``State``, passed back untouched.

    Args:
      name: a name in Brax's registry (``brax.envs._envs``), e.g. ``"ant"``.
      backend: physics pipeline, one of :data:`BACKENDS`; None keeps Brax's default.
      **kwargs: forwarded to the Brax environment's constructor (e.g. ``reset_noise_scale``).
    """

    def __init__(self, name: str, backend: str | None = None, **kwargs):
        if backend is not None:
            if backend not in BACKENDS:
                raise ValueError(f"brax/{name}: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
            kwargs["backend"] = backend
        _patch_legacy_jnp_clip()
        try:
            with _mujoco_warnings_as_python_warnings():
                self._brax = brax.envs.get_environment(name, **kwargs)
        except (TypeError, ValueError) as e:  # bad keyword or backend: one line, what was wrong
            raise ValueError(f"brax/{name}: {str(e).splitlines()[0]}") from None
        self.name = name
        self.backend = getattr(self._brax, "backend", None)  # None for Brax's physics-free test env "fast"

    @functools.cached_property
    def spec(self) -> Spec:  # type: ignore[override]
        # Brax's `observation_size` runs a reset eagerly; tracing its shape is enough.
        obs = jax.eval_shape(self._brax.reset, jax.random.PRNGKey(0)).obs
        size = self._brax.action_size
        return Spec(observation_shape=tuple(obs.shape), action_shape=(size,),
                    action_low=(-1.0,) * size, action_high=(1.0,) * size)

    @property
    def sys(self):
        """Brax's ``System`` (the model that its physics steps and its renderer draws)."""
        return self._brax.sys

    def reset(self, key: chex.PRNGKey) -> EnvState:
        return self._from_brax(self._brax.reset(key), info={})

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        chex.assert_shape(action, self.spec.action_shape,
                          custom_message=f"action of brax/{self.name} must have shape {self.spec.action_shape}")
        return self._from_brax(self._brax.step(state.internal, action), info=state.info)

    @staticmethod
    def _from_brax(brax_state, info) -> EnvState:
        return EnvState(obs=brax_state.obs, reward=as_float(brax_state.reward),
                        termination=as_float(brax_state.done),
                        truncation=jnp.zeros_like(as_float(brax_state.done)),
                        internal=brax_state, info=info)

    def __repr__(self) -> str:
        return f"BraxEnv({self.name!r}, backend={self.backend!r})"


@contextlib.contextmanager
def _mujoco_warnings_as_python_warnings():
    """Routes MuJoCo's model-compiler warnings (e.g. Brax's deprecated ``settotalmass``) to
    Python's ``warnings`` instead of stdout and a ``MUJOCO_LOG.TXT`` in the working directory."""
    import mujoco

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda msg: warnings.warn(f"MuJoCo: {msg.strip()}", stacklevel=2))
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def _patch_legacy_jnp_clip() -> None:
    """brax 0.14.2's fluid model (used by swimmer) calls ``jnp.clip(x, a_min=...)``, a keyword
    JAX has since removed; give ``brax.fluid`` alone a ``jnp`` whose ``clip`` accepts it."""
    import brax.fluid

    if "a_min" in inspect.signature(jnp.clip).parameters or isinstance(brax.fluid.jp, _LegacyClipNumpy):
        return
    brax.fluid.jp = _LegacyClipNumpy()


class _LegacyClipNumpy:
    """``jax.numpy`` with the pre-0.6 ``clip(a, a_min, a_max)`` signature."""

    def __getattr__(self, name):
        return getattr(jnp, name)

    @staticmethod
    def clip(a, a_min=None, a_max=None, **kwargs):
        return jnp.clip(a, min=kwargs.pop("min", a_min), max=kwargs.pop("max", a_max), **kwargs)


def brax_names() -> list[str]:
    """The environments Brax registers, as fnrl names (``brax/<name>``)."""
    return [f"brax/{name}" for name in sorted(brax.envs._envs)]


for _name in brax_names():
    register(_name, functools.partial(BraxEnv, _name.removeprefix("brax/")), max_episode_steps=MAX_EPISODE_STEPS)

__all__ = ["BraxEnv", "brax_names"]
