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

How a call runs: the arguments are checked (:mod:`sparktts.inference.inputs`), each text is split into
sentence-sized chunks when long (:func:`sparktts.text.chunk_text`), the scheduler
(:mod:`sparktts.inference.scheduler`) turns the chunks into prompts (:mod:`sparktts.format.prompts`) and
generates them in left-padded batches (:class:`sparktts.llm.generator.SpeechGenerator`), BiCodec decodes
the tokens, and the chunks of one text are joined with a short crossfade. Sampling settings come as a
:class:`~sparktts.llm.sampling.SamplingConfig` (``sampling=``) or, as before, as the keyword arguments
``temperature``, ``top_k``, ``top_p``, ``do_sample``, ``max_new_tokens`` that override its fields.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from sparktts import defaults
from sparktts.checkpoint import DEFAULT_REPO_ID, resolve_model_dir
from sparktts.codec.tokenizer import W2V_DIR, BiCodecTokenizer
from sparktts.codec.tokens import BiCodecTokens
from sparktts.device import resolve_device
from sparktts.errors import PromptError
from sparktts.format.tokens import Gender, Level
from sparktts.inference.inputs import (
    LONG_TEXT_FIELDS,
    LongText,
    as_list,
    check_number,
    text_chunks,
    texts,
    token_ids,
)
from sparktts.inference.scheduler import Job, run_jobs
from sparktts.inference.stream import STREAM_FIELDS, StreamOptions, SynthesisStream
from sparktts.inference.synthesis import Synthesis
from sparktts.inference.voices import VoiceCache, resolve_voice
from sparktts.llm.generator import SpeechGenerator
from sparktts.llm.model import load_llm
from sparktts.llm.sampling import SAMPLING_FIELDS, SamplingConfig, resolve_sampling
from sparktts.runtime import release_memory
from sparktts.voices import Voice

__all__ = ["SparkTTS"]

MAX_CROSSFADE_S = 10.0  # longer is surely a mistake (seconds given as samples?)


def _options(method: str, sampling: SamplingConfig | None, seed: int | None, long_text: LongText | None,
             options: dict[str, Any]) -> tuple[SamplingConfig, LongText]:
    """The call's sampling and long-text settings. ``options`` are the loose keywords that override their
    fields (``temperature=...``, ``split=...``: the API before the dataclasses); any other name is a
    TypeError, as for any Python function."""
    unknown = sorted(set(options) - set(SAMPLING_FIELDS) - set(LONG_TEXT_FIELDS))
    if unknown:
        raise TypeError(f"SparkTTS.{method}() got an unexpected keyword argument {unknown[0]!r}")
    if long_text is not None and not isinstance(long_text, LongText):
        raise PromptError(f"long_text must be a LongText, got {type(long_text).__name__}")
    text_opts = replace(long_text or LongText(), **{k: options[k] for k in LONG_TEXT_FIELDS if k in options})
    check_number(text_opts.crossfade_s, "crossfade_s", maximum=MAX_CROSSFADE_S)
    cfg = resolve_sampling(sampling, seed, **{k: options[k] for k in SAMPLING_FIELDS if k in options})
    return cfg, text_opts


