"""fnrl.config: config files, ``--set`` overrides and YAML dumps round-trip to equal configs;
every bad file, key or value fails with one line naming what was wrong."""
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnrl.envs
from fnrl import algorithms
from fnrl.algorithms import npg, ppo, sac
from fnrl.config import ConfigError, apply, dump, load_file, override, to_dict


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _one_line_error(call) -> str:
    with pytest.raises(ConfigError) as error:
        call()
    text = str(error.value)
    assert len(text.splitlines()) == 1, text
    return text


def _round_trip(tmp_path, config, suffix=".yaml"):
    """``config`` written as a ``suffix`` file, read back and applied to the class defaults."""
    text = dump(config) if suffix == ".yaml" else json.dumps(to_dict(config))
    return apply(type(config)(), load_file(_write(tmp_path, "config" + suffix, text)))


# ------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("name", algorithms.names())
def test_every_algorithm_config_round_trips_through_a_file(tmp_path, name, suffix):
    config = algorithms.get(name).Config()
    fields = [f.name for f in dataclasses.fields(config)]
    mapping = load_file(_write(tmp_path, "config" + suffix,
                               dump(config) if suffix == ".yaml" else json.dumps(to_dict(config))))
    assert list(mapping) == fields  # every field, in declaration order
    back = apply(config, mapping)
    assert back == config
    assert [type(getattr(back, f)) for f in fields] == [type(getattr(config, f)) for f in fields]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("config", [
    ppo.Config(env="brax/ant", hidden_sizes=(32, 16, 8), learning_rate=3e-4, gamma=1.0, normalize_obs=True,
               num_envs=16, total_steps=12_345),
    npg.Config(step_size=0.5, hidden_sizes=(), distribution="tanh_gaussian"),
    sac.Config(target_entropy=-1.5, priority_eps=1e-12, prioritized=True),
], ids=["ppo", "npg", "sac"])
def test_changed_configs_round_trip_from_the_defaults(tmp_path, config, suffix):
    assert config != type(config)()
    assert _round_trip(tmp_path, config, suffix) == config


@pytest.mark.parametrize("env", ["true", "1e-3", "null", "yes", "0123", "", "a: b", "[1]", "- x", "#", "é",
                                 "\x85"])
def test_strings_that_look_like_other_values_round_trip(tmp_path, env):
    config = ppo.Config(env=env)
    assert _round_trip(tmp_path, config).env == env


def test_dump_lists_fields_in_declaration_order_with_tuples_as_lists():
    config = ppo.Config(hidden_sizes=(32, 32), learning_rate=1e-6)
    lines = dump(config).splitlines()
    assert [line.split(":")[0] for line in lines] == [f.name for f in dataclasses.fields(config)]
    assert "hidden_sizes: [32, 32]" in lines and "learning_rate: 1.0e-06" in lines
    assert "normalize_obs: false" in lines and "env: cartpole" in lines


@settings(max_examples=60, deadline=None)
@given(
    env=st.text(max_size=40),
    total_steps=st.integers(1, 2**62),
    hidden_sizes=st.lists(st.integers(1, 4096), max_size=4).map(tuple),
    gamma=st.floats(0.0, 1.0),
    learning_rate=st.floats(1e-300, 1e6),
    normalize_obs=st.booleans(),
    step_size=st.none() | st.floats(1e-300, 1e6),
)
def test_random_valid_configs_round_trip_through_yaml_and_set(
    tmp_path_factory, env, total_steps, hidden_sizes, gamma, learning_rate, normalize_obs, step_size
):
    config = npg.Config(env=env, total_steps=total_steps, hidden_sizes=hidden_sizes, gamma=gamma,
                        value_learning_rate=learning_rate, normalize_obs=normalize_obs, step_size=step_size)
    assert _round_trip(tmp_path_factory.mktemp("c"), config) == config
    assignments = [f"env={env}", f"total_steps={total_steps}", f"hidden_sizes={','.join(map(str, hidden_sizes))}",
                   f"gamma={gamma!r}", f"value_learning_rate={learning_rate!r}",
                   f"normalize_obs={str(normalize_obs).lower()}",
                   f"step_size={'null' if step_size is None else repr(step_size)}"]
    assert override(npg.Config(), assignments) == dataclasses.replace(config, env=env.strip())


