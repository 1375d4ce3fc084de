"""Strict loading of the released layout, the release factory, and model-source resolution."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from sparktts import BiCodec, BiCodecTokenizer, CheckpointError, ConfigError
from sparktts.checkpoint import fold_state_dict, read_state_dict, resolve_model_dir, unfold_state_dict
from sparktts.codec.layers import fold_weight_norm
from sparktts.testing import bicodec_config, make_random_release


def manifest_shapes(reference_dir):
    man = json.loads((reference_dir / "manifest_release.json").read_text())
    return {e["key"]: tuple(e["shape"]) for e in man["entries"] if not e["absent_in_released_file"]}, man


def test_full_size_layout_matches_release_manifest(reference_dir):
    """Every key and shape of the released BiCodec, built on the meta device (no memory needed)."""
    expected, man = manifest_shapes(reference_dir)
    with torch.device("meta"):
        model = BiCodec(bicodec_config("full"))
    got = {k: tuple(v.shape) for k, v in unfold_state_dict(model).items()}
    assert got == expected
    assert len(got) + len(man["keys_absent_in_released_file"]) == man["num_keys"]
    assert sum(p.numel() for p in model.parameters()) == man["total_parameters_after_remove_weight_norm"]


@pytest.mark.slow
def test_full_size_random_release_loads_strictly(tmp_path, reference_dir):
    expected, _ = manifest_shapes(reference_dir)
    root = make_random_release(tmp_path / "full", "full", parts=("bicodec",))
    on_disk = load_file(str(root / "BiCodec" / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in on_disk.items()} == expected
    model = BiCodec.from_pretrained(root)
    assert model.config.speaker_encoder.token_num == 32 and model.quantizer.codebook_size == 8192
    ids = torch.randint(0, 8192, (1, 10))
    from sparktts import BiCodecTokens

    out = model.decode(BiCodecTokens(torch.randint(0, 4096, (1, 32)), ids))
    assert out.shape == (1, 1, 3200) and torch.isfinite(out).all()


def test_weight_norm_folding_equals_torch(rng):
    conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(4, 6, 3))
    with torch.no_grad():
        conv.weight_g.uniform_(0.5, 1.5)
    conv(torch.zeros(1, 4, 5))  # run the hook so `weight` is computed from g and v
    torch.testing.assert_close(fold_weight_norm(conv.weight_g, conv.weight_v), conv.weight, rtol=0, atol=0)


def test_released_layout_round_trip(tiny_reference_release):
    """unfold(fold(file)) reproduces the file; folding removes every weight_g/weight_v pair."""
    sd = load_file(str(tiny_reference_release / "BiCodec" / "model.safetensors"))
    model = BiCodec.from_pretrained(tiny_reference_release)
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())
    again = unfold_state_dict(model)
    assert set(again) == set(sd)
    refolded = fold_state_dict(model, again)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(refolded[k], v, atol=1e-6, rtol=1e-6)


def copy_release(src, dst):
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path, tiny_reference_release):
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    path = root / "BiCodec" / "model.safetensors"
    sd = load_file(str(path))
    del sd["encoder.project.weight"]
    sd["encoder.extra.weight"] = torch.zeros(3)
    sd["quantizer.codebook.weight"] = torch.zeros(5, 8)
    save_file(sd, str(path))
    with pytest.raises(CheckpointError) as err:
        BiCodec.from_pretrained(root)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing keys: encoder.project.weight" in msg
    assert "unexpected keys: encoder.extra.weight" in msg
    assert "quantizer.codebook.weight: file (5, 8) vs model (128, 8)" in msg


def test_inference_tokenizer_checks_then_lets_the_training_only_postnet_go(tmp_path, tiny_release):
    tok = BiCodecTokenizer(tiny_release, device="cpu")
    assert tok.model.postnet is None and not any(k.startswith("postnet.") for k in tok.model.state_dict())
    with pytest.raises(RuntimeError, match=r"BiCodec.from_pretrained"):
        tok.model(torch.zeros(1, 10, 1024), torch.zeros(1, 16000))
    assert BiCodec.from_pretrained(tiny_release).postnet is not None  # kept for the training forward
    root = copy_release(tiny_release, tmp_path / "rel")
    path = root / "BiCodec" / "model.safetensors"
    sd = load_file(str(path))
    key = next(k for k in sd if k.startswith("postnet."))
    save_file({k: v for k, v in sd.items() if k != key}, str(path))
    with pytest.raises(CheckpointError, match=f"missing keys: {key}"):  # still loaded strictly first
        BiCodecTokenizer(root, device="cpu")


def test_config_that_does_not_match_weights(tmp_path, tiny_reference_release, reference_dir):
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    shutil.copy(reference_dir / "configs" / "bicodec_release.yaml", root / "BiCodec" / "config.yaml")
    with pytest.raises(CheckpointError, match="wrong shapes"):
        BiCodec.from_pretrained(root)


def test_truncated_safetensors(tmp_path, tiny_reference_release):
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    path = root / "BiCodec" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        BiCodec.from_pretrained(root)


def test_nan_weights_are_refused(tmp_path, tiny_reference_release):
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    path = root / "BiCodec" / "model.safetensors"
    sd = load_file(str(path))
    sd["encoder.project.bias"][0] = float("nan")
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match="NaN"):
        BiCodec.from_pretrained(root)


def test_optional_training_buffers_and_computed_mel_buffers(tmp_path, tiny_reference_release):
    """Files with or without BatchNorm counters, and with torchaudio's mel buffers, load the same."""
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    path = root / "BiCodec" / "model.safetensors"
    sd = {k: v for k, v in load_file(str(path)).items()
          if not k.endswith("num_batches_tracked") and k != "quantizer.cluster_size"}
    sd["mel_transformer.spectrogram.window"] = torch.hann_window(640)
    sd["mel_transformer.mel_scale.fb"] = torch.zeros(513, 128)
    save_file(sd, str(path))
    model = BiCodec.from_pretrained(root)
    assert model.mel_transformer.fb.abs().sum() > 0  # computed from mel_params, not taken from the file


