"""A behaviour model: a conditional VAE of the dataset's actions given the states, β(a|s).

    encoder   q_φ(z | s, a) = N(μ_φ(s, a), diag σ_φ²(s, a))
    decoder   p_θ(a | s, z) = N(tanh(μ_θ(s, z)), σ² I),   σ = ½ (or learned, state-independent)
    prior     p(z) = N(0, I),   z ∈ ℝ^k,   k = 2 · action dim (BCQ's latent size)
    loss      L(φ, θ) = Ê_(s,a)~D[−E_q log p_θ(a | s, z) + β_KL · KL(q_φ(z | s, a) ‖ p(z))],   β_KL = ½
    sample    â = tanh(μ_θ(s, z)),   z = clip(ε, −c, c),  ε ~ N(0, I),  c = ½

trained with :func:`fnrl.losses.vae_elbo` (the conditional ELBO; Kingma & Welling 2014, Sohn et
al. 2015) and sampled as BCQ's generative model G_ω (Fujimoto, Meger & Precup 2019, Sec. 4 and
App. D): clipping the latent to a box around the prior's mode keeps the decoded actions where the
data are dense, and the decoder's tanh keeps them in the action box ``(−1, 1)^d``. A sample is the
decoder's mean at that latent (BCQ decodes deterministically); the decoder's σ is part of the
density p_θ(a|s) = ∫ p(z) p_θ(a | s, z) dz, not of the samples. BCQ's loss, the squared error
plus ½ the KL, both averaged over their dimensions, is this one with σ = ½ up to a factor d
(Σ_j (a_j − â_j)² / (2σ²) + β_KL KL = 2 (Σ_j (a_j − â_j)² + ¼ KL)). The fixed σ matters: a
learned σ shrinks until the reconstruction term outweighs the KL by orders of magnitude, the
encoder then passes the action itself through z, and decoding a latent from the prior gives
an action that ignores the state.

A support estimate too: ``elbo`` is a lower bound on the model's log-density,
``ELBO(a|s) = E_q[log p_θ(a | s, z)] − KL(q(z|s, a) ‖ p(z)) ≤ log p_θ(a|s)``, with the gap
``KL(q(z|s, a) ‖ p_θ(z|s, a))`` -- high on the actions the dataset takes at s, low off them, so it
can flag (or penalise) out-of-distribution actions, as BEAR's or BRAC's behaviour density would.

Every function is pure over the model's parameters (a haiku pytree), works under ``jit``, ``vmap``
and ``grad``, and takes any leading batch dims ``[*batch]`` on states ``[*batch, *obs_shape]`` and
actions ``[*batch, d]``.

Composed of :func:`fnrl.networks.make_vae` (``squash=True``, conditioned on the flattened state)
and :func:`fnrl.losses.vae_elbo`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnrl import losses, networks

if TYPE_CHECKING:
    from fnrl.envs.core import Spec

__all__ = ["BehaviourModel", "make_behaviour_model"]


class BehaviourModel(NamedTuple):
    """The pure functions of a behaviour model (from :func:`make_behaviour_model`).

    Attributes:
      init: ``init(key, obs, action) -> params``.
      loss: ``loss(params, obs, action, key) -> (scalar, ELBOTerms)``: the β-weighted negative
        ELBO to minimise, and its terms (:class:`fnrl.losses.ELBOTerms`, per example).
      elbo: ``elbo(params, obs, action, key, num_samples=1) -> [*batch]``: ELBO(a|s) ≤ log p_θ(a|s),
        the support estimate (more samples of z, less noise).
      sample: ``sample(params, obs, key) -> [*batch, d]``: one decoded action per state, in (−1, 1).
      vae: the underlying :class:`fnrl.networks.VAE` (encode, decode), conditioned on the flattened state.
      latent_size: k.
    """

    init: Callable
    loss: Callable
    elbo: Callable
    sample: Callable
    vae: networks.VAE
    latent_size: int


def make_behaviour_model(spec: Spec, torso: networks.Torso = networks.Torso(), *, latent_size: int | None = None,
                         latent_clip: float | None = 0.5, kl_weight: float = 0.5,
                         decoder_std: float | None = 0.5) -> BehaviourModel:
    """The conditional VAE β(a|s) of the module docstring for a continuous ``spec``.

    Args:
      spec: the environment's spec (vector actions in [-1, 1]).
      torso: the encoder's and the decoder's MLP (BCQ's is (750, 750)).
      latent_size: k; default 2 · action dim (BCQ).
      latent_clip: c, the box [−c, c]^k that sampled latents are clipped to (BCQ: 0.5); None: no clipping.
      kl_weight: β_KL of the loss (BCQ: 0.5); ``elbo`` always uses 1.
      decoder_std: the decoder's σ (BCQ's loss: 0.5); None: learned.
    """
    action_size = networks._action_size(spec, "make_behaviour_model")
    obs_size = math.prod(spec.observation_shape)
    latent_size = 2 * action_size if latent_size is None else latent_size
    if latent_clip is not None and not latent_clip > 0:
        raise ValueError(f"make_behaviour_model: latent_clip must be positive or None, got {latent_clip!r}")
    if not kl_weight >= 0:
        raise ValueError(f"make_behaviour_model: kl_weight must be >= 0, got {kl_weight!r}")
    vae = networks.make_vae(action_size, latent_size, torso, condition_size=obs_size, squash=True,
                             decoder_std=decoder_std)

    def flat(obs):
        return networks._flatten_obs(obs, spec)[0]

    def init(key, obs, action):
        return vae.init(key, action, flat(obs))

    def terms(params, obs, action, key, num_samples=1, beta=1.0):
        s = flat(obs)
        q = vae.encode(params, action, s)
        return losses.vae_elbo(key, q.mean(), q.stddev(), lambda z: vae.decode(params, z, s).log_prob(action),
                               beta=beta, num_samples=num_samples)

    def loss(params, obs, action, key):
        out = terms(params, obs, action, key, beta=kl_weight)
        return out.loss, out

    def elbo(params, obs, action, key, num_samples=1):
        return terms(params, obs, action, key, num_samples).elbo

    def sample(params, obs, key):
        s = flat(obs)
        z = jax.random.normal(key, s.shape[:-1] + (latent_size,))
        if latent_clip is not None:
            z = jnp.clip(z, -latent_clip, latent_clip)
        return vae.decode(params, z, s).mean()

    return BehaviourModel(init, loss, elbo, sample, vae, latent_size)