# ------------------------------------------------------------------------------ types

def test_file_values_take_the_fields_types(tmp_path):
    path = _write(tmp_path, "run.yml", "hidden_sizes: [32, 32]\nlearning_rate: 3e-4\ngamma: 1\n"
                                       "normalize_obs: true\nenv: brax/ant\n")
    config = apply(ppo.Config(), load_file(path), source=path)
    assert config.hidden_sizes == (32, 32) and config.learning_rate == 3e-4 and config.normalize_obs is True
    assert config.gamma == 1.0 and type(config.gamma) is float and config.env == "brax/ant"
    assert apply(npg.Config(step_size=0.1), {"step_size": None}).step_size is None
    assert apply(sac.Config(), {"target_entropy": -2}).target_entropy == -2.0


@pytest.mark.parametrize("mapping, expected", [
    ({"lr": 0.1}, "run.yaml: unknown config key 'lr' for ppo; accepted: anneal_lr, bonus, bonus_form,"),
    ({"num_envs": 4.5}, "run.yaml: invalid num_envs=4.5: must be an integer"),
    ({"num_envs": True}, "run.yaml: invalid num_envs=True: must be an integer"),
    ({"num_envs": "4"}, "run.yaml: invalid num_envs='4': must be an integer"),
    ({"normalize_obs": "yes"}, "run.yaml: invalid normalize_obs='yes': must be true or false"),
    ({"normalize_obs": 1}, "run.yaml: invalid normalize_obs=1: must be true or false"),
    ({"learning_rate": "fast"}, "run.yaml: invalid learning_rate='fast': must be a number"),
    ({"gamma": None}, "run.yaml: invalid gamma=None: must be a number"),
    ({"hidden_sizes": 32}, "run.yaml: invalid hidden_sizes=32: must be a list of integers"),
    ({"hidden_sizes": [32, 2.5]}, "run.yaml: invalid hidden_sizes=[32, 2.5]: must be a list of integers"),
    ({"env": 3}, "run.yaml: invalid env=3: must be a string"),
    ({"gamma": 1.5}, "invalid gamma=1.5: must be in [0, 1]"),  # the dataclass's own validation
])
def test_apply_rejects_unknown_keys_and_wrong_types(mapping, expected):
    text = _one_line_error(lambda: apply(ppo.Config(), mapping, source="run.yaml"))
    assert text.startswith(expected), text


def test_apply_names_what_an_optional_field_accepts():
    text = _one_line_error(lambda: apply(npg.Config(), {"step_size": "big"}))
    assert text == "invalid step_size='big': must be a number or null"


# ------------------------------------------------------------------------------ --set

def test_override_reads_values_as_yaml():
    config = override(ppo.Config(), ["hidden_sizes=32,16", "learning_rate=3e-4", "normalize_obs=true",
                                     "env=brax/ant", "num_envs=4", "num_envs=2"])
    assert config.hidden_sizes == (32, 16) and config.learning_rate == 3e-4 and config.normalize_obs is True
    assert config.env == "brax/ant" and config.num_envs == 2  # the last --set of a key wins
    assert override(ppo.Config(), ["hidden_sizes=[8]"]).hidden_sizes == (8,)
    assert override(ppo.Config(), ["hidden_sizes=8"]).hidden_sizes == (8,)
    assert override(ppo.Config(), ["env=on"]).env == "on"  # a string field takes the text as it is
    assert override(npg.Config(step_size=0.1), ["step_size=null"]).step_size is None


