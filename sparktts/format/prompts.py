"""Spark-TTS LLM prompt strings (what SparkTTS sends) and training targets (what the LM learns to write).

The strings reproduce the official ``cli/SparkTTS.py`` (``process_prompt`` / ``process_prompt_control``)
exactly; ``/work/shared/reference/prompts.json`` holds the reference outputs the tests compare against.

Prompt layouts (one string, no separators between the parts)::

    clone:   <|task_tts|><|start_content|>{text}<|end_content|>
             <|start_global_token|>{32 x <|bicodec_global_N|>}<|end_global_token|>
    clone with the reference transcript (the LM continues the reference's semantic tokens):
             <|task_tts|><|start_content|>{prompt_text}{text}<|end_content|>
             <|start_global_token|>...<|end_global_token|>
             <|start_semantic_token|>{T x <|bicodec_semantic_N|>}
    create:  <|task_controllable_tts|><|start_content|>{text}<|end_content|>
             <|start_style_label|><|gender_G|><|pitch_label_P|><|speed_label_S|><|end_style_label|>

In "create" mode the model first emits ``<|pitch_value_N|><|speed_value_N|>`` (its chain of thought),
then the 32 global tokens, then the semantic tokens; :func:`parse_generated` extracts all of them.

Join of ``prompt_text`` and ``text``: the official code concatenates them with NO separator (a known bug:
"...audio.Hello" reads as one word). ``legacy_join=True`` reproduces that byte for byte; the default
inserts one space unless a CJK character sits at the seam (see :func:`sparktts.text.join_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparktts.errors import PromptError
from sparktts.format.tokens import (
    END_ACOUSTIC,
    END_CONTENT,
    END_GLOBAL,
    END_OF_SPEECH,
    END_STYLE_LABEL,
    GLOBAL_CODEBOOK_SIZE,
    SEMANTIC_CODEBOOK_SIZE,
    START_ACOUSTIC,
    START_CONTENT,
    START_GLOBAL,
    START_SEMANTIC,
    START_STYLE_LABEL,
    TASK_TOKEN_MAP,
    Gender,
    Level,
    format_global,
    format_semantic,
    gender_token,
    id_list,
    pitch_label_token,
    pitch_value_token,
    speed_label_token,
    speed_value_token,
)
from sparktts.text import check_text, join_text

__all__ = ["build_clone_prompt", "build_clone_target", "build_create_prompt", "build_create_target"]

# ----------------------------------------------------------------------------------------------------
# Prompt builders
# ----------------------------------------------------------------------------------------------------



def build_clone_prompt(
    text: str,
    global_ids: Sequence[int] | Any,
    prompt_text: str | None = None,
    semantic_ids: Sequence[int] | Any | None = None,
    legacy_join: bool = False,
    expected_globals: int | None = None,
) -> str:
    """Voice-cloning prompt (official ``SparkTTS.process_prompt``).

    Args:
        text: the text to synthesise (non-empty).
        global_ids: the reference audio's K global ids in [0, 4096) — a sequence, or an int array/tensor of
            shape (K,), (1, K) or (1, 1, K) (``BiCodecTokenizer.tokenize`` gives (1, 1, 32)).
        prompt_text: transcript of the reference audio. When given, the prompt also carries the reference's
            semantic tokens, which the LM continues; ``semantic_ids`` is then required.
        semantic_ids: the reference audio's T semantic ids in [0, 8192), shape (T,) or (1, T).
            Only valid together with ``prompt_text``.
        legacy_join: True joins ``prompt_text`` and ``text`` with no separator, exactly like the official
            code; False (default) uses :func:`sparktts.text.join_text` (one space unless CJK at the seam).
        expected_globals: when set, the number of global ids must equal it (32 for the release).

    Returns:
        The prompt string, to be tokenised without extra special tokens.

    Raises:
        PromptError: empty text / transcript, markup in the text, ids of bad dtype / shape / range, wrong
            global count, ``prompt_text`` without ``semantic_ids`` or the reverse.
    """
    text = check_text(text, "text", markup=True)
    globals_ = id_list(global_ids, "global_ids", GLOBAL_CODEBOOK_SIZE)
    if not globals_:
        raise PromptError(
            "global_ids is empty; pass the reference audio's global tokens (32 for the release)"
        )
    if expected_globals is not None and len(globals_) != expected_globals:
        raise PromptError(
            f"global_ids has {len(globals_)} ids but the model expects {expected_globals} "
            "(BiCodec token_num); use global tokens produced by the matching codec"
        )
    parts = [TASK_TOKEN_MAP["tts"], START_CONTENT]
    if prompt_text is None:
        if semantic_ids is not None:
            raise PromptError(
                "semantic_ids were given without prompt_text; the reference semantic tokens are only "
                "used together with the reference transcript (pass prompt_text, or drop semantic_ids)"
            )
        parts += [text, END_CONTENT, START_GLOBAL, format_global(globals_), END_GLOBAL]
        return "".join(parts)

    prompt_text = check_text(prompt_text, "prompt_text", markup=True)
    if semantic_ids is None:
        raise PromptError(
            "prompt_text was given without semantic_ids; pass the reference audio's semantic tokens "
            "(BiCodecTokenizer.tokenize output) or set prompt_text=None"
        )
    semantics = id_list(semantic_ids, "semantic_ids", SEMANTIC_CODEBOOK_SIZE)
    if not semantics:
        raise PromptError("semantic_ids is empty; the reference audio produced no semantic tokens")
    content = prompt_text + text if legacy_join else join_text(prompt_text, text)
    parts += [
        content,
        END_CONTENT,
        START_GLOBAL,
        format_global(globals_),
        END_GLOBAL,
        START_SEMANTIC,
        format_semantic(semantics),
    ]
    return "".join(parts)


def build_create_prompt(text: str, gender: str | Gender, pitch: str | Level, speed: str | Level) -> str:
    """Voice-creation prompt (official ``SparkTTS.process_prompt_control``).

    Args:
        text: the text to synthesise (non-empty).
        gender: "female" / "male" or a :class:`Gender`.
        pitch: "very_low" | "low" | "moderate" | "high" | "very_high" or a :class:`Level`.
        speed: same labels as ``pitch``.

    Raises:
        PromptError: empty text, markup in the text, or an unknown label (the message lists valid ones).
    """
    text = check_text(text, "text", markup=True)
    style = gender_token(gender) + pitch_label_token(pitch) + speed_label_token(speed)
    return "".join(
        [
            TASK_TOKEN_MAP["controllable_tts"],
            START_CONTENT,
            text,
            END_CONTENT,
            START_STYLE_LABEL,
            style,
            END_STYLE_LABEL,
        ]
    )


# ----------------------------------------------------------------------------------------------------
# Training targets (what the LM learns to write after a prompt of the builders above)
# ----------------------------------------------------------------------------------------------------



def build_clone_target(semantic_ids: Sequence[int] | Any, end: str = END_OF_SPEECH) -> str:
    """What the LM writes after a :func:`build_clone_prompt` prompt (no transcript): the training target.

    Layout (as the SparkAudio training data, ``<|start_semantic_token|>`` then the ids then the end token)::

        <|start_semantic_token|>{T x <|bicodec_semantic_N|>}<|im_end|>

    Args:
        semantic_ids: the clip's T semantic ids in [0, 8192) (sequence or (T,)/(1, T) int array).
        end: the end token; the tokenizer's eos (``<|im_end|>`` for the release).

    Raises:
        PromptError: no ids, or ids of bad dtype / shape / range.
    """
    semantics = id_list(semantic_ids, "semantic_ids", SEMANTIC_CODEBOOK_SIZE)
    if not semantics:
        raise PromptError("semantic_ids is empty; a training target needs the clip's semantic tokens")
    return START_SEMANTIC + format_semantic(semantics) + end


def build_create_target(
    pitch_value: float,
    speed_value: float,
    global_ids: Sequence[int] | Any,
    semantic_ids: Sequence[int] | Any,
    end: str = END_OF_SPEECH,
    expected_globals: int | None = None,
) -> str:
    """What the LM writes after a :func:`build_create_prompt` prompt: the training target.

    Layout (the chain of thought of the SparkAudio training data)::

        <|start_acoustic_token|><|pitch_value_P|><|speed_value_V|><|end_acoustic_token|>
        <|start_global_token|>{32 x <|bicodec_global_N|>}<|end_global_token|>
        <|start_semantic_token|>{T x <|bicodec_semantic_N|>}<|im_end|>

    Args:
        pitch_value: mean pitch in mel (truncated to int, clipped to [0, 1000], as :func:`pitch_value_token`).
        speed_value: syllables per second (truncated, clipped to [0, 10]).
        global_ids: the clip's global ids; ``expected_globals`` (32 for the release) checks their count.
        semantic_ids: the clip's semantic ids.
        end: the end token (the tokenizer's eos).

    Raises:
        PromptError: bad values or ids, or the wrong number of global ids.
    """
    globals_ = id_list(global_ids, "global_ids", GLOBAL_CODEBOOK_SIZE)
    if not globals_ or (expected_globals is not None and len(globals_) != expected_globals):
        raise PromptError(
            f"global_ids has {len(globals_)} ids but the model expects {expected_globals or 'at least one'}; "
            "use global tokens produced by the matching codec"
        )
    return "".join(
        [
            START_ACOUSTIC,
            pitch_value_token(pitch_value),
            speed_value_token(speed_value),
            END_ACOUSTIC,
            START_GLOBAL,
            format_global(globals_),
            END_GLOBAL,
            build_clone_target(semantic_ids, end),
        ]
    )

