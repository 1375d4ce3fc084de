"""Token explorer: what the global and the semantic tokens of a clip carry, by looking and listening."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from ..codec import BiCodecTokenizer, BiCodecTokens, CodecAnalysis
from ..errors import AudioError, TokenError
from ..plotting import codec_overview, global_tokens_figure
from .base import Panel, audio_widget, figure_widget, prompt_choices, uploaded_audio

MASK_MODES = ("repeat the token before the span", "random ids", "one constant id")


def masked_semantic(ids: torch.Tensor, start: int, stop: int, mode: str, value: int = 0,
                    codebook_size: int = 8192, seed: int = 0) -> torch.Tensor:
    """Copy of ``ids (1, N)`` with ``[start, stop)`` replaced according to ``mode`` (see MASK_MODES)."""
    out = ids.clone()
    n = out.shape[1]
    start, stop = max(0, start), min(n, stop)
    if start >= stop:
        raise TokenError(f"empty span [{start}, {stop}); choose start < end within 0..{n}.")
    if mode == MASK_MODES[0]:
        out[0, start:stop] = out[0, start - 1] if start > 0 else out[0, stop % n]
    elif mode == MASK_MODES[1]:
        gen = torch.Generator().manual_seed(seed)
        out[0, start:stop] = torch.randint(0, codebook_size, (stop - start,), generator=gen)
    elif mode == MASK_MODES[2]:
        if not 0 <= value < codebook_size:
            raise TokenError(f"constant id must lie in [0, {codebook_size}); given {value}.")
        out[0, start:stop] = value
    else:
        raise TokenError(f"unknown mode {mode!r}; choose one of {MASK_MODES}")
    return out


class TokenExplorer(Panel):
    """Global tokens (speaker) vs semantic tokens (content) of one or two clips.

    ``analyze`` shows, for clips A and B, the 32 global tokens as a grid and the semantic tokens as a
    timeline under the spectrogram. ``swap`` decodes A's semantic tokens with B's global tokens (voice
    conversion through the codec); ``mask`` replaces a span of A's semantic tokens and decodes again.
    Results: ``panel.analysis`` (name -> :class:`CodecAnalysis`), ``panel.result`` (last audio).
    """

    title = "Token explorer"

    def __init__(self, tokenizer: BiCodecTokenizer, clips: dict[str, str] | None = None):
        super().__init__()
        self.tok = tokenizer
        self.clips = clips if clips is not None else prompt_choices()
        names = list(self.clips)
        self.clip_a = W.Dropdown(options=names, value=names[0] if names else None, description="clip A")
        self.clip_b = W.Dropdown(options=names, value=names[min(1, len(names) - 1)] if names else None,
                                 description="clip B")
        self.upload = W.FileUpload(accept="audio/*", multiple=False, description="upload as A")
        self.analyze_button = W.Button(description="Analyze", button_style="primary")
        self.swap_button = W.Button(description="Swap global tokens")
        self.span = W.IntRangeSlider(value=(0, 25), min=0, max=50, description="span")
        self.mode = W.Dropdown(options=MASK_MODES, value=MASK_MODES[0], description="mask with")
        self.constant = W.BoundedIntText(value=0, min=0, max=self.tok.model.quantizer.codebook_size - 1,
                                         description="id")
        self.mask_button = W.Button(description="Mask span")
        self.analysis: dict[str, CodecAnalysis] = {}
        self.analyze_button.on_click(lambda _: self.analyze())
        self.swap_button.on_click(lambda _: self.swap())
        self.mask_button.on_click(lambda _: self.mask())
        self.controls = W.VBox([
            W.HBox([self.clip_a, self.clip_b, self.upload, self.analyze_button]),
            W.HBox([self.swap_button]),
            W.HBox([self.span, self.mode, self.constant, self.mask_button]),
        ])

    def _source_a(self):
        up = uploaded_audio(self.upload)
        return ("upload", up) if up is not None else (self.clip_a.value, (self.clips[self.clip_a.value], None))

    def analyze(self) -> bool:
        def work():
            name_a, (src_a, sr_a) = self._source_a()
            if name_a is None:
                raise AudioError("no clip chosen: pick clip A or upload a file.")
            self.analysis = {"A": self.tok.analyze(src_a, sr_a)}
            self.names = {"A": name_a, "B": self.clip_b.value}
            if self.clip_b.value is not None:
                self.analysis["B"] = self.tok.analyze(self.clips[self.clip_b.value])
            n = self.analysis["A"].tokens.semantic_ids.shape[1]
            self.span.max = n
            self.span.value = (min(n // 4, n - 1), min(n // 2, n))
            rows, children = [], []
            for key, a in self.analysis.items():
                rows.append(a.tokens.global_ids[0].numpy())
                recon = self.tok.decode(a.tokens)[0]
                children += [W.HTML(f"<b>{key}: {self.names[key]}</b> — input, then codec reconstruction"),
                             W.HBox([audio_widget(a.wav), audio_widget(recon)]),
                             figure_widget(codec_overview(a.wav, a.tokens.global_ids[0].numpy(),
                                                          a.tokens.semantic_ids[0].numpy(),
                                                          title=f"{key}: {self.names[key]}"))]
            fig = global_tokens_figure(np.stack(rows), [f"{k}: {self.names[k]}" for k in self.analysis])
            self.result = None
            return [figure_widget(fig), *children]

        return self.run("Analyzing", work)

    def swap(self) -> bool:
        def work():
            if set(self.analysis) != {"A", "B"}:
                raise TokenError("analyze two clips (A and B) first.")
            a, b = self.analysis["A"].tokens, self.analysis["B"].tokens
            self.result = self.tok.decode(BiCodecTokens(b.global_ids, a.semantic_ids))[0]
            back = self.tok.decode(BiCodecTokens(a.global_ids, b.semantic_ids))[0]
            return [W.HTML("<b>A's words in B's voice</b>"), audio_widget(self.result),
                    W.HTML("<b>B's words in A's voice</b>"), audio_widget(back)]

        return self.run("Swapping global tokens", work)

    def mask(self) -> bool:
        def work():
            if "A" not in self.analysis:
                raise TokenError("analyze a clip first.")
            a = self.analysis["A"].tokens
            start, stop = self.span.value
            ids = masked_semantic(a.semantic_ids, start, stop, self.mode.value, self.constant.value,
                                  self.tok.model.quantizer.codebook_size)
            self.result = self.tok.decode(BiCodecTokens(a.global_ids, ids))[0]
            return [W.HTML(f"<b>A with tokens {start}..{stop - 1} masked ({self.mode.value})</b> — "
                           f"{stop - start} tokens = {(stop - start) / 50:.2f} s"),
                    audio_widget(self.result),
                    figure_widget(codec_overview(self.result, a.global_ids[0].numpy(), ids[0].numpy(),
                                                 title="masked"))]

        return self.run("Masking", work)
