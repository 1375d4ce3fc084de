"""A lean Qwen2 forward for generation: one preallocated KV cache, no per-step bookkeeping.

transformers' Qwen2 forward is written for every use (training, any cache class, any attention back
end, masks of every shape). At batch 1 on CPU that generality costs about 25 ms per decoding step
outside the matrix products -- mask construction, cache updates by concatenation, rotary tables, module
dispatch -- which is as long as all the int8 matrix products of a step. :class:`LeanQwen2` computes the
same function for the two calls generation makes (a prefill of left-padded prompts, then one token per
row per step) with the model's own weight tensors (no copies), a KV cache written in place, and the
rotary and mask tensors built once per call instead of once per layer.

Arithmetic follows transformers' Qwen2 (fp32 RMSNorm, ``q * cos + rotate_half(q) * sin``, SDPA with the
same scale, SiLU-gated MLP), so under greedy decoding it picks the same tokens (checked against
``model.generate`` in the tests). Linear layers that are not ``nn.Linear`` (dynamic int8 modules) are
called as modules.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kernels import direct_call, fused_call

__all__ = ["KVCache", "LeanQwen2", "decoder_body"]


def decoder_body(model: Any) -> Any:
    """The transformer body of a transformers causal LM (``model.model`` for Qwen2), without its LM head."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model.model