@pytest.mark.parametrize("item, expected", [
    ("normalize_obs=1", "--set: invalid normalize_obs='1': must be true or false"),
    ("normalize_obs=yes", "--set: invalid normalize_obs='yes': must be true or false"),
    ("num_envs=4.5", "--set: invalid num_envs='4.5': must be an integer"),
    ("gamma=null", "--set: invalid gamma='null': must be a number"),
    ("hidden_sizes=[32,", "--set: invalid hidden_sizes='[32,': must be a list of integers"),
    ("hidden_sizes=(32, 32)", "--set: invalid hidden_sizes='(32, 32)': must be a list of integers"),
    ("lr=3", "--set: unknown config key 'lr' for ppo; accepted: anneal_lr, bonus, bonus_form,"),
    ("num_envs", "invalid override 'num_envs': expected key=value"),
    ("gamma=1.5", "invalid gamma=1.5: must be in [0, 1]"),
])
def test_override_rejects_bad_assignments_as_typed(item, expected):
    text = _one_line_error(lambda: override(ppo.Config(), [item]))
    assert text.startswith(expected), text


# ------------------------------------------------------------------------------ files

@pytest.mark.parametrize("name, content, expected", [
    ("run.toml", "gamma = 0.9", "{path}: unknown extension '.toml'; accepted: .json, .yaml, .yml"),
    ("run.yaml", "gamma: 0.9\nnum_envs: 4: 5\n",
     "{path}, line 2: invalid YAML: mapping values are not allowed here"),
    ("run.yaml", "gamma: 0.9\nhidden_sizes: [1, 2\nnum_envs: 4\n", "{path}, line 3: invalid YAML: expected ','"),
    ("run.json", '{\n  "gamma": 0.9,\n}', "{path}, line 3: invalid JSON: Expecting property name"),
    ("run.yaml", "- gamma\n- 0.9\n", "{path} must hold a mapping of config fields (key: value), found list"),
    ("run.json", "0.9", "{path} must hold a mapping of config fields (key: value), found float"),
    ("run.json", "null", "{path} must hold a mapping of config fields (key: value), found null"),
    ("run.yaml", b"gamma: \xff\n", "cannot read {path}: not UTF-8 text"),
])
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    text = _one_line_error(lambda: load_file(str(path)))
    assert text.startswith(expected.format(path=f"config file {str(path)!r}")), text


def test_missing_and_unreadable_files_fail_with_one_line(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    assert _one_line_error(lambda: load_file(missing)) == f"config file {missing!r} not found"
    directory = tmp_path / "dir.json"
    directory.mkdir()
    text = _one_line_error(lambda: load_file(str(directory)))
    assert text == f"cannot read config file {str(directory)!r}: Is a directory"


def test_empty_yaml_is_no_change_and_a_bom_is_allowed(tmp_path):
    assert load_file(_write(tmp_path, "empty.yaml", "# every field at its default\n")) == {}
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"num_envs": 4}')
    assert load_file(str(path)) == {"num_envs": 4}


def test_parse_call_reads_keyword_literals():
    from fnrl.config import parse_call
    assert parse_call("cartpole", "environment") == ("cartpole", {})
    assert parse_call(" tabular/chain(num_states=20, slip=0.0) ", "environment") == (
        "tabular/chain", {"num_states": 20, "slip": 0.0})
    assert parse_call("bandit/bernoulli(means=[0.9, 0.5])", "environment") == ("bandit/bernoulli", {"means": (0.9, 0.5)})


@pytest.mark.parametrize("text", ["x(1)", "x(a=b)", "(a=1)", "x(a=1", "x(**k)", "x)"])
def test_parse_call_refuses_what_is_not_keyword_literals(text):
    from fnrl.config import parse_call
    with pytest.raises(ConfigError, match=r"^environment .*: write NAME\(key=value, \.\.\.\)"):
        parse_call(text, "environment")


def test_environment_names_carry_arguments():
    env = fnrl.envs.make("tabular/chain(num_states=7)")
    assert env.unwrapped.mdp.transitions.shape == (7, 2, 7)
    with pytest.raises(ValueError, match="unexpected keyword argument 'foo'"):
        fnrl.envs.make("tabular/chain(foo=1)")
