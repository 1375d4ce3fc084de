"""The training plumbing both trainers share: typed configs, run directories, metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from sparktts.errors import ConfigError
from sparktts.train.config import from_dict, load_config, to_dict
from sparktts.train.run import MetricsLogger, TrainingError, prepare_run_dir, read_metrics, read_run_info


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.8, 0.9)


@dataclass(frozen=True)
class Run:
    steps: int
    name: str = "x"
    optim: Optim = field(default_factory=Optim)
    bf16: bool = False
    init: str | None = None


def test_nested_config_round_trip():
    cfg = from_dict(Run, {"steps": 3, "optim": {"lr": 0.5, "betas": [0.5, 0.6]}}, "t")
    assert cfg == Run(steps=3, optim=Optim(lr=0.5, betas=(0.5, 0.6)))
    assert from_dict(Run, to_dict(cfg), "t") == cfg


@pytest.mark.parametrize("data, needle", [
    ({"steps": 1, "stpes": 2}, "unknown key(s) ['stpes']"),
    ({"steps": 1, "optim": {"lr": 1, "beta": [1]}}, "optim: unknown key(s) ['beta']"),
    ({}, "missing key(s) ['steps']"),
    ({"steps": 1.5}, "steps: expected a int"),
    ({"steps": True}, "steps: expected a int"),
    ({"steps": 1, "bf16": "yes"}, "bf16: expected true or false"),
    ({"steps": 1, "optim": {"lr": "fast"}}, "optim: lr: expected a float"),
])
def test_config_errors_name_the_key(data, needle):
    with pytest.raises(ConfigError) as info:
        from_dict(Run, data, "run.yaml")
    assert needle in str(info.value)
    assert str(info.value).startswith("run.yaml")


def test_config_from_yaml_file_and_unknown_preset(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\noptim:\n  lr: 0.1\n")
    assert load_config(Run, path, "codec") == Run(steps=7, optim=Optim(lr=0.1))
    nested = load_config(Run, path, "codec", {"optim": {"betas": [0.1, 0.2]}, "name": "y"})
    assert nested == Run(steps=7, name="y", optim=Optim(lr=0.1, betas=(0.1, 0.2)))  # lr kept
    with pytest.raises(ConfigError, match="neither a YAML file nor a codec preset"):
        load_config(Run, "no-such-preset", "codec")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Run, tmp_path / "missing.yaml", "codec")


def test_run_dir_refuses_reuse_and_changed_config_on_resume(tmp_path):
    out = tmp_path / "run"
    prepare_run_dir(out, "codec", Run(steps=1), {"data": "d"}, resume=False)
    assert read_run_info(out)["kind"] == "codec"
    assert (out / "config.yaml").read_text().startswith("steps: 1")
    with pytest.raises(TrainingError, match="--resume"):
        prepare_run_dir(out, "codec", Run(steps=1), {}, resume=False)
    assert prepare_run_dir(out, "codec", Run(steps=1), {}, resume=True) == out
    info = read_run_info(out)  # the start and the resumption, each with its machine
    assert info["data"] == "d" and len(info["sessions"]) == 2
    assert all(s["cores"] == os.cpu_count() and s["torch_threads"] >= 1 and s["cpu"] for s in info["sessions"])
    with pytest.raises(ConfigError, match=r"differs from the run's in \['steps'\]"):
        prepare_run_dir(out, "codec", Run(steps=2), {}, resume=True)
    with pytest.raises(TrainingError, match="no run to resume"):
        prepare_run_dir(tmp_path / "fresh", "codec", Run(steps=1), {}, resume=True)


def test_other_ranks_do_not_mistake_the_main_ranks_new_run_for_an_old_one(tmp_path):
    # Under DDP the main rank may write config.yaml before another rank looks (a CI failure once).
    out = tmp_path / "run"
    prepare_run_dir(out, "lm", Run(steps=1), {}, resume=False, is_main=True)
    assert prepare_run_dir(out, "lm", Run(steps=1), {}, resume=False, is_main=False) == out
    prepare_run_dir(tmp_path / "other", "lm", Run(steps=1), {}, resume=False, is_main=False)
    assert not (tmp_path / "other" / "config.yaml").exists()  # only the main rank writes


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_out_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(TrainingError, match="cannot write there"):
            prepare_run_dir(locked / "run", "lm", Run(steps=1), {}, resume=False)
    finally:
        locked.chmod(0o700)


def test_out_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrainingError, match="cannot write there"):
        prepare_run_dir(blocker / "run", "lm", Run(steps=1), {}, resume=False)


def test_metrics_resume_drops_rows_past_the_checkpoint(tmp_path):
    log = MetricsLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3, 4):
        log.log(step, {"loss": 1.0 / step, "lr": 0.1})
    log.close()
    # The run crashed after logging step 4 but its last checkpoint is step 2.
    log = MetricsLogger(tmp_path, resume_step=2, tensorboard=False)
    log.log(3, {"loss": 0.3, "lr": 0.1, "extra": 5.0})
    df = read_metrics(tmp_path)
    assert df["step"].tolist() == [1, 2, 3]
    assert df["loss"].tolist() == pytest.approx([1.0, 0.5, 0.3])
    assert list(df.columns) == ["step", "loss", "lr", "seconds"]
    assert df["seconds"].is_monotonic_increasing


def test_metrics_logger_off_rank_writes_nothing(tmp_path):
    MetricsLogger(tmp_path, enabled=False).log(1, {"loss": 1.0})
    assert not (tmp_path / "metrics.csv").exists()
    with pytest.raises(TrainingError, match="no metrics.csv"):
        read_metrics(tmp_path)
