"""The command lines, run in-process on the tiny random release (one subprocess run for ``-m``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from sparktts import Voice
from sparktts.cli import main as sparktts_main
from sparktts.cli.inference import main as inference_main

TEXT = "Hello world, this is Spark TTS."


def _written(capsys) -> str:
    out = capsys.readouterr().out.strip().splitlines()
    return out[-1]


def _check_wav(path: str, max_tokens: int) -> np.ndarray:
    data, sr = soundfile.read(path, dtype="float32")
    assert sr == 16000 and data.ndim == 1
    assert 0 < len(data) <= max_tokens * 320 and len(data) % 320 == 0
    return data


def test_inference_clone_with_seed_writes_a_timestamped_wav(tiny_release, prompt_wav, tmp_path, capsys) -> None:
    args = ["--model_dir", str(tiny_release), "--device", "cpu", "--save_dir", str(tmp_path / "out"),
            "--text", TEXT, "--prompt_speech_path", str(prompt_wav), "--seed", "7", "--max_new_tokens", "12",
            "--save_voice", str(tmp_path / "v.json")]
    assert inference_main(args) == 0
    first = _written(capsys)
    assert re.fullmatch(r"\d{14}\.wav", first.rsplit("/", 1)[-1])
    a = _check_wav(first, 12)
    voice = Voice.load(tmp_path / "v.json")
    assert voice.metadata["source"]["path"] == str(prompt_wav)
    # Same seed with the saved voice -> the same audio; a second file, not an overwrite.
    args2 = ["--model_dir", str(tiny_release), "--device", "cpu", "--save_dir", str(tmp_path / "out"),
             "--text", TEXT, "--voice", str(tmp_path / "v.json"), "--seed", "7", "--max_new_tokens", "12"]
    assert inference_main(args2) == 0
    second = _written(capsys)
    assert second != first
    np.testing.assert_array_equal(_check_wav(second, 12), a)


def test_inference_create_stream_and_save_voice(tiny_release, tmp_path, capsys) -> None:
    args = ["--model_dir", str(tiny_release), "--device", "cpu", "--save_dir", str(tmp_path),
            "--text", TEXT, "--gender", "female", "--pitch", "high", "--speed", "low", "--seed", "2",
            "--max_new_tokens", "50", "--stream", "--save_voice", str(tmp_path / "made.json")]
    assert inference_main(args) == 0
    _check_wav(_written(capsys), 50)
    made = Voice.load(tmp_path / "made.json")
    assert made.metadata["source"]["type"] == "created" and made.metadata["source"]["gender"] == "female"


def test_inference_user_errors_exit_2_with_a_message(tiny_release, tmp_path, capsys) -> None:
    base = ["--model_dir", str(tiny_release), "--device", "cpu", "--save_dir", str(tmp_path), "--text", TEXT]
    assert inference_main([*base, "--prompt_text", "words"]) == 2
    assert "prompt_text was given without prompt audio" in capsys.readouterr().err
    assert inference_main([*base, "--voice", str(tmp_path / "none.json")]) == 2
    assert "voice file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse lists the valid choices
        inference_main([*base, "--gender", "robot"])
    assert "invalid choice: 'robot'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.wav"))


def test_sparktts_subcommands(tiny_release, prompt_wav, tmp_path, capsys) -> None:
    m = ["--model_dir", str(tiny_release), "--device", "cpu"]
    assert sparktts_main(["voice", *m, str(prompt_wav), "--out", str(tmp_path / "ref.json"), "--name", "r"]) == 0
    voice = Voice.load(_written(capsys))
    assert voice.name == "r"
    assert sparktts_main(["tokenize", *m, str(prompt_wav), "--out", str(tmp_path / "tok.json")]) == 0
    tokens = json.loads((tmp_path / "tok.json").read_text())
    assert tokens["global_ids"] == [voice.global_ids.tolist()]
    assert len(tokens["semantic_ids"][0]) > 0
    capsys.readouterr()
    assert sparktts_main(["clone", *m, "--text", TEXT, "--voice", str(tmp_path / "ref.json"), "--greedy",
                          "--max_new_tokens", "8", "--out", str(tmp_path / "c.wav")]) == 0
    _check_wav(_written(capsys), 8)
    assert sparktts_main(["clone", *m, "--text", TEXT, "--voice", str(tmp_path / "ref.json"), "--greedy",
                          "--quantize", "int8", "--max_new_tokens", "8", "--out", str(tmp_path / "q.wav")]) == 0
    _check_wav(_written(capsys), 8)
    # int4 weights and the bf16 wave generator: the same greedy tokens as int8 here, audio within -34 dB.
    assert sparktts_main(["clone", *m, "--text", TEXT, "--voice", str(tmp_path / "ref.json"), "--greedy",
                          "--quantize", "int4", "--codec_dtype", "bfloat16", "--max_new_tokens", "8",
                          "--out", str(tmp_path / "q4.wav")]) == 0
    _check_wav(_written(capsys), 8)
    q8, q4 = soundfile.read(tmp_path / "q.wav")[0], soundfile.read(tmp_path / "q4.wav")[0]
    assert q8.shape == q4.shape and np.sqrt(np.mean((q8 - q4) ** 2) / np.mean(q8**2)) < 0.02
    assert sparktts_main(["create", *m, "--text", TEXT, "--gender", "male", "--pitch", "low", "--speed", "high",
                          "--max_new_tokens", "45", "--seed", "1", "--out", str(tmp_path / "n.wav")]) == 0
    _check_wav(_written(capsys), 45)


def test_module_entry_point_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "sparktts.cli.inference", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--text", "--device", "--save_dir", "--model_dir", "--prompt_text", "--prompt_speech_path",
                 "--gender", "--pitch", "--speed", "--seed", "--stream", "--voice", "--save_voice"):
        assert flag in proc.stdout


def test_both_clis_take_builtin_as_model_dir(tiny_release, tmp_path, capsys, monkeypatch) -> None:
    """``--model_dir builtin`` is the built-in release (here the tiny random one stands in for it)."""
    monkeypatch.setenv("SPARKTTS_BUILTIN", str(tiny_release))
    create = ["--gender", "male", "--pitch", "low", "--speed", "high", "--seed", "1", "--max_new_tokens", "50"]
    assert inference_main(["--model_dir", "builtin", "--device", "cpu", "--save_dir", str(tmp_path),
                           "--text", TEXT, *create]) == 0
    a = _check_wav(_written(capsys), 50)
    assert sparktts_main(["create", "--model_dir", "builtin", "--device", "cpu", "--text", TEXT, *create,
                          "--out", str(tmp_path / "b.wav")]) == 0
    np.testing.assert_array_equal(_check_wav(str(tmp_path / "b.wav"), 50), a)
    monkeypatch.setenv("SPARKTTS_BUILTIN", str(tmp_path / "absent"))
    assert sparktts_main(["create", "--model_dir", "builtin", "--device", "cpu", "--text", TEXT, *create,
                          "--out", str(tmp_path / "c.wav")]) != 0
    assert "built-in model is not at" in capsys.readouterr().err
