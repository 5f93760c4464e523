"""Offline datasets: Minari's format on disk, one array per field in memory.

fnrl reads and writes `Minari <https://minari.farama.org>`_ datasets (the successor of D4RL;
HDF5 storage): a dataset is a directory ``DIR/data/`` holding ``main_data.hdf5`` and
``metadata.json``, or a dataset id that Minari keeps locally (``minari list local``).
:func:`load` converts its episodes once into a :class:`Dataset` of arrays -- observations,
actions, rewards, terminations, truncations and next observations, the behaviour policy's
``log_prob`` when the collector recorded it -- checked on the way (:class:`DatasetError`: one
line naming the file and the problem). :func:`check` refuses a dataset whose observations or
actions do not fit an environment; :func:`collect` records a policy's episodes and :func:`save`
writes them, with D4RL's normalisation references (``ref_min_score``: a uniformly random
policy's return, ``ref_max_score``: an expert's) in the metadata, so that
``minari.get_normalized_score`` and :meth:`Dataset.normalized_score` agree.

Actions are stored in the units fnrl's loops act in: discrete indices, or continuous actions
in ``[-1, 1]`` (:func:`fnrl.envs.wrap` rescales them to the environment's bounds).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnrl import envs
from fnrl.types import Transition

__all__ = ["Dataset", "DatasetError", "REFERENCE_SCORES", "check", "collect", "concatenate", "from_episodes",
           "from_replay", "load", "random_score", "save",
           "uniform_policy"]

# D4RL-style normalisation references per task: (random, expert) mean returns. Random: a
# uniformly random policy over 10,000 episodes (``random_score(env, 10_000)``; the tests check
# it on fresh episodes); expert: cart-pole's maximum, and on pendulum SAC's final return after 100k steps
# over 5 seeds (experiments/results/offpolicy_pendulum). A dataset written by fnrl carries its
# task's pair in its metadata.
REFERENCE_SCORES = {
    "cartpole": (22.3, 500.0),
    "pendulum": (-1223.7, -140.8),
}

_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


class DatasetError(ValueError):
    """A dataset that cannot be used, in one line naming the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset's transitions, as arrays with a leading axis of ``size`` steps, and what its
    metadata says.

    ``transitions`` is a :class:`~fnrl.types.Transition` whose ``extras`` hold ``log_prob``
    (the behaviour policy's, for importance sampling) when every episode recorded it;
    episodes lie one after another, ``episode_lengths`` long. ``env`` is the fnrl
    environment the data came from (None for a dataset made elsewhere).
    """

    transitions: Transition
    episode_lengths: tuple[int, ...]
    path: str
    env: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    metadata: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        return int(self.transitions.reward.shape[0])

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    def normalized_score(self, episode_return):
        """D4RL's normalised score ``100 (R − R_random) / (R_expert − R_random)`` (None without references)."""
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (episode_return - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)

    @property
    def episode_ends(self) -> np.ndarray:
        """``[size]`` int32: for each step, the index of the last step of its episode (what a
        sampler that looks ahead within episodes needs, e.g. hindsight relabelling)."""
        ends = np.cumsum(self.episode_lengths) - 1
        return np.repeat(ends, self.episode_lengths).astype(np.int32)

    def episode_returns(self) -> np.ndarray:
        """The undiscounted return of every episode in the dataset."""
        ends = np.cumsum(self.episode_lengths)
        return np.add.reduceat(np.asarray(self.transitions.reward), ends - np.asarray(self.episode_lengths))

    def device_put(self) -> Transition:
        """The transitions as device arrays (float32 observations, rewards and flags)."""
        return jax.tree_util.tree_map(jnp.asarray, self.transitions)


def _data_dir(source: str) -> str:
    """The ``data`` directory of ``source``: a dataset directory, its ``data`` subdirectory, or a
    local Minari dataset id."""
    for candidate in (os.path.join(source, "data"), source):
        if os.path.isfile(os.path.join(candidate, "metadata.json")):
            return candidate
    if os.path.isdir(source):
        raise DatasetError(f"{source}: not a Minari dataset (no data/metadata.json in it)")
    if os.path.exists(source):
        raise DatasetError(f"{source}: not a Minari dataset (a file, not a dataset directory)")
    try:
        from minari.storage import get_dataset_path

        local = os.path.join(str(get_dataset_path(source)), "data")
    except Exception:  # an id Minari cannot parse
        local = None
    if local and os.path.isfile(os.path.join(local, "metadata.json")):
        return local
    raise DatasetError(f"no dataset {source!r}: not a directory, nor a Minari dataset kept locally "
                       "(`minari list local`; `minari download ID` fetches a remote one)")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@functools.lru_cache(maxsize=4)
def _load(data_dir: str, stamp: tuple) -> Dataset:
    from minari.dataset.minari_storage import MinariStorage

    where, data_file = os.path.join(data_dir, "metadata.json"), os.path.join(data_dir, "main_data.hdf5")
    try:
        with open(where) as f:
            metadata = json.load(f)
        storage = MinariStorage.read(data_dir)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except (KeyError, AssertionError) as e:
        raise DatasetError(f"{where}: incomplete metadata (missing {e})") from None
    except Exception as e:
        raise DatasetError(f"{where}: cannot be read ({_first_line(e)})") from None
    try:
        episodes = list(storage.get_episodes(range(storage.total_episodes)))
    except KeyError as e:  # h5py: a field of an episode is missing
        raise DatasetError(f"{data_file}: an episode is missing a field ({_first_line(e)})") from None
    except Exception as e:  # h5py's OSError for a missing, truncated or foreign file, ...
        raise DatasetError(f"{data_file}: cannot be read ({_first_line(e)})") from None
    if not episodes or not sum(len(ep.get("rewards", ())) for ep in episodes):
        raise DatasetError(f"{data_dir}: the dataset holds no transitions")
    kept = []
    for i, ep in enumerate(episodes):
        missing = [f for f in _FIELDS if f not in ep]
        if missing:
            raise DatasetError(f"{data_dir}: episode {i} has no {', '.join(missing)}")
        obs = ep["observations"]
        if isinstance(obs, dict) or isinstance(ep["actions"], dict):
            raise DatasetError(f"{data_dir}: episode {i} has dictionary observations or actions; fnrl takes arrays")
        obs, steps = np.asarray(obs), len(ep["rewards"])
        if steps == 0:
            continue
        if obs.shape[0] != steps + 1 or len(ep["actions"]) != steps:
            raise DatasetError(f"{data_dir}: episode {i} has {obs.shape[0]} observations and {len(ep['actions'])} "
                               f"actions for {steps} rewards (expected {steps + 1} and {steps})")
        episode = {**{f: np.asarray(ep[f]) for f in _FIELDS}, "observations": obs}
        if "log_prob" in (ep.get("infos") or {}):
            episode["log_prob"] = np.asarray(ep["infos"]["log_prob"])
        kept.append(episode)
    fnrl_meta = metadata.get("fnrl") or {}
    dataset = from_episodes(kept, fnrl_meta.get("env"), data_dir)
    for name, value in dataset.transitions._asdict().items():
        if name != "extras" and np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            first = int(np.argwhere(~np.isfinite(value.reshape(len(value), -1)))[0, 0])
            raise DatasetError(f"{data_dir}: non-finite values (NaN or inf) in {name} at step {first}")
    return dataclasses.replace(dataset, ref_min_score=metadata.get("ref_min_score"),
                               ref_max_score=metadata.get("ref_max_score"), metadata=metadata)


def load(source: str) -> Dataset:
    """The dataset at ``source`` (a directory, or a local Minari dataset id), read once per
    version of its files.

    Raises:
      DatasetError: one line naming the file and the problem: a missing, truncated or
        unreadable file, missing fields, NaN or inf in the data, an empty dataset.
    """
    data_dir = _data_dir(str(source))
    stamp = tuple(os.stat(os.path.join(data_dir, name)).st_mtime_ns if os.path.exists(os.path.join(data_dir, name))
                  else None for name in ("metadata.json", "main_data.hdf5"))
    return _load(os.path.abspath(data_dir), stamp)


def check(dataset: Dataset, env: envs.Env, env_name: str) -> None:
    """Raises :class:`DatasetError` when ``dataset``'s observations or actions do not fit ``env``
    (named ``env_name``), or it names another fnrl environment than ``env_name``."""
    spec, t = env.spec, dataset.transitions
    where = dataset.path
    if dataset.env is not None and dataset.env != env_name:
        raise DatasetError(f"{where}: recorded on {dataset.env}, not {env_name}")
    if tuple(t.obs.shape[1:]) != tuple(spec.observation_shape):
        raise DatasetError(f"{where}: observations of shape {tuple(t.obs.shape[1:])}, but {env_name}'s are "
                           f"{tuple(spec.observation_shape)}")
    if spec.discrete:
        if t.action.ndim != 1 or not np.issubdtype(t.action.dtype, np.integer):
            raise DatasetError(f"{where}: actions of shape {tuple(t.action.shape[1:])} ({t.action.dtype}), but "
                               f"{env_name}'s are integers in [0, {spec.num_actions})")
        low, high = int(np.min(t.action)), int(np.max(t.action))
        if low < 0 or high >= spec.num_actions:
            raise DatasetError(f"{where}: actions in [{low}, {high}], outside {env_name}'s [0, {spec.num_actions})")
        return
    if tuple(t.action.shape[1:]) != tuple(spec.action_shape) or np.issubdtype(t.action.dtype, np.integer):
        raise DatasetError(f"{where}: actions of shape {tuple(t.action.shape[1:])} ({t.action.dtype}), but "
                           f"{env_name}'s are floats of shape {tuple(spec.action_shape)}")
    most = float(np.max(np.abs(t.action)))
    if most > 1.0 + 1e-5:
        raise DatasetError(f"{where}: actions reach {most:.3g}, outside [-1, 1]; fnrl's loops act in [-1, 1] "
                           "(fnrl.envs.wrap rescales to the environment's bounds), so rescale the dataset's actions")


def _episode(t: Transition, steps: np.ndarray) -> dict:
    """One episode of the numpy transitions ``t`` at indices ``steps`` (in order), as :func:`save`
    takes it; it ends truncated unless its last step terminates."""
    truncation = t.truncation[steps] > 0
    truncation[-1] |= not t.termination[steps[-1]]
    episode = {"observations": np.concatenate([t.obs[steps], t.next_obs[steps[-1:]]]), "actions": t.action[steps],
               "rewards": t.reward[steps], "terminations": t.termination[steps] > 0, "truncations": truncation}
    if "log_prob" in t.extras:
        episode["log_prob"] = t.extras["log_prob"][steps]
    return episode


def _split(t: Transition, rows: np.ndarray) -> list[dict]:
    """The episodes of the consecutive steps ``rows`` of ``t``, cut after each termination or
    truncation; a last, unfinished stretch ends truncated."""
    done = np.maximum(t.termination[rows], t.truncation[rows])
    ends = list(np.flatnonzero(done)) + ([len(rows) - 1] if len(rows) and not done[-1] else [])
    starts = [0] + [end + 1 for end in ends[:-1]]
    return [_episode(t, rows[start:end + 1]) for start, end in zip(starts, ends)]


def collect(env: envs.Env, policy: Callable, key, num_steps: int, num_envs: int = 1) -> list[dict]:
    """``num_steps`` steps (rounded up to whole batches) of ``policy(obs, key) -> (action,
    extras)`` in ``num_envs`` auto-resetting copies of ``env``, as episodes: dicts of numpy
    ``observations`` ``[T + 1, ...]`` (the last is the final one), ``actions``, ``rewards``,
    ``terminations``, ``truncations`` ``[T]`` and, when the policy returns one, the behaviour
    ``log_prob`` ``[T]``. Each environment's last, unfinished episode ends truncated."""
    from fnrl.rollout import rollout

    batched = envs.wrap(env, num_envs=num_envs)
    length = -(-num_steps // num_envs)
    reset_key, key = jax.random.split(key)

    @jax.jit
    def run(state, key):
        return rollout(batched, lambda _, obs, k: policy(obs, k), None, state, key, length)[1]

    trajectory = jax.device_get(run(batched.reset(reset_key), key))
    episodes = []
    for b in range(num_envs):
        episodes += _split(jax.tree_util.tree_map(lambda x: np.asarray(x[:, b]), trajectory), np.arange(length))
    return episodes


def from_replay(buffer, num_envs: int) -> list[dict]:
    """The episodes in a training run's replay buffer (:class:`fnrl.replay.ReplayState` of one-step
    transitions from ``num_envs`` environments, inserted time-major), oldest first, as
    :func:`collect` returns them: D4RL's "replay" flavour. Each environment's steps are taken
    in the order they were inserted; a stretch cut by the buffer's ends ends truncated."""
    data = jax.tree_util.tree_map(np.asarray, jax.device_get(buffer.data))
    size, capacity, position = int(buffer.size), len(data.reward), int(buffer.position)
    if size % num_envs:
        raise DatasetError(f"the replay buffer holds {size} transitions, not whole steps of {num_envs} environments")
    if size == 0:
        raise DatasetError("the run's replay buffer is empty")
    order = (position + np.arange(size)) % capacity if size == capacity else np.arange(size)
    # Every insertion is whole time steps of all environments, so the k-th item ever inserted
    # came from environment k mod num_envs, and the j-th oldest kept one is item (total - size + j).
    env_of = (np.arange(size) - size) % num_envs
    return [episode for b in range(num_envs) for episode in _split(data, order[env_of == b])]


def from_episodes(episodes: list[dict], env: str | None = None, path: str = "<memory>") -> Dataset:
    """``episodes`` (:func:`collect`'s dicts) as a :class:`Dataset` in memory, without writing
    them: for an environment that has no name to save under (e.g. a :class:`fnrl.envs.tabular.MDP`
    built in a test)."""
    cat = lambda f: np.concatenate([f(ep) for ep in episodes])  # noqa: E731
    action = cat(lambda ep: np.asarray(ep["actions"]))
    action = action.astype(np.int32) if np.issubdtype(action.dtype, np.integer) else action.astype(np.float32)
    extras = {"log_prob": cat(lambda ep: ep["log_prob"]).astype(np.float32)} if all(
        "log_prob" in ep for ep in episodes) else {}
    transitions = Transition(obs=cat(lambda ep: ep["observations"][:-1]).astype(np.float32), action=action,
                             reward=cat(lambda ep: ep["rewards"]).astype(np.float32),
                             termination=cat(lambda ep: ep["terminations"]).astype(np.float32),
                             truncation=cat(lambda ep: ep["truncations"]).astype(np.float32),
                             next_obs=cat(lambda ep: ep["observations"][1:]).astype(np.float32), extras=extras)
    return Dataset(transitions, tuple(len(ep["rewards"]) for ep in episodes), path, env)


def uniform_policy(spec: envs.Spec) -> Callable:
    """The uniformly random policy ``policy(obs, key) -> (action, {"log_prob"})`` on a batch of
    observations: indices uniform in ``[0, n)`` (log-density −log n) or continuous actions
    uniform in ``[-1, 1]^d``, the units of fnrl's loops and datasets (log-density −d log 2).
    The log-density is what importance sampling needs of a random behaviour policy."""
    def policy(obs, key):
        shape = obs.shape[:1]
        if spec.discrete:
            log_prob = jnp.full(shape, -np.log(spec.num_actions), jnp.float32)
            return jax.random.randint(key, shape, 0, spec.num_actions), {"log_prob": log_prob}
        log_prob = jnp.full(shape, -np.log(2.0) * int(np.prod(spec.action_shape)), jnp.float32)
        return jax.random.uniform(key, shape + tuple(spec.action_shape), minval=-1.0, maxval=1.0), {"log_prob": log_prob}

    return policy


def random_score(env_name: str, episodes: int = 1000, seed: int = 0) -> float:
    """The mean return of :func:`uniform_policy` on ``env_name`` over ``episodes`` episodes
    (D4RL's ``ref_min_score``)."""
    from fnrl.loops.evaluation import episode_limit, evaluate

    env = envs.make(env_name)
    policy = uniform_policy(env.spec)

    def uniform(_, obs, key):
        return policy(obs, key)

    run = jax.jit(lambda key: evaluate(env, uniform, None, key, episodes, episode_limit(env)))
    return float(run(jax.random.PRNGKey(seed)))


def _spaces(spec: envs.Spec):
    import gymnasium as gym

    obs = gym.spaces.Box(-np.inf, np.inf, tuple(spec.observation_shape), np.float32)
    if spec.discrete:
        return obs, gym.spaces.Discrete(spec.num_actions)
    return obs, gym.spaces.Box(-1.0, 1.0, tuple(spec.action_shape), np.float32)


def save(path: str, episodes: list[dict], env_name: str, *, description: str = "",
         dataset_id: str | None = None, ref_scores: tuple[float, float] | None = None, **metadata) -> Dataset:
    """Writes ``episodes`` (:func:`collect`'s dicts) as a Minari dataset in directory ``path``
    (which must not hold one) and returns it loaded. ``ref_scores`` (random, expert) default to
    :data:`REFERENCE_SCORES` of ``env_name``; other keyword arguments go into the ``fnrl`` entry
    of the metadata (e.g. the policy and the collection's settings)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    if os.path.exists(os.path.join(path, "data")):
        raise DatasetError(f"{path}: already holds a dataset; choose another directory")
    if not episodes:
        raise DatasetError(f"{path}: no episodes to write")
    spec = envs.make(env_name).spec
    obs_space, action_space = _spaces(spec)
    ref = ref_scores if ref_scores is not None else REFERENCE_SCORES.get(env_name)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent) as tmp:  # the dataset appears whole or not at all
        data_dir = os.path.join(tmp, "data")
        storage = MinariStorage.new(data_dir, observation_space=obs_space, action_space=action_space,
                                    data_format="hdf5")
        meta = {"dataset_id": dataset_id or f"fnrl/{env_name.replace('/', '-')}/{os.path.basename(path)}-v0",
                "minari_version": minari.__version__, "algorithm_name": str(metadata.get("policy", "")),
                "description": description, "fnrl": {"env": env_name, **metadata}}
        if ref is not None:
            meta.update(ref_min_score=float(ref[0]), ref_max_score=float(ref[1]))
        storage.update_metadata(meta)
        storage.update_episodes([EpisodeBuffer(
            id=i, observations=ep["observations"].astype(np.float32), actions=ep["actions"],
            rewards=ep["rewards"].astype(np.float64), terminations=ep["terminations"].astype(bool),
            truncations=ep["truncations"].astype(bool),
            infos={"log_prob": ep["log_prob"].astype(np.float32)} if "log_prob" in ep else {})
            for i, ep in enumerate(episodes)])
        os.makedirs(path, exist_ok=True)
        shutil.move(data_dir, os.path.join(path, "data"))
    return load(path)


def concatenate(datasets: list[Dataset]) -> list[dict]:
    """The episodes of ``datasets``, one after another, as :func:`save` takes them (``fnrl
    collect --mix``); they must come from the same environment."""
    names = {d.env for d in datasets}
    if len(names) > 1:
        raise DatasetError(f"cannot mix datasets of different environments: {', '.join(sorted(map(str, names)))}")
    episodes = []
    for d in datasets:
        t = jax.tree_util.tree_map(np.asarray, d.transitions)
        starts = np.cumsum((0,) + d.episode_lengths[:-1])
        episodes += [_episode(t, np.arange(start, start + length)) for start, length in zip(starts, d.episode_lengths)]
    return episodes
