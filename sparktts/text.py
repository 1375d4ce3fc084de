"""Text helpers: input checks, CJK detection, space-aware joining and sentence splitting for long-text synthesis.

Spark-TTS handles one utterance per LLM call and degrades on very long inputs, so long text is cut into
sentence-sized pieces that are synthesised one by one. The splitter here only ever cuts at sentence
punctuation, commas, whitespace or between two CJK characters, so no word is ever cut in half, and
every non-space character of the input survives, in order, in the concatenated pieces.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from typing import Any

from sparktts import defaults
from sparktts.errors import PromptError, SparkTTSWarning

__all__ = ["CJK_LETTER_RE", "DEFAULT_MAX_CHARS", "check_text", "chunk_text", "is_cjk", "join_text", "split_sentences"]

# Code-point ranges of scripts that are written WITHOUT spaces between words (Han, kana, bopomofo) plus
# the CJK punctuation / full-width blocks. Hangul is deliberately absent: Korean separates words with
# spaces, so for both the join rule and the splitter it behaves like a Latin script.
# The letters (one syllable each when read aloud) and the punctuation blocks are kept apart so that a
# syllable counter can match only the letters (CJK_LETTER_RE) with the same table.
_CJK_LETTER_RANGES: tuple[tuple[int, int], ...] = (
    (0x2E80, 0x2FDF),  # CJK radicals supplement, Kangxi radicals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31FF),  # Bopomofo extended, CJK strokes, Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x2FA1F),  # extensions B..F and compatibility supplement
    (0x30000, 0x323AF),  # extensions G, H
)
_CJK_PUNCTUATION_RANGES: tuple[tuple[int, int], ...] = (
    (0x3000, 0x303F),  # CJK symbols and punctuation (。、「」 ...)
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half-width and full-width forms (，！？ ...)
)
_CJK_RANGES = tuple(sorted(_CJK_LETTER_RANGES + _CJK_PUNCTUATION_RANGES))
# One CJK letter (ideograph, kana, bopomofo): what a syllable counter counts one by one.
CJK_LETTER_RE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_LETTER_RANGES) + "]")

# Sentence terminators. ASCII ones only end a sentence when followed by whitespace / end of text / CJK,
# so that "3.14", "v1.2" or "a.b" stay intact; the CJK ones always end a sentence.
_ASCII_TERMINATORS = frozenset(".!?;")
_CJK_TERMINATORS = frozenset("。！？；…")
_TERMINATORS = _ASCII_TERMINATORS | _CJK_TERMINATORS
# Characters that belong to the sentence they close (closing quotes / brackets after the full stop).
_CLOSERS = frozenset("\"')]}”’」』》）】〉")
_COMMAS = frozenset(",，、")
# "Mr. Smith" must not be cut after "Mr.". Lower-cased, without the trailing dot.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "approx"}
)

DEFAULT_MAX_CHARS = defaults.MAX_CHARS
DEFAULT_MIN_CHARS = defaults.MIN_CHARS
# Any "<|name|>" markup inside user text would be tokenised as a control token and hijack the prompt.
_MARKUP_RE = re.compile(r"<\|[A-Za-z0-9_\-]+\|>")


def check_text(text: Any, where: str = "text", *, in_list: bool = False, markup: bool = False,
               warn_no_words: bool = False, stacklevel: int = 3) -> str:
    """``text`` if it is speakable text, else a :class:`PromptError` naming ``where`` and the fix.

    Every entry point checks text here: a str, not blank, only real characters (no lone surrogates).

    Args:
        where: how the caller names the text in messages ("text", "prompt_text", "text item 2 of 3").
        in_list: the caller also accepts a list of texts (the message says so).
        markup: refuse ``<|...|>`` control-token markup (prompt builders: it would hijack the prompt).
        warn_no_words: warn (:class:`SparkTTSWarning`) when there is no letter or digit to read out.
    """
    if not isinstance(text, str):
        hint = "; decode bytes first, e.g. text.decode('utf-8')" if isinstance(text, (bytes, bytearray)) else ""
        also = " (or a list of str)" if in_list else ""
        raise PromptError(f"{where} must be a str{also}, got {type(text).__name__}{hint}")
    if not text.strip():
        raise PromptError(f"{where} is empty or whitespace only ({text!r}); give the words to speak")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError(
            f"{where} contains {text[exc.start:exc.end]!r} at position {exc.start}, which is not a character (a lone "
            "surrogate, e.g. from decoding with errors='surrogateescape'); decode the text properly first"
        ) from None
    found = _MARKUP_RE.search(text) if markup else None
    if found:
        raise PromptError(
            f"{where} contains the control-token markup {found.group(0)!r}; remove '<|...|>' sequences "
            "from the text (they would be read as Spark-TTS special tokens)"
        )
    if warn_no_words and not any(unicodedata.category(c)[0] in "LN" for c in text):
        # Punctuation / emoji only: the model has no words to read and says something arbitrary.
        warnings.warn(f"{where} {text[:40]!r} has no letters or digits, so there is nothing to read out; the audio "
                      "will be arbitrary. Write the words to speak (e.g. spell out symbols).", SparkTTSWarning,
                      stacklevel=stacklevel)
    return text


def is_cjk(char: str) -> bool:
    """True when ``char`` (a single character) belongs to a script written without inter-word spaces.

    Covers Han ideographs (all extensions), Japanese kana, bopomofo, CJK punctuation and full-width forms.
    Hangul is not included (Korean puts spaces between words).

    Raises:
        PromptError: ``char`` is not a string of length 1.
    """
    if not isinstance(char, str) or len(char) != 1:
        raise PromptError(f"is_cjk expects a single character, got {char!r}")
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def join_text(left: str, right: str) -> str:
    """Join two text fragments with one space, or with none where a space would be wrong.

    No space is inserted when either fragment is empty, when ``left`` already ends or ``right`` already
    starts with whitespace, or when the character on either side of the seam is CJK (Chinese and Japanese
    do not separate words with spaces). Otherwise exactly one space is inserted.

    >>> join_text("Hello.", "World")
    'Hello. World'
    >>> join_text("你好。", "世界")
    '你好。世界'
    """
    if not left or not right:
        return left + right
    if left[-1].isspace() or right[0].isspace():
        return left + right
    if is_cjk(left[-1]) or is_cjk(right[0]):
        return left + right
    return f"{left} {right}"


def _ends_sentence(text: str, i: int) -> int | None:
    """If a sentence ends with the terminator at ``text[i]``, return the end index (exclusive), else None.

    The end index includes any run of further terminators ("?!", "...", "……") and closing quotes or
    brackets that follow, because those belong to the sentence they close.
    """
    n = len(text)
    j = i
    while j < n and text[j] in _TERMINATORS:
        j += 1
    while j < n and text[j] in _CLOSERS:
        j += 1
    run = text[i:j]
    if any(c in _CJK_TERMINATORS for c in run):
        return j
    # Only ASCII terminators in the run: require a boundary after it, so decimals / versions survive.
    if j < n and not (text[j].isspace() or is_cjk(text[j])):
        return None
    if run.startswith("."):
        # "Mr. Smith", "e.g. this": a single dot right after a known abbreviation is not a full stop.
        k = i
        while k > 0 and not text[k - 1].isspace():
            k -= 1
        word = text[k:i].lower().lstrip("\"'(")
        if word in _ABBREVIATIONS and j < n:
            return None
    return j


def _split_at_sentences(text: str) -> list[str]:
    """Cut ``text`` after every sentence terminator and at line breaks. Pieces are stripped, non-empty."""
    pieces: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            pieces.append(text[start:i])
            start = i + 1
            i += 1
            continue
        if c in _TERMINATORS:
            end = _ends_sentence(text, i)
            if end is not None:
                pieces.append(text[start:end])
                start = end
                i = end
                continue
            # Skip the whole terminator run so "..." is not re-examined from its middle dot.
            while i < n and text[i] in _TERMINATORS:
                i += 1
            continue
        i += 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _split_at_commas(sentence: str) -> list[str]:
    """Cut after each comma ("," only when followed by whitespace, so "1,000" survives; "，、" always)."""
    parts: list[str] = []
    start = 0
    for i, c in enumerate(sentence):
        if c not in _COMMAS:
            continue
        if c == "," and i + 1 < len(sentence) and not sentence[i + 1].isspace():
            continue
        parts.append(sentence[start : i + 1])
        start = i + 1
    parts.append(sentence[start:])
    return [p.strip() for p in parts if p.strip()]


def _word_units(text: str) -> list[str]:
    """Split into unbreakable units: whitespace-separated words, with CJK runs cut into single characters.

    Concatenating the units with :func:`join_text` gives back ``text`` up to whitespace.
    """
    units: list[str] = []
    for word in text.split():
        buf = ""
        for c in word:
            if is_cjk(c):
                # A CJK character may be separated from its neighbours; trailing CJK punctuation is
                # glued to the previous unit so no piece starts with "，" or "。".
                if buf and not (c in _COMMAS or c in _CJK_TERMINATORS or c in _CLOSERS):
                    units.append(buf)
                    buf = ""
                buf += c
            else:
                if buf and is_cjk(buf[-1]):
                    units.append(buf)
                    buf = ""
                buf += c
        if buf:
            units.append(buf)
    return units


def _pack(units: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive units (with :func:`join_text`) into pieces of at most ``max_chars``.

    A single unit longer than ``max_chars`` (e.g. a URL) is kept whole: never cutting a word wins.
    """
    pieces: list[str] = []
    cur = ""
    for unit in units:
        cand = join_text(cur, unit) if cur else unit
        if cur and len(cand) > max_chars:
            pieces.append(cur)
            cur = unit
        else:
            cur = cand
    if cur:
        pieces.append(cur)
    return pieces


