"""``SparkTTS``: text -> speech in a cloned or a designed voice, as the original, plus seeds, voices, batching,
long text and streaming.

Quick start::

    tts = SparkTTS.from_pretrained("pretrained_models/Spark-TTS-0.5B")
    out = tts.clone("Hello there.", prompt_audio="ref.wav", seed=0)            # -> Synthesis
    out.save("hello.wav")
    made = tts.create("Hi, I am new here.", gender="female", pitch="high", speed="moderate", seed=1)
    voice = made.voice("newcomer"); voice.save("newcomer.json")               # reuse the designed voice
    tts.clone("Every later line in that voice.", voice=Voice.load("newcomer.json"))
    wav = tts.inference("Hello.", prompt_speech_path="ref.wav")               # the original call

How a call runs: each text is split into sentence-sized chunks when long (:func:`split_sentences`), the
chunks become prompts (:mod:`sparktts.prompts`), prompts are generated in left-padded batches with
constrained decoding (:mod:`sparktts.generation`), the tokens are decoded by BiCodec, and the chunks of
one text are joined with a short crossfade. A created voice is made from a text's first chunk; its other
chunks are cloned with the created global tokens, so the whole text has one voice.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import os
import threading
import time
import unicodedata
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sparktts.audio import save_audio
from sparktts.checkpoint import DEFAULT_REPO_ID, resolve_model_dir
from sparktts.codec.tokenizer import W2V_DIR, BiCodecTokenizer, resolve_device
from sparktts.codec.tokens import BiCodecTokens
from sparktts.errors import ConfigError, GenerationError, PromptError, SparkTTSWarning
from sparktts.generation import GeneratedTokens, Kind, Mode, SamplingConfig, SpeechGenerator, new_seed
from sparktts.llm.model import load_llm
from sparktts.prompts import Gender, Level, build_clone_prompt, build_create_prompt
from sparktts.runtime import release_memory
from sparktts.streaming import StreamingDecoder, TokenQueueStreamer, crossfade_concat, fade_curves
from sparktts.text import join_text, split_sentences
from sparktts.voices import Voice, _base_metadata

__all__ = ["SparkTTS", "Synthesis", "SynthesisStream", "chunk_text", "mel_to_hz"]

DEFAULT_MAX_CHARS = 150  # longer texts are split into chunks of at most this many characters
DEFAULT_CROSSFADE_S = 0.05  # crossfade between the chunks of a long text
MAX_CROSSFADE_S = 10.0  # longer is surely a mistake (seconds given as samples?)
_VOICE_CACHE_SIZE = 32


def mel_to_hz(mel: float) -> float:
    """Inverse of the mel scale used for ``<|pitch_value_N|>``: ``700 * (10 ** (mel / 2595) - 1)``."""
    return 700.0 * (10.0 ** (float(mel) / 2595.0) - 1.0)


def chunk_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Split ``text`` into sentences, then pack consecutive sentences into chunks of <= ``max_chars``.

    Sentences are never cut mid-word (see :func:`sparktts.text.split_sentences`); packing keeps short
    sentences together so that there are as few seams as possible.
    """
    chunks: list[str] = []
    for piece in split_sentences(text, max_chars=max_chars):
        if chunks and len(join_text(chunks[-1], piece)) <= max_chars:
            chunks[-1] = join_text(chunks[-1], piece)
        else:
            chunks.append(piece)
    return chunks


# ----------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------


@dataclass
class Synthesis:
    """One synthesised text.

    Attributes:
        audio: ``(T,)`` float32 waveform at ``sample_rate`` (16 kHz).
        sample_rate: 16000 for the release.
        global_tokens: ``(G,)`` int64 speaker tokens used (the voice; predicted by the LM in create mode).
        semantic_tokens: ``(N,)`` int64 generated semantic tokens (50 per second); for a long text the
            concatenation of its segments' tokens (the audio is the crossfaded join of the segments).
        prompt: the LLM prompt string (of the first segment for a long text).
        text: the input text.
        mode: "clone" or "create".
        seed: the seed this result was generated with (pass it again to reproduce the call).
        timings: seconds per stage of the call (``prompt_s`` audio tokenization, ``generate_s``,
            ``decode_s``, ``total_s``) plus ``audio_s`` and ``rtf`` (total / audio duration), and
            ``first_chunk_s`` for streams.
        pitch_value: create mode: the pitch the model decided, in mel (``<|pitch_value_N|>``, 0-1000).
        speed_value: create mode: the speed the model decided, in syllables per second (0-10).
        attributes: create mode: the requested ``{"gender", "pitch", "speed"}`` labels.
        segments: the per-chunk results of a long text (empty for a single chunk).
        finish_reason: "stop" (the model ended the utterance) or "length" (``max_new_tokens`` hit).
        voice_name: name of the voice used, when known.
        error: for an item of a list call that produced no speech, why (its audio and tokens are then empty
            and the other items are unaffected); None for every result with audio.
    """

    audio: np.ndarray
    sample_rate: int
    global_tokens: np.ndarray
    semantic_tokens: np.ndarray
    prompt: str
    text: str
    mode: str
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    pitch_value: int | None = None
    speed_value: int | None = None
    attributes: dict[str, str] | None = None
    segments: list[Synthesis] = field(default_factory=list)
    finish_reason: str = "stop"
    voice_name: str | None = None
    voice_metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None

    @property
    def duration(self) -> float:
        """Audio length in seconds."""
        return len(self.audio) / self.sample_rate

    @property
    def pitch_hz(self) -> float | None:
        """``pitch_value`` converted from mel to Hz (None outside create mode)."""
        return None if self.pitch_value is None else mel_to_hz(self.pitch_value)

    @property
    def tokens(self) -> BiCodecTokens:
        """The tokens as a batch of one (``(1, G)``, ``(1, N)``) for the codec."""
        return BiCodecTokens.from_lists([self.global_tokens.tolist()], [self.semantic_tokens.tolist()])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the audio as a 16-bit WAV file (folders are created; atomic, so an interrupted save leaves
        no truncated file). Returns the path.

        Raises:
            GenerationError: this result has no audio (``error`` says why).
        """
        if self.error is not None:
            raise GenerationError(f"nothing to save for {self.text[:60]!r}: {self.error}")
        return save_audio(path, self.audio, self.sample_rate)

    def voice(self, name: str | None = None, *, with_prompt: bool = False) -> Voice:
        """The voice of this result, to speak later lines in it without re-running the audio tokenizer.

        Args:
            name: a label for the voice.
            with_prompt: also keep this utterance (its semantic tokens and text) as the voice's reference,
                which the LM then continues (more consistent prosody, longer prompts). For a long text the
                first segment is used.
        """
        first = self.segments[0] if self.segments else self
        if self.mode == "create":
            source: dict[str, Any] = {
                "type": "created",
                **(self.attributes or {}),
                "pitch_value": self.pitch_value,
                "speed_value": self.speed_value,
                "seed": self.seed,
                "text": first.text,
            }
            meta = _base_metadata(source)
        else:
            meta = dict(self.voice_metadata) or _base_metadata({"type": "clone"})
        prompt_ids = first.semantic_tokens.copy() if with_prompt else None
        prompt_text = first.text if with_prompt else None
        return Voice(self.global_tokens.copy(), prompt_ids, prompt_text, name or self.voice_name, meta)

    def _repr_html_(self) -> str:
        """Notebook view: an audio player and the main facts."""
        buf = io.BytesIO()
        import soundfile

        soundfile.write(buf, np.clip(self.audio, -1, 1), self.sample_rate, format="WAV", subtype="PCM_16")
        b64 = base64.b64encode(buf.getvalue()).decode("ascii")
        rows = [
            ("text", html.escape(self.text if len(self.text) < 200 else self.text[:200] + "…")),
            ("mode", self.mode),
            ("duration", f"{self.duration:.2f} s"),
            ("seed", str(self.seed)),
        ]
        if self.pitch_value is not None:
            rows.append(("pitch", f"{self.pitch_value} mel ({self.pitch_hz:.0f} Hz)"))
        if self.speed_value is not None:
            rows.append(("speed", f"{self.speed_value} syllables/s"))
        if self.segments:
            rows.append(("segments", str(len(self.segments))))
        if "rtf" in self.timings:
            rows.append(("RTF", f"{self.timings['rtf']:.3f}"))
        table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return (f"<audio controls src='data:audio/wav;base64,{b64}'></audio>"
                f"<table style='font-size:90%'>{table}</table>")

    def __repr__(self) -> str:
        extra = ""
        if self.pitch_value is not None:
            extra = f", pitch={self.pitch_value} mel, speed={self.speed_value} syl/s"
        seg = f", {len(self.segments)} segments" if self.segments else ""
        return (f"Synthesis({self.mode}, {self.duration:.2f} s, {len(self.semantic_tokens)} semantic tokens, "
                f"seed={self.seed}{extra}{seg})")


# ----------------------------------------------------------------------------------------------------
# Internal job / row bookkeeping
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Job:
    """One input text: its chunks and, for cloning, its voice; for creation, the requested labels."""

    text: str
    chunks: list[str]
    mode: str  # "clone" | "create"
    voice: Voice | None = None
    attrs: tuple[Any, Any, Any] | None = None
    results: list[Synthesis | None] = field(default_factory=list)


@dataclass
class _Row:
    job: int
    chunk: int
    text: str
    prompt: str
    global_ids: np.ndarray | None  # None: the LM predicts them (create)


def _as_list(value: Any, n: int, name: str) -> list[Any]:
    """Broadcast a scalar argument to ``n`` items, or check a list/tuple has ``n`` items."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise PromptError(
                f"{name} has {len(value)} items but there are {n} texts; give one per text or one for all"
            )
        return list(value)
    return [value] * n


