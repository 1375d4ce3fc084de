"""Attribute measurement (gender, pitch, speed) on real speech, level binning and confusion matrices."""

from __future__ import annotations

import math

import pytest

from sparktts.eval.control import (
    GENDER_THRESHOLD_MEL,
    LEVELS,
    attribute_levels,
    confusion_matrix,
    count_syllables,
    gender_accuracy,
    hz_to_mel,
    level_accuracy,
    measure_attributes,
    mel_to_hz,
    pitch_level,
    score_control,
    speed_level,
)
from sparktts.eval.errors import EvalError

from ._eval_audio import ARCTIC, ARCTIC_TEXT, espeak, requires_espeak

TEXT = "Thank you very much for coming to see us today."  # 13 syllables


def test_mel_scale_matches_the_reference_table() -> None:
    # control_levels.md lists the male P5 boundary as 144.275 mel = 95.6 Hz and female P90 352.569 = 257.1 Hz.
    assert mel_to_hz(144.275) == pytest.approx(95.6, abs=0.05)
    assert mel_to_hz(352.569) == pytest.approx(257.1, abs=0.05)
    assert hz_to_mel(mel_to_hz(200.0)) == pytest.approx(200.0)


def test_gender_threshold_is_the_equal_z_point() -> None:
    # (x - 196.387) / 39.206 == (294.414 - x) / 48.629
    assert (GENDER_THRESHOLD_MEL - 196.387) / 39.206 == pytest.approx(
        (294.414 - GENDER_THRESHOLD_MEL) / 48.629
    )
    assert mel_to_hz(GENDER_THRESHOLD_MEL) == pytest.approx(166.3, abs=0.2)


@pytest.mark.parametrize(
    ("mel", "gender", "level"),
    [
        (144.0, "male", "very_low"),
        (144.275, "male", "low"),  # "very_low if x < 144.275": the boundary itself is low
        (163.172, "male", "moderate"),
        (211.044, "male", "moderate"),  # "high if x > 211.044"
        (211.1, "male", "high"),
        (249.6, "male", "very_high"),
        (250.0, "female", "low"),
        (300.0, "female", "moderate"),
        (353.0, "female", "very_high"),
    ],
)
def test_pitch_levels(mel: float, gender: str, level: str) -> None:
    assert pitch_level(mel, gender) == level


def test_attribute_levels_is_the_rule_of_measure_attributes() -> None:
    # The F0 rule picks the gender; the requested gender, when given, bins the pitch; no speed level
    # without a language that has speed boundaries.
    assert attribute_levels(250.0, 4.0, "en") == ("female", "low", "moderate")
    assert attribute_levels(250.0, 4.0, "en", gender="male") == ("female", "very_high", "moderate")
    assert attribute_levels(150.0, 2.5, None) == ("male", "low", None)
    assert attribute_levels(150.0, 3.6, "zh", measured_gender="female") == ("female", "very_low", "moderate")
    att = measure_attributes(ARCTIC, ARCTIC_TEXT)
    assert attribute_levels(att.pitch_mel, att.speed_sps, att.lang) == (att.gender, att.pitch_level, att.speed_level)


@pytest.mark.parametrize(
    ("sps", "lang", "level"),
    [
        (2.5, "en", "very_low"),
        (3.0, "en", "low"),
        (4.0, "en", "moderate"),
        (5.0, "en", "high"),
        (5.5, "en", "very_high"),
        (2.6, "zh", "very_low"),
        (3.6, "zh", "moderate"),
        (6.1, "zh", "very_high"),
    ],
)
def test_speed_levels(sps: float, lang: str, level: str) -> None:
    assert speed_level(sps, lang) == level


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("你好，世界。", 4),
        ("The table is beautiful.", 7),  # the(1) ta-ble(2) is(1) beau-ti-ful(3)
        ("She makes horses jump.", 5),  # she(1) makes(1) hor-ses(2) jump(1)
        ("Room 101", 5),  # room(1) one-zero-one: digits read one by one, zero has 2
        (TEXT, 13),
        (ARCTIC_TEXT, 16),
        ("我有 3 个 apples", 6),  # 我 有 (2) + three (1) + 个 (1) + ap-ples (2)
        ("Two tables, five times.", 5),  # two(1) ta-bles(2) five(1) times(1)
    ],
)
def test_count_syllables(text: str, n: int) -> None:
    assert count_syllables(text) == n


