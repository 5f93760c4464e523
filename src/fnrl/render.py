"""A self-contained HTML viewer of one Brax episode: Brax's own renderer, made to work offline.

    html = render_episode(fnrl.envs.make("brax/ant"), act, learner, jax.random.PRNGKey(0))

:func:`episode_states` runs one episode of a policy (one jitted ``lax.scan``) and collects
Brax's pipeline states; :func:`viewer_html` renders them with ``brax.io.html.render`` and
inlines every script that page would load from a CDN, so the file opens anywhere, offline:

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
                   max_steps: int | None = None) -> str:
    """One episode of ``act(learner, obs, key) -> (action, extras)`` on ``env`` (an unbatched
    ``brax/<name>`` environment from :func:`fnrl.envs.make`, possibly wrapped), returned as a
    self-contained HTML page (:func:`viewer_html` of :func:`episode_states`).

    Raises:
      ValueError: ``env`` is not a Brax environment, or ``max_steps`` is not a positive integer.
      RenderError: the viewer's scripts could not be provided (one line: what and how).
    """
    states = episode_states(env, act, learner, key, obs_stats, max_steps)
    return viewer_html(_brax_env(env).sys, states)


def episode_states(env: envs.Env, act: Callable, learner: Any, key, obs_stats=None,
                   max_steps: int | None = None) -> list:
    """Brax pipeline states of one episode: the reset state, then one per step up to and
    including the step that ends the episode (termination or truncation), at most
    ``max_steps`` steps (default: :func:`fnrl.loops.evaluation.episode_limit`).

    The episode runs exactly as :func:`fnrl.loops.evaluation.evaluate` runs its episodes
    (:func:`fnrl.loops.evaluation.start_episodes`, here with one episode, and the same key splits);
    with the same key it is the episode ``evaluate(..., num_episodes=1)`` scores. Every fnrl
    wrapper passes ``EnvState.internal`` through untouched, so there it is Brax's own
    ``State`` (with a batch axis of 1), whose ``pipeline_state`` is collected.
    """
    _brax_env(env)
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
            return state, (state.internal.pipeline_state, done)

        _, (states, done) = jax.lax.scan(step, state, jax.random.split(key, int(max_steps)))
        length = jnp.where(done.any(), jnp.argmax(done) + 1, max_steps)
        return state.internal.pipeline_state, states, length

    first, states, length = jax.device_get(run(learner, key, obs_stats))
    frames = jax.tree_util.tree_map(lambda f, s: np.concatenate([f, s[:length, 0]]), first, states)
    return [jax.tree_util.tree_map(operator.itemgetter(t), frames) for t in range(int(length) + 1)]


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


__all__ = ["render_episode", "episode_states", "viewer_html", "RenderError"]