def test_torch_files_are_read_with_weights_only(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {"a": torch.ones(2)}}, path)
    assert torch.equal(read_state_dict(path)["a"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"a": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot read weights safely"):
        read_state_dict(tmp_path / "evil.pt")


def test_missing_directory_and_files(tmp_path, tiny_reference_release):
    with pytest.raises(CheckpointError, match="model directory not found"):
        BiCodec.from_pretrained(tmp_path / "nowhere")
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    (root / "BiCodec" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: not found"):
        BiCodec.from_pretrained(root)
    shutil.rmtree(root / "wav2vec2-large-xlsr-53")
    with pytest.raises(CheckpointError, match=r"missing \['wav2vec2-large-xlsr-53'\]"):
        BiCodecTokenizer(root)


def test_broken_config(tmp_path, tiny_reference_release):
    root = copy_release(tiny_reference_release, tmp_path / "rel")
    cfg = root / "BiCodec" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("codebook_dim: 8", "codebook_dim: 8\n    codebook_dims: 8"))
    with pytest.raises(ConfigError, match=r"audio_tokenizer.quantizer: unknown key\(s\) \['codebook_dims'\]"):
        BiCodec.from_pretrained(root)
    cfg.write_text("audio_tokenizer: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        BiCodec.from_pretrained(root)


def test_hub_id_offline_says_how_to_get_the_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        resolve_model_dir("SparkAudio/Spark-TTS-0.5B")
    assert "could not be downloaded" in str(err.value)
    assert "huggingface-cli download SparkAudio/Spark-TTS-0.5B" in str(err.value)


def test_random_tiny_release_has_the_released_layout(tiny_codec_release):
    for rel in ("config.yaml", "BiCodec/config.yaml", "BiCodec/model.safetensors",
                "wav2vec2-large-xlsr-53/config.json", "wav2vec2-large-xlsr-53/preprocessor_config.json",
                "wav2vec2-large-xlsr-53/model.safetensors"):
        assert (tiny_codec_release / rel).is_file(), rel
    sd = load_file(str(tiny_codec_release / "BiCodec" / "model.safetensors"))
    assert "decoder.model.0.weight_g" in sd and "decoder.model.0.weight" not in sd
    tok = BiCodecTokenizer(tiny_codec_release, device="cpu")
    assert tok.model.config.speaker_encoder.token_num == 32
