"""fnrl.render: the right Brax states, cut at the episode's end, in a page that draws offline.

One zero-policy episode of brax/inverted_pendulum (it falls within 50 steps) and one short
episode with frozen observation statistics; both are compared frame by frame with a
reference that steps the environment one jitted step at a time. The screenshot test opens
the page in headless Chromium with every host name unresolvable, so it draws only if every
script is inlined; Brax's own CDN page, opened the same way, is the negative control.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
import zlib

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from fnrl import envs, render
from fnrl.envs.wrappers import RunningStats, normalize
from fnrl.render import RenderError, episode_states, render_episode, viewer_html

pytestmark = pytest.mark.brax

KEY = jax.random.PRNGKey(0)
MAX_STEPS = 50
SHORT_STEPS = 10
# Frozen statistics that scale every observation by 10: var = m2 / count = 0.01.
STATS = RunningStats(jnp.float32(1.0), jnp.zeros(4), jnp.full(4, 0.01))
CHROMIUM = "/usr/bin/chromium"


def act(gain, obs, key):
    """Pushes the cart by ``gain`` times the pole angle (obs[1]); gain 0 is the zero policy."""
    return jnp.clip(gain * obs[:, 1:2], -1.0, 1.0), {}


@pytest.fixture(scope="module")
def env():
    return envs.make("brax/inverted_pendulum")


@pytest.fixture(scope="module")
def reference(env):
    """``run(gain, max_steps, obs_stats)``: body poses ``[frames, bodies, 7]`` of the
    episode ``episode_states(env, act, gain, KEY, ...)`` should produce, stepped one at a time."""
    reset, step = jax.jit(env.reset), jax.jit(env.step)

    def run(gain, max_steps, obs_stats=None):
        reset_key, _ = jax.random.split(KEY)
        state = reset(jax.random.split(reset_key, 1)[0])  # Batch's key for its only env
        frames = [pose(state.internal.pipeline_state)]
        for _ in range(max_steps):
            obs = state.obs[None] if obs_stats is None else normalize(obs_stats, state.obs[None], clip=10.0)
            state = step(state, act(gain, obs, None)[0][0])
            frames.append(pose(state.internal.pipeline_state))
            if state.termination or state.truncation:
                break
        return np.stack(frames)

    return run


@pytest.fixture(scope="module")
def page(env):
    # The scripts are fetched once per machine into the user's cache, not into the per-session
    # FNRL_CACHE_DIR that conftest sets for compiled programs.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FNRL_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "fnrl"))
        return render_episode(env, act, jnp.float32(0.0), KEY, max_steps=MAX_STEPS)


@pytest.fixture(scope="module")
def short_states(env):
    return episode_states(env, act, jnp.float32(1.0), KEY, obs_stats=STATS, max_steps=SHORT_STEPS)


def pose(pipeline_state) -> np.ndarray:
    """Each body's position and rotation quaternion, ``[bodies, 7]``."""
    return np.concatenate([pipeline_state.x.pos, pipeline_state.x.rot], axis=-1)


def embedded_poses(page: str) -> np.ndarray:
    """Body poses ``[frames, bodies, 7]`` in the page's compressed system JSON."""
    encoded = re.search(r'var system = "([A-Za-z0-9+/=]+)"', page).group(1)
    system = json.loads(zlib.decompress(base64.b64decode(encoded)))
    return np.array([np.concatenate([frame["pos"], frame["rot"]], axis=-1) for frame in system["states"]["x"]])


def test_page_holds_the_episode_up_to_its_termination(page, reference):
    expected = reference(0.0, MAX_STEPS)
    assert 2 < len(expected) <= MAX_STEPS  # the pole falls before max_steps: the cut is at termination
    poses = embedded_poses(page)
    assert poses.shape == expected.shape  # the reset state + one frame per step, up to the fall
    np.testing.assert_allclose(poses, expected, atol=1e-4)
    assert np.abs(poses[-1] - poses[0]).max() > 0.05  # the pole did fall: the frames are not all alike


def test_obs_stats_are_applied_and_max_steps_cuts_the_episode(short_states, reference):
    poses = np.stack([pose(s) for s in short_states])
    assert poses.shape[0] == SHORT_STEPS + 1
    np.testing.assert_allclose(poses, reference(1.0, SHORT_STEPS, STATS), atol=1e-4)
    unnormalized = reference(1.0, SHORT_STEPS)
    assert np.abs(poses - unnormalized).max() > 1e-3  # the statistics change the episode (10x the tolerance)


def test_page_loads_nothing_from_the_network(page):
    assert re.search(r"https?://", page) is None
    assert '<script type="importmap">' in page and "es-module-shims" not in page


@pytest.mark.parametrize("bad", [{"env": "tabular/chain"}, {"max_steps": 0}, {"max_steps": 2.5}])
def test_bad_input_gets_a_one_line_value_error(env, bad):
    target = envs.make(bad["env"]) if "env" in bad else env
    with pytest.raises(ValueError) as error:
        render_episode(target, act, jnp.float32(0.0), KEY, max_steps=bad.get("max_steps"))
    message = str(error.value)
    assert "\n" not in message
    assert ("brax/<env>" in message) if "env" in bad else ("max_steps" in message)


