"""Random stand-ins for the released ``Spark-TTS-0.5B/LLM`` directory (tokenizer + Qwen2 LM).

The real LLM cannot be downloaded here, so tests and benchmarks use a directory with the same layout and
file formats, loadable offline with ``AutoTokenizer.from_pretrained(dir)`` and
``AutoModelForCausalLM.from_pretrained(dir)``:

* ``tokenizer.json``: a byte-level BPE in Qwen2's pipeline (NFC normaliser, Qwen2 split regex, byte-level
  pre-tokenizer / decoder), trained locally on a few English and Chinese sentences. Byte-level means any
  text tokenizes. Then the 22 Qwen2.5 added tokens (``<|endoftext|>``, ``<|im_start|>``,
  ``<|im_end|>``, ...) and the 13 493 Spark-TTS tokens of :func:`sparktts.format.tokens.spark_special_tokens`,
  in the release's order.
* ``tokenizer_config.json`` / ``special_tokens_map.json``: Qwen2.5-Instruct style (``Qwen2Tokenizer``,
  eos ``<|im_end|>``, pad ``<|endoftext|>``, no bos).
* ``config.json`` / ``generation_config.json`` / ``model.safetensors``: a randomly initialised
  ``Qwen2ForCausalLM``.

The Spark-TTS tokens are added as NON-special added tokens, like the release (its expansion script calls
``tokenizer.add_tokens``): the official inference decodes with ``skip_special_tokens=True`` and then
regex-parses ``bicodec_semantic_N``, which only works if those tokens survive decoding. Each of them
still encodes to exactly one id. The Qwen control tokens (``<|im_end|>``, ...) are special as in Qwen2.5.

Presets:

* ``"tiny"``: a BPE of a few hundred entries (``bpe_vocab_size`` is a cap; the small corpus yields
  ~330), hidden 64, 2 layers, 4 heads / 2 KV heads, vocab = tokenizer size rounded up to a multiple of
  64; builds in well under a second (plus imports).
* ``"full"``: Qwen2.5-0.5B dimensions (hidden 896, 24 layers, 14 / 2 heads, intermediate 4864, tied
  embeddings, rope_theta 1e6, 32768 positions), vocab_size 166000, bfloat16 weights (~1 GB). The BPE
  vocabulary is padded with unreachable filler entries to Qwen's 151 643 so every added token has its
  released id (``<|im_end|>`` 151645, ``<|bicodec_global_0|>`` 151665, ``<|bicodec_semantic_0|>`` 155761).
  For benchmarks only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from sparktts.errors import ConfigError
from sparktts.format.tokens import spark_special_tokens

__all__ = [
    "PRESETS",
    "QWEN2_ADDED_TOKENS",
    "QWEN2_BASE_VOCAB_SIZE",
    "LLMPreset",
    "build_tokenizer",
    "make_random_llm",
]

# Qwen2 pre-tokenisation regex (contractions, letter runs, single digits, punctuation runs, whitespace).
_QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2.5's added tokens in id order (151643..151664): (content, special). The tool-call / FIM / repo
# tokens are not special in Qwen2.5, so decoding with skip_special_tokens keeps them.
QWEN2_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
QWEN2_BASE_VOCAB_SIZE = 151643  # BPE entries before <|endoftext|> in Qwen2 / Qwen2.5

# A few sentences so the BPE learns some real merges; the byte alphabet alone already covers any text.
_CORPUS: tuple[str, ...] = (
    "Hello world, this is Spark TTS.",
    "This is the transcript of the reference audio.",
    "The quick brown fox jumps over the lazy dog. It's 3.14, isn't it?",
    "We'll test speech synthesis with short and long sentences; numbers like 2025 and 42 too!",
    "Voice cloning uses a reference recording of the speaker, and voice creation uses labels.",
    "你好，世界！这是一个语音合成的测试。",
    "今天天气很好，我们一起去公园散步吧。",
    "可控语音合成可以改变说话人的性别、音调和语速。",
    "我爱自然语言处理和语音技术。",
)


@dataclass(frozen=True)
class LLMPreset:
    """Model / tokenizer sizes of a random LLM.

    ``vocab_size=None`` means: tokenizer length rounded up to a multiple of ``vocab_multiple``.
    ``pad_base_vocab`` pads the BPE vocabulary to Qwen's size so all added-token ids match the release.
    """

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int | None
    bpe_vocab_size: int
    pad_base_vocab: bool
    dtype: torch.dtype
    vocab_multiple: int = 64
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    max_window_layers: int = 21
    tie_word_embeddings: bool = True


PRESETS: dict[str, LLMPreset] = {
    "tiny": LLMPreset(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=192,
        vocab_size=None,
        bpe_vocab_size=600,
        pad_base_vocab=False,
        dtype=torch.float32,
        max_window_layers=2,
    ),
    # Qwen2.5-0.5B(-Instruct) dimensions with the Spark-TTS vocabulary size.
    "full": LLMPreset(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=166000,
        bpe_vocab_size=600,
        pad_base_vocab=True,
        dtype=torch.bfloat16,
    ),
}


def _get_preset(preset: str) -> LLMPreset:
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown LLM preset {preset!r}; valid presets: {', '.join(PRESETS)}") from None


def _train_bpe(bpe_vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE with Qwen2's normaliser / pre-tokenizer / decoder on the small corpus."""
    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=2,
        show_progress=False,
        # All 256 byte symbols, so text outside the corpus (any script, emoji) still tokenizes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(list(_CORPUS), trainer=trainer)
    return tok


