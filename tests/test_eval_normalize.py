"""Seed-TTS-eval text normalisation and WER/CER aggregation (no models needed)."""

from __future__ import annotations

import math
import string

import pandas as pd
import pytest

from sparktts.eval.errors import EvalError
from sparktts.eval.normalize import PUNCTUATION, detect_language, normalize_pair, normalize_text
from sparktts.eval.wer import score_texts, summarize_wer, utterance_wer, word_error_rate

from ._eval_audio import require


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Punctuation is deleted, not replaced by a space; the apostrophe stays.
        ("Hello, World!", "hello world"),
        ("It's a well-known fact, isn't it?", "it's a wellknown fact isn't it"),
        # No number expansion in the protocol: digits stay digits, "$" and "%" go.
        ("It costs $10, i.e. 50% off.", "it costs 10 ie 50 off"),
        # A double space left by a deleted " - " becomes one space (one replace pass).
        ("Wait - what?", "wait what"),
        # Curly quotes and the em dash are in zhon's punctuation set.
        ("\u201cYes\u201d\u2014she said\u2026", "yesshe said"),
    ],
)
def test_english_normalisation(text: str, expected: str) -> None:
    assert normalize_text(text, "en") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你好，世界。", "你 好 世 界"),
        ("《三体》是一本书！", "三 体 是 一 本 书"),
        ("他说：“好的”", "他 说 好 的"),
    ],
)
def test_chinese_normalisation_spaces_characters(text: str, expected: str) -> None:
    assert normalize_text(text, "zh") == expected


def test_chinese_hypothesis_is_converted_to_simplified_but_reference_is_not() -> None:
    require("zhconv", "pip install zhconv")
    ref, hyp = normalize_pair("这是简体中文", "這是簡體中文。", "zh")
    assert hyp == "这 是 简 体 中 文"
    assert ref == hyp
    assert word_error_rate("这是简体中文", "這是簡體中文", "zh") == 0.0


def test_punctuation_set_matches_zhon_and_string() -> None:
    zhon = require("zhon.hanzi", "pip install zhon")
    assert set(PUNCTUATION) == (set(zhon.punctuation) | set(string.punctuation)) - {"'"}


@pytest.mark.parametrize(
    ("text", "lang"), [("Hello world", "en"), ("Hello 世界", "zh"), ("简体", "zh"), ("ｈｅｌｌｏ、", "en")]
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_unknown_language_is_rejected_with_the_fix() -> None:
    with pytest.raises(EvalError, match="--lang en"):
        normalize_text("hello", "de")


def test_utterance_wer_counts() -> None:
    res = utterance_wer("The cat sat on the mat.", "the cat sat on a mat today", "en")
    assert (res.substitutions, res.deletions, res.insertions, res.hits) == (1, 0, 1, 5)
    assert res.ref_len == 6
    assert res.wer == pytest.approx(2 / 6)
    assert res.metric == "wer"


def test_case_and_punctuation_do_not_count_as_errors() -> None:
    assert word_error_rate("Well, it's over!", "well it's over", "en") == 0.0


def test_wer_is_not_clipped_above_one() -> None:
    # Three hallucinated extra words on a one-word reference: WER 3.0, kept as is by the protocol.
    assert word_error_rate("Hello.", "hello hello hello hello", "en") == pytest.approx(3.0)


def test_empty_hypothesis_deletes_everything_and_empty_reference_is_an_error() -> None:
    assert word_error_rate("one two three", "", "en") == 1.0
    with pytest.raises(EvalError, match="empty"):
        utterance_wer("?!", "something", "en")


def test_cer_for_chinese() -> None:
    res = utterance_wer("今天天气很好", "今天天汽很好", "zh")
    assert res.unit == "char" and res.metric == "cer"
    assert res.wer == pytest.approx(1 / 6)


def test_utterance_mean_differs_from_corpus_wer() -> None:
    # Utterance 1: 1 error in 1 word (WER 1.0). Utterance 2: 0 errors in 9 words.
    df = score_texts(
        ["hello", "one two three four five six seven eight nine"],
        ["goodbye", "one two three four five six seven eight nine"],
        "en",
        ids=["a", "b"],
    )
    summary = summarize_wer(df)
    assert summary.utterance_mean == pytest.approx(0.5)  # (1.0 + 0.0) / 2: the protocol number
    assert summary.corpus == pytest.approx(0.1)  # 1 error / 10 words
    assert summary.protocol_percent == 50.0
    assert list(df.index) == ["a", "b"]


def test_summary_of_nothing_is_nan() -> None:
    s = summarize_wer(pd.DataFrame({"wer": [None], "errors": [None], "ref_len": [None]}))
    assert s.n == 0 and math.isnan(s.utterance_mean) and math.isnan(s.corpus)