class SparkTTS:
    """Spark-TTS inference: BiCodec + the Qwen2.5 LM of a release directory.

    Args:
        model_dir: a release directory (``config.yaml``, ``BiCodec/``, ``LLM/``, ``wav2vec2-large-xlsr-53/``)
            or a hub repo id (downloaded when online).
        device: None picks ``cuda:0`` when available; ``"0"`` means ``cuda:0`` like the original.
        dtype: the LLM's weight dtype (None = float32 as the original, "bfloat16" for GPUs, "auto").
            The codec runs in float32 unless ``codec_dtype`` says otherwise.
        engine: "fast" (default: KV-cached loop with an LM head restricted to the Spark-TTS tokens; the same
            tokens as ``model.generate`` under greedy decoding), "hf" (``model.generate``, the original's way)
            or "vllm" (GPU servers with vLLM installed; see :mod:`sparktts.llm.engines.vllm`).
        quantize: None, or a CPU scheme for the LLM body's linear layers: "int8" (dynamic int8),
            "int8-weight", "int4", "bf16" (no integer step), or "auto" (the fastest of bf16 and the 8-bit
            kernels on this CPU, measured once); see
            :mod:`sparktts.llm.kernels`. Faster; changes the numbers (the README's benchmark gives the cost).
        codec_dtype: the codec's wave generator in None (float32, as released), "bfloat16" (faster on CPUs
            with AVX-512 BF16 or AMX and on GPUs; audio within -40 dB of float32) or "auto" (bf16 where the
            hardware has it). Prompt tokenization runs in float32 whatever this says, so voices do not change.
        features_dtype: the wav2vec2 stage of prompt tokenization in None (float32) or "bfloat16"/"auto":
            faster, but it changes some semantic tokens (see :class:`BiCodecTokenizer`).

    Attributes (original names): ``model_dir``, ``device``, ``configs``, ``sample_rate``, ``tokenizer``
    (the LLM's), ``model`` (the LLM), ``audio_tokenizer`` (:class:`BiCodecTokenizer`); plus ``codec`` and
    ``generator`` (:class:`SpeechGenerator`).
    """

    def __init__(self, model_dir: str | os.PathLike = DEFAULT_REPO_ID, device: Any = None,
                 dtype: str | torch.dtype | None = None, engine: str = defaults.ENGINE, quantize: str | None = None,
                 codec_dtype: str | torch.dtype | None = None, features_dtype: str | torch.dtype | None = None):
        self.model_dir = resolve_model_dir(model_dir, require=("config.yaml", "BiCodec", "LLM", W2V_DIR))
        self.device = resolve_device(device)
        self.audio_tokenizer = BiCodecTokenizer(self.model_dir, device=self.device, decoder_dtype=codec_dtype,
                                                features_dtype=features_dtype)
        self.configs = self.audio_tokenizer.config
        self.sample_rate = self.audio_tokenizer.sample_rate
        self.tokenizer, self.model = load_llm(self.model_dir / "LLM", self.device, dtype, quantize=quantize)
        self.codec = self.audio_tokenizer.model
        self.num_globals = self.codec.config.speaker_encoder.token_num
        self.generator = SpeechGenerator(
            self.model,
            self.tokenizer,
            semantic_size=self.codec.quantizer.codebook_size,
            global_size=self.codec.speaker_encoder.quantizer.codebook_size,
            num_globals=self.num_globals,
            engine=engine,
            llm_dir=self.model_dir / "LLM",
        )
        self._voice_cache = VoiceCache()
        release_memory()  # loading's transient copies (fp32 -> int8, dtype casts) leave free heap pages

    @classmethod
    def from_pretrained(cls, model_dir_or_repo_id: str | os.PathLike = DEFAULT_REPO_ID, device: Any = None,
                        dtype: str | torch.dtype | None = None, engine: str = defaults.ENGINE,
                        quantize: str | None = None, codec_dtype: str | torch.dtype | None = None,
                        features_dtype: str | torch.dtype | None = None) -> SparkTTS:
        """Load a release from a local directory, or a hub repo id when online (see :class:`SparkTTS`)."""
        return cls(model_dir_or_repo_id, device=device, dtype=dtype, engine=engine, quantize=quantize,
                   codec_dtype=codec_dtype, features_dtype=features_dtype)

    # -- voices ---------------------------------------------------------------------------------------
    def make_voice(self, audio: str | os.PathLike | np.ndarray, transcript: str | None = None, *,
                   sample_rate: int | None = None, name: str | None = None) -> Voice:
        """A :class:`Voice` from a reference clip (cached: the same clip is tokenized once per instance).

        With a ``transcript`` the clip's semantic tokens are kept and the LM continues them (needs the
        wav2vec2 pass); without, only the 32 global tokens are computed.
        """
        key = self._voice_cache.key(audio, transcript, sample_rate)
        cached = self._voice_cache.get(key)
        if cached is not None:
            return cached if name is None else Voice(cached.global_ids, cached.prompt_semantic_ids,
                                                     cached.prompt_text, name, cached.metadata)
        voice = Voice.from_audio(self.audio_tokenizer, audio, transcript, sample_rate=sample_rate, name=name)
        self._voice_cache.put(key, voice)
        return voice

    def resolve_voice(self, prompt_audio: Any = None, prompt_text: str | None = None, voice: Any = None,
                      sample_rate: int | None = None) -> Voice:
        """The voice of a cloning call: ``voice`` (a Voice or a voice JSON path) or one made from ``prompt_audio``
        (:func:`sparktts.inference.voices.resolve_voice`)."""
        return resolve_voice(self.make_voice, prompt_audio, prompt_text, voice, sample_rate)

    _resolve_voice = resolve_voice  # the name scripts written against earlier versions call

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
        long_text: LongText | None = None,
        legacy_join: bool = False,
        constrained: bool = True,
        batch_size: int = defaults.BATCH_SIZE,
        progress: bool | None = None,
        **options: Any,
    ) -> Synthesis | list[Synthesis]:
        """Speak ``text`` in the voice of a reference clip or a saved :class:`Voice`.

        Args:
            text: a string, or a list of strings (generated as left-padded batches; returns a list).
            prompt_audio: reference clip (path or float array + ``sample_rate``); one, or one per text.
            prompt_text: transcript of ``prompt_audio``; the LM then continues the clip's own tokens.
            voice: a :class:`Voice` or a voice JSON path (instead of ``prompt_audio``); one or one per text.
            prompt: alias of ``prompt_audio`` (``tts.clone(text, prompt="ref.wav")``).
            seed: sampling seed; None draws one (recorded on the result). Same inputs + seed -> same audio.
            sampling: a :class:`SamplingConfig`; the keywords ``temperature``, ``top_k``, ``top_p``,
                ``do_sample``, ``max_new_tokens`` override its fields.
            long_text: a :class:`~sparktts.inference.inputs.LongText`; the keywords ``split`` (None = split
                into sentence chunks when longer than ``max_chars``), ``max_chars`` and ``crossfade_s``
                (between the chunks) override its fields.
            legacy_join: join ``prompt_text`` and ``text`` without a space, exactly like the original.
            constrained: grammar-constrained decoding (always parseable); False = the original's generate.
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
        items, single = texts(text)
        n = len(items)
        cfg, text_opts = _options("clone", sampling, seed, long_text, options)
        audios = as_list(prompt_audio, n, "prompt_audio")
        transcripts = as_list(prompt_text, n, "prompt_text")
        voices_in = as_list(voice, n, "voice")
        t0 = time.perf_counter()
        # Every text is checked before any audio is tokenized.
        chunked = [text_chunks(t, text_opts, i, n) for i, t in enumerate(items)]
        jobs = [Job(t, chunks, "clone", voice=self.resolve_voice(a, pt, v, sample_rate))
                for t, chunks, a, pt, v in zip(items, chunked, audios, transcripts, voices_in)]
        results = run_jobs(self, jobs, cfg, constrained=constrained, legacy_join=legacy_join,
                           crossfade_s=text_opts.crossfade_s,
                           batch_size=batch_size, progress=progress, prompt_s=time.perf_counter() - t0, t0=t0,
                           single=single)
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
        long_text: LongText | None = None,
        constrained: bool = True,
        batch_size: int = defaults.BATCH_SIZE,
        progress: bool | None = None,
        **options: Any,
    ) -> Synthesis | list[Synthesis]:
        """Design a voice from labels and speak ``text`` in it (no reference audio).

        Args:
            text: a string or a list of strings.
            gender: "female" | "male" (one, or one per text).
            pitch, speed: "very_low" | "low" | "moderate" | "high" | "very_high" (one, or one per text).
            seed ... progress, and the sampling and long-text keywords: as in :meth:`clone`.

        The model first writes its pitch (mel) and speed (syllables/s) decision, then 32 global tokens
        (the voice), then the speech; the result exposes ``pitch_value``, ``speed_value`` and
        ``.voice()``. A long text is split; its first chunk creates the voice and the other chunks are
        cloned with that voice's global tokens.

        Raises:
            PromptError: empty text, a missing or unknown label (the message lists the valid ones).
            GenerationError: no speech tokens (e.g. ``max_new_tokens`` too small for the ~40-token preamble).
        """
        items, single = texts(text)
        n = len(items)
        cfg, text_opts = _options("create", sampling, seed, long_text, options)
        labels = zip(as_list(gender, n, "gender"), as_list(pitch, n, "pitch"), as_list(speed, n, "speed"))
        t0 = time.perf_counter()
        jobs = [Job.create(t, text_chunks(t, text_opts, i, n), g, p, s)
                for i, (t, (g, p, s)) in enumerate(zip(items, labels))]
        results = run_jobs(self, jobs, cfg, constrained=constrained, legacy_join=False,
                           crossfade_s=text_opts.crossfade_s,
                           batch_size=batch_size, progress=progress, prompt_s=0.0, t0=t0, single=single)
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
        temperature: float = defaults.TEMPERATURE,
        top_k: int = defaults.TOP_K,
        top_p: float = defaults.TOP_P,
        *,
        seed: int | None = None,
        constrained: bool = True,
        legacy_join: bool = False,
        max_new_tokens: int = defaults.MAX_NEW_TOKENS,
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
        g = token_ids(global_ids, "global_ids", self.codec.speaker_encoder.quantizer.codebook_size)
        s = token_ids(semantic_ids, "semantic_ids", self.codec.quantizer.codebook_size)
        if len(g) != self.num_globals:
            raise PromptError(f"global_ids has {len(g)} ids; this codec's voices have {self.num_globals}")
        if not len(s):
            raise PromptError("semantic_ids is empty; there is nothing to decode")
        return self.audio_tokenizer.decode(BiCodecTokens.from_lists([g.tolist()], [s.tolist()]))[0]

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
        streaming: StreamOptions | None = None,
        sampling: SamplingConfig | None = None,
        long_text: LongText | None = None,
        legacy_join: bool = False,
        constrained: bool = True,
        **options: Any,
    ) -> SynthesisStream:
        """Yield audio while the LM is still generating.

        Clones with ``voice`` / ``prompt_audio`` (+ ``prompt_text``), or creates when ``gender`` is given.
        Iterate over the returned :class:`SynthesisStream` to get float32 chunks; ``.timings`` has
        ``first_chunk_s`` (time to first audio) and ``.result()`` the complete :class:`Synthesis`.

        Args:
            streaming: a :class:`~sparktts.inference.stream.StreamOptions`; the keywords ``chunk_tokens``
                (50 = 1 s of audio), ``first_chunk_tokens`` (smaller = earlier first audio), ``left_context``,
                ``lookahead`` (None = exact joins; smaller = earlier chunks, small seam errors) and
                ``stream_crossfade`` (samples) override its fields.
            The other arguments are those of :meth:`clone` / :meth:`create`. A long text is streamed
            sentence chunk by chunk (with ``batch_size`` 1 and the same seeds, the tokens equal those of
            ``clone`` / ``create``), joined with a ``crossfade_s`` crossfade like the non-streamed call.
        """
        if streaming is not None and not isinstance(streaming, StreamOptions):
            raise PromptError(f"streaming must be a StreamOptions, got {type(streaming).__name__}")
        stream_keys = {k: options.pop(k) for k in STREAM_FIELDS if k in options}
        cfg, text_opts = _options("stream", sampling, seed, long_text, options)
        t0 = time.perf_counter()
        chunks = text_chunks(text, text_opts)
        stream_opts = replace(streaming or StreamOptions(), **stream_keys)  # checks the values
        if gender is not None or pitch is not None or speed is not None:
            if voice is not None or prompt_audio is not None:
                raise PromptError("give either gender/pitch/speed (creation) or a voice / prompt_audio (cloning)")
            job = Job.create(text, chunks, gender, pitch, speed)
        else:
            job = Job(text, chunks, "clone", voice=self.resolve_voice(prompt_audio, prompt_text, voice, sample_rate))
        return SynthesisStream(self, job, cfg, constrained, legacy_join, stream_opts.decoder_kwargs(),
                               int(round(text_opts.crossfade_s * self.sample_rate)), t0)