def _pad_vocab(tok: Tokenizer, size: int) -> Tokenizer:
    """Append unreachable filler entries to the BPE vocab until it has ``size`` entries.

    Fillers contain "<" / "|" which the byte-level pre-tokenizer never merges into a word (no merge rule
    produces them), so they never appear in an encoding; they only shift the added-token ids.
    """
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    n = len(vocab)
    if n > size:
        raise ConfigError(f"BPE vocab has {n} entries, more than the padded size {size}")
    for i in range(n, size):
        vocab[f"<|filler_{i}|>"] = i
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def build_tokenizer(preset: str = "tiny") -> Tokenizer:
    """Build the ``tokenizers.Tokenizer`` of a preset: BPE + Qwen2.5 added tokens + Spark-TTS tokens.

    Returns:
        The tokenizer; ``get_vocab_size(with_added_tokens=True)`` is its full length.
    """
    cfg = _get_preset(preset)
    tok = _train_bpe(cfg.bpe_vocab_size)
    if cfg.pad_base_vocab:
        tok = _pad_vocab(tok, QWEN2_BASE_VOCAB_SIZE)
    # Added one at a time in id order: add_special_tokens / add_tokens assign consecutive ids.
    for content, special in QWEN2_ADDED_TOKENS:
        added = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False)
        if special:
            tok.add_special_tokens([added])
        else:
            tok.add_tokens([added])
    tok.add_tokens(
        [
            AddedToken(t, special=False, normalized=False, lstrip=False, rstrip=False)
            for t in spark_special_tokens()
        ]
    )
    return tok


def _added_token_entry(content: str, special: bool) -> dict[str, object]:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": special,
    }


def _write_tokenizer_files(tok: Tokenizer, out: Path, model_max_length: int) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (Qwen2.5-Instruct style)."""
    tok.save(str(out / "tokenizer.json"))
    decoder: dict[str, dict[str, object]] = {}
    for idx, added in sorted(tok.get_added_tokens_decoder().items()):
        decoder[str(idx)] = _added_token_entry(added.content, bool(added.special))
    extra_special = [c for c, special in QWEN2_ADDED_TOKENS if special and c != "<|endoftext|>"]
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": extra_special,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(
        json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    special_map = {
        "additional_special_tokens": extra_special,
        "eos_token": _added_token_entry("<|im_end|>", True),
        "pad_token": _added_token_entry("<|endoftext|>", True),
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2), encoding="utf-8")


def make_random_llm(llm_dir: str | Path, preset: str = "tiny", seed: int = 0) -> Path:
    """Write a random Spark-TTS ``LLM/`` directory (tokenizer + Qwen2ForCausalLM) to ``llm_dir``.

    Existing files of the same names are overwritten. The global torch RNG is left untouched; weights
    depend only on ``preset`` and ``seed``.

    Args:
        llm_dir: output directory (created if missing).
        preset: "tiny" (tests) or "full" (Qwen2.5-0.5B dims, ~1 GB, benchmarks).
        seed: seed of the weight initialisation.

    Returns:
        ``llm_dir`` as a Path.

    Raises:
        ConfigError: unknown preset.
    """
    # Imported here so that importing sparktts.llm (e.g. for the constants) does not pull in transformers.
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    cfg = _get_preset(preset)
    out = Path(llm_dir)
    out.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer(preset)
    n_tokens = tok.get_vocab_size(with_added_tokens=True)
    if cfg.vocab_size is None:
        vocab_size = -(-n_tokens // cfg.vocab_multiple) * cfg.vocab_multiple
    else:
        vocab_size = cfg.vocab_size
    if vocab_size < n_tokens:
        raise ConfigError(f"preset {preset!r}: vocab_size {vocab_size} < tokenizer size {n_tokens}")
    _write_tokenizer_files(tok, out, cfg.max_position_embeddings)

    bos_id = tok.token_to_id("<|endoftext|>")
    eos_id = tok.token_to_id("<|im_end|>")
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        hidden_act="silu",
        max_position_embeddings=cfg.max_position_embeddings,
        initializer_range=0.02,
        rms_norm_eps=cfg.rms_norm_eps,
        use_cache=True,
        tie_word_embeddings=cfg.tie_word_embeddings,
        rope_theta=cfg.rope_theta,
        use_sliding_window=False,
        sliding_window=cfg.max_position_embeddings,
        max_window_layers=cfg.max_window_layers,
        attention_dropout=0.0,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    # fork_rng keeps the caller's global RNG state; the seeded draws stay local to this block.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model = model.to(cfg.dtype).eval()
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=bos_id)
    model.save_pretrained(out, safe_serialization=True)
    # transformers >= 5 writes rope_theta inside "rope_parameters"; 4.x only reads the top-level key (as in
    # the released config.json) and would silently fall back to 10000. Writing both serves every version.
    cfg_path = out / "config.json"
    cfg_json = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg_json.setdefault("rope_theta", cfg.rope_theta)
    cfg_path.write_text(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
