"""``sparktts prepare``: tokens and labels of a manifest, bad input, and resuming after a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sparktts.data import DataError, read_manifest, read_tokenized
from sparktts.data.prepare import prepare

TEXTS = ("hello there my friend", "the quick brown fox jumps", "we test speech synthesis today",
         "voice cloning uses a reference", "numbers like 42 are read out", "a short one")


def write_clips(folder: Path, n: int, bad: bool = True) -> Path:
    """``n`` voiced clips (0.6-1.4 s, 110-260 Hz) and, with ``bad``, a missing and a corrupt one; -> manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    sr = 16000
    rows = []
    for i in range(n):
        t = np.arange(int(sr * (0.6 + 0.8 * (i % 5) / 4))) / sr
        f0 = 110.0 + 150.0 * (i % 4) / 3
        wav = 0.3 * np.sin(2 * np.pi * f0 * t) * (1.0 + 0.5 * np.sin(2 * np.pi * 3 * t))
        soundfile.write(str(folder / f"c{i}.wav"), wav.astype(np.float32), sr)
        rows.append({"audio": f"c{i}.wav", "text": TEXTS[i % len(TEXTS)], "speaker": f"spk{i % 2}", "lang": "en",
                     "id": f"clip{i:02d}"})
    if bad:
        (folder / "corrupt.wav").write_bytes(b"not a wav file")
        rows.append({"audio": "missing.wav", "text": "gone", "speaker": "x", "lang": "en", "id": "missing"})
        rows.append({"audio": "corrupt.wav", "text": "broken", "speaker": "x", "lang": "en", "id": "corrupt"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture(scope="module")
def prepared(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("prep")
    manifest = write_clips(folder / "clips", 4)
    # A manifest label wins over the measured one.
    lines = manifest.read_text().splitlines()
    first = json.loads(lines[0])
    first.update(gender="female", pitch="very_high")
    lines[0] = json.dumps(first)
    manifest.write_text("\n".join(lines) + "\n")
    report = prepare(manifest, tiny_release, folder / "data", batch_size=3, device="cpu", progress=False)
    return report, manifest


def test_prepare_writes_tokens_labels_and_errors(prepared, tiny_release: Path) -> None:
    from sparktts import BiCodecTokenizer
    from sparktts.eval.control import pitch_level, speed_level

    report, manifest = prepared
    assert (report.total, report.accepted, report.errors, report.new) == (6, 4, 2, 6)
    df = report.clips()
    assert list(df["id"]) == ["clip00", "clip01", "clip02", "clip03"]
    for col in ("audio", "text", "speaker", "lang", "duration", "gender", "pitch", "speed", "pitch_value",
                "speed_value", "f0_hz"):
        assert col in df.columns, col
    assert all(Path(a).is_absolute() for a in df["audio"])
    errors = report.error_rows()
    assert set(errors["id"]) == {"missing", "corrupt"}
    assert all("AudioError" in e for e in errors["error"])
    info = json.loads((report.out / "info.json").read_text())
    assert info["model_dir"] == str(tiny_release.resolve()) and info["clips"] == 4
    assert info["semantic_tokens"] == int(df["num_semantic"].sum())

    # Tokens equal the audio tokenizer's own encoding of each clip.
    tok = BiCodecTokenizer.from_pretrained(tiny_release, device="cpu")
    clips = read_tokenized(report.out)
    for clip in clips[:2]:
        ref = tok.encode(clip.row["audio"])
        np.testing.assert_array_equal(clip.global_ids, ref.global_ids[0].numpy())
        np.testing.assert_array_equal(clip.semantic_ids, ref.semantic_ids[0].numpy())

    # Labels: the eval module's levels of the measured values; manifest labels kept as given.
    first, rest = clips[0].row, [c.row for c in clips[1:]]
    assert (first["gender"], first["pitch"], first["gender_source"]) == ("female", "very_high", "manifest")
    for row in rest:
        assert row["gender_source"] == "measured" and row["gender"] == row["gender_measured"]
        assert row["pitch"] == pitch_level(row["pitch_mel"], row["gender"])
        assert row["speed"] == speed_level(row["speed_sps"], "en")
        assert row["pitch_value"] == min(1000, int(row["pitch_mel"]))
        assert row["speed_value"] == min(10, int(round(row["speed_sps"], 1)))


def test_measured_values_in_the_manifest_are_used_without_measuring_again(prepared, tiny_release: Path,
                                                                           tmp_path: Path, monkeypatch) -> None:
    """A corpus that measured its clips (make_corpus does, with the eval's code) skips pyin in prepare."""
    import sparktts.eval.control as control

    report, manifest = prepared
    measured = {c.row["id"]: c.row for c in read_tokenized(report.out)}
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    for r in rows:
        r["audio"] = str(manifest.parent / r["audio"])
        if r["id"] in measured:
            r.update(pitch_mel=measured[r["id"]]["pitch_mel"], speed_sps=measured[r["id"]]["speed_sps"])
    again = tmp_path / "m.jsonl"
    again.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def refuse(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(control, "measure_attributes", refuse)
    out = prepare(again, tiny_release, tmp_path / "data", device="cpu", progress=False)
    assert out.accepted == 4
    for clip in read_tokenized(out.out):
        row, ref = clip.row, measured[clip.row["id"]]
        assert row["measured_source"] == "manifest"
        for key in ("gender", "gender_measured", "pitch", "speed", "pitch_value", "speed_value"):
            assert row[key] == ref[key], key


def test_rerun_of_a_finished_folder_does_nothing(prepared, tiny_release: Path) -> None:
    report, manifest = prepared
    again = prepare(manifest, tiny_release, report.out, batch_size=3, device="cpu", progress=False)
    assert (again.new, again.done_before, again.accepted, again.errors) == (0, 6, 4, 2)


@pytest.mark.parametrize("text, message", [
    ('{"audio": "a.wav", "text": "hi"}\n\n{"audio": "b.wav"}\n', r"line 3: no 'text' field"),
    ('{"text": "hi"}\n', r"line 1: no 'audio' field"),
    ('{"audio": "a.wav", "text": "hi", "gender": "robot"}\n', r"line 1: gender 'robot'"),
    ('{"audio": "a.wav", "text": "hi", "id": "x"}\n{"audio": "b.wav", "text": "ho", "id": "x"}\n',
     r"line 2: clip id 'x' already used on line 1"),
    ("not json\n", r"line 1: not valid JSON"),
    ('{"audio": "a.wav", "text": "hi", "pitch_mel": 200}\n', r"line 1: 'pitch_mel' without 'speed_sps'"),
    ('{"audio": "a.wav", "text": "hi", "pitch_mel": "high", "speed_sps": 4}\n', r"line 1: pitch_mel must be"),
])
def test_manifest_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text(text)
    with pytest.raises(DataError, match=message):
        read_manifest(m)


def test_unwritable_output_folder(tmp_path: Path, tiny_release: Path) -> None:
    manifest = write_clips(tmp_path / "clips", 1, bad=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(DataError, match="cannot write the data folder there"):
        prepare(manifest, tiny_release, blocker / "data", device="cpu", progress=False)


_CHILD = """
import sys
from sparktts.data.prepare import prepare
prepare(sys.argv[1], sys.argv[2], sys.argv[3], batch_size=1, device="cpu", progress=False)
"""


def test_prepare_killed_half_way_resumes_every_clip_exactly_once(tmp_path: Path, tiny_release: Path) -> None:
    n = 8
    manifest = write_clips(tmp_path / "clips", n)
    out = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(manifest), str(tiny_release), str(out)], env=env)
    try:
        deadline = time.monotonic() + 120
        # Kill as soon as the second shard is on disk: the run is then certainly half-way.
        while not (out / "tokens" / "shard-00001.safetensors").exists():
            assert proc.poll() is None, "prepare exited before it could be killed"
            assert time.monotonic() < deadline, "prepare wrote no shard within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    shards_before = len(list((out / "tokens").glob("shard-*.safetensors")))
    assert shards_before < n + 2

    report = prepare(manifest, tiny_release, out, batch_size=1, device="cpu", progress=False)
    assert report.done_before >= 2 and report.done_before + report.new == n + 2
    ids = [json.loads(line)["id"] for line in (out / "clips.jsonl").read_text().splitlines()]
    assert sorted(ids) == [f"clip{i:02d}" for i in range(n)]  # every clip, each exactly once
    errors = [json.loads(line)["id"] for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(errors) == ["corrupt", "missing"]
    assert [c.row["id"] for c in read_tokenized(out)] == ids