def test_bad_labels_are_rejected() -> None:
    with pytest.raises(EvalError, match="'female' or 'male'"):
        pitch_level(200.0, "other")
    with pytest.raises(EvalError, match="'en' and 'zh'"):
        speed_level(4.0, "fr")
    with pytest.raises(EvalError, match="unknown level"):
        confusion_matrix(["fast"], ["low"])


def test_confusion_matrix_and_accuracies() -> None:
    req = ["low", "low", "high", "very_high", "moderate"]
    got = ["low", "moderate", "high", "high", "moderate"]
    cm = confusion_matrix(req, got)
    assert list(cm.index) == list(LEVELS) and list(cm.columns) == list(LEVELS)
    assert cm.loc["low", "low"] == 1 and cm.loc["low", "moderate"] == 1 and cm.loc["very_high", "high"] == 1
    assert cm.to_numpy().sum() == 5
    assert level_accuracy(cm) == pytest.approx(3 / 5)
    assert level_accuracy(cm, within=1) == pytest.approx(5 / 5)  # low->moderate, very_high->high
    far = confusion_matrix(["very_low", "very_high", "moderate"], ["moderate", "very_low", "high"])
    assert level_accuracy(far, within=1) == pytest.approx(1 / 3) and level_accuracy(far) == 0
    assert math.isnan(level_accuracy(confusion_matrix([], []), within=1))
    assert gender_accuracy(["female", "male", "male"], ["female", "male", "female"]) == pytest.approx(2 / 3)
    assert math.isnan(gender_accuracy([], []))
    rep = score_control(
        [
            {
                "gender": "male",
                "pitch": "low",
                "speed": "high",
                "gender_measured": "male",
                "pitch_measured": "low",
                "speed_measured": "moderate",
            },
            {
                "gender": "female",
                "pitch": "high",
                "speed": "low",
                "gender_measured": None,
            },  # not measured: skipped
            {
                "gender": float("nan"),
                "pitch": "high",
                "speed": "low",  # NaN from a DataFrame: skipped too
                "gender_measured": "male",
                "pitch_measured": "low",
                "speed_measured": "low",
            },
        ]
    )
    assert rep.gender_accuracy == 1.0 and rep.pitch_accuracy == 1.0 and rep.speed_accuracy == 0.0


@requires_espeak
def test_espeak_male_and_female_voices() -> None:
    # Measured: en-us mean F0 ~102 Hz, en-us+f3 ~208 Hz (pYIN); the rule's boundary is ~166 Hz.
    male = measure_attributes(espeak(TEXT, "en-us"), TEXT)
    female = measure_attributes(espeak(TEXT, "en-us+f3"), TEXT)
    assert male.gender == "male" and female.gender == "female"
    assert 80 < male.f0_mean_hz < 130 and 170 < female.f0_mean_hz < 260


@requires_espeak
def test_espeak_speed_extremes_land_in_the_outer_levels() -> None:
    # espeak-ng -s is words per minute: 80 wpm measured 2.4 syllables/s, 320 wpm 9.0 syllables/s.
    slow = measure_attributes(espeak(TEXT, "en-us", speed=80), TEXT)
    fast = measure_attributes(espeak(TEXT, "en-us", speed=320), TEXT)
    assert slow.speed_level == "very_low" and fast.speed_level == "very_high"
    assert fast.speed_sps > 2.5 * slow.speed_sps


@requires_espeak
def test_espeak_pitch_extremes() -> None:
    # espeak-ng -p 5 / -p 95 on the male voice: measured 75 Hz (114 mel) and 163 Hz (236 mel).
    low = measure_attributes(espeak(TEXT, "en-us", pitch=5), TEXT, gender="male")
    high = measure_attributes(espeak(TEXT, "en-us", pitch=95), TEXT, gender="male")
    assert low.pitch_level == "very_low"
    assert high.pitch_level in ("high", "very_high")


def test_arctic_recording() -> None:
    att = measure_attributes(ARCTIC, ARCTIC_TEXT)
    assert att.gender == "male" and att.lang == "en" and att.syllables == 16
    # 4.0 s file, about 3.2 s of speech plus the 0.2 s margins kept on each side.
    assert 3.0 < att.duration_s < 4.0
    assert att.speed_level == "moderate"


def test_silence_cannot_be_measured() -> None:
    import numpy as np

    with pytest.raises(EvalError, match="no speech"):
        measure_attributes(np.zeros(32000), "hello", 16000)
