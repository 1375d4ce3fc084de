"""data/corpus/make_corpus.py: the espeak-ng training corpus (plan, labels, rendering, manifest)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ._scripts import load_script

mc = load_script("data/corpus/make_corpus.py", "make_corpus")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng); CI installs it",
)


@pytest.fixture(scope="module")
def big_plan():
    return mc.plan(2000, 200, seed=0)


def test_number_words():
    assert mc.number_words(7) == "seven"
    assert mc.number_words(42) == "forty-two"
    assert mc.number_words(342) == "three hundred and forty-two"
    assert mc.number_words(2005) == "two thousand and five"
    assert mc.ordinal_words(1) == "first"
    assert mc.ordinal_words(23) == "twenty-third"
    assert mc.ordinal_words(30) == "thirtieth"


def test_plan_is_deterministic_and_prefix_stable(big_plan):
    train, heldout, words = big_plan
    again = mc.plan(2000, 200, seed=0)
    assert (train, heldout, words) == again
    small_train, small_heldout, _ = mc.plan(300, 200, seed=0)
    assert small_train == train[:300] and small_heldout == heldout
    other, _, _ = mc.plan(300, 200, seed=1)
    assert [r["text"] for r in other] != [r["text"] for r in small_train]


def test_heldout_is_disjoint_from_training(big_plan):
    train, heldout, held_words = big_plan
    assert len(heldout) == 200 and len(train) == 2000
    train_texts = {mc.norm_text(r["text"]) for r in train}
    assert not train_texts & {mc.norm_text(r["text"]) for r in heldout}
    assert not train_texts & mc.testlist_texts()
    train_words = set().union(*(mc.words_of(r["text"]) for r in train))
    assert len(held_words) >= 20
    assert not train_words & held_words
    assert sum(bool(mc.words_of(r["text"]) & held_words) for r in heldout) >= 30
    assert {r["utt"] for r in train}.isdisjoint(r["utt"] for r in heldout)


def test_texts_are_varied(big_plan):
    train, _, _ = big_plan
    texts = [r["text"] for r in train]
    assert len(set(texts)) > 1900
    assert len(set().union(*(mc.words_of(t) for t in texts))) > 1500
    assert not any(ch.isdigit() for t in texts for ch in t)  # numbers are spelled out
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) <= 6 and max(lengths) >= 20


def test_labels_spread_over_all_levels(big_plan):
    train, heldout, _ = big_plan
    for rows in (train, heldout):
        n = len(rows)
        for key in ("pitch", "speed"):
            counts = Counter(r[key] for r in rows)
            assert set(counts) == set(mc.LEVELS)
            assert all(abs(c - n / 5) <= 0.02 * n + 1 for c in counts.values()), counts
        assert abs(sum(r["gender"] == "male" for r in rows) - n / 2) <= 1
    cells = Counter((r["gender"], r["pitch"], r["speed"]) for r in train)
    assert len(cells) == 50 and min(cells.values()) >= 20
    voices = Counter(r["speaker"] for r in train)
    assert sum(v.endswith(tuple(f"+{x}" for x in ("f1", "f2", "f3", "f4", "f5"))) for v in voices) >= 5
    assert len(voices) >= 20 and all(mc.VOICES[v] == g for v, g in {(r["speaker"], r["gender"]) for r in train})


def test_targets_lie_in_their_band(big_plan):
    train, heldout, _ = big_plan
    sb = mc.speed_bands()
    cal = mc.load_calibration()
    for r in train + heldout:
        lo, hi = mc.pitch_bands(r["gender"])[r["pitch"]]
        assert lo < r["target_mel"] < hi
        assert mc._control().pitch_level(r["target_mel"], r["gender"]) == r["pitch"]
        assert mc._control().speed_level(r["target_sps"], "en") == r["speed"]
        assert sb[r["speed"]][0] < r["target_sps"] < sb[r["speed"]][1]
        assert r["pitch"] in mc.reachable_levels(cal, r["speaker"])


def test_espeak_settings_invert_the_calibration():
    cal = mc.load_calibration()
    for voice, c in cal["voices"].items():
        p, s, g = mc.espeak_settings(cal, voice, c["mel"][2], c["sps"][2])
        assert (p, s, g) == (c["p"][2], c["s"][2], 0), voice
        p, s, g = mc.espeak_settings(cal, voice, c["mel"][0], (c["sps_g"][1] + c["sps_g"][2]) / 2)
        assert s == mc.S_RANGE[0] and c["g"][1] <= g <= c["g"][2], voice


# ----------------------------------------------------------------------------------------- rendering
N_TRAIN, N_HELD = 8, 2


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); CI installs it")
    out = tmp_path_factory.mktemp("corpus")
    # records=None: render and measure every clip (the committed records would replay them).
    summary = mc.build(out, N_TRAIN, N_HELD, seed=0, jobs=1, progress=False, records=None)
    return out, summary


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@needs_espeak
def test_manifest_format(built):
    out, summary = built
    train, held = _jsonl(out / "manifest.jsonl"), _jsonl(out / "heldout.jsonl")
    assert len(train) == N_TRAIN and len(held) == N_HELD and summary["failed"] == 0
    for row in train + held:
        for key, typ in (("audio", str), ("text", str), ("speaker", str), ("lang", str), ("gender", str),
                         ("pitch", str), ("speed", str), ("pitch_mel", float), ("f0_mean_hz", float),
                         ("speed_sps", float), ("duration_s", float), ("attempts", int), ("renders", int)):
            assert isinstance(row[key], typ), key
        assert row["lang"] == "en" and row["gender"] in mc.GENDERS
        assert row["pitch"] in mc.LEVELS and row["speed"] in mc.LEVELS
        assert row["pitch_measured"] in mc.LEVELS and row["speed_measured"] in mc.LEVELS
        wav = out / row["audio"]
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.frames / 16000 - row["duration_s"]) < 1e-3
        assert 0.5 < row["duration_s"] < 20
    assert not list((out / "wavs").glob(".*"))  # no temp file left
    s = json.loads((out / "summary.json").read_text())
    assert s["train"]["clips"] == N_TRAIN and s["train"]["hours"] > 0
    assert sum(s["train"]["pitch"].values()) == N_TRAIN
    # Everything stays inside --out.
    assert {p.name for p in out.iterdir()} <= {"wavs", "manifest.jsonl", "heldout.jsonl", "failed.jsonl",
                                               "summary.json", ".records.jsonl", "heldout_words.txt",
                                               "calibration.json"}


@needs_espeak
def test_measured_levels_match_intended(built):
    out, _ = built
    rows = _jsonl(out / "manifest.jsonl") + _jsonl(out / "heldout.jsonl")
    pitch_ok = sum(r["pitch_measured"] == r["pitch"] for r in rows)
    speed_ok = sum(r["speed_measured"] == r["speed"] for r in rows)
    assert pitch_ok >= 0.8 * len(rows), [(r["pitch"], r["pitch_measured"], r["pitch_mel"]) for r in rows]
    assert speed_ok >= 0.8 * len(rows), [(r["speed"], r["speed_measured"], r["speed_sps"]) for r in rows]
    # The measured values are what the eval measures on the written file.
    r = rows[0]
    a = mc._control().measure_attributes(str(out / r["audio"]), r["text"], lang="en", gender=r["gender"])
    assert a.pitch_mel == pytest.approx(r["pitch_mel"], abs=0.01)
    assert a.speed_sps == pytest.approx(r["speed_sps"], abs=0.001)


@needs_espeak
def test_rebuild_is_deterministic_and_resumes(built, tmp_path):
    out, _ = built
    before = (out / ".records.jsonl").read_text()
    mc.build(out, N_TRAIN, N_HELD, seed=0, progress=False, records=None)  # everything is there: renders nothing
    assert (out / ".records.jsonl").read_text() == before
    # A fresh folder, fewer training clips, same seed: the same texts, labels and audio bytes.
    mc.build(tmp_path, 2, N_HELD, seed=0, progress=False, records=None)
    a, b = _jsonl(out / "manifest.jsonl")[:2], _jsonl(tmp_path / "manifest.jsonl")
    assert a == b
    assert _jsonl(out / "heldout.jsonl") == _jsonl(tmp_path / "heldout.jsonl")
    for row in b + _jsonl(tmp_path / "heldout.jsonl"):
        assert (tmp_path / row["audio"]).read_bytes() == (out / row["audio"]).read_bytes()
    # A deleted clip is rendered again, the others are kept.
    (tmp_path / b[0]["audio"]).unlink()
    mc.build(tmp_path, 2, N_HELD, seed=0, progress=False, records=None)
    assert (tmp_path / b[0]["audio"]).read_bytes() == (out / b[0]["audio"]).read_bytes()


@needs_espeak
def test_saved_records_replay_the_corpus_without_measuring(built, tmp_path, monkeypatch):
    out, _ = built
    records = tmp_path / "records.jsonl.gz"
    assert mc.save_records(out, records) == N_TRAIN + N_HELD
    first = records.read_bytes()
    assert mc.save_records(out, records) == N_TRAIN + N_HELD and records.read_bytes() == first  # reproducible

    def no_measuring(*args, **kwargs):
        raise AssertionError("a replayed clip was measured")

    monkeypatch.setattr(mc, "measure", no_measuring)
    again = tmp_path / "again"
    mc.build(again, N_TRAIN, N_HELD, seed=0, progress=False, records=records)
    for name in ("manifest.jsonl", "heldout.jsonl"):
        rows = _jsonl(again / name)
        assert rows == _jsonl(out / name)
        for row in rows:
            assert (again / row["audio"]).read_bytes() == (out / row["audio"]).read_bytes()
    assert not list((again / "wavs").glob(".*"))
    # A clip espeak-ng could not render is recorded as such and skipped again, not retried.
    rec = mc._read_records(out / ".records.jsonl")["tr_000001"]
    failed = {**rec, "error": "RuntimeError: espeak-ng failed (1)"}
    assert mc._render(({k: rec[k] for k in rec if k != "error"}, str(tmp_path), 2, failed)) == failed


@needs_espeak
def test_a_record_whose_audio_differs_is_rendered_and_measured_again(built, tmp_path, monkeypatch):
    """Another espeak-ng build gives other samples: its records must not label them."""
    out, _ = built
    rec = next(r for r in mc._read_records(out / ".records.jsonl").values() if r["split"] == "train")
    item = {k: rec[k] for k in ("utt", "split", "text", "speaker", "gender", "pitch", "speed", "target_mel",
                                "target_sps")}
    e = rec["espeak"]
    digest = mc.espeak_digest(mc.espeak_wav(rec["text"], e["voice"], e["p"], e["s"], e["g"]))
    assert digest == rec["espeak_digest"]
    (tmp_path / "wavs").mkdir()
    mc._worker_init(mc.load_calibration())
    measured = []
    real_measure = mc.measure
    monkeypatch.setattr(mc, "measure", lambda *a: measured.append(a) or real_measure(*a))
    assert mc.replay_item((item, str(tmp_path), 2, rec)) == rec
    assert not measured
    stale = {**rec, "espeak_digest": "0" * 16, "pitch_mel": -1.0}
    fresh = mc.replay_item((item, str(tmp_path), 2, stale))
    assert measured and fresh == rec
    assert (tmp_path / rec["audio"]).read_bytes() == (out / rec["audio"]).read_bytes()


@needs_espeak
def test_bad_render_is_recorded_and_skipped(tmp_path):
    cal = mc.load_calibration()
    voice = next(iter(cal["voices"]))
    cal = {**cal, "voices": {**cal["voices"], "xx-no-such-voice": cal["voices"][voice]}}
    mc._worker_init(cal)
    (tmp_path / "wavs").mkdir()
    item = {"utt": "tr_000000", "split": "train", "text": "Hello there.", "speaker": "xx-no-such-voice",
            "gender": "male", "pitch": "moderate", "speed": "moderate", "target_mel": 190.0, "target_sps": 4.0}
    rec = mc.render_item((item, str(tmp_path), 1))
    assert "error" in rec and not list((tmp_path / "wavs").iterdir())


@needs_espeak
def test_synthesize_is_16k_and_trimmed():
    y = mc.synthesize("A short test.", "en-us+m3", 50, 170)
    assert y.dtype == np.float32 and 0.5 < len(y) / mc.SR < 3
    lead = np.flatnonzero(np.abs(y) > 0.01 * np.abs(y).max())[0] / mc.SR
    assert lead == pytest.approx(0.1, abs=0.01)


def test_committed_calibration_covers_every_voice():
    cal = mc.load_calibration()
    assert set(cal["voices"]) == set(mc.VOICES)
    for voice, c in cal["voices"].items():
        assert c["gender"] == mc.VOICES[voice]
        for key in ("mel", "sps", "sps_g"):
            assert all(np.isfinite(c[key])), (voice, key)
        assert c["mel"] == sorted(c["mel"]) and c["sps"] == sorted(c["sps"])
        assert c["sps_g"] == sorted(c["sps_g"], reverse=True)
        assert len(mc.reachable_levels(cal, voice)) >= 3, voice  # m1/m4 stop below "high", f3 above very_low
    for g in mc.GENDERS:  # every level has at least two voices of each gender
        for lvl in mc.LEVELS:
            assert sum(lvl in mc.reachable_levels(cal, v) for v in cal["voices"] if mc.VOICES[v] == g) >= 2


def test_plan_only_cli(tmp_path, capsys):
    assert mc.main(["--out", str(tmp_path), "--n", "30", "--heldout", "10", "--plan-only"]) == 0
    rows = _jsonl(tmp_path / "plan.jsonl")
    assert len(rows) == 40 and [p.name for p in tmp_path.iterdir()] == ["plan.jsonl"]
    assert json.loads(capsys.readouterr().out)["train"] == 30
