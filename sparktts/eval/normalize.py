"""Seed-TTS-eval text normalisation and a language guess.

The protocol (``run_wer.py::process_one`` of Seed-TTS-eval) normalises reference and hypothesis alike:

1. delete every character of ``zhon.hanzi.punctuation + string.punctuation`` except the ASCII apostrophe
   (deleted, not replaced by a space: "well-known" -> "wellknown");
2. replace a double space by a single space, in one pass (``str.replace``);
3. ``zh``: put a space between all characters, so that jiwer's WER is a character error rate;
   ``en``: lower-case.

There is no number expansion and no Whisper English normaliser: "10" and "ten" differ. The Chinese ASR
output (the hypothesis only) is converted to simplified characters with ``zhconv.convert(text, "zh-cn")``
before scoring; :func:`normalize_pair` does that step too so callers cannot forget it.
"""

from __future__ import annotations

import re
import string

from .errors import EvalError

try:  # zhon is the source the protocol uses; the copy below is checked against it by the tests.
    from zhon.hanzi import punctuation as _ZHON_PUNCTUATION
except ImportError:  # pragma: no cover - exercised only where zhon is not installed
    _ZHON_PUNCTUATION = (
        "＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､\u3000、〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛"
        "〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏﹑﹔·．！？｡。"
    )

LANGUAGES = ("en", "zh")

# Deleted characters, in the protocol's order; the apostrophe is kept so "it's" stays one word.
PUNCTUATION = "".join(ch for ch in _ZHON_PUNCTUATION + string.punctuation if ch != "'")
_PUNCT_TABLE = str.maketrans("", "", PUNCTUATION)

# Han ideographs (URO, extension A, compatibility, extensions B+). Kana and Hangul are not "zh".
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def check_language(lang: str) -> str:
    """Return ``lang`` if it is a language the protocol scores (``"en"`` or ``"zh"``), else raise.

    Raises
    ------
    EvalError
        ``lang`` is not ``"en"`` or ``"zh"``.
    """
    if lang not in LANGUAGES:
        raise EvalError(
            f"language {lang!r} is not scored by the Seed-TTS-eval protocol; use 'en' (WER) or 'zh' (CER), "
            "e.g. --lang en."
        )
    return lang


def detect_language(text: str) -> str:
    """Guess ``"zh"`` or ``"en"`` from text: ``"zh"`` as soon as one Han character occurs.

    This is the rule SparkVox uses to pick the syllable counter and speed boundaries; it is also right for
    the Seed-TTS-eval lists (test-zh and test-hard are Chinese, test-en has no Han characters).

    Examples
    --------
    >>> detect_language("Hello, 世界")
    'zh'
    >>> detect_language("Hello world")
    'en'
    """
    return "zh" if _HAN.search(text) else "en"


def to_simplified(text: str) -> str:
    """Convert traditional Chinese characters to simplified ones (``zhconv.convert(text, "zh-cn")``).

    Raises
    ------
    EvalError
        zhconv is not installed.
    """
    try:
        import zhconv
    except ImportError as exc:
        raise EvalError(
            "Chinese scoring converts the ASR output to simplified characters with zhconv, which is not "
            "installed: pip install zhconv"
        ) from exc
    return zhconv.convert(text, "zh-cn")


def normalize_text(text: str, lang: str) -> str:
    """Normalise one text as Seed-TTS-eval does before computing WER/CER.

    Parameters
    ----------
    text : str
        Reference or hypothesis.
    lang : {"en", "zh"}
        ``"zh"`` splits into space-separated characters, ``"en"`` lower-cases.

    Returns
    -------
    str
        The normalised text. For ``zh`` the original spaces become runs of spaces, which jiwer's default
        transform collapses, so spaces do not count as characters (same as the protocol).

    Examples
    --------
    >>> normalize_text("It's a well-known fact, isn't it?", "en")
    "it's a wellknown fact isn't it"
    >>> normalize_text("你好，世界。", "zh")
    '你 好 世 界'
    """
    check_language(lang)
    text = text.translate(_PUNCT_TABLE)
    text = text.replace("  ", " ")  # one pass, as the protocol; jiwer collapses what is left
    if lang == "zh":
        return " ".join(text)
    return text.lower()


def normalize_pair(ref: str, hyp: str, lang: str) -> tuple[str, str]:
    """Normalise a (reference, hypothesis) pair; for ``zh`` the hypothesis is first made simplified.

    Returns
    -------
    tuple of str
        ``(normalised_ref, normalised_hyp)``.
    """
    check_language(lang)
    if lang == "zh":
        hyp = to_simplified(hyp)
    return normalize_text(ref, lang), normalize_text(hyp, lang)