def _texts(text: Any) -> tuple[list[Any], bool]:
    """``(texts, single)``: a str is one text; a list, tuple or other iterable of texts is a batch."""
    if isinstance(text, str):
        return [text], True
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise PromptError(f"text must be a str, got {type(text).__name__}; decode it first, e.g. text.decode('utf-8')")
    if text is None or isinstance(text, dict) or not isinstance(text, Iterable):
        raise PromptError(f"text must be a str or a list of str, got {type(text).__name__}")
    texts = list(text)
    if not texts:
        raise PromptError("text is an empty list; give at least one text")
    return texts, False


def _check_text(text: Any, item: int | None = None, n: int = 1) -> str:
    """The text, checked; ``item`` (0-based) names the failing entry of a list of ``n`` texts."""
    where = f"text item {item + 1} of {n}" if item is not None and n > 1 else "text"
    if not isinstance(text, str):
        hint = "; decode bytes first, e.g. text.decode('utf-8')" if isinstance(text, (bytes, bytearray)) else ""
        raise PromptError(f"{where} must be a str (or a list of str), got {type(text).__name__}{hint}")
    if not text.strip():
        raise PromptError(f"{where} is empty or whitespace only ({text!r}); give the words to speak")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError(
            f"{where} contains {text[exc.start:exc.end]!r} at position {exc.start}, which is not a character (a lone "
            "surrogate, e.g. from decoding with errors='surrogateescape'); decode the text properly first"
        ) from None
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        # Punctuation / emoji only: the model has no words to read and says something arbitrary.
        warnings.warn(f"{where} {text[:40]!r} has no letters or digits, so there is nothing to read out; the audio "
                      "will be arbitrary. Write the words to speak (e.g. spell out symbols).", SparkTTSWarning,
                      stacklevel=4)
    return text