def _limit_length(sentence: str, max_chars: int) -> list[str]:
    """Split one over-long sentence: at commas first, then at word / CJK-character boundaries."""
    if len(sentence) <= max_chars:
        return [sentence]
    units: list[str] = []
    for clause in _split_at_commas(sentence):
        if len(clause) <= max_chars:
            units.append(clause)
        else:
            units.extend(_pack(_word_units(clause), max_chars))
    # Re-pack clauses so that short clauses share a piece instead of each becoming its own utterance.
    return _pack(units, max_chars)


def _merge_short(pieces: list[str], min_chars: int, max_chars: int) -> list[str]:
    """Merge pieces shorter than ``min_chars`` into a neighbour when the result fits ``max_chars``.

    A short piece joins the following piece; the last piece joins the previous one. Very short
    utterances ("Hi.", "好。") synthesise poorly on their own, hence the merge.
    """
    out: list[str] = []
    carry = ""
    for piece in pieces:
        if carry:
            merged = join_text(carry, piece)
            if len(merged) <= max_chars:
                piece = merged
            else:
                out.append(carry)
            carry = ""
        if len(piece) < min_chars:
            carry = piece
        else:
            out.append(piece)
    if carry:
        if out and len(join_text(out[-1], carry)) <= max_chars:
            out[-1] = join_text(out[-1], carry)
        else:
            out.append(carry)
    return out


