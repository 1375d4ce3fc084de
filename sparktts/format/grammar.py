"""The output grammar: what the LM may write after a Spark-TTS prompt, as per-phase token masks and as a parser.

The grammars (``|`` = alternatives, ``?`` = optional, as the model was trained; the optional markers are
allowed, not forced, so a model that skips them is not pushed off its distribution)::

    clone   (prompt ends with <|end_global_token|>):  <|start_semantic_token|>? S+ STOP
    clone   (prompt ends inside the reference's semantic tokens, i.e. with a transcript):  S+ STOP
    create:  <|start_acoustic_token|>? <|pitch_value_P|> <|speed_value_V|> <|end_acoustic_token|>?
             <|start_global_token|>? G{32} <|end_global_token|>? <|start_semantic_token|>? S+ STOP

``S`` is a semantic token whose id lies inside the codec's codebook (8192 for the release, fewer for a
tiny test codec), ``G`` a global token inside the speaker codebook, ``STOP`` the tokenizer's EOS
(``<|im_end|>``), any EOS of the model's generation config, or ``<|end_semantic_token|>``. At least one
semantic token is required before STOP, so an empty result can only come from ``max_new_tokens``.

The engines (:mod:`sparktts.llm.engines`) apply :class:`SpeechGrammar`'s masks while decoding;
:func:`parse_ids` and :class:`TokenStreamParser` read generated ids back (the original's regex parser of
decoded text, for ``constrained=False``, is :func:`sparktts.format.tokens.parse_generated`). This module
imports only :mod:`sparktts.format.tokens` and :mod:`sparktts.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import torch
from torch import Tensor

from sparktts.errors import ConfigError, GenerationError
from sparktts.format.tokens import (
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
)

__all__ = [
    "FinishReason", "GeneratedTokens", "Kind", "Mode", "Phase", "RowState", "SpeechGrammar",
    "SpeechVocab", "TokenStreamParser", "infer_mode", "parse_ids",
]  # fmt: skip

Mode = Literal["clone", "clone_continue", "create"]
FinishReason = Literal["stop", "length", "cancelled"]


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
class RowState:
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

    def advance(self, state: RowState, token: int) -> None:
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


def parse_ids(vocab: SpeechVocab, ids: Sequence[int], mode: Mode = "clone") -> GeneratedTokens:
    """Parse generated ids directly (no text round trip): every semantic / global id in order."""
    t = torch.tensor(list(ids), dtype=torch.int64)
    t = t[(t >= 0) & (t < vocab.kind.shape[0])]
    k, idx = vocab.kind[t], vocab.index[t]
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


class TokenStreamParser:
    """:func:`parse_ids` one token at a time, for streams: the semantic ids as they arrive, and the voice.

    Args:
        vocab: the generator's vocabulary.
        stop_ids: the ids that end the row; later ids are padding and ignored.
        global_ids: the voice's global ids when cloning; None when the LM writes them (create).
    """

    def __init__(self, vocab: SpeechVocab, stop_ids: set[int], global_ids: Sequence[int] | None = None):
        self.vocab = vocab
        self._kind, self._index = vocab.kind.tolist(), vocab.index.tolist()
        self.stop_ids = stop_ids
        self.creating = global_ids is None
        self.global_ids: list[int] = [] if global_ids is None else list(global_ids)
        self.stopped = False

    @property
    def has_voice(self) -> bool:
        return len(self.global_ids) == self.vocab.num_globals

    def feed(self, token: int) -> tuple[Kind, list[int]]:
        """The token's kind, and the semantic ids it adds (``[]`` or ``[id]``)."""
        if self.stopped:
            return Kind.OTHER, []
        if token in self.stop_ids:
            self.stopped = True
            return Kind.OTHER, []
        kind = Kind(self._kind[token]) if 0 <= token < len(self._kind) else Kind.OTHER
        if kind == Kind.GLOBAL and self.creating and not self.has_voice:
            self.global_ids.append(self._index[token])
        elif kind == Kind.SEMANTIC:
            return kind, [self._index[token]]
        return kind, []


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