def _check_number(value: Any, name: str, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    # Comparisons, not float(): NaN fails both, and a huge int compares without overflowing.
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and minimum <= value <= maximum
    if not ok or value in (math.inf, -math.inf):
        raise ConfigError(f"{name} must be a finite number in [{minimum:g}, {maximum:g}], got {value!r}")
    return float(value)


def _check_int(value: Any, name: str, *, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be an int >= {minimum}{none}, got {value!r}")
    return value


class SparkTTS:
    """Spark-TTS inference: BiCodec + the Qwen2.5 LM of a release directory.

    Args:
        model_dir: a release directory (``config.yaml``, ``BiCodec/``, ``LLM/``, ``wav2vec2-large-xlsr-53/``)
            or a hub repo id (downloaded when online).
        device: None picks ``cuda:0`` when available; ``"0"`` means ``cuda:0`` like the original.
        dtype: the LLM's weight dtype (None = float32 as the original, "bfloat16" for GPUs, "auto").
            The codec always runs in float32.
        engine: "fast" (default: KV-cached loop with an LM head restricted to the Spark-TTS tokens; the same
            tokens as ``model.generate`` under greedy decoding), "hf" (``model.generate``, the original's way)
            or "vllm" (GPU servers with vLLM installed; see :mod:`sparktts.llm.vllm_backend`).
        quantize: None, or "int8" for dynamic int8 linear layers in the LLM body (CPU speed; changes the
            numbers — see the README's benchmark for its cost).

    Attributes (original names): ``model_dir``, ``device``, ``configs``, ``sample_rate``, ``tokenizer``
    (the LLM's), ``model`` (the LLM), ``audio_tokenizer`` (:class:`BiCodecTokenizer`); plus ``codec`` and
    ``generator`` (:class:`SpeechGenerator`).
    """

    def __init__(self, model_dir: str | os.PathLike = DEFAULT_REPO_ID, device: Any = None,
                 dtype: str | torch.dtype | None = None, engine: str = "fast", quantize: str | None = None):
        self.model_dir = resolve_model_dir(model_dir, require=("config.yaml", "BiCodec", "LLM", W2V_DIR))
        self.device = resolve_device(device)
        self.audio_tokenizer = BiCodecTokenizer(self.model_dir, device=self.device)
        self.configs = self.audio_tokenizer.config
        self.sample_rate = self.audio_tokenizer.sample_rate
        if quantize not in (None, "int8"):
            raise ConfigError(f"quantize must be None or 'int8', not {quantize!r}")
        self.tokenizer, self.model = load_llm(self.model_dir / "LLM", self.device, dtype, quantize=quantize)
        self.codec = self.audio_tokenizer.model
        self.num_globals = self.codec.config.speaker_encoder.token_num
        self.generator = SpeechGenerator(
            self.model,
            self.tokenizer,
            semantic_size=self.codec.quantizer.codebook_size,
            global_size=self.codec.speaker_encoder.quantizer.codebook_size,
            num_globals=self.num_globals,
        )
        if engine not in ("fast", "hf", "vllm"):
            raise ConfigError(f"engine must be 'fast', 'hf' or 'vllm', not {engine!r}")
        if engine == "vllm":
            from sparktts.llm.vllm_backend import VLLMGenerator

            self.generator.vllm = VLLMGenerator(self.model_dir / "LLM", self.generator)
        self.generator.engine = engine
        self._voice_cache: OrderedDict[tuple[Any, ...], Voice] = OrderedDict()
        self._voice_cache_lock = threading.Lock()  # calls from several threads share the cache
        release_memory()  # loading's transient copies (fp32 -> int8, dtype casts) leave free heap pages

    @classmethod
    def from_pretrained(cls, model_dir_or_repo_id: str | os.PathLike = DEFAULT_REPO_ID, device: Any = None,
                        dtype: str | torch.dtype | None = None, engine: str = "fast",
                        quantize: str | None = None) -> SparkTTS:
        """Load a release from a local directory, or a hub repo id when online (see :class:`SparkTTS`)."""
        return cls(model_dir_or_repo_id, device=device, dtype=dtype, engine=engine, quantize=quantize)

    # -- voices ---------------------------------------------------------------------------------------
    def make_voice(self, audio: str | os.PathLike | np.ndarray, transcript: str | None = None, *,
                   sample_rate: int | None = None, name: str | None = None) -> Voice:
        """A :class:`Voice` from a reference clip (cached: the same clip is tokenized once per instance).

        With a ``transcript`` the clip's semantic tokens are kept and the LM continues them (needs the
        wav2vec2 pass); without, only the 32 global tokens are computed.
        """
        key = self._voice_key(audio, transcript, sample_rate)
        with self._voice_cache_lock:
            cached = self._voice_cache.get(key) if key is not None else None
            if cached is not None:
                self._voice_cache.move_to_end(key)
        if cached is not None:
            return cached if name is None else Voice(cached.global_ids, cached.prompt_semantic_ids,
                                                     cached.prompt_text, name, cached.metadata)
        voice = Voice.from_audio(self.audio_tokenizer, audio, transcript, sample_rate=sample_rate, name=name)
        if key is not None:
            with self._voice_cache_lock:
                self._voice_cache[key] = voice
                while len(self._voice_cache) > _VOICE_CACHE_SIZE:
                    self._voice_cache.popitem(last=False)
        return voice

    @staticmethod
    def _voice_key(audio: Any, transcript: str | None, sample_rate: int | None) -> tuple[Any, ...] | None:
        """Cache key: a file's path + size + mtime, or an array's content hash (None: do not cache)."""
        key: tuple[Any, ...] | None = None
        if isinstance(audio, (str, os.PathLike)):
            p = Path(audio)
            if not p.is_file():
                return None  # let Voice.from_audio raise the clear AudioError
            st = p.stat()
            key = ("file", str(p.resolve()), st.st_size, st.st_mtime_ns, transcript)
        elif isinstance(audio, np.ndarray):
            digest = hashlib.sha1(np.ascontiguousarray(audio).tobytes()).hexdigest()
            key = ("array", digest, audio.shape, str(audio.dtype), sample_rate, transcript)
        try:
            hash(key)
        except TypeError:  # an odd sample_rate / transcript: not cached; loading then says what is wrong
            return None
        return key

    def _resolve_voice(self, prompt_audio: Any, prompt_text: str | None, voice: Any,
                       sample_rate: int | None) -> Voice:
        if voice is not None:
            if prompt_audio is not None:
                raise PromptError("give either voice=... or prompt_audio=..., not both")
            if prompt_text is not None:
                raise PromptError(
                    "prompt_text was given with voice=...; a voice carries its own transcript. Make the voice "
                    "with it instead: tts.make_voice(audio, transcript=...)"
                )
            if isinstance(voice, (str, os.PathLike)):
                return Voice.load(voice)
            if not isinstance(voice, Voice):
                raise PromptError(f"voice must be a Voice or the path of a voice JSON file, got {type(voice).__name__}")
            return voice
        if prompt_audio is None:
            if prompt_text is not None:
                raise PromptError(
                    "prompt_text was given without prompt audio: it is the transcript of the reference clip, so "
                    "pass the clip too (prompt_audio=... / prompt_speech_path=...), or drop prompt_text"
                )
            raise PromptError(
                "voice cloning needs a voice: pass prompt_audio=... (a reference clip) or voice=... (a saved "
                "Voice); for a new voice without a reference use create(text, gender, pitch, speed)"
            )
        return self.make_voice(prompt_audio, prompt_text, sample_rate=sample_rate)

    # -- sampling -------------------------------------------------------------------------------------
    @staticmethod
    def _sampling(sampling: SamplingConfig | None, seed: int | None, **overrides: Any) -> SamplingConfig:
        if sampling is not None and not isinstance(sampling, SamplingConfig):
            raise ConfigError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}; or pass "
                              "temperature=..., top_k=..., top_p=... directly")
        base = sampling or SamplingConfig()
        cfg = base.replace(**overrides)
        if seed is not None:
            cfg = cfg.replace(seed=seed)
        if cfg.seed is None:
            # Every result records its seed, so any output can be reproduced later.
            cfg = cfg.replace(seed=new_seed())
        return cfg

    def _chunks(self, text: str, split: bool | None, max_chars: int, item: int | None = None, n: int = 1
                ) -> list[str]:
        text = _check_text(text, item, n)
        if split not in (None, True, False):
            raise ConfigError(f"split must be None, True or False, got {split!r}")
        _check_int(max_chars, "max_chars", minimum=1)
        if split is False or (split is None and len(text) <= max_chars):
            return [text]
        chunks = chunk_text(text, max_chars)
        return chunks or [text]

    # -- the public synthesis API ---------------------------------------------------------------------
    def clone(
        self,
        text: str | Sequence[str],
        prompt_audio: Any = None,
        prompt_text: str | Sequence[str | None] | None = None,
        voice: Voice | str | os.PathLike | Sequence[Any] | None = None,
        seed: int | None = None,
        *,
        prompt: Any = None,
        sample_rate: int | None = None,
        sampling: SamplingConfig | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        do_sample: bool | None = None,
        max_new_tokens: int | None = None,
        constrained: bool = True,
        legacy_join: bool = False,
        split: bool | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        crossfade_s: float = DEFAULT_CROSSFADE_S,
        batch_size: int = 8,
        progress: bool | None = None,
    ) -> Synthesis | list[Synthesis]:
        """Speak ``text`` in the voice of a reference clip or a saved :class:`Voice`.

        Args:
            text: a string, or a list of strings (generated as left-padded batches; returns a list).
            prompt_audio: reference clip (path or float array + ``sample_rate``); one, or one per text.
            prompt_text: transcript of ``prompt_audio``; the LM then continues the clip's own tokens.
            voice: a :class:`Voice` or a voice JSON path (instead of ``prompt_audio``); one or one per text.
            prompt: alias of ``prompt_audio`` (``tts.clone(text, prompt="ref.wav")``).
            seed: sampling seed; None draws one (recorded on the result). Same inputs + seed -> same audio.
            sampling: a :class:`SamplingConfig`; ``temperature`` ... ``max_new_tokens`` override its fields.
            constrained: grammar-constrained decoding (always parseable); False = the original's generate.
            legacy_join: join ``prompt_text`` and ``text`` without a space, exactly like the original.
            split: split the text into sentence chunks: None = when longer than ``max_chars``.
            max_chars: chunk size for long texts.
            crossfade_s: crossfade between the chunks of a long text.
            batch_size: prompts per ``generate`` call. Greedy results do not depend on it; sampled ones
                do (the seed is per batch), so reproduce a call with the same ``batch_size``.
            progress: tqdm bar over chunks; None = only when there is more than one chunk.

        Returns:
            A :class:`Synthesis`, or a list of them when ``text`` is a list.

        Raises:
            PromptError: empty text, no / two voice sources, ``prompt_text`` without prompt audio.
            AudioError: prompt audio missing, unreadable, silent or too short.
            GenerationError: the model produced no speech tokens (the message says why).
        """
        if prompt is not None:
            if prompt_audio is not None:
                raise PromptError("prompt is an alias of prompt_audio; give only one of them")
            prompt_audio = prompt
        texts, single = _texts(text)
        n = len(texts)
        _check_number(crossfade_s, "crossfade_s", maximum=MAX_CROSSFADE_S)
        audios = _as_list(prompt_audio, n, "prompt_audio")
        transcripts = _as_list(prompt_text, n, "prompt_text")
        voices_in = _as_list(voice, n, "voice")
        cfg = self._sampling(sampling, seed, temperature=temperature, top_k=top_k, top_p=top_p,
                             do_sample=do_sample, max_new_tokens=max_new_tokens)
        t0 = time.perf_counter()
        chunked = []
        for i, t in enumerate(texts):  # every text is checked before any audio is tokenized
            chunked.append(self._chunks(t, split, max_chars, i, n))
        jobs = []
        for t, chunks, a, pt, v in zip(texts, chunked, audios, transcripts, voices_in):
            jobs.append(_Job(t, chunks, "clone", voice=self._resolve_voice(a, pt, v, sample_rate)))
        prompt_s = time.perf_counter() - t0
        results = self._run(jobs, cfg, constrained, legacy_join, crossfade_s, batch_size, progress, prompt_s, t0,
                            single)
        return results[0] if single else results

    def create(
        self,
        text: str | Sequence[str],
        gender: str | Gender | Sequence[Any] | None = None,
        pitch: str | Level | Sequence[Any] | None = None,
        speed: str | Level | Sequence[Any] | None = None,
        seed: int | None = None,
        *,
        sampling: SamplingConfig | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        do_sample: bool | None = None,
        max_new_tokens: int | None = None,
        constrained: bool = True,
        split: bool | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        crossfade_s: float = DEFAULT_CROSSFADE_S,
        batch_size: int = 8,
        progress: bool | None = None,
    ) -> Synthesis | list[Synthesis]:
        """Design a voice from labels and speak ``text`` in it (no reference audio).

        Args:
            text: a string or a list of strings.
            gender: "female" | "male" (one, or one per text).
            pitch, speed: "very_low" | "low" | "moderate" | "high" | "very_high" (one, or one per text).
            seed ... progress: as in :meth:`clone`.

        The model first writes its pitch (mel) and speed (syllables/s) decision, then 32 global tokens
        (the voice), then the speech; the result exposes ``pitch_value``, ``speed_value`` and
        ``.voice()``. A long text is split; its first chunk creates the voice and the other chunks are
        cloned with that voice's global tokens.

        Raises:
            PromptError: empty text, a missing or unknown label (the message lists the valid ones).
            GenerationError: no speech tokens (e.g. ``max_new_tokens`` too small for the ~40-token preamble).
        """
        texts, single = _texts(text)
        n = len(texts)
        _check_number(crossfade_s, "crossfade_s", maximum=MAX_CROSSFADE_S)
        genders, pitches, speeds = (_as_list(gender, n, "gender"), _as_list(pitch, n, "pitch"),
                                    _as_list(speed, n, "speed"))
        cfg = self._sampling(sampling, seed, temperature=temperature, top_k=top_k, top_p=top_p,
                             do_sample=do_sample, max_new_tokens=max_new_tokens)
        t0 = time.perf_counter()
        jobs = []
        for i, (t, g, p, s) in enumerate(zip(texts, genders, pitches, speeds)):
            _check_labels(g, p, s)
            build_create_prompt("x", g, p, s)  # validates the labels (PromptError lists the valid ones)
            jobs.append(_Job(t, self._chunks(t, split, max_chars, i, n), "create", attrs=(g, p, s)))
        results = self._run(jobs, cfg, constrained, False, crossfade_s, batch_size, progress, 0.0, t0, single)
        return results[0] if single else results

    def clone_batch(self, texts: Sequence[str], voices: Any, **kwargs: Any) -> list[Synthesis]:
        """Clone many texts in batches; ``voices``: one :class:`Voice` (or path) for all, or one per text."""
        return self.clone(list(texts), voice=voices, **kwargs)  # type: ignore[return-value]

    def create_batch(self, texts: Sequence[str], gender: Any, pitch: Any, speed: Any,
                     **kwargs: Any) -> list[Synthesis]:
        """Create many texts in batches; the labels: one for all, or one per text."""
        return self.create(list(texts), gender, pitch, speed, **kwargs)  # type: ignore[return-value]

    def speak_long(self, text: str, voice: Voice | str | os.PathLike, **kwargs: Any) -> Synthesis:
        """Speak a long text in one voice: always split into sentence chunks, joined with a crossfade."""
        kwargs.setdefault("split", True)
        return self.clone(text, voice=voice, **kwargs)  # type: ignore[return-value]

    def inference(
        self,
        text: str,
        prompt_speech_path: str | os.PathLike | None = None,
        prompt_text: str | None = None,
        gender: str | None = None,
        pitch: str | None = None,
        speed: str | None = None,
        temperature: float = 0.8,
        top_k: int = 50,
        top_p: float = 0.95,
        *,
        seed: int | None = None,
        constrained: bool = True,
        legacy_join: bool = False,
        max_new_tokens: int = 3000,
    ) -> np.ndarray:
        """The original call: a float32 16 kHz waveform ``(T,)``.

        Voice creation when ``gender`` is given (as the original, ``prompt_speech_path`` is then ignored),
        else cloning from ``prompt_speech_path``. Differences from the original, all on by default and
        switchable: constrained decoding (``constrained=False`` for the original's plain generate), a space
        between ``prompt_text`` and ``text`` (``legacy_join=True`` for none), long texts split into chunks,
        clear errors instead of asserts, and an optional ``seed``.
        """
        if isinstance(top_k, float) and top_k.is_integer():
            top_k = int(top_k)  # the original's callers pass floats from UI sliders
        common = dict(seed=seed, temperature=temperature, top_k=top_k, top_p=top_p,
                      max_new_tokens=max_new_tokens, constrained=constrained, progress=False)
        if gender is not None:
            if prompt_speech_path is not None:
                warnings.warn("gender is set, so this is voice creation: prompt_speech_path is ignored "
                              "(as in the original)", stacklevel=2)
            out = self.create(text, gender, pitch, speed, **common)
        else:
            if pitch is not None or speed is not None:
                raise PromptError("pitch / speed were given without gender; voice creation needs all three "
                                  "(gender: female | male)")
            out = self.clone(text, prompt_audio=prompt_speech_path, prompt_text=prompt_text,
                             legacy_join=legacy_join, **common)
        return out.audio  # type: ignore[union-attr]

    def tokens_to_audio(self, global_ids: Any, semantic_ids: Any) -> np.ndarray:
        """Decode one voice's tokens (``(G,)``, ``(N,)`` or with leading singleton dims) to ``(N * 320,)``.

        Raises:
            PromptError: ids that are not integers, out of the codec's ranges, the wrong number of global ids,
                or no semantic ids.
        """
        g = self._token_ids(global_ids, "global_ids", self.codec.speaker_encoder.quantizer.codebook_size)
        s = self._token_ids(semantic_ids, "semantic_ids", self.codec.quantizer.codebook_size)
        if len(g) != self.num_globals:
            raise PromptError(f"global_ids has {len(g)} ids; this codec's voices have {self.num_globals}")
        if not len(s):
            raise PromptError("semantic_ids is empty; there is nothing to decode")
        return self.audio_tokenizer.decode(BiCodecTokens.from_lists([g.tolist()], [s.tolist()]))[0]

    @staticmethod
    def _token_ids(ids: Any, name: str, upper: int) -> np.ndarray:
        try:
            arr = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids)
        except (TypeError, ValueError) as exc:
            raise PromptError(f"{name} must be a sequence of ints ({exc})") from None
        if arr.size and arr.dtype.kind not in "iu":
            raise PromptError(f"{name} must be integers, got dtype {arr.dtype}")
        if arr.size != max(arr.shape, default=1):
            raise PromptError(f"{name} must be one row of ids, got shape {arr.shape}")
        arr = arr.reshape(-1).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= upper):
            raise PromptError(f"{name} has ids outside [0, {upper}) (range {arr.min()}..{arr.max()})")
        return arr

    # -- the engine -----------------------------------------------------------------------------------
    def _row_prompt(self, job: _Job, chunk: str, legacy_join: bool) -> tuple[str, np.ndarray | None]:
        if job.mode == "create":
            g, p, s = job.attrs  # type: ignore[misc]
            return build_create_prompt(chunk, g, p, s), None
        v = job.voice
        assert v is not None
        prompt = build_clone_prompt(chunk, v.global_ids, prompt_text=v.prompt_text, semantic_ids=v.prompt_semantic_ids,
                                    legacy_join=legacy_join, expected_globals=self.num_globals)
        return prompt, v.global_ids

    def _generate_rows(self, rows: list[_Row], cfg: SamplingConfig, constrained: bool, batch_size: int,
                       batch_offset: int, bar: Any, stats: dict[str, float],
                       failed: dict[int, tuple[str, str]]) -> list[GeneratedTokens]:
        """Generate rows in batches; batch b is seeded with ``cfg.seed + batch_offset + b``.

        A row without speech tokens records ``(why, finish_reason)`` for its job in ``failed``; the other rows
        are unaffected (their batches and seeds do not change).
        """
        out: list[GeneratedTokens] = []
        for b, start in enumerate(range(0, len(rows), batch_size)):
            batch = rows[start : start + batch_size]
            seed = cfg.seed + batch_offset + b  # type: ignore[operator]
            t = time.perf_counter()
            gen = self.generator.generate([r.prompt for r in batch], cfg.replace(seed=seed),
                                          constrained=constrained, allow_empty=True)
            stats["generate_s"] += time.perf_counter() - t
            for r, g in zip(batch, gen):
                if not g.semantic_ids and r.job not in failed:
                    snippet = r.text if len(r.text) <= 60 else r.text[:57] + "..."
                    reason = self.generator.empty_reason(g, cfg.max_new_tokens)
                    failed[r.job] = (f"no speech for {snippet!r}: {reason}", g.finish_reason)
            out.extend(gen)
            bar.update(len(batch))
        return out

    def _decode_rows(self, rows: list[_Row], gens: list[GeneratedTokens], stats: dict[str, float],
                     batch_size: int) -> list[np.ndarray]:
        """Decode rows ``batch_size`` at a time (whole-utterance decodes of many rows can be large on a GPU)."""
        t = time.perf_counter()
        globals_ = [(r.global_ids.tolist() if r.global_ids is not None else g.global_ids) for r, g in zip(rows, gens)]
        wavs: list[np.ndarray] = []
        for i in range(0, len(rows), batch_size):
            tokens = BiCodecTokens.from_lists(globals_[i : i + batch_size],
                                              [g.semantic_ids for g in gens[i : i + batch_size]])
            wavs.extend(self.audio_tokenizer.decode(tokens))
        stats["decode_s"] += time.perf_counter() - t
        return wavs

    def _row_result(self, job: _Job, row: _Row, gen: GeneratedTokens, wav: np.ndarray, seed: int) -> Synthesis:
        globals_ = row.global_ids if row.global_ids is not None else np.asarray(gen.global_ids, dtype=np.int64)
        created = job.mode == "create" and row.global_ids is None
        attrs = None
        if job.mode == "create":
            g, p, s = job.attrs  # type: ignore[misc]
            attrs = {"gender": _label(g), "pitch": _label(p), "speed": _label(s)}
        return Synthesis(
            audio=np.asarray(wav, dtype=np.float32),
            sample_rate=self.sample_rate,
            global_tokens=np.asarray(globals_, dtype=np.int64),
            semantic_tokens=np.asarray(gen.semantic_ids, dtype=np.int64),
            prompt=row.prompt,
            text=row.text,
            mode=job.mode,
            seed=seed,
            timings={"n_tokens": float(len(gen.token_ids))},
            pitch_value=gen.pitch_value if created else None,
            speed_value=gen.speed_value if created else None,
            attributes=attrs,
            finish_reason=gen.finish_reason,
            voice_name=job.voice.name if job.voice is not None else None,
            voice_metadata=dict(job.voice.metadata) if job.voice is not None else {},
        )

    def _failed_result(self, job: _Job, reason: str, finish_reason: str, seed: int) -> Synthesis:
        """The result of a list item without speech: no audio, ``error`` says why."""
        attrs = None
        if job.mode == "create":
            g, p, s = job.attrs  # type: ignore[misc]
            attrs = {"gender": _label(g), "pitch": _label(p), "speed": _label(s)}
        empty = np.zeros(0, dtype=np.int64)
        return Synthesis(
            audio=np.zeros(0, dtype=np.float32), sample_rate=self.sample_rate,
            global_tokens=job.voice.global_ids.copy() if job.voice is not None else empty, semantic_tokens=empty,
            prompt="", text=job.text, mode=job.mode, seed=seed, attributes=attrs, finish_reason=finish_reason,
            voice_name=job.voice.name if job.voice is not None else None,
            voice_metadata=dict(job.voice.metadata) if job.voice is not None else {}, error=reason,
        )

    def _run(self, jobs: list[_Job], cfg: SamplingConfig, constrained: bool, legacy_join: bool,
             crossfade_s: float, batch_size: int, progress: bool | None, prompt_s: float,
             t0: float, single: bool = True) -> list[Synthesis]:
        """Generate and decode every job. A text without speech raises for a single-text call; in a list call
        that item's result carries ``error`` (and a warning names it) while the others are returned as usual."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise PromptError(f"batch_size must be an int >= 1, got {batch_size!r}")
        stats = {"prompt_s": prompt_s, "generate_s": 0.0, "decode_s": 0.0}
        n_chunks = sum(len(j.chunks) for j in jobs)
        show = n_chunks > 1 if progress is None else progress
        for j in jobs:
            j.results = [None] * len(j.chunks)
        # Round 1: every clone chunk, and the first chunk of every creation (it makes the voice).
        rows1 = []
        for ji, job in enumerate(jobs):
            for ci, chunk in enumerate(job.chunks if job.mode == "clone" else job.chunks[:1]):
                prompt, g = self._row_prompt(job, chunk, legacy_join)
                rows1.append(_Row(ji, ci, chunk, prompt, g))
        failed: dict[int, tuple[str, str]] = {}
        with tqdm(total=n_chunks, desc="Synthesising", unit="chunk", disable=not show, leave=False) as bar:
            gens1 = self._generate_rows(rows1, cfg, constrained, batch_size, 0, bar, stats, failed)
            if single and failed:
                raise GenerationError(failed[0][0])
            n_batches1 = -(-len(rows1) // batch_size)
            # Round 2: the other chunks of each creation, cloned with the voice its first chunk created.
            rows2 = []
            for row, gen in zip(rows1, gens1):
                job = jobs[row.job]
                if job.mode == "create" and len(job.chunks) > 1 and row.job not in failed:
                    created = Voice(np.asarray(gen.global_ids, dtype=np.int64))
                    for ci, chunk in enumerate(job.chunks[1:], start=1):
                        prompt = build_clone_prompt(chunk, created.global_ids, expected_globals=self.num_globals)
                        rows2.append(_Row(row.job, ci, chunk, prompt, created.global_ids))
            gens2 = (self._generate_rows(rows2, cfg, constrained, batch_size, n_batches1, bar, stats, failed)
                     if rows2 else [])
        if single and failed:
            raise GenerationError(failed[0][0])
        ok = [(row, gen) for row, gen in zip(rows1 + rows2, gens1 + gens2) if row.job not in failed]
        wavs = self._decode_rows([r for r, _ in ok], [g for _, g in ok], stats, batch_size)
        for (row, gen), wav in zip(ok, wavs):
            job = jobs[row.job]
            job.results[row.chunk] = self._row_result(job, row, gen, wav, cfg.seed)  # type: ignore[arg-type]
        crossfade = int(round(crossfade_s * self.sample_rate))
        results = []
        for ji, job in enumerate(jobs):
            if ji in failed:
                reason, finish = failed[ji]
                warnings.warn(f"text item {ji + 1} of {len(jobs)}: {reason}. Its result has no audio (.error says "
                              "why); the other items are unaffected.", SparkTTSWarning, stacklevel=3)
                results.append(self._failed_result(job, reason, finish, cfg.seed))  # type: ignore[arg-type]
            else:
                results.append(self._join(job, crossfade))
        total = time.perf_counter() - t0
        audio_total = sum(r.duration for r in results) or float("nan")
        for r in results:
            r.timings = {**stats, "total_s": total, "audio_s": r.duration, "rtf": total / audio_total,
                         "batch_size": float(batch_size), **({"n_tokens": r.timings["n_tokens"]} if r.timings else {})}
        return results

    def _join(self, job: _Job, crossfade: int) -> Synthesis:
        segs: list[Synthesis] = job.results  # type: ignore[assignment]
        if len(segs) == 1:
            segs[0].text = job.text
            return segs[0]
        first = segs[0]
        return Synthesis(
            audio=crossfade_concat([s.audio for s in segs], crossfade),
            sample_rate=self.sample_rate,
            global_tokens=first.global_tokens,
            semantic_tokens=np.concatenate([s.semantic_tokens for s in segs]),
            prompt=first.prompt,
            text=job.text,
            mode=job.mode,
            seed=first.seed,
            timings={"n_tokens": float(sum(s.timings.get("n_tokens", 0) for s in segs))},
            pitch_value=first.pitch_value,
            speed_value=first.speed_value,
            attributes=first.attributes,
            segments=segs,
            finish_reason="length" if any(s.finish_reason == "length" for s in segs) else "stop",
            voice_name=first.voice_name,
            voice_metadata=first.voice_metadata,
        )

    # -- streaming ------------------------------------------------------------------------------------
    def stream(
        self,
        text: str,
        voice: Voice | str | os.PathLike | None = None,
        *,
        prompt_audio: Any = None,
        prompt_text: str | None = None,
        sample_rate: int | None = None,
        gender: Any = None,
        pitch: Any = None,
        speed: Any = None,
        seed: int | None = None,
        chunk_tokens: int = 50,
        first_chunk_tokens: int | None = 25,
        left_context: int | None = None,
        lookahead: int | None = None,
        stream_crossfade: int = 320,
        sampling: SamplingConfig | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        do_sample: bool | None = None,
        max_new_tokens: int | None = None,
        constrained: bool = True,
        legacy_join: bool = False,
        split: bool | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        crossfade_s: float = DEFAULT_CROSSFADE_S,
    ) -> SynthesisStream:
        """Yield audio while the LM is still generating.

        Clones with ``voice`` / ``prompt_audio`` (+ ``prompt_text``), or creates when ``gender`` is given.
        Iterate over the returned :class:`SynthesisStream` to get float32 chunks; ``.timings`` has
        ``first_chunk_s`` (time to first audio) and ``.result()`` the complete :class:`Synthesis`.

        Args:
            chunk_tokens: semantic tokens per chunk (50 = 1 s of audio); ``first_chunk_tokens`` for the
                first one (smaller = earlier first audio).
            left_context / lookahead: tokens of context decoded around each chunk; None = the decoder's
                receptive radius, which makes the joined stream equal the one-shot decode up to float
                rounding. A smaller ``lookahead`` gives earlier chunks at a small seam error.
            stream_crossfade: samples of linear crossfade at chunk seams.
            The other arguments are those of :meth:`clone` / :meth:`create`. A long text is streamed
            sentence chunk by chunk (with ``batch_size`` 1 and the same seeds, the tokens equal those of
            ``clone`` / ``create``), joined with a ``crossfade_s`` crossfade like the non-streamed call.
        """
        cfg = self._sampling(sampling, seed, temperature=temperature, top_k=top_k, top_p=top_p,
                             do_sample=do_sample, max_new_tokens=max_new_tokens)
        t0 = time.perf_counter()
        chunks = self._chunks(text, split, max_chars)
        _check_number(crossfade_s, "crossfade_s", maximum=MAX_CROSSFADE_S)
        _check_int(chunk_tokens, "chunk_tokens", minimum=1)
        _check_int(first_chunk_tokens, "first_chunk_tokens", minimum=1, allow_none=True)
        _check_int(left_context, "left_context", minimum=0, allow_none=True)
        _check_int(lookahead, "lookahead", minimum=0, allow_none=True)
        _check_int(stream_crossfade, "stream_crossfade", minimum=0)
        if gender is not None or pitch is not None or speed is not None:
            if voice is not None or prompt_audio is not None:
                raise PromptError("give either gender/pitch/speed (creation) or a voice / prompt_audio (cloning)")
            _check_labels(gender, pitch, speed)
            build_create_prompt("x", gender, pitch, speed)
            job = _Job(text, chunks, "create", attrs=(gender, pitch, speed))
        else:
            job = _Job(text, chunks, "clone", voice=self._resolve_voice(prompt_audio, prompt_text, voice, sample_rate))
        decoder_kwargs = dict(chunk_tokens=chunk_tokens, first_chunk_tokens=first_chunk_tokens,
                              left_context=left_context, lookahead=lookahead, crossfade=stream_crossfade)
        return SynthesisStream(self, job, cfg, constrained, legacy_join, decoder_kwargs,
                               int(round(crossfade_s * self.sample_rate)), t0)


def _with_end(items: Iterator[np.ndarray]) -> Iterator[np.ndarray | None]:
    """The items, then ``None`` as an end marker (lets a loop finish pending work at the end)."""
    yield from items
    yield None


def _label(value: Any) -> str:
    return value.label if isinstance(value, (Gender, Level)) else str(value)


def _check_labels(gender: Any, pitch: Any, speed: Any) -> None:
    missing = [n for n, v in (("gender", gender), ("pitch", pitch), ("speed", speed)) if v is None]
    if missing:
        raise PromptError(
            f"voice creation needs gender, pitch and speed; missing {', '.join(missing)} (gender: female | male; "
            "pitch / speed: very_low | low | moderate | high | very_high)"
        )


class SynthesisStream:
    """Audio chunks of one text, produced while the LM generates. Iterate once; then use :meth:`result`.

    Attributes:
        timings: ``prompt_s``, ``first_chunk_s`` (from the call to the first chunk), ``total_s``,
            ``audio_s``, ``rtf``, ``n_chunks``; filled as the stream runs.
        chunks: the float32 chunks yielded so far.

    Generation runs in a background thread that stops within one decoding step when the stream is closed
    (:meth:`close`, ``with``), or when its iterator is abandoned: ``for chunk in tts.stream(...): break``
    frees the iterator, which stops and joins the thread before the loop statement finishes. Each stream
    has its own generation state and random generator, so streams never disturb each other or other calls.
    """

    def __init__(self, tts: SparkTTS, job: _Job, cfg: SamplingConfig, constrained: bool, legacy_join: bool,
                 decoder_kwargs: dict[str, Any], crossfade: int, t0: float):
        self.tts = tts
        self.job = job
        self.cfg = cfg
        # The chunk generator runs on a separate object that never refers back to this one, so no reference
        # cycle keeps an abandoned iterator (and its generation thread) alive until the garbage collector runs.
        self._state = _StreamRun(tts, job, cfg, constrained, legacy_join, decoder_kwargs, crossfade, t0)
        self.timings = self._state.timings
        self.chunks = self._state.chunks
        self._iter: Iterator[np.ndarray] | None = None

    @property
    def seed(self) -> int | None:
        return self.cfg.seed

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._iter is None:
            self._iter = self._state.run()
        return self._iter

    def __enter__(self) -> SynthesisStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop generation early: the background thread ends after its current step and is joined."""
        if self._iter is None:
            self._iter = iter(())  # never started: nothing to stop, and nothing will start
            return
        self._iter.close()  # type: ignore[attr-defined]

    def result(self) -> Synthesis:
        """The complete :class:`Synthesis` (runs the rest of the stream if needed)."""
        for _ in self:
            pass
        state = self._state
        if not state.done:
            raise GenerationError("the stream was closed before it finished; there is no complete result")
        job = self.job
        job.results = list(state.segments)  # type: ignore[arg-type]
        out = self.tts._join(job, state.crossfade)
        out.audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        out.timings = dict(self.timings)
        return out