def split_sentences(
    text: str, max_chars: int = DEFAULT_MAX_CHARS, min_chars: int = DEFAULT_MIN_CHARS
) -> list[str]:
    """Split long text into sentence-sized pieces for one-by-one synthesis.

    Rules, in order:

    1. Cut after sentence punctuation (``. ! ? ;`` and ``。！？；…``; runs such as ``?!`` / ``……`` and
       closing quotes stay with their sentence) and at line breaks. ASCII terminators only count when
       followed by whitespace, a CJK character or the end (so ``3.14`` is kept), and ``Mr.``-style
       abbreviations do not end a sentence.
    2. A sentence longer than ``max_chars`` is cut after commas (``, ，、``), and a clause still longer is
       cut at spaces or between CJK characters. Words are never cut: a single word longer than
       ``max_chars`` becomes its own (over-long) piece.
    3. Pieces shorter than ``min_chars`` are merged with a neighbour when the result fits ``max_chars``.

    Pieces are stripped of surrounding whitespace; joining them never loses a non-space character.

    Args:
        text: input text (any length; may mix Chinese and English).
        max_chars: soft upper bound on a piece's length in characters (>= 1).
        min_chars: pieces shorter than this are merged into a neighbour (>= 0; 0 disables merging).

    Returns:
        The list of pieces, in order; ``[]`` for empty / whitespace-only text.

    Raises:
        PromptError: ``text`` is not a string, or ``max_chars`` / ``min_chars`` are out of range.
    """
    if not isinstance(text, str):
        raise PromptError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(max_chars, int) or max_chars < 1:
        raise PromptError(f"max_chars must be an int >= 1, got {max_chars!r}")
    if not isinstance(min_chars, int) or min_chars < 0:
        raise PromptError(f"min_chars must be an int >= 0, got {min_chars!r}")
    # Normalise Windows / old-Mac line ends so "\r" never ends up inside a piece.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    pieces: list[str] = []
    for sentence in _split_at_sentences(text):
        pieces.extend(_limit_length(sentence, max_chars))
    return _merge_short(pieces, min_chars, max_chars) if min_chars > 0 else pieces


def chunk_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Split ``text`` into sentences, then pack consecutive sentences into chunks of <= ``max_chars``.

    Sentences are never cut mid-word (see :func:`split_sentences`); packing keeps short sentences together
    so that there are as few seams as possible.
    """
    chunks: list[str] = []
    for piece in split_sentences(text, max_chars=max_chars):
        if chunks and len(join_text(chunks[-1], piece)) <= max_chars:
            chunks[-1] = join_text(chunks[-1], piece)
        else:
            chunks.append(piece)
    return chunks
