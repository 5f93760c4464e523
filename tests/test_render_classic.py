"""fnrl.render for classic control: the right states, cut at the episode's end, drawn as GIF
frames that show them, and `fnrl render` on a cartpole run.

A constant push on cartpole (the pole falls within 10 steps) is compared with a reference that
steps the environment one jitted step at a time; the cart and the pole are then found in the
decoded frames by colour (black, tan) and must sit and lean where the state says. Classic
control only: no Brax environment is compiled here.
"""
from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageSequence

from fnrl import envs
from fnrl.cli import main
from fnrl.envs.wrappers import RunningStats, normalize
from fnrl.render import episode_format, episode_gif, episode_states, render_episode

KEY = jax.random.PRNGKey(0)
SHORT_STEPS = 20
# Frozen statistics that scale every observation by 10: var = m2 / count = 0.01.
STATS = RunningStats(jnp.float32(1.0), jnp.zeros(4), jnp.full(4, 0.01))
TINY = ["--set", "num_envs=2", "--set", "rollout_length=8", "--set", "num_evals=1", "--set", "eval_episodes=1",
        "--set", "hidden_sizes=8"]


def push(direction, obs, key):
    """Always the same cartpole action: 1 pushes the cart right, 0 (the zero policy) left."""
    return jnp.full(obs.shape[:1], direction, jnp.int32), {}


def balance(threshold, obs, key):
    """Pushes right when θ + θ̇ > ``threshold``: keeps the pole up for more than SHORT_STEPS."""
    return (obs[:, 2] + obs[:, 3] > threshold).astype(jnp.int32), {}


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("cartpole")


@pytest.fixture(scope="module")
def reference(cartpole):
    """``run(act, learner, max_steps, obs_stats)``: the states ``[frames, 4]`` of the episode
    ``episode_states`` should produce, stepped one jitted step at a time."""
    reset, step = jax.jit(cartpole.reset), jax.jit(cartpole.step)

    def run(act, learner, max_steps, obs_stats=None):
        reset_key, _ = jax.random.split(KEY)
        state = reset(jax.random.split(reset_key, 1)[0])  # Batch's key for its only env
        frames = [state.internal]
        for _ in range(max_steps):
            obs = state.obs[None] if obs_stats is None else normalize(obs_stats, state.obs[None], clip=10.0)
            state = step(state, act(learner, obs, None)[0][0])
            frames.append(state.internal)
            if state.termination or state.truncation:
                break
        return np.stack(frames)

    return run


def decode(gif: bytes) -> np.ndarray:
    """The GIF's frames as RGB pixels ``[frames, height, width, 3]``."""
    with Image.open(io.BytesIO(gif)) as image:
        assert image.format == "GIF"
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])


def columns(frame: np.ndarray, colour) -> np.ndarray:
    """Column indices of the pixels within 40 of ``colour`` in every channel."""
    close = np.all(np.abs(frame.astype(np.int32) - np.array(colour)) < 40, axis=-1)
    return np.nonzero(close)[1]


@pytest.fixture(scope="module", params=[0, 1], ids=["push left", "push right"])
def pushed(request, cartpole):
    """(direction, states, decoded frames) of a constant-push cartpole episode."""
    states = episode_states(cartpole, push, jnp.int32(request.param), KEY)
    return request.param, np.stack(states), decode(episode_gif(cartpole, states))


def test_the_gif_holds_the_episode_up_to_its_termination(pushed, reference):
    direction, states, frames = pushed
    expected = reference(push, jnp.int32(direction), 500)
    assert 2 < len(expected) <= 12  # the pole falls long before the 500-step limit: the cut is at termination
    np.testing.assert_allclose(states, expected, atol=1e-5)
    assert frames.shape == (len(expected), 240, 320, 3)  # the reset state + one frame per step, up to the fall