class _StreamRun:
    """What one :class:`SynthesisStream` computes; its generators hold this, never the stream."""

    def __init__(self, tts: SparkTTS, job: _Job, cfg: SamplingConfig, constrained: bool, legacy_join: bool,
                 decoder_kwargs: dict[str, Any], crossfade: int, t0: float):
        self.tts = tts
        self.job = job
        self.cfg = cfg
        self.constrained = constrained
        self.legacy_join = legacy_join
        self.decoder_kwargs = decoder_kwargs
        self.crossfade = crossfade
        self.t0 = t0
        self.timings: dict[str, float] = {"prompt_s": time.perf_counter() - t0}
        self.chunks: list[np.ndarray] = []
        self.segments: list[Synthesis] = []
        self.done = False

    def _emit(self, chunk: np.ndarray) -> np.ndarray:
        if not self.chunks:
            self.timings["first_chunk_s"] = time.perf_counter() - self.t0
        self.chunks.append(chunk)
        return chunk

    def run(self) -> Iterator[np.ndarray]:
        """Stream every chunk of the text; segment seams get the same crossfade as the non-streamed join.

        ``crossfade_concat`` overlaps the end of the output so far with the start of the next segment, so the
        last ``crossfade`` samples of each non-final segment are held back until the next segment's first
        samples arrive; the joined stream then equals ``crossfade_concat`` of the segments exactly.
        """
        tts, job = self.tts, self.job
        x = self.crossfade
        created_globals: np.ndarray | None = None
        hold = np.zeros(0, dtype=np.float32)  # samples not yet emitted (a non-final segment's tail)
        last_ci = len(job.chunks) - 1
        for ci, text in enumerate(job.chunks):
            if job.mode == "create" and ci > 0:
                prompt = build_clone_prompt(text, created_globals, expected_globals=tts.num_globals)
                globals_ = created_globals
            else:
                prompt, globals_ = tts._row_prompt(job, text, self.legacy_join)
            # Same seeds as the non-streamed call with batch_size=1 (one batch per chunk).
            seed = self.cfg.seed + ci  # type: ignore[operator]
            row = _Row(0, ci, text, prompt, globals_)
            tail = hold if ci > 0 and x > 0 else None  # the previous segment's end, to fade out
            if tail is None:
                hold = np.zeros(0, dtype=np.float32)
            head = np.zeros(0, dtype=np.float32)
            seg_audio: list[np.ndarray] = []
            box: dict[str, GeneratedTokens] = {}
            pieces = self._segment(row, self.cfg.replace(seed=seed), box)
            try:
                for piece in _with_end(pieces):
                    if piece is not None:
                        seg_audio.append(piece)
                    if tail is not None:
                        # Collect the new segment's start until it covers the tail (or the segment ended).
                        if piece is not None:
                            head = np.concatenate([head, piece])
                            if len(head) < len(tail):
                                continue
                        n = min(len(tail), len(head))
                        fade_out, fade_in = fade_curves(n, equal_power=True)
                        piece = np.concatenate([tail[: len(tail) - n], tail[len(tail) - n :] * fade_out
                                                + head[:n] * fade_in, head[n:]])
                        tail, hold = None, np.zeros(0, dtype=np.float32)
                    if piece is None:
                        continue
                    combined = np.concatenate([hold, piece])
                    keep = x if ci < last_ci else 0
                    hold = combined[len(combined) - keep :] if keep else np.zeros(0, dtype=np.float32)
                    out = combined[: len(combined) - keep] if keep else combined
                    if len(out):
                        yield self._emit(out)
            finally:
                pieces.close()  # a closed stream must stop this segment's generation thread
            gen = box["gen"]
            seg = tts._row_result(job, row, gen, np.concatenate(seg_audio), self.cfg.seed)  # type: ignore[arg-type]
            self.segments.append(seg)
            if job.mode == "create" and ci == 0:
                created_globals = seg.global_tokens
        if len(hold):
            yield self._emit(hold)
        self.done = True
        total = time.perf_counter() - self.t0
        audio_s = sum(len(c) for c in self.chunks) / tts.sample_rate
        self.timings.update(total_s=total, audio_s=audio_s, rtf=total / audio_s if audio_s else float("nan"),
                            n_chunks=float(len(self.chunks)))

    def _segment(self, row: _Row, cfg: SamplingConfig, box: dict[str, GeneratedTokens]) -> Iterator[np.ndarray]:
        """Stream one prompt: generation in a background thread, windows decoded here as tokens arrive."""
        tts = self.tts
        gen = tts.generator
        vocab = gen.vocab
        kind, index = vocab.kind.tolist(), vocab.index.tolist()
        with gen.tokenizer_lock:
            n_tokenizer = len(tts.tokenizer)
        streamer = TokenQueueStreamer()
        cancel = threading.Event()
        state: dict[str, Any] = {}
        mode: Mode = "create" if row.global_ids is None else ("clone_continue" if "<|start_semantic_token|>" in
                                                               row.prompt else "clone")

        def work() -> None:
            try:
                state["rows"] = gen.generate([row.prompt], cfg, constrained=self.constrained, modes=[mode],
                                             streamer=streamer, cancel=cancel, allow_empty=True)
            except BaseException as exc:  # surfaced in the consumer thread
                state["error"] = exc
                streamer.queue.put(None)

        thread = threading.Thread(target=work, name="sparktts-generate", daemon=True)
        thread.start()
        decoder: StreamingDecoder | None = None
        globals_: list[int] = [] if row.global_ids is None else row.global_ids.tolist()
        buffered: list[int] = []
        stops = set(vocab.stop_ids if self.constrained else gen.generate_eos)
        stopped = False
        try:
            while True:
                tok = streamer.queue.get()
                if tok is None:
                    break
                if stopped or not isinstance(tok, int):
                    continue
                if tok in stops:
                    stopped = True  # later tokens (if any) are padding
                    continue
                k = kind[tok] if 0 <= tok < len(kind) else Kind.OTHER
                if k == Kind.GLOBAL and row.global_ids is None and len(globals_) < tts.num_globals:
                    globals_.append(index[tok])
                elif k == Kind.SEMANTIC:
                    buffered.append(index[tok])
                elif not self.constrained and tok < n_tokenizer:
                    with gen.tokenizer_lock:
                        name = tts.tokenizer.convert_ids_to_tokens(tok) or ""
                    if "bicodec_semantic_" in name:
                        # A semantic token beyond this codec's codebook (only possible unconstrained).
                        raise GenerationError(f"the model generated {name}, outside this codec's codebook "
                                              f"[0, {vocab.semantic_size}); use constrained=True")
                if decoder is None and len(globals_) == tts.num_globals:
                    decoder = StreamingDecoder(tts.codec, globals_, **self.decoder_kwargs)
                if decoder is not None and buffered:
                    chunks = decoder.push(buffered)
                    buffered = []
                    yield from chunks
            thread.join()
            if "error" in state:
                raise state["error"]
            result = state["rows"][0]
            box["gen"] = result
            if not result.semantic_ids:
                reason = gen.empty_reason(result, cfg.max_new_tokens)
                raise GenerationError(f"no speech for {row.text[:60]!r}: {reason}")
            if decoder is None:
                if len(result.global_ids) != tts.num_globals:
                    raise GenerationError(f"the model generated {len(result.global_ids)} global tokens; the codec "
                                          f"needs {tts.num_globals}. Use constrained=True")
                decoder = StreamingDecoder(tts.codec, result.global_ids, **self.decoder_kwargs)
            if buffered:
                yield from decoder.push(buffered)
            # The generation's own parse is the reference; the streamed ids must agree with it.
            if decoder.tokens != result.semantic_ids:
                raise GenerationError("internal error: streamed semantic tokens differ from the generated ones")
            last = decoder.flush()
            if last is not None:
                yield last
        finally:
            cancel.set()
            thread.join()
