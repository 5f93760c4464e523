"""Run logs: metrics.jsonl and TensorBoard round trips, resume truncation, seed grouping and plots."""
import json
import os
import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from fnrl.logging import RunLogger, group_runs, plot_runs, read_metrics


def _events(out_dir):
    """Every event of every TensorBoard file in ``out_dir``, file by file in name order.

    Event files are TFRecords: u64 length, u32 length CRC, the serialised Event, u32 data CRC.
    """
    files = sorted(name for name in os.listdir(out_dir) if name.startswith("events.out.tfevents"))
    result = []
    for name in files:
        with open(os.path.join(out_dir, name), "rb") as f:
            data = f.read()
        events, pos = [], 0
        while pos < len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            events.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
            pos += 12 + length + 4
        result.append(events)
    return result


def _scalars(events):
    return {(v.tag, e.step): v.simple_value for e in events for v in e.summary.value}


def _rows(steps, offset=0.0):
    return [{"step": s, "episode_return": s + offset, "sps": 10.0 * s, "wall_s": s / 10, "policy_loss": -s / 2}
            for s in steps]


def test_rows_are_strict_json_with_non_finite_values_as_null(tmp_path):
    """NaN and ±inf become null (JSON has neither), so every line parses with a strict reader;
    NumPy scalars become plain numbers; TensorBoard gets only the finite values."""
    rows = [
        {"step": 100, "episode_return": 1.5, "sps": 50.0, "policy_loss": float("nan"), "note": "warm-up"},
        {"step": 200, "episode_return": float("inf"), "sps": 60.0, "policy_loss": np.float32("-inf")},
        {"step": 300, "episode_return": np.float32(2.5), "sps": np.float64(70.0), "policy_loss": np.array(0.25)},
    ]
    with RunLogger(str(tmp_path)) as logger:
        for row in rows:
            logger.log(row)

    def strict(token):
        raise ValueError(f"not JSON: {token}")

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    back = [json.loads(line, parse_constant=strict) for line in lines]
    assert [sorted(r) for r in back] == [sorted(r) for r in rows]
    assert back[0]["policy_loss"] is None and back[0]["note"] == "warm-up"
    assert back[1]["episode_return"] is None and back[1]["policy_loss"] is None
    assert back[2] == {"step": 300, "episode_return": 2.5, "sps": 70.0, "policy_loss": 0.25}
    assert read_metrics(str(tmp_path)) == back
    (events,) = _events(str(tmp_path))
    losses = [v for (tag, step), v in _scalars(events).items() if tag == "train/policy_loss"]
    assert losses == [0.25]


def test_rows_are_on_disk_before_close_and_read_in_step_order(tmp_path):
    logger = RunLogger(str(tmp_path))
    for row in _rows([30, 10, 20]):  # callbacks from several devices may arrive out of order
        logger.log(row)
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [10, 20, 30]  # not closed: flushed per row
    logger.close()


def test_tensorboard_holds_every_numeric_value_under_grouped_tags(tmp_path):
    with RunLogger(str(tmp_path)) as logger:
        for row in _rows([10, 20]):
            logger.log({**row, "note": "text is not a scalar"})
    (events,) = _events(str(tmp_path))
    scalars = _scalars(events)
    expected = {}
    for row in _rows([10, 20]):
        s = row["step"]
        expected.update({("eval/episode_return", s): row["episode_return"], ("perf/sps", s): row["sps"],
                         ("perf/wall_s", s): row["wall_s"], ("train/policy_loss", s): row["policy_loss"]})
    assert scalars.keys() == expected.keys()
    for key, value in expected.items():
        assert scalars[key] == pytest.approx(value, rel=1e-6)  # stored as float32


def test_resume_keeps_exactly_the_rows_up_to_the_checkpoint_and_purges_tensorboard(tmp_path):
    out = str(tmp_path)
    with RunLogger(out) as logger:
        for row in _rows([10, 20, 30, 40, 50]):
            logger.log(row)
    with RunLogger(out, resume_step=30) as logger:
        assert [r["step"] for r in read_metrics(out)] == [10, 20, 30]
        assert not os.path.exists(os.path.join(out, "metrics.jsonl.tmp"))
        for row in _rows([40, 50], offset=1000.0):  # the recomputed rows
            logger.log(row)
    assert read_metrics(out) == _rows([10, 20, 30]) + _rows([40, 50], offset=1000.0)

    first, resumed = _events(out)  # the first file is untouched; the second starts with the purge marker
    assert _scalars(first)[("eval/episode_return", 50)] == 50.0
    purge = [e for e in resumed if e.HasField("session_log")]
    assert [(e.step, e.session_log.status) for e in purge] == [(31, event_pb2.SessionLog.START)]
    assert {step for _, step in _scalars(resumed)} == {40, 50}
    assert _scalars(resumed)[("eval/episode_return", 40)] == 1040.0


def test_resume_of_a_run_without_rows_starts_an_empty_log(tmp_path):
    with RunLogger(str(tmp_path), resume_step=0) as logger:
        logger.log(_rows([5])[0])
    assert read_metrics(str(tmp_path)) == _rows([5])


def test_missing_and_corrupt_metrics_give_one_line_naming_file_and_line(tmp_path):
    with pytest.raises(ValueError, match="metrics.jsonl: no such file") as missing:
        read_metrics(str(tmp_path))
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_rows([1])[0]) + "\n" + '{"step": 2, "episode_ret\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2: corrupt JSON") as corrupt:
        read_metrics(str(tmp_path))
    path.write_text('{"episode_return": 1.0}\n')
    with pytest.raises(ValueError, match=r"line 1: expected a JSON object with an integer 'step'") as no_step:
        read_metrics(str(tmp_path))
    for error in (missing, corrupt, no_step):
        assert "\n" not in str(error.value)


