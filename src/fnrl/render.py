"""One episode of a policy, drawn: an animated GIF for classic control, an HTML viewer for Brax.

    gif = render_episode(fnrl.envs.make("cartpole"), act, learner, jax.random.PRNGKey(0))   # bytes
    html = render_episode(fnrl.envs.make("brax/ant"), act, learner, jax.random.PRNGKey(0))  # str

:func:`episode_states` runs one episode of a policy (one jitted ``lax.scan``) and collects the
environment's physical states: Brax's pipeline states, or a classic-control environment's
state vector (``EnvState.internal``, e.g. ``(x, ẋ, θ, θ̇)`` for cart-pole).
:func:`episode_format` says which file an environment renders to; tabular and bandit
environments have no renderer.

Classic control (:func:`episode_gif`): each frame is drawn with matplotlib (Agg, through a
``Figure`` of its own: pyplot's global state is untouched) from the true state and the
environment's own geometry (pole length and track limits, link lengths, the hill), labelled
with its step, and the frames are written as a GIF with Pillow.

Brax (:func:`viewer_html`): rendered with ``brax.io.html.render``, with every script that
page would load from a CDN inlined, so the file opens anywhere, offline:

- Brax's viewer modules (``brax/visualizer/js/*.js``, shipped in the brax wheel) become
  import-map entries pointing at ``data:`` URLs; their relative imports (``./animator.js``)
  are rewritten to bare ``brax-viewer/...`` specifiers that the import map resolves.
- three.js, lil-gui and pako -- the exact versions Brax's template pins -- come from their npm
  registry tarballs, checked against the sha512 integrity hashes pinned below, and cached as
  extracted files in ``$FNRL_CACHE_DIR/js`` (default ``~/.cache/fnrl/js``). Offline, put the
  tarball there by hand (the error message says where).
- es-module-shims is dropped (browsers have had import maps since 2023).

Every edit of Brax's template must match exactly once, and the result must not name an
``http(s)://`` URL: when a Brax release changes its template, rendering fails with one line
saying what changed instead of writing a page that silently needs the network.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.resources
import io
import json
import operator
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnrl import envs
from fnrl.envs.brax_envs import BraxEnv
from fnrl.loops.evaluation import episode_limit, start_episodes

from brax.io import html  # isort: skip -- after brax_envs, which keeps Brax's import-time prints quiet


class RenderError(RuntimeError):
    """The viewer could not be built (a script could not be fetched or verified, or Brax's
    HTML template changed); the message is one line saying what and how to fix it."""


class _Package(NamedTuple):
    version: str
    integrity: str  # the registry's ``dist.integrity`` of the tarball
    files: tuple[str, ...]  # the files we use, relative to the tarball's ``package/``


# The versions Brax 0.14's visualizer/index.html loads; hashes from registry.npmjs.org metadata.
_PACKAGES = {
    "three": _Package("0.150.1", "sha512-5C1MqKUWaHYo13BX0Q64qcdwImgnnjSOFgBscOzAo8MYCzEtqfQqorEKMcajnA3FHy1yVlIe9AmaMQ0OQracNA==",
                      ("build/three.module.js", "examples/jsm/controls/OrbitControls.js")),
    "lil-gui": _Package("0.18.0", "sha512-9Zt0oW8KDy8mT8QTXTjAEmNT9Je9KLoCWUYiJD5DaB6eHoZ3hQYGt2JRJbCUHcvYgpwgcTHtzS9JFmN37vGyzw==",
                        ("dist/lil-gui.esm.min.js",)),
    "pako": _Package("2.1.0", "sha512-w+eufiZ1WuJYgPXbV/PO3NCMEc3xqylkKHzp8bxp1uW4qaSNQUkwmLLEc3kKsfz8lpV1F8Ht3U1Cm+9Srog2ug==",
                     ("dist/pako.min.js",)),
}

# Bare module specifiers Brax's viewer imports -> (npm package, file). pako is a classic script.
_MODULES = {
    "three": ("three", "build/three.module.js"),
    "three/addons/controls/OrbitControls.js": ("three", "examples/jsm/controls/OrbitControls.js"),
    "lilgui": ("lil-gui", "dist/lil-gui.esm.min.js"),
}
_VIEWER_PREFIX = "brax-viewer/"  # bare specifiers given to Brax's own viewer modules
_IMPORT = re.compile(r"""\b(from|import)(\s*)(['"])([^'"]+)\3""")  # static ES module imports


def render_episode(env: envs.Env, act: Callable, learner: Any, key, obs_stats=None,
                   max_steps: int | None = None) -> str | bytes:
    """One episode of ``act(learner, obs, key) -> (action, extras)`` on ``env`` (an unbatched
    environment from :func:`fnrl.envs.make`, possibly wrapped), drawn as
    :func:`episode_format` says: for classic control the bytes of an animated GIF
    (:func:`episode_gif`), for ``brax/<name>`` a self-contained HTML page (:func:`viewer_html`).

    Raises:
      ValueError: ``env`` has no renderer (one line naming those that do), or ``max_steps``
        is not a positive integer.
      RenderError: the Brax viewer's scripts could not be provided (one line: what and how).
    """
    states = episode_states(env, act, learner, key, obs_stats, max_steps)
    if episode_format(env) == "gif":
        return episode_gif(env, states)
    return viewer_html(_brax_env(env).sys, states)


def episode_format(env: envs.Env) -> str:
    """The file :func:`render_episode` makes of ``env``: ``"gif"`` (classic control) or
    ``"html"`` (Brax); a one-line ValueError naming the renderable environments otherwise."""
    inner = env.unwrapped
    if isinstance(inner, BraxEnv):
        return "html"
    if getattr(inner, "name", None) in _CLASSIC:
        return "gif"
    raise ValueError(f"cannot render {getattr(inner, 'name', None) or type(inner).__name__}: fnrl.render draws "
                     f"classic control ({', '.join(_CLASSIC)}) as a GIF and brax/<env> environments as HTML")


def episode_states(env: envs.Env, act: Callable, learner: Any, key, obs_stats=None,
                   max_steps: int | None = None) -> list:
    """The physical states of one episode: the reset state, then one per step up to and
    including the step that ends the episode (termination or truncation), at most
    ``max_steps`` steps (default: :func:`fnrl.loops.evaluation.episode_limit`).

    The episode runs exactly as :func:`fnrl.loops.evaluation.evaluate` runs its episodes
    (:func:`fnrl.loops.evaluation.start_episodes`, here with one episode, and the same key splits);
    with the same key it is the episode ``evaluate(..., num_episodes=1)`` scores. Every fnrl
    wrapper passes ``EnvState.internal`` through untouched (with a batch axis of 1), so there
    it is the environment's own state: for Brax a ``State``, whose ``pipeline_state`` is
    collected; for classic control the state vector itself (a numpy array per frame).
    """
    physical = _physical_state(env)
    if max_steps is None:
        max_steps = episode_limit(env)
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps <= 0:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")

    @jax.jit
    def run(learner, key, obs_stats):
        reset_key, key = jax.random.split(key)
        batched, state = start_episodes(env, 1, reset_key, obs_stats)

        def step(state, step_key):
            action, _ = act(learner, state.obs, step_key)
            state = batched.step(state, action)
            done = jnp.maximum(state.termination, state.truncation)[0] > 0
            return state, (physical(state.internal), done)

        _, (states, done) = jax.lax.scan(step, state, jax.random.split(key, int(max_steps)))
        length = jnp.where(done.any(), jnp.argmax(done) + 1, max_steps)
        return physical(state.internal), states, length

    first, states, length = jax.device_get(run(learner, key, obs_stats))
    frames = jax.tree_util.tree_map(lambda f, s: np.concatenate([f, s[:length, 0]]), first, states)
    return [jax.tree_util.tree_map(operator.itemgetter(t), frames) for t in range(int(length) + 1)]


def _physical_state(env: envs.Env) -> Callable:
    """What :func:`episode_states` collects from ``EnvState.internal``."""
    if episode_format(env) == "gif":
        return lambda internal: internal
    return lambda internal: internal.pipeline_state


def episode_gif(env: envs.Env, states: list, dpi: int = 80) -> bytes:
    """An animated GIF (bytes) of ``states`` (classic-control state vectors, e.g. from
    :func:`episode_states`) of ``env``: one 4 x 3 inch frame per state (320 x 240 pixels at
    the default ``dpi``), shown at the frame rate Gymnasium renders the environment at (to
    the nearest 10 ms), each labelled with its step (which also keeps Pillow from merging
    identical frames into one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    if episode_format(env) != "gif":  # (itself a one-line ValueError for an env with no renderer)
        raise ValueError("episode_gif draws classic control; a Brax environment renders as HTML (viewer_html)")
    if not states:
        raise ValueError("episode_gif needs at least one state")
    inner = env.unwrapped
    draw, fps = _CLASSIC[inner.name]
    figure = Figure(figsize=(4, 3), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    frames = []
    for t, state in enumerate(states):
        ax.clear()
        ax.set_axis_off()
        draw(ax, inner, np.asarray(state, np.float64))
        ax.set_aspect("equal", adjustable="box")  # true proportions, centred in the frame
        ax.text(0.02, 0.97, f"{inner.name}  step {t}", transform=figure.transFigure, ha="left", va="top",
                fontsize=8, color="0.4")
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]))
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=10 * round(100 / fps),
                   loop=0)  # GIF delays are whole centiseconds
    return buffer.getvalue()


# Classic control, drawn as Gymnasium draws it (its colours and proportions), in world units
# with y up. Each function draws one whole frame of ``state`` (the env's ``internal``).

def _draw_cartpole(ax, env, state) -> None:
    """The track between the termination limits ±x_threshold, the cart (black) at x and the
    pole (tan), 2·length long (``length`` is the half-length), tilted by θ (θ > 0 leans to +x)."""
    from matplotlib.patches import Circle, Polygon, Rectangle

    x, _, theta, _ = state
    limit, pole = env.x_threshold, 2 * env.length
    ax.plot([-limit - 0.5, limit + 0.5], [0, 0], [-limit, -limit], [-0.1, 0.1], [limit, limit], [-0.1, 0.1],
            color="0.5", lw=1, zorder=0)
    ax.add_patch(Rectangle((x - 0.25, -0.15), 0.5, 0.3, color="black"))
    tilt = np.array([np.sin(theta), np.cos(theta)])
    across = 0.04 * np.array([tilt[1], -tilt[0]])
    base = np.array([x, 0.1])
    ax.add_patch(Polygon([base - across, base + across, base + across + pole * tilt, base - across + pole * tilt],
                         color=(0.8, 0.6, 0.4)))
    ax.add_patch(Circle(base, 0.04, color=(0.5, 0.5, 0.8)))
    ax.set_xlim(-limit - 0.5, limit + 0.5)
    ax.set_ylim(-0.4, pole + 0.4)


def _draw_pendulum(ax, env, state) -> None:
    """The rod (red), ``length`` long, from the pivot at angle θ from upright (θ > 0
    counter-clockwise, the direction of positive torque)."""
    theta, reach = state[0], env.length
    tip = reach * np.array([-np.sin(theta), np.cos(theta)])
    ax.plot([0, tip[0]], [0, tip[1]], color=(0.8, 0.3, 0.3), lw=8, solid_capstyle="round")
    ax.plot([0], [0], "o", color="black", ms=4)
    ax.set_xlim(-1.2 * reach, 1.2 * reach)
    ax.set_ylim(-1.2 * reach, 1.2 * reach)


def _draw_acrobot(ax, env, state) -> None:
    """Both links (teal; each ``link_length_1`` long, as the env's tip test assumes) from the
    fixed pivot, θ₁ from hanging down and θ₂ relative to the first link, and the bar the tip
    must rise above (height 1)."""
    theta1, theta2 = state[0], state[1]
    length = env.link_length_1
    elbow = length * np.array([np.sin(theta1), -np.cos(theta1)])
    tip = elbow + length * np.array([np.sin(theta1 + theta2), -np.cos(theta1 + theta2)])
    reach = 2 * length + 0.2
    ax.plot([-reach, reach], [1.0, 1.0], color="black", lw=1)
    ax.plot([0, elbow[0], tip[0]], [0, elbow[1], tip[1]], color=(0.0, 0.8, 0.8), lw=6, solid_capstyle="round")
    ax.plot([0, elbow[0]], [0, elbow[1]], "o", color=(0.8, 0.8, 0.0), ms=4)
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)


def _hill(position):
    """The height Gymnasium draws the mountain car's hill at: the dynamics' gravity term
    −0.0025 cos(3p) is the slope of a potential ∝ sin(3p)."""
    return 0.45 * np.sin(3 * position) + 0.55


def _draw_mountaincar(ax, env, state) -> None:
    """The hill from min_position to max_position, the flag at goal_position and the car
    (black), standing on the hill at its position, tilted with the slope."""
    from matplotlib.patches import Polygon

    position = state[0]
    xs = np.linspace(env.min_position, env.max_position, 200)
    ax.plot(xs, _hill(xs), color="black", lw=1.5)
    goal = env.goal_position
    ax.plot([goal, goal], [_hill(goal), _hill(goal) + 0.12], color="black", lw=1)
    ax.add_patch(Polygon([(goal, _hill(goal) + 0.12), (goal, _hill(goal) + 0.08), (goal + 0.08, _hill(goal) + 0.1)],
                         color=(0.8, 0.8, 0.0)))
    slope = np.arctan(1.35 * np.cos(3 * position))  # d/dp of _hill
    along, up = np.array([np.cos(slope), np.sin(slope)]), np.array([-np.sin(slope), np.cos(slope)])
    bottom = np.array([position, _hill(position)]) + 0.01 * up
    ax.add_patch(Polygon([bottom - 0.06 * along, bottom + 0.06 * along,
                          bottom + 0.06 * along + 0.06 * up, bottom - 0.06 * along + 0.06 * up], color="black"))
    ax.set_xlim(env.min_position - 0.05, env.max_position + 0.05)
    ax.set_ylim(-0.05, 1.15)


# Environment name -> (drawing function, frames per second: Gymnasium's ``render_fps``).
_CLASSIC = {
    "cartpole": (_draw_cartpole, 50),
    "pendulum": (_draw_pendulum, 30),
    "acrobot": (_draw_acrobot, 15),
    "mountaincar": (_draw_mountaincar, 30),
    "mountaincar_continuous": (_draw_mountaincar, 30),
}


def viewer_html(sys: Any, states: list) -> str:
    """Brax's HTML viewer (``brax.io.html.render``) of ``states`` of the Brax system ``sys``,
    with every script inlined: the page needs no network."""
    page = html.render(sys, states, height="100vh", colab=False)  # a full-window page
    for name, package in _PACKAGES.items():  # the template must still ask for our pinned versions
        if f"{name}@{package.version}" not in page:
            raise RenderError(f"Brax's HTML template no longer loads {name}@{package.version}; "
                              f"update fnrl.render's pinned packages to the version it loads")
    imports = {spec: _data_url(_package_file(*source)) for spec, source in _MODULES.items()}
    imports.update(_viewer_modules())
    page = _replace_once(page, r'<script async src="[^"]*es-module-shims[^"]*"></script>\s*', "",
                         "the es-module-shims script")
    page = _replace_once(page, r'<script type="importmap">.*?</script>',
                         f'<script type="importmap">{json.dumps({"imports": imports})}</script>', "the import map")
    page = _replace_once(page, r'<script src="[^"]*/pako\.min\.js">',
                         f'<script src="{_data_url(_package_file("pako", "dist/pako.min.js"))}">', "the pako script")
    favicon = (importlib.resources.files("brax") / "visualizer" / "favicon.ico").read_bytes()
    page = _replace_once(page, r'href="/favicon\.ico"', f'href="{_data_url(favicon, "image/x-icon")}"', "the favicon")
    if url := re.search(r"""https?://[^\s"'<>]*""", page):  # data: URLs are base64: no "://"
        raise RenderError(f"Brax's HTML template loads {url.group()}, which fnrl.render does not inline")
    return page


def _brax_env(env: envs.Env):
    """Brax's own environment inside ``env``'s wrappers (a one-line ValueError if there is none)."""
    inner = env.unwrapped
    if not isinstance(inner, BraxEnv):
        raise ValueError(f"render needs a brax/<env> environment (see `fnrl list`), got {type(inner).__name__}")
    return inner


def _viewer_modules() -> dict[str, str]:
    """Import-map entries for Brax's own viewer modules: ``viewer`` (the template imports it by
    that name) and ``brax-viewer/<file>`` for each, with relative imports made bare."""
    folder = importlib.resources.files("brax") / "visualizer" / "js"
    sources = {f.name: f.read_text() for f in folder.iterdir() if f.name.endswith(".js")}

    def bare(match):
        keyword, space, quote, spec = match.groups()
        if spec.startswith("./"):
            if spec[2:] not in sources:
                raise RenderError(f"Brax's viewer imports {spec}, which is not in {folder}")
            spec = _VIEWER_PREFIX + spec[2:]
        elif spec not in _MODULES:
            raise RenderError(f"Brax's viewer imports {spec!r}, which fnrl.render does not provide")
        return f"{keyword}{space}{quote}{spec}{quote}"

    urls = {name: _data_url(_IMPORT.sub(bare, source).encode()) for name, source in sources.items()}
    if "viewer.js" not in urls:
        raise RenderError(f"Brax's viewer module viewer.js is not in {folder}")
    return {"viewer": urls["viewer.js"], **{_VIEWER_PREFIX + name: url for name, url in urls.items()}}


def _replace_once(page: str, pattern: str, replacement: str, what: str) -> str:
    page, count = re.subn(pattern, lambda _: replacement, page, flags=re.DOTALL)
    if count != 1:
        raise RenderError(f"Brax's HTML template changed: expected {what} once, found it {count} times")
    return page


def _data_url(data: bytes, mime: str = "text/javascript") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _cache_dir() -> Path:
    return Path(os.environ.get("FNRL_CACHE_DIR") or Path.home() / ".cache" / "fnrl") / "js"


def _package_file(name: str, path: str) -> bytes:
    """``path`` inside the pinned npm package ``name``, from the cache (filled on first use)."""
    folder = _cache_dir() / f"{name}-{_PACKAGES[name].version}"
    if not folder.is_dir():
        _fill_cache(name, folder)
    return (folder / path).read_bytes()


def _fill_cache(name: str, folder: Path) -> None:
    """Fetches ``name``'s registry tarball (or takes one saved next to ``folder``), checks its
    sha512 against the pinned hash and extracts the files we use into ``folder`` atomically."""
    package = _PACKAGES[name]
    tarball = folder.parent / f"{name}-{package.version}.tgz"
    url = f"https://registry.npmjs.org/{name}/-/{tarball.name}"
    if tarball.is_file():
        data, source = tarball.read_bytes(), str(tarball)
    else:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data, source = response.read(), url
        except OSError as e:  # URLError, HTTPError and timeouts are all OSErrors
            raise RenderError(f"could not download {url} ({getattr(e, 'reason', e)}); download it elsewhere "
                              f"and save it as {tarball}") from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if digest != package.integrity:
        fix = f"replace it with {url}" if source == str(tarball) else "try again"
        raise RenderError(f"{source} is not {name} {package.version} (its sha512 differs from the pinned "
                          f"{package.integrity}); {fix}")
    staging = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for path in package.files:
                (staging / path).parent.mkdir(parents=True, exist_ok=True)
                (staging / path).write_bytes(tar.extractfile(f"package/{path}").read())
        staging.rename(folder)
    except OSError as e:
        if not folder.is_dir():  # (else another process filled the cache first: keep its copy)
            raise RenderError(f"cannot write the script cache {folder.parent} ({e.strerror or e}); "
                              f"set FNRL_CACHE_DIR to a writable folder") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


__all__ = ["render_episode", "episode_format", "episode_states", "episode_gif", "viewer_html", "RenderError"]