def test_a_failed_download_names_the_url_and_where_to_put_the_file(env, short_states, tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("FNRL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RenderError) as error:
        viewer_html(env.unwrapped.sys, short_states)
    message = str(error.value)
    assert "\n" not in message and "no network" in message
    assert re.search(r"https://registry\.npmjs\.org/(\S+)/-/\1-[\d.]+\.tgz", message)  # what could not be fetched
    assert str(tmp_path / "js") in message  # where to save it by hand


def test_a_tarball_with_the_wrong_hash_is_refused(env, short_states, tmp_path, monkeypatch):
    monkeypatch.setenv("FNRL_CACHE_DIR", str(tmp_path))
    (tmp_path / "js").mkdir()
    for name, package in render._PACKAGES.items():  # files saved by hand, all corrupt
        (tmp_path / "js" / f"{name}-{package.version}.tgz").write_bytes(b"not the package")
    with pytest.raises(RenderError, match=r"sha512 differs from the pinned sha512-") as error:
        viewer_html(env.unwrapped.sys, short_states)
    assert "\n" not in str(error.value)
    assert not [p for p in (tmp_path / "js").iterdir() if p.is_dir()]  # nothing was extracted


@pytest.mark.parametrize("edit, complaint", [
    (lambda page: page.replace('type="importmap"', 'type="module"'), "expected the import map once"),
    (lambda page: page.replace("three@0.150.1", "three@0.170.0"), "no longer loads three@0.150.1"),
    (lambda page: page.replace("</body>", '<img src="https://example.com/logo.png"></body>'),
     "loads https://example.com/logo.png"),
], ids=["import map gone", "other three.js version", "another CDN URL"])
def test_a_changed_brax_template_fails_loudly(env, short_states, monkeypatch, edit, complaint):
    original = render.html.render
    monkeypatch.setattr(render.html, "render", lambda *args, **kwargs: edit(original(*args, **kwargs)))
    with pytest.raises(RenderError, match=re.escape(complaint)) as error:
        viewer_html(env.unwrapped.sys, short_states)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")  # module scope: checked before the module's episodes compile
def chromium():
    """Debian's Chromium. Without it the screenshot test is skipped, except under CI=true
    (.ci/run installs it), where it must run."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and no {CHROMIUM}: the screenshot test must run in CI; "
                        "install it with `apt-get install chromium`", pytrace=False)
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (`apt-get install chromium`) to run it")
    return CHROMIUM


def screenshot(chromium: str, page: str, folder) -> np.ndarray:
    """RGB pixels ``[480, 640, 3]`` in [0, 1] of ``page`` in headless Chromium (software
    WebGL, every host name unresolvable), after 5 s of virtual time."""
    html, png = folder / "page.html", folder / "page.png"
    html.write_text(page)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={folder / 'profile'}", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000", "--window-size=640,480",
         f"--screenshot={png}", html.as_uri()],
        check=True, capture_output=True, timeout=120)
    return matplotlib.image.imread(png)[..., :3]


def body_shades(image: np.ndarray) -> tuple[int, int]:
    """(pixels, distinct colours) in warm shades (r > g > b): the pendulum in Brax's default
    body colour (0.4, 0.33, 0.26) under the scene's lights. The background, the rail and the
    GUI panel are grey, white and black, and a page that failed to load is white."""
    pixels = np.round(image * 255).astype(np.int32).reshape(-1, 3)
    warm = pixels[(pixels[:, 0] > pixels[:, 1]) & (pixels[:, 1] > pixels[:, 2])]
    return len(warm), len(np.unique(warm, axis=0))


def test_screenshot_shows_the_scene_offline(chromium, page, env, short_states, tmp_path):
    drawn = screenshot(chromium, page, tmp_path)
    count, shades = body_shades(drawn)
    assert count >= 200 and shades >= 30, (count, shades)  # a lit 3-D body, not a flat fill
    background = np.unique(drawn.reshape(-1, 3), axis=0, return_counts=True)[1].max()
    assert background > 0.5 * drawn.shape[0] * drawn.shape[1]  # the viewer's backdrop fills the window

    from brax.io import (
        html,  # negative control: Brax's own page loads its scripts from CDNs
    )
    (tmp_path / "cdn").mkdir()
    cdn = screenshot(chromium, html.render(env.unwrapped.sys, short_states), tmp_path / "cdn")
    assert body_shades(cdn)[0] == 0


def test_fnrl_render_refuses_a_gif_out_for_brax_before_loading_anything(tmp_path, capsys):
    """Only config.json is needed: --out is checked before the checkpoint is looked for."""
    from fnrl.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "seed": 0,
                                                 "config": {"env": "brax/inverted_pendulum"}}))
    capsys.readouterr()
    assert main(["render", str(run), "--out", str(tmp_path / "episode.gif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "brax/inverted_pendulum renders as an HTML page, so --out must end in .html" in err[0]
    assert main(["render", str(run)]) == 2  # the default DIR/episode.html fits; then: no checkpoint
    assert "holds no checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.json", "run"]