def _run(root, name, algo, seed, steps, returns, lr=1e-3, env="cartpole"):
    out = root / name
    out.mkdir()
    (out / "config.json").write_text(json.dumps(
        {"algo": algo, "env": env, "seed": seed, "config": {"env": env, "lr": lr, "hidden_sizes": [64, 64]}}))
    with open(out / "metrics.jsonl", "w") as f:
        f.writelines(json.dumps({"step": s, "episode_return": r, "sps": 1.0}) + "\n" for s, r in zip(steps, returns))
    return str(out)


def test_seeds_of_one_config_are_one_curve_on_their_common_steps(tmp_path):
    a = _run(tmp_path, "a", "ppo", 0, [10, 20, 30], [1.0, 2.0, 3.0])
    b = _run(tmp_path, "b", "ppo", 1, [10, 20], [3.0, 6.0])  # stopped early
    c = _run(tmp_path, "c", "ppo", 0, [10, 20, 30], [5.0, 5.0, 7.0], lr=0.1)
    d = _run(tmp_path, "d", "a2c", 0, [15], [9.0])
    curves = {curve.label: curve for curve in group_runs([a, c, b, d])}
    assert sorted(curves) == ["a2c on cartpole", "ppo on cartpole lr=0.001", "ppo on cartpole lr=0.1"]

    seeds = curves["ppo on cartpole lr=0.001"]
    assert seeds.runs == 2
    np.testing.assert_array_equal(seeds.steps, [10, 20])
    np.testing.assert_allclose(seeds.mean, [2.0, 4.0])
    np.testing.assert_allclose(seeds.std, [1.0, 2.0])  # population std over the two seeds
    single = curves["ppo on cartpole lr=0.1"]
    assert single.runs == 1
    np.testing.assert_allclose(single.mean, [5.0, 5.0, 7.0])
    np.testing.assert_allclose(single.std, 0.0)
    assert [c.label for c in group_runs([a, b])] == ["ppo on cartpole"]  # nothing to tell apart


def test_runs_without_config_json_are_grouped_by_their_summary(tmp_path):
    runs = [_run(tmp_path, f"s{seed}", "ppo", seed, [10], [float(seed)]) for seed in range(3)]
    for run in runs:
        os.rename(os.path.join(run, "config.json"), os.path.join(run, "summary.json"))
    (curve,) = group_runs(runs)
    assert curve.runs == 3 and curve.mean[0] == 1.0


def test_plot_runs_writes_a_png_and_rejects_bad_input_in_one_line(tmp_path):
    a = _run(tmp_path, "a", "ppo", 0, [10, 20], [1.0, 2.0])
    b = _run(tmp_path, "b", "ppo", 1, [10, 20], [3.0, 4.0])
    out = tmp_path / "plot.png"
    plot_runs([a, b], str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    c = _run(tmp_path, "c", "ppo", 2, [30], [5.0])
    cases = [  # (run directories, metric, output file, error)
        ([a, str(not_a_run)], "episode_return", "bad.png", "empty: no config.json; expected a run directory"),
        ([a], "policy_loss", "bad.png",
         "unknown metric 'policy_loss' in .*a/metrics.jsonl; available: episode_return, sps"),
        ([a, c], "episode_return", "bad.png", "the runs of ppo on cartpole share no evaluation step"),
        ([], "episode_return", "bad.png", "no run directories given"),
        ([a], "episode_return", "missing/bad.png",
         "cannot write .*missing/bad.png: directory .*missing does not exist"),
        ([a], "episode_return", "bad.xyz", "Format 'xyz' is not supported"),  # matplotlib's own one line
    ]
    for dirs, metric, name, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            plot_runs(dirs, str(tmp_path / name), metric)
        assert "\n" not in str(error.value)
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="c/config.json: corrupt"):
        plot_runs([c], str(tmp_path / "bad.png"))
    assert not (tmp_path / "bad.png").exists()


def test_a_sweep_directory_counts_as_its_members(tmp_path):
    """A ``--seeds/--sweep`` run directory: one row per evaluation with a list per metric, one
    value per member; its members group by swept value (seeds averaged, ``null`` left out), and
    line up with single runs of the same config."""
    out = tmp_path / "sweep"
    out.mkdir()
    members = [{"lr": 0.1, "seed": 0}, {"lr": 0.1, "seed": 1}, {"lr": 0.2, "seed": 0}]
    (out / "config.json").write_text(json.dumps({"algo": "ppo", "env": "cartpole", "config": {
        "env": "cartpole", "lr": 1e-3, "hidden_sizes": [64, 64]}, "seeds": [0, 1], "sweep": {"lr": [0.1, 0.2]},
        "members": members}))
    rows = [{"step": 10, "episode_return": [1.0, 3.0, 5.0], "sps": 1.0},
            {"step": 20, "episode_return": [2.0, None, 6.0], "sps": 1.0}]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    single = _run(tmp_path, "single", "ppo", 2, [10, 20], [5.0, 8.0], lr=0.1)
    curves = {c.label: c for c in group_runs([str(out), single])}
    assert sorted(curves) == ["ppo on cartpole lr=0.1", "ppo on cartpole lr=0.2"]
    lr01 = curves["ppo on cartpole lr=0.1"]  # seeds 0 and 1 of the sweep and the single run
    assert lr01.runs == 3
    np.testing.assert_array_equal(lr01.steps, [10])  # seed 1's return at step 20 is null
    np.testing.assert_allclose(lr01.mean, [3.0])
    np.testing.assert_allclose(curves["ppo on cartpole lr=0.2"].mean, [5.0, 6.0])
