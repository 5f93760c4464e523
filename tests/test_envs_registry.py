"""fnrl.envs.make / list (issue 3): names, time limits and one-line errors for bad input."""
import subprocess
import sys

import pytest

import fnrl.envs as envs
from fnrl.envs.wrappers import TimeLimit


@pytest.mark.parametrize("name,suggestion", [("cartpol", "cartpole"), ("brax/halfchetah", "brax/halfcheetah"),
                                             ("ant", "brax/ant")])
def test_unknown_name_is_one_line_listing_close_matches(name, suggestion):
    with pytest.raises(ValueError) as error:
        envs.make(name)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"unknown environment {name!r}: did you mean ") and suggestion in message


def test_unknown_name_without_close_matches_points_to_the_list():
    with pytest.raises(ValueError, match=r"^unknown environment 'zzzz': run `fnrl list` to see them all\.$"):
        envs.make("zzzz")


def test_unknown_keyword_is_one_line():
    with pytest.raises(ValueError, match=r"^environment 'cartpole': .*'not_a_parameter'"):
        envs.make("cartpole", not_a_parameter=1)


def test_list_is_sorted_and_complete():
    names = envs.list()
    assert names == sorted(names)
    assert {"cartpole", "pendulum", "brax/ant", "brax/halfcheetah", "brax/humanoid", "deepsea/10", "deepsea/50"} <= set(names)


def test_a_sized_family_takes_any_positive_size():
    assert "deepsea/7" not in envs.list() and envs.make("deepsea/7").size == 7
    for bad in ("deepsea/0", "deepsea/x", "deepsea/"):
        with pytest.raises(ValueError, match=rf"^environment '{bad}': deepsea/N needs a positive integer N \("):
            envs.make(bad)


def test_time_limit_is_standard_unless_overridden():
    assert isinstance(envs.make("brax/fast"), TimeLimit) and envs.make("brax/fast").max_episode_steps == 1000
    assert envs.make("brax/fast", max_episode_steps=7).max_episode_steps == 7
    assert not isinstance(envs.make("brax/fast", max_episode_steps=None), TimeLimit)


def test_making_a_pure_jax_env_does_not_import_brax():
    code = "import sys, fnrl.envs as e; e.make('cartpole'); e.make('deepsea/7'); print('brax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
