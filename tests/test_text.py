"""Sentence splitting for long-text synthesis, CJK detection and the join rule."""

from __future__ import annotations

import re

import pytest

from sparktts.errors import PromptError
from sparktts.text import is_cjk, join_text, split_sentences


def _non_space(s: str) -> str:
    return re.sub(r"\s+", "", s)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hello there. How are you today? I am fine!",
            ["Hello there.", "How are you today?", "I am fine!"],
        ),
        (
            "今天天气很好。我们去公园吧！你觉得怎么样？",
            ["今天天气很好。", "我们去公园吧！", "你觉得怎么样？"],
        ),
        # Mixed: a CJK full stop directly followed by English still ends the sentence.
        (
            "我喜欢用Python编程。It is really fun! 你呢？我也是；真的。",
            ["我喜欢用Python编程。", "It is really fun!", "你呢？", "我也是；", "真的。"],
        ),
        # Decimals and "Mr." do not end a sentence; "?!" and "……" stay together.
        (
            "Pi is 3.14 today. Mr. Smith agrees?! 等一下……好的。",
            ["Pi is 3.14 today.", "Mr. Smith agrees?!", "等一下……", "好的。"],
        ),
        # Closing quotes belong to the sentence they close; line breaks end a sentence.
        (
            'He said "Stop!" Then he left.\nNew paragraph without a full stop',
            ['He said "Stop!"', "Then he left.", "New paragraph without a full stop"],
        ),
        ("  \n  ", []),
        ("", []),
    ],
)
def test_sentence_boundaries(text: str, expected: list[str]) -> None:
    assert split_sentences(text, max_chars=200, min_chars=0) == expected


def test_long_english_sentence_splits_at_commas_then_spaces() -> None:
    text = (
        "This is a very long sentence, with several clauses, that goes on and on and on, "
        "until it must be split somewhere sensible."
    )
    pieces = split_sentences(text, max_chars=40, min_chars=0)
    assert pieces == [
        "This is a very long sentence,",
        "with several clauses,",
        "that goes on and on and on,",
        "until it must be split somewhere",
        "sensible.",
    ]


def test_short_clauses_share_a_piece() -> None:
    text = "One, two, three, four, five, six, seven, eight, nine, ten."
    assert split_sentences(text, max_chars=25, min_chars=0) == [
        "One, two, three, four,",
        "five, six, seven, eight,",
        "nine, ten.",
    ]


def test_long_chinese_sentence_splits_at_commas_then_characters() -> None:
    text = (
        "这是一个非常长的句子，它有很多从句、而且一直在继续继续继续继续继续继续继续继续，直到必须被切开为止。"
    )
    pieces = split_sentences(text, max_chars=12, min_chars=0)
    assert pieces == [
        "这是一个非常长的句子，",
        "它有很多从句、",
        "而且一直在继续继续继续继",
        "续继续继续继续继续，",
        "直到必须被切开为止。",
    ]
    assert all(len(p) <= 12 for p in pieces)


def test_comma_inside_number_is_not_a_split_point() -> None:
    text = "The total was 1,000,000 dollars, which is a lot of money for anyone."
    pieces = split_sentences(text, max_chars=35, min_chars=0)
    assert pieces == ["The total was 1,000,000 dollars,", "which is a lot of money for anyone."]


def test_words_are_never_cut() -> None:
    text = (
        "Supercalifragilisticexpialidocious is long and https://example.com/a/very/long/path/name "
        "is longer still but neither word may be cut in half by the splitter at all"
    )
    pieces = split_sentences(text, max_chars=20, min_chars=0)
    # Re-joining the pieces with spaces gives exactly the original word sequence.
    assert " ".join(pieces).split() == text.split()
    assert "https://example.com/a/very/long/path/name" in pieces  # over-long word kept whole
    assert all(len(p) <= 20 for p in pieces if " " in p)


def test_short_pieces_are_merged_with_neighbours() -> None:
    assert split_sentences("Hi. OK. This is a longer sentence here.", max_chars=100, min_chars=8) == [
        "Hi. OK. This is a longer sentence here."
    ]
    # A short last piece joins the previous one; CJK pieces join without a space.
    assert split_sentences("今天天气很好，阳光明媚。好。", max_chars=100, min_chars=4) == [
        "今天天气很好，阳光明媚。好。"
    ]
    # No merge when the result would exceed max_chars.
    assert split_sentences("Hi. This sentence is long enough.", max_chars=18, min_chars=8) == [
        "Hi.",
        "This sentence is",
        "long enough.",
    ]


@pytest.mark.parametrize("max_chars", [5, 12, 30, 150])
@pytest.mark.parametrize(
    "text",
    [
        "Hello there. How are you today? I am fine, thanks, and you? Pi is 3.14; e is 2.718.",
        "今天天气很好，阳光明媚。我们去公园吧！你觉得怎么样？一二三四五六七八九十一二三四五六七八九十。",
        "我喜欢Python编程，It is really fun!  你呢？\n\nNew line…… 好的。 Mr. Smith said: “OK.”",
        "averyveryverylongwordwithoutanyspaces and more, words。",
    ],
)
def test_pieces_preserve_every_non_space_character(text: str, max_chars: int) -> None:
    for min_chars in (0, 8):
        pieces = split_sentences(text, max_chars=max_chars, min_chars=min_chars)
        assert _non_space("".join(pieces)) == _non_space(text)
        assert all(p == p.strip() and p for p in pieces)


def test_bad_arguments() -> None:
    with pytest.raises(PromptError, match="max_chars must be an int >= 1, got 0"):
        split_sentences("Hi.", max_chars=0)
    with pytest.raises(PromptError, match="min_chars must be an int >= 0, got -1"):
        split_sentences("Hi.", min_chars=-1)
    with pytest.raises(PromptError, match="text must be a str, got bytes"):
        split_sentences(b"Hi.")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("中", True),
        ("。", True),
        ("，", True),
        ("あ", True),
        ("カ", True),
        ("\U00020000", True),  # CJK extension B
        ("a", False),
        ("1", False),
        (".", False),
        (" ", False),
        ("é", False),
        ("한", False),  # Korean uses spaces between words
    ],
)
def test_is_cjk(char: str, expected: bool) -> None:
    assert is_cjk(char) is expected


def test_is_cjk_needs_one_character() -> None:
    with pytest.raises(PromptError, match="single character, got 'ab'"):
        is_cjk("ab")


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("Hello.", "World", "Hello. World"),
        ("你好。", "世界", "你好。世界"),
        ("Hello", "世界", "Hello世界"),
        ("你好", "World", "你好World"),
        ("Hello ", "World", "Hello World"),
        ("Hello", "\nWorld", "Hello\nWorld"),
        ("", "World", "World"),
        ("Hello", "", "Hello"),
    ],
)
def test_join_text(left: str, right: str, expected: str) -> None:
    assert join_text(left, right) == expected