def _linear(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """A direct call of a linear layer's kernel, skipping module dispatch (~35 us per call, 168 calls per
    token). Plain ``nn.Linear`` and the quantized layers of :mod:`sparktts.llm.kernels`; anything else is
    called as a module."""
    if type(module) is nn.Linear:
        return partial(F.linear, weight=module.weight, bias=module.bias)
    return direct_call(module) or module


class KVCache:
    """Keys and values of every layer in one tensor each: ``(layers, batch, kv_heads, capacity, head_dim)``.

    ``length`` columns are filled. :meth:`reserve` grows the capacity (doubling) before a write that
    would not fit, so a caller may size it for the prompt and let long generations extend it.
    """

    def __init__(self, layers: int, batch: int, kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device | str):
        shape = (layers, batch, kv_heads, max(1, capacity), head_dim)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    def reserve(self, extra: int) -> None:
        need = self.length + extra
        if need <= self.capacity:
            return
        new = max(need, 2 * self.capacity)
        for name in ("k", "v"):
            old = getattr(self, name)
            grown = old.new_empty((*old.shape[:3], new, old.shape[4]))
            grown[:, :, :, : self.length] = old[:, :, :, : self.length]
            setattr(self, name, grown)


class _Layer:
    """References to one decoder layer's weights (shared with the transformers module)."""

    def __init__(self, layer: nn.Module):
        attn, mlp = layer.self_attn, layer.mlp
        # Fused q/k/v and gate/up (quantized models, see sparktts.llm.kernels.FusedLinear): one call each.
        self.qkv = fused_call(attn.q_proj, attn.k_proj, attn.v_proj)
        self.gate_up = fused_call(mlp.gate_proj, mlp.up_proj)
        # The per-part calls only where there is no fused one.
        self.q, self.k, self.v = (None,) * 3 if self.qkv else (_linear(m) for m in (attn.q_proj, attn.k_proj,
                                                                                     attn.v_proj))
        self.gate, self.up = (None,) * 2 if self.gate_up else (_linear(m) for m in (mlp.gate_proj, mlp.up_proj))
        self.o, self.down = _linear(attn.o_proj), _linear(mlp.down_proj)
        self.input_norm = layer.input_layernorm.weight
        self.post_norm = layer.post_attention_layernorm.weight


class LeanQwen2:
    """The Qwen2 decoder stack of a transformers ``Qwen2ForCausalLM``, for prefill + step-by-step decoding.

    Args:
        model: the causal LM (its ``model`` body is used; the LM head is the caller's).
    """

    def __init__(self, model: Any):
        cfg = model.config
        body = decoder_body(model)
        self.embed = body.embed_tokens
        self.layers = [_Layer(layer) for layer in body.layers]
        self.final_norm = body.norm.weight
        self.eps = float(cfg.rms_norm_eps)
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.hidden = int(cfg.hidden_size)
        self.scale = self.head_dim**-0.5
        self.qkv_sizes = (self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim)
        rotary = body.rotary_emb
        self.inv_freq = rotary.inv_freq.float()
        self.rope_scaling = float(getattr(rotary, "attention_scaling", 1.0))
        self.dtype = self.final_norm.dtype

    @staticmethod
    def supports(model: Any) -> bool:
        """True for models whose forward this class reproduces: Qwen2 with default RoPE, full attention."""
        cfg = getattr(model, "config", None)
        if cfg is None or getattr(cfg, "model_type", None) != "qwen2":
            return False
        rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            return False
        if getattr(cfg, "use_sliding_window", False):
            return False
        layer_types = getattr(cfg, "layer_types", None) or []
        return all(t == "full_attention" for t in layer_types)

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache(len(self.layers), batch, self.kv_heads, self.head_dim, capacity, self.dtype,
                       self.final_norm.device)

    def _norm(self, x: Tensor, weight: Tensor) -> Tensor:
        # transformers' Qwen2RMSNorm: normalise in fp32, cast back, then scale.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    def _rotary(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, S)`` positions -> cos, sin ``(B, 1, S, head_dim)`` in the compute dtype."""
        freqs = positions[..., None].float() * self.inv_freq.to(positions.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scaling).to(self.dtype)[:, None]
        sin = (emb.sin() * self.rope_scaling).to(self.dtype)[:, None]
        return cos, sin

    @staticmethod
    def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def forward(self, input_ids: Tensor, positions: Tensor, cache: KVCache, key_mask: Tensor | None) -> Tensor:
        """Run ``S`` new tokens per row and return the final hidden state of the last one.

        Args:
            input_ids: ``(B, S)`` token ids.
            positions: ``(B, S)`` rotary positions.
            cache: the rows' cache; the new keys/values are written at columns ``length .. length + S``.
            key_mask: ``(B, length + S)`` bool, False for padding columns; None when no row has padding.

        Returns:
            ``(B, hidden)``: the normalised hidden state at the last of the ``S`` columns.
        """
        batch, seq = input_ids.shape
        cache.reserve(seq)
        start, end = cache.length, cache.length + seq
        x = self.embed(input_ids).to(self.dtype)
        cos, sin = self._rotary(positions)
        mask, causal = self._attention_mask(key_mask, start, seq, x.device)
        for i, layer in enumerate(self.layers):
            h = self._norm(x, layer.input_norm)
            if layer.qkv is not None:
                q, k, v = layer.qkv(h).split(self.qkv_sizes, dim=-1)
            else:
                q, k, v = layer.q(h), layer.k(h), layer.v(h)
            q = q.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v.view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
            cache.k[i, :, :, start:end] = self._rope(k, cos, sin)
            cache.v[i, :, :, start:end] = v
            attn = F.scaled_dot_product_attention(
                self._rope(q, cos, sin), cache.k[i, :, :, :end], cache.v[i, :, :, :end],
                attn_mask=mask, is_causal=causal, scale=self.scale, enable_gqa=True,
            )
            x = x + layer.o(attn.transpose(1, 2).reshape(batch, seq, self.hidden))
            h = self._norm(x, layer.post_norm)
            if layer.gate_up is not None:
                gate, up = layer.gate_up(h).chunk(2, dim=-1)
            else:
                gate, up = layer.gate(h), layer.up(h)
            x = x + layer.down(F.silu(gate) * up)
        cache.length = end
        return self._norm(x[:, -1], self.final_norm)

    __call__ = forward

    @staticmethod
    def _attention_mask(key_mask: Tensor | None, start: int, seq: int, device: torch.device
                        ) -> tuple[Tensor | None, bool]:
        """The SDPA mask for queries at columns ``start .. start + seq`` (and whether to pass is_causal)."""
        end = start + seq
        if key_mask is None:
            if seq == 1 or start == 0:
                return None, seq > 1
            key_mask = torch.ones(1, end, dtype=torch.bool, device=device)
        cols = torch.arange(end, device=device)
        rows = torch.arange(start, end, device=device)
        visible = (cols[None, :] <= rows[:, None])[None] & key_mask[:, None, :end]  # (B, S, end)
        # A padding query sees no key at all; let it see itself so its (unused) output stays finite
        # instead of NaN that would reach real rows through 0 * NaN in later layers.
        visible[:, torch.arange(seq, device=device), rows] = True
        return visible[:, None], False
