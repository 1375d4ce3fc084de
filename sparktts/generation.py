"""LLM generation of BiCodec tokens: sampling settings, constrained decoding, seeding, batching, parsing.

The original calls ``model.generate(max_new_tokens=3000, do_sample=True, top_k=50, top_p=0.95,
temperature=0.8)`` on one prompt and regex-parses the decoded text. :class:`SpeechGenerator` wraps the
same call and adds:

* **Constrained decoding** (default): a logits processor masks every token that would make the output
  malformed, per phase of the expected output, so the result always parses into codec-valid ids.
  The output grammars (``|`` = alternatives, ``?`` = optional, as the model was trained; the optional
  markers are allowed, not forced, so a model that skips them is not pushed off its distribution)::

      clone   (prompt ends with <|end_global_token|>):  <|start_semantic_token|>? S+ STOP
      clone   (prompt ends inside the reference's semantic tokens, i.e. with a transcript):  S+ STOP
      create:  <|start_acoustic_token|>? <|pitch_value_P|> <|speed_value_V|> <|end_acoustic_token|>?
               <|start_global_token|>? G{32} <|end_global_token|>? <|start_semantic_token|>? S+ STOP

  ``S`` is a semantic token whose id lies inside the codec's codebook (8192 for the release, fewer for a
  tiny test codec), ``G`` a global token inside the speaker codebook, ``STOP`` the tokenizer's EOS
  (``<|im_end|>``), any EOS of the model's generation config, or ``<|end_semantic_token|>``. At least one
  semantic token is required before STOP, so an empty result can only come from ``max_new_tokens``.
  The mask is applied before temperature / top-k / top-p (transformers runs custom processors first), so
  sampling renormalises over the allowed tokens.
* ``constrained=False`` reproduces the original exactly: plain ``generate``, ``batch_decode(...,
  skip_special_tokens=True)``, regex parsing; ids the codec cannot decode then raise a clear error.
* **Seeds**: the fast engine samples from a ``torch.Generator`` made for the call and seeded with
  ``seed``, so a seeded result is the same whatever else runs (other threads, other generations, the
  caller's own use of torch's RNG), and torch's global RNG state is never touched. ``model.generate``
  (``engine="hf"``, ``constrained=False``) can only draw from torch's global generator: a seeded call
  there holds :data:`GLOBAL_RNG_LOCK` (one such call at a time in the process) and runs under
  ``torch.random.fork_rng`` with ``torch.manual_seed(seed)``, so the caller's RNG state is restored
  afterwards; code in other threads that draws from torch's global RNG during such a call shares its
  stream (hold the lock around that code to keep it apart). Both draw the same numbers for one seed.
* **Batching**: prompts are left-padded with the pad token and an attention mask; with greedy decoding
  each row equals its unbatched result.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Literal

import torch
from torch import Tensor

from sparktts.errors import ConfigError, GenerationError
from sparktts.prompts import (
    END_GLOBAL,
    END_SEMANTIC,
    GLOBAL_CODEBOOK_SIZE,
    PITCH_VALUE_MAX,
    RELEASE_NUM_GLOBAL_TOKENS,
    SEMANTIC_CODEBOOK_SIZE,
    SPEED_VALUE_MAX,
    START_GLOBAL,
    START_SEMANTIC,
    TASK_TOKEN_MAP,
    parse_generated,
)

__all__ = [
    "GeneratedTokens",
    "Mode",
    "SamplingConfig",
    "SpeechGenerator",
    "SpeechGrammar",
    "SpeechVocab",
    "SpeechConstraint",
    "GLOBAL_RNG_LOCK",
    "infer_mode",
    "new_seed",
    "seeded",
]

Mode = Literal["clone", "clone_continue", "create"]
FinishReason = Literal["stop", "length", "cancelled"]

_MAX_SEED = 2**31 - 1
MIN_TEMPERATURE = 1e-5
MAX_TEMPERATURE = 1e6  # far past the point where sampling is uniform; inf would make every score NaN


# ----------------------------------------------------------------------------------------------------
# Sampling settings and seeds
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings. Defaults are the original's ``generate`` arguments.

    Attributes:
        temperature: softmax temperature (> 0); ignored when ``do_sample`` is False.
        top_k: keep the k most likely tokens (0 disables).
        top_p: nucleus mass in (0, 1].
        max_new_tokens: generation budget; 3000 tokens = 60 s of speech at 50 semantic tokens/s.
        do_sample: False = greedy decoding (deterministic, what the batched == unbatched guarantee uses).
        seed: RNG seed for sampling; None draws a fresh one per call (it is recorded on the result).
    """

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    max_new_tokens: int = 3000
    do_sample: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an int >= 0 (0 disables it), got {self.top_k!r}")
        # bool is an int: top_p=True would silently mean 1.0 (no nucleus filtering).
        if not _is_number(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if not _is_number(self.temperature) or not 0.0 <= self.temperature <= MAX_TEMPERATURE:
            raise ConfigError(f"temperature must be a finite number > 0 (at most {MAX_TEMPERATURE:g}), got "
                              f"{self.temperature!r}")
        if not isinstance(self.do_sample, bool):
            raise ConfigError(f"do_sample must be True or False, got {self.do_sample!r}")
        if self.do_sample and float(self.temperature) == 0.0:
            raise ConfigError("temperature=0 cannot sample; for deterministic output use do_sample=False")
        if self.do_sample and float(self.temperature) < MIN_TEMPERATURE:
            # Scores divided by a smaller temperature overflow float32 to inf, and inf - inf is NaN.
            raise ConfigError(f"temperature {self.temperature!r} is too small to sample with (minimum "
                              f"{MIN_TEMPERATURE:g}); for deterministic output use do_sample=False")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**62
        ):
            raise ConfigError(f"seed must be None or an int in [0, 2**62), got {self.seed!r}")

    def replace(self, **changes: Any) -> SamplingConfig:
        """A copy with some fields changed; ``None`` values are ignored (keep the current value)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (sampling knobs only when sampling, to avoid warnings)."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(temperature=float(self.temperature), top_k=self.top_k, top_p=float(self.top_p))
        else:
            # The model's generation_config may carry sampling defaults; neutralise them for greedy decoding.
            kwargs.update(temperature=None, top_k=None, top_p=None)
        return kwargs


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def new_seed() -> int:
    """A fresh random seed in [0, 2**31 - 1], drawn from the OS (independent of torch's RNG state)."""
    return secrets.randbelow(_MAX_SEED + 1)


# Held by every seeded draw from torch's GLOBAL generator (model.generate), so that two seeded calls never
# interleave on it. The fast engine does not need it: it samples from a generator of its own per call.
GLOBAL_RNG_LOCK = threading.RLock()


def call_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed``: the same numbers the global one gives after
    ``torch.manual_seed(seed)``, without touching it."""
    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run a block with torch's global RNGs seeded to ``seed``; the caller's RNG state is restored afterwards.

    ``device``: the CUDA device whose RNG is forked as well (CPU is always forked). The block holds
    :data:`GLOBAL_RNG_LOCK`, so seeded blocks in different threads run one after another.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices, device_type="cuda" if devices else "cpu"):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------------------------------
# Vocabulary and grammar
# ----------------------------------------------------------------------------------------------------


class Kind(IntEnum):
    """What a token id means for parsing (:attr:`SpeechVocab.kind`)."""

    OTHER = 0
    SEMANTIC = 1
    GLOBAL = 2
    PITCH_VALUE = 3
    SPEED_VALUE = 4


@dataclass(frozen=True)
class SpeechVocab:
    """Ids of the Spark-TTS tokens in one tokenizer, sized to one model and one codec.

    Attributes:
        kind: ``(V,)`` int8, the :class:`Kind` of every id of the model's vocabulary (V = logits width).
        index: ``(V,)`` int64, the token's number within its kind (semantic id, global id, pitch value, ...),
            -1 for :attr:`Kind.OTHER`. Semantic / global ids outside the codec's codebooks count as OTHER.
        markers: id of each structural marker by name ("start_semantic", "end_global", ...).
        stop_ids: ids that end a generation (EOS ids and ``<|end_semantic_token|>``).
        pad_id: padding id for batched prompts.
        num_globals: global tokens per voice (32 for the release).
    """

    kind: Tensor
    index: Tensor
    markers: dict[str, int]
    stop_ids: tuple[int, ...]
    eos_ids: tuple[int, ...]
    pad_id: int
    num_globals: int
    semantic_size: int
    global_size: int

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Any,
        vocab_size: int,
        *,
        eos_ids: Sequence[int] = (),
        semantic_size: int = SEMANTIC_CODEBOOK_SIZE,
        global_size: int = GLOBAL_CODEBOOK_SIZE,
        num_globals: int = RELEASE_NUM_GLOBAL_TOKENS,
    ) -> SpeechVocab:
        """Look up every Spark-TTS token of ``tokenizer``.

        Args:
            tokenizer: the LLM's HF tokenizer.
            vocab_size: width of the model's logits (may exceed ``len(tokenizer)``: padded embeddings).
            eos_ids: extra end-of-sequence ids (the model's generation config); the tokenizer's EOS is
                always included.
            semantic_size / global_size: the codec's codebook sizes; larger ids are never generated.
            num_globals: global tokens per voice in create mode.
        """
        if not 0 < semantic_size <= SEMANTIC_CODEBOOK_SIZE or not 0 < global_size <= GLOBAL_CODEBOOK_SIZE:
            raise ConfigError(
                f"codebook sizes {semantic_size} / {global_size} exceed the LLM's {SEMANTIC_CODEBOOK_SIZE} semantic "
                f"/ {GLOBAL_CODEBOOK_SIZE} global tokens; this codec does not belong to this LLM"
            )
        kind = torch.zeros(vocab_size, dtype=torch.int8)
        index = torch.full((vocab_size,), -1, dtype=torch.int64)

        def fill(fmt: str, n: int, k: Kind) -> None:
            ids = torch.tensor(tokenizer.convert_tokens_to_ids([fmt.format(i) for i in range(n)]), dtype=torch.int64)
            if (ids < 0).any() or (ids >= vocab_size).any():
                raise ConfigError(f"tokenizer lacks some {fmt.format('N')} tokens or they exceed the model's vocab")
            kind[ids] = int(k)
            index[ids] = torch.arange(n)

        fill("<|bicodec_semantic_{}|>", semantic_size, Kind.SEMANTIC)
        fill("<|bicodec_global_{}|>", global_size, Kind.GLOBAL)
        fill("<|pitch_value_{}|>", PITCH_VALUE_MAX + 1, Kind.PITCH_VALUE)
        fill("<|speed_value_{}|>", SPEED_VALUE_MAX + 1, Kind.SPEED_VALUE)
        names = {
            "start_acoustic": "<|start_acoustic_token|>",
            "end_acoustic": "<|end_acoustic_token|>",
            "start_global": START_GLOBAL,
            "end_global": END_GLOBAL,
            "start_semantic": START_SEMANTIC,
            "end_semantic": END_SEMANTIC,
        }
        markers = {name: int(tokenizer.convert_tokens_to_ids(tok)) for name, tok in names.items()}
        eos = [int(i) for i in eos_ids]
        if tokenizer.eos_token_id is not None:
            eos.insert(0, int(tokenizer.eos_token_id))
        if not eos:
            raise ConfigError("the tokenizer has no eos_token and no eos ids were given; generation could not stop")
        eos_t = tuple(dict.fromkeys(eos))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_t[0]
        return cls(
            kind=kind,
            index=index,
            markers=markers,
            stop_ids=tuple(dict.fromkeys([*eos_t, markers["end_semantic"]])),
            eos_ids=eos_t,
            pad_id=int(pad),
            num_globals=num_globals,
            semantic_size=semantic_size,
            global_size=global_size,
        )

    @property
    def vocab_size(self) -> int:
        return int(self.kind.shape[0])


class Phase(IntEnum):
    """States of the output grammar (see the module docstring)."""

    CREATE_START = 0  # expecting <|start_acoustic_token|> or the pitch value
    ACOUSTIC_OPEN = 1  # after <|start_acoustic_token|>: the pitch value
    PITCH_DONE = 2  # the speed value
    SPEED_DONE = 3  # <|end_acoustic_token|>, <|start_global_token|> or the first global token
    ACOUSTIC_CLOSED = 4  # <|start_global_token|> or the first global token
    GLOBALS = 5  # inside the global tokens (count < num_globals)
    GLOBALS_DONE = 6  # all globals: <|end_global_token|>, <|start_semantic_token|> or a semantic token
    SEMANTIC_START = 7  # <|start_semantic_token|> or a semantic token (clone prompts end here)
    SEMANTIC_OPEN = 8  # at least one semantic token required
    SEMANTIC = 9  # semantic tokens or STOP
    DONE = 10  # after STOP: only EOS / pad (generate pads finished rows anyway)


@dataclass
class _RowState:
    phase: Phase
    n_global: int = 0


class SpeechGrammar:
    """The output grammar as allowed-token masks per :class:`Phase`, and the transition function."""

    def __init__(self, vocab: SpeechVocab, device: torch.device | str = "cpu"):
        self.vocab = vocab
        v = vocab.vocab_size
        kind = vocab.kind
        m = vocab.markers
        semantic = kind == Kind.SEMANTIC
        global_ = kind == Kind.GLOBAL
        stop = torch.zeros(v, dtype=torch.bool)
        stop[list(vocab.stop_ids)] = True

        def ids(*names: str) -> Tensor:
            mask = torch.zeros(v, dtype=torch.bool)
            mask[[m[n] for n in names]] = True
            return mask

        eos_pad = torch.zeros(v, dtype=torch.bool)
        eos_pad[[*vocab.eos_ids, vocab.pad_id]] = True
        masks = {
            Phase.CREATE_START: ids("start_acoustic") | (kind == Kind.PITCH_VALUE),
            Phase.ACOUSTIC_OPEN: kind == Kind.PITCH_VALUE,
            Phase.PITCH_DONE: kind == Kind.SPEED_VALUE,
            Phase.SPEED_DONE: ids("end_acoustic", "start_global") | global_,
            Phase.ACOUSTIC_CLOSED: ids("start_global") | global_,
            Phase.GLOBALS: global_,
            Phase.GLOBALS_DONE: ids("end_global", "start_semantic") | semantic,
            Phase.SEMANTIC_START: ids("start_semantic") | semantic,
            Phase.SEMANTIC_OPEN: semantic,
            Phase.SEMANTIC: semantic | stop,
            Phase.DONE: eos_pad,
        }
        # (n_phases, V) bool on the logits' device: a row's mask is one gather per step.
        self.masks = torch.stack([masks[p] for p in Phase]).to(device)
        self._kind = kind.tolist()  # Python lists: per-token lookups in the step loop stay cheap
        self._stop = set(vocab.stop_ids)

    @staticmethod
    def start_phase(mode: Mode) -> Phase:
        return {
            "clone": Phase.SEMANTIC_START,
            "clone_continue": Phase.SEMANTIC_OPEN,
            "create": Phase.CREATE_START,
        }[mode]

    def advance(self, state: _RowState, token: int) -> None:
        """Move ``state`` past ``token`` (assumed allowed in the current phase; anything else ends the row)."""
        p = state.phase
        if p == Phase.DONE:
            return
        k = self._kind[token] if 0 <= token < len(self._kind) else Kind.OTHER
        m = self.vocab.markers
        if token in self._stop and p == Phase.SEMANTIC:
            state.phase = Phase.DONE
        elif p in (Phase.CREATE_START, Phase.ACOUSTIC_OPEN):
            state.phase = Phase.PITCH_DONE if k == Kind.PITCH_VALUE else Phase.ACOUSTIC_OPEN
        elif p == Phase.PITCH_DONE:
            state.phase = Phase.SPEED_DONE
        elif p in (Phase.SPEED_DONE, Phase.ACOUSTIC_CLOSED, Phase.GLOBALS):
            if k == Kind.GLOBAL:
                state.n_global += 1
                state.phase = Phase.GLOBALS_DONE if state.n_global >= self.vocab.num_globals else Phase.GLOBALS
            elif token == m["end_acoustic"]:
                state.phase = Phase.ACOUSTIC_CLOSED
            else:  # <|start_global_token|>
                state.phase = Phase.GLOBALS
        elif p in (Phase.GLOBALS_DONE, Phase.SEMANTIC_START):
            if k == Kind.SEMANTIC:
                state.phase = Phase.SEMANTIC
            elif token == m["end_global"]:
                state.phase = Phase.SEMANTIC_START
            else:  # <|start_semantic_token|>
                state.phase = Phase.SEMANTIC_OPEN
        elif p == Phase.SEMANTIC_OPEN:
            state.phase = Phase.SEMANTIC
        # Phase.SEMANTIC + a semantic token: stay.


class SpeechConstraint:
    """Logits processor: masks, per row, every token the output grammar does not allow next.

    It keeps one grammar state per row and consumes the tokens appended since its last call, so each step
    costs O(batch) Python work plus one masked fill. Create a fresh instance per ``generate`` call.
    """

    def __init__(self, grammar: SpeechGrammar, modes: Sequence[Mode], prompt_length: int):
        self.grammar = grammar
        self.states = [_RowState(SpeechGrammar.start_phase(m)) for m in modes]
        self.consumed = prompt_length

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        """``input_ids``: (B, L) prompt + generated so far; ``scores``: (B, V) logits -> masked (B, V)."""
        if input_ids.shape[0] != len(self.states):
            raise GenerationError(
                f"the constraint was built for {len(self.states)} rows but generate passed {input_ids.shape[0]}; "
                "beam search and num_return_sequences > 1 are not supported with constrained decoding"
            )
        new = input_ids[:, self.consumed :].tolist()
        self.consumed = input_ids.shape[1]
        for state, toks in zip(self.states, new):
            for tok in toks:
                self.grammar.advance(state, tok)
        phases = torch.tensor([int(s.phase) for s in self.states], device=self.grammar.masks.device)
        allowed = self.grammar.masks[phases]
        if allowed.shape[-1] != scores.shape[-1]:
            raise GenerationError(
                f"the model produced {scores.shape[-1]} logits but the vocabulary has {allowed.shape[-1]} entries"
            )
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


# ----------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------


@dataclass
class GeneratedTokens:
    """One row's generation, parsed.

    Attributes:
        semantic_ids: generated semantic ids, in order (T,). For ``clone_continue`` prompts these follow
            the reference's semantic tokens (which are not repeated here).
        global_ids: the 32 generated global ids in create mode, else empty.
        pitch_value / speed_value: the create-mode chain of thought (mel, syllables/s) or None.
        token_ids: the generated ids up to and including the stop token (no padding).
        finish_reason: "stop" (EOS / end marker), "length" (``max_new_tokens`` reached) or "cancelled".
        mode: the prompt's mode.
    """

    semantic_ids: list[int]
    global_ids: list[int] = field(default_factory=list)
    pitch_value: int | None = None
    speed_value: int | None = None
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    mode: Mode = "clone"


def infer_mode(prompt: str) -> Mode:
    """The mode of a Spark-TTS prompt string: create, clone, or clone continuing a reference's tokens."""
    if prompt.startswith(TASK_TOKEN_MAP["controllable_tts"]):
        return "create"
    if prompt.startswith(TASK_TOKEN_MAP["tts"]):
        return "clone_continue" if START_SEMANTIC in prompt else "clone"
    raise GenerationError(
        "prompt is neither a cloning (<|task_tts|>) nor a creation (<|task_controllable_tts|>) prompt; "
        "build it with sparktts.prompts.build_clone_prompt / build_create_prompt"
    )


def _refuse_nan_scores(input_ids: Tensor, scores: Tensor) -> Tensor:
    """Logits processor: NaN scores (corrupt weights) end generation with a clear error; greedy decoding would
    otherwise pick an arbitrary token in silence, and sampling fail inside torch.multinomial."""
    if bool(torch.isnan(scores).any()):
        raise GenerationError(NAN_SCORES_MESSAGE)
    return scores


class _Cancel:
    """Stopping criterion set from another thread (a closed stream stops its generation)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: Tensor, scores: Tensor, **kwargs: Any) -> Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


_SEMANTIC_TEXT_RE = re.compile(r"bicodec_semantic_(\d+)")

NAN_SCORES_MESSAGE = (
    "the language model produced NaN scores, so no token can be chosen: its weights are corrupt (NaN/inf) or "
    "overflow in this dtype. Re-download LLM/model.safetensors, or load in float32 (dtype=None)."
)


class SpeechGenerator:
    """``model.generate`` for Spark-TTS prompts, with constrained decoding, seeds, batching and parsing.

    Args:
        model: the HF causal LM.
        tokenizer: its tokenizer (Spark-TTS tokens added).
        semantic_size / global_size / num_globals: the codec's sizes (ids the codec can decode).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        semantic_size: int = SEMANTIC_CODEBOOK_SIZE,
        global_size: int = GLOBAL_CODEBOOK_SIZE,
        num_globals: int = RELEASE_NUM_GLOBAL_TOKENS,
    ):
        self.model = model
        self.tokenizer = tokenizer
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        gen_eos = [] if gen_eos is None else [gen_eos] if isinstance(gen_eos, int) else list(gen_eos)
        # Where the unconstrained (original) generate stops: the generation config's EOS, else the tokenizer's.
        self.generate_eos: tuple[int, ...] = tuple(int(i) for i in gen_eos) or (int(tokenizer.eos_token_id),)
        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.vocab = SpeechVocab.from_tokenizer(
            tokenizer,
            vocab_size,
            eos_ids=gen_eos,
            semantic_size=semantic_size,
            global_size=global_size,
            num_globals=num_globals,
        )
        self._grammar: SpeechGrammar | None = None
        self._fast: Any = None
        # HF fast tokenizers are Rust objects that refuse concurrent use ("Already borrowed") when one call
        # changes their padding settings; every use of the tokenizer by generation takes this lock.
        self.tokenizer_lock = threading.Lock()
        self.vllm: Any = None  # a VLLMGenerator when engine == "vllm"
        # "fast": constrained decoding runs FastDecoder (restricted LM head, KV cache; same greedy tokens as
        # model.generate); "hf": always model.generate (the original's way of computing).
        self.engine = "fast"

    @property
    def fast_decoder(self) -> Any:
        from .llm.decode import FastDecoder

        if self._fast is None or self._fast.grammar is not self.grammar:
            self._fast = FastDecoder(self.model, self.grammar)
        return self._fast

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def grammar(self) -> SpeechGrammar:
        # Built lazily and kept: the masks are (11, V) booleans on the model's device.
        if self._grammar is None or self._grammar.masks.device != self.device:
            self._grammar = SpeechGrammar(self.vocab, self.device)
        return self._grammar

    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Tensor]:
        """Left-padded ``input_ids`` / ``attention_mask`` (B, L) for a list of prompt strings."""
        if not prompts:
            raise GenerationError("no prompts given: pass at least one text")
        with self.tokenizer_lock:
            enc = self.tokenizer(
                list(prompts), return_tensors="pt", padding=True, padding_side="left", add_special_tokens=True
            )
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingConfig | None = None,
        *,
        constrained: bool = True,
        modes: Sequence[Mode] | None = None,
        logits_processor: Sequence[Any] = (),
        stopping_criteria: Sequence[Any] = (),
        streamer: Any = None,
        cancel: threading.Event | None = None,
        allow_empty: bool = False,
        engine: str | None = None,
    ) -> list[GeneratedTokens]:
        """Generate for a batch of prompts and parse each row.

        Args:
            prompts: B prompt strings (clone and create may be mixed).
            sampling: decoding settings; ``sampling.seed`` None means unseeded (global RNG, as the original).
            constrained: apply :class:`SpeechConstraint` (see the module docstring); False = the original.
            modes: per-prompt modes; inferred from the prompt strings when None.
            logits_processor: extra processors, run after the constraint (e.g. to force tokens in tests).
            stopping_criteria: extra stopping criteria.
            streamer: a transformers streamer (gets the prompt ids first, then each step's (B,) tokens).
            cancel: when set (from another thread), generation stops after the current step.
            allow_empty: return rows without semantic tokens instead of raising (streams check themselves).
            engine: "fast" or "hf" (default: ``self.engine``). The fast engine serves constrained calls without
                extra processors / stopping criteria; everything else goes through ``model.generate``.

        Returns:
            One :class:`GeneratedTokens` per prompt, in order.

        Raises:
            GenerationError: a row has no semantic tokens (the message says why), or, unconstrained, the
                model produced ids the codec cannot decode / the wrong number of global tokens.
        """
        sampling = sampling or SamplingConfig()
        modes = list(modes) if modes is not None else [infer_mode(p) for p in prompts]
        if len(modes) != len(prompts):
            raise GenerationError(f"{len(prompts)} prompts but {len(modes)} modes")
        inputs = self.encode_prompts(prompts)
        prompt_len = inputs["input_ids"].shape[1]
        processors: list[Any] = [_refuse_nan_scores]
        if constrained:
            processors.append(SpeechConstraint(self.grammar, modes, prompt_len))
        processors.extend(logits_processor)
        criteria = list(stopping_criteria)
        if cancel is not None:
            criteria.append(_Cancel(cancel))
        kwargs = sampling.generate_kwargs()
        if constrained:
            # <|end_semantic_token|> also ends a row: the grammar allows nothing useful after it.
            kwargs["eos_token_id"] = list(self.vocab.stop_ids)
        from transformers import LogitsProcessorList, StoppingCriteriaList

        engine = engine or self.engine
        if engine not in ("fast", "hf", "vllm"):
            raise ConfigError(f"engine must be 'fast', 'hf' or 'vllm', not {engine!r}")
        if engine == "vllm":
            if streamer is None and cancel is None and not logits_processor and not stopping_criteria:
                return self._checked(self.vllm.generate(prompts, sampling, modes), sampling, allow_empty)
            engine = "fast"  # streaming and custom processors need the in-process engines
        fast = engine == "fast" and constrained and not logits_processor and not stopping_criteria
        seed = sampling.seed if sampling.do_sample else None  # greedy decoding draws no random numbers
        if fast:
            generator = call_generator(seed, self.device) if seed is not None else None
            out = self.fast_decoder.generate(inputs["input_ids"], inputs["attention_mask"], modes, sampling,
                                             streamer=streamer, cancel=cancel, generator=generator)
        else:
            with seeded(seed, self.device) if seed is not None else contextlib.nullcontext():
                try:
                    out = self.model.generate(
                        **inputs,
                        **kwargs,
                        pad_token_id=self.vocab.pad_id,
                        logits_processor=LogitsProcessorList(processors),
                        stopping_criteria=StoppingCriteriaList(criteria),
                        streamer=streamer,
                    )
                except RuntimeError as exc:
                    if "probability tensor contains" in str(exc):  # torch.multinomial on NaN scores
                        raise GenerationError(NAN_SCORES_MESSAGE) from exc
                    raise
        new_ids = out[:, prompt_len:].tolist()
        cancelled = cancel is not None and cancel.is_set()
        results = [
            self._parse_row(ids, mode, constrained, sampling.max_new_tokens, cancelled)
            for ids, mode in zip(new_ids, modes)
        ]
        return self._checked(results, sampling, allow_empty)

    def _checked(self, results: list[GeneratedTokens], sampling: SamplingConfig, allow_empty: bool
                 ) -> list[GeneratedTokens]:
        if not allow_empty:
            for i, res in enumerate(results):
                if not res.semantic_ids:
                    raise GenerationError(self.empty_reason(res, sampling.max_new_tokens, i, len(results)))
        return results

    # -- parsing ----------------------------------------------------------------------------------
    def _parse_row(
        self, ids: list[int], mode: Mode, constrained: bool, max_new_tokens: int, cancelled: bool
    ) -> GeneratedTokens:
        """Cut a generated row at its first stop token and parse it."""
        stops = set(self.vocab.stop_ids) if constrained else set(self.generate_eos)
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        if end is not None:
            ids, reason = ids[: end + 1], "stop"
        else:
            reason = "cancelled" if cancelled and len(ids) < max_new_tokens else "length"
        if constrained:
            res = self.parse_ids(ids, mode)
        else:
            res = self.parse_text(ids, mode)
        res.finish_reason = reason  # type: ignore[assignment]
        return res

    def parse_ids(self, ids: Sequence[int], mode: Mode = "clone") -> GeneratedTokens:
        """Parse generated ids directly (no text round trip): every semantic / global id in order."""
        kind = self.vocab.kind
        index = self.vocab.index
        t = torch.tensor(list(ids), dtype=torch.int64)
        t = t[(t >= 0) & (t < kind.shape[0])]
        k, idx = kind[t], index[t]
        pitch = idx[k == Kind.PITCH_VALUE]
        speed = idx[k == Kind.SPEED_VALUE]
        return GeneratedTokens(
            semantic_ids=idx[k == Kind.SEMANTIC].tolist(),
            global_ids=idx[k == Kind.GLOBAL].tolist() if mode == "create" else [],
            pitch_value=int(pitch[0]) if len(pitch) else None,
            speed_value=int(speed[0]) if len(speed) else None,
            token_ids=list(ids),
            mode=mode,
        )

    def parse_text(self, ids: Sequence[int], mode: Mode = "clone") -> GeneratedTokens:
        """The original's parsing: ``batch_decode(skip_special_tokens=True)`` then the regexes.

        Raises:
            GenerationError: ids outside the codec's codebooks, or (create) not exactly ``num_globals``
                global ids: the codec could not decode them.
        """
        with self.tokenizer_lock:
            text = self.tokenizer.batch_decode([list(ids)], skip_special_tokens=True)[0]
        parsed = parse_generated(text)
        sem_size, glob_size = self.vocab.semantic_size, self.vocab.global_size
        bad = [i for i in parsed.semantic_ids if i >= sem_size]
        if bad:
            raise GenerationError(
                f"the model generated {len(bad)} semantic ids outside this codec's codebook [0, {sem_size}) "
                f"(e.g. {bad[:3]}); unconstrained decoding cannot prevent that. Use constrained=True."
            )
        globals_: list[int] = []
        if mode == "create":
            globals_ = parsed.global_ids
            if len(globals_) != self.vocab.num_globals or any(g >= glob_size for g in globals_):
                raise GenerationError(
                    f"the model generated {len(globals_)} global tokens (the codec needs exactly "
                    f"{self.vocab.num_globals} ids in [0, {glob_size})); the voice cannot be decoded. "
                    "Use constrained=True, which guarantees a well-formed voice."
                )
        return GeneratedTokens(
            semantic_ids=parsed.semantic_ids,
            global_ids=globals_,
            pitch_value=parsed.pitch_value,
            speed_value=parsed.speed_value,
            token_ids=list(ids),
            mode=mode,
        )

    def empty_reason(self, res: GeneratedTokens, max_new_tokens: int, row: int = 0, rows: int = 1) -> str:
        """Why a row produced no semantic tokens, and what to do about it."""
        where = f"row {row} of {rows}: " if rows > 1 else ""
        n = len(res.token_ids)
        if res.finish_reason == "cancelled":
            return f"{where}generation was cancelled after {n} tokens, before any semantic token"
        if res.finish_reason == "length":
            need = "about 40 tokens of pitch/speed/global preamble plus speech" if res.mode == "create" else "speech"
            return (
                f"{where}max_new_tokens={max_new_tokens} was used up before any semantic token was generated "
                f"(create mode needs {need}); raise max_new_tokens (the original uses 3000)"
            )
        return (
            f"{where}the model stopped after {n} tokens without generating any semantic token (it emitted its "
            "end-of-sequence token first). Try another seed or constrained=True, which forbids stopping before speech"
        )