def test_the_frames_show_the_cart_where_x_is_and_the_pole_leaning_as_theta(pushed):
    direction, states, frames = pushed
    x, theta = states[:, 0], states[:, 2]
    cart = np.array([columns(f, (0, 0, 0)).mean() for f in frames])  # the black cart's centre, in pixels
    assert np.sign(x[-1] - x[0]) == (1 if direction else -1)  # (the push moves the cart its way)
    assert np.sign(cart[-1] - cart[0]) == np.sign(x[-1] - x[0]) and abs(cart[-1] - cart[0]) > 5
    assert np.corrcoef(cart, x)[0, 1] > 0.99  # drawn position follows x frame by frame
    pole = columns(frames[-1], (204, 153, 102)).mean()  # the tan pole's centre in the last frame
    assert abs(theta[-1]) > 0.2  # fallen past 12 degrees: pushing one way tips the pole the other
    assert np.sign(pole - cart[-1]) == np.sign(theta[-1]) and abs(pole - cart[-1]) > 3


def test_obs_stats_are_applied_and_max_steps_cuts_the_episode(cartpole, reference):
    states = np.stack(episode_states(cartpole, balance, jnp.float32(0.05), KEY, obs_stats=STATS,
                                     max_steps=SHORT_STEPS))
    assert states.shape == (SHORT_STEPS + 1, 4)
    np.testing.assert_allclose(states, reference(balance, jnp.float32(0.05), SHORT_STEPS, STATS), atol=1e-5)
    unnormalized = reference(balance, jnp.float32(0.05), SHORT_STEPS)
    assert np.abs(states - unnormalized).max() > 1e-2  # the statistics change the episode


ACTIONS = {"cartpole": 1, "acrobot": 2, "mountaincar": 2}  # discrete; the continuous envs get +1


@pytest.mark.parametrize("name", ["cartpole", "pendulum", "acrobot", "mountaincar", "mountaincar_continuous"])
def test_every_classic_environment_renders_a_moving_picture(name):
    env = envs.make(name)

    def act(learner, obs, key):
        if name in ACTIONS:
            return jnp.full(obs.shape[:1], ACTIONS[name], jnp.int32), {}
        return jnp.ones((obs.shape[0], 1)), {}

    assert episode_format(env) == "gif"
    frames = decode(render_episode(env, act, None, KEY, max_steps=8))
    assert frames.shape == (9, 240, 320, 3)
    drawing = frames[:, 20:]  # below the step label
    inked = np.any(drawing < 200, axis=-1).sum(axis=(1, 2))
    assert inked.min() > 300  # every frame draws something
    assert np.any(drawing[0] != drawing[-1])  # and the picture moves


@pytest.mark.parametrize("name", ["tabular/chain", "bandit/bernoulli"])
def test_an_environment_without_a_renderer_gets_one_line(name):
    with pytest.raises(ValueError) as error:
        render_episode(envs.make(name), push, None, KEY)
    message = str(error.value)
    assert "\n" not in message and "cartpole" in message and "brax/<env>" in message


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained REINFORCE cartpole run (one evaluation, one checkpoint)."""
    out = tmp_path_factory.mktemp("render") / "run"
    assert main(["train", "reinforce", "--env", "cartpole", "--steps", "64", "--out", str(out)] + TINY) == 0
    return out


def test_fnrl_render_writes_the_policy_episode_as_a_gif(trained, capsys):
    from fnrl import cli
    from fnrl.loops.core import obs_stats

    capsys.readouterr()
    assert main(["render", str(trained)]) == 0
    gif = trained / "episode.gif"  # the default for classic control
    assert capsys.readouterr().out.strip() == f"wrote {gif}"
    train, carry, _ = cli._load_policy(str(trained))
    expected = render_episode(train.env, train.act, carry.learner, KEY, obs_stats=obs_stats(carry))
    assert gif.read_bytes() == expected  # the saved policy's episode (seed 0), drawn deterministically

    short = trained / "short.gif"
    assert main(["render", str(trained), "--out", str(short), "--max-steps", "3"]) == 0
    assert decode(short.read_bytes()).shape[0] == 4


def test_fnrl_render_refuses_an_html_out_for_cartpole_before_loading_anything(trained, tmp_path, capsys,
                                                                             monkeypatch):
    from fnrl import cli

    monkeypatch.setattr(cli, "_load_policy", lambda run: pytest.fail("loaded the policy before checking --out"))
    capsys.readouterr()
    out = tmp_path / "episode.html"
    assert main(["render", str(trained), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fnrl: error: --out ") and "must end in .gif" in err[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []
