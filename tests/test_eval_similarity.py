"""Speaker similarity back ends: resemblyzer on real voices, load errors of the others."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sparktts.eval.errors import EvalError, ModelNotAvailableError
from sparktts.eval.similarity import cosine_similarity, load_speaker_model

from ._eval_audio import ARCTIC, SENTENCES, espeak, require, requires_espeak, resemblyzer

pytestmark = pytest.mark.slow

# Measured with resemblyzer 0.1.4 and espeak-ng 1.51 at 150 wpm: the same espeak voice on different
# sentences scores 0.81-0.88, en-us vs en-us+f3 0.58-0.61 (a gap of about 0.25). The bar asks for
# at least 0.12 between the means, half the measured gap.
MIN_GAP = 0.12


@requires_espeak
def test_same_voice_scores_higher_than_different_voice() -> None:
    model = resemblyzer()
    male = [model.embed(espeak(s, "en-us")) for s in SENTENCES[:3]]
    female = [model.embed(espeak(s, "en-us+f3")) for s in SENTENCES[:3]]
    same = [cosine_similarity(male[0], m) for m in male[1:]] + [
        cosine_similarity(female[0], f) for f in female[1:]
    ]
    diff = [cosine_similarity(m, f) for m in male for f in female]
    assert np.mean(same) - np.mean(diff) > MIN_GAP, (same, diff)
    assert min(same) > max(diff)


@requires_espeak
def test_human_recording_halves_match_each_other_better_than_espeak() -> None:
    # Measured: the two halves of the ARCTIC clip 0.69; the clip vs four espeak voices 0.42-0.57.
    model = resemblyzer()
    wav, sr = sf.read(ARCTIC)
    half = len(wav) // 2
    halves = model.similarity(wav[:half], wav[half:], sr)
    clip = model.embed(wav, sr)
    others = [
        cosine_similarity(clip, model.embed(espeak(SENTENCES[0], v)))
        for v in ("en-us", "en-us+f3", "en-gb+m3")
    ]
    assert halves > max(others) + 0.05, (halves, others)


def test_identical_audio_has_similarity_one_and_embedding_is_256d() -> None:
    model = resemblyzer()
    emb = model.embed(ARCTIC)
    assert emb.shape == (256,)
    assert model.similarity(ARCTIC, ARCTIC) == pytest.approx(1.0, abs=1e-5)


def test_silence_has_no_speaker() -> None:
    model = resemblyzer()
    with pytest.raises(EvalError, match="no speech"):
        model.embed(np.zeros(16000, dtype=np.float32), 16000)


def test_cosine_similarity_checks() -> None:
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(0.0)
    assert cosine_similarity(np.array([1.0, 1.0]), np.array([-2.0, -2.0])) == pytest.approx(-1.0)
    with pytest.raises(EvalError, match="different sizes"):
        cosine_similarity(np.ones(3), np.ones(4))
    with pytest.raises(EvalError, match="all zeros"):
        cosine_similarity(np.zeros(3), np.ones(3))


def test_resemblyzer_missing_weights_file(tmp_path) -> None:
    require("resemblyzer", "pip install resemblyzer webrtcvad-wheels")
    with pytest.raises(ModelNotAvailableError, match="omit --sim-model"):
        load_speaker_model("resemblyzer", tmp_path / "missing.pt")


def test_speechbrain_missing_folder_and_files_name_the_fix(tmp_path) -> None:
    require("speechbrain", "pip install speechbrain==1.1.2 torchaudio==2.11.0")
    with pytest.raises(ModelNotAvailableError, match="does not exist.*--sim-model DIR"):
        load_speaker_model("speechbrain", tmp_path / "ecapa")
    (tmp_path / "ecapa").mkdir()
    (tmp_path / "ecapa" / "hyperparams.yaml").write_text("{}")
    with pytest.raises(ModelNotAvailableError, match="lacks embedding_model.ckpt, mean_var_norm_emb.ckpt"):
        load_speaker_model("speechbrain", tmp_path / "ecapa")
    with pytest.raises(ModelNotAvailableError, match="spkrec-ecapa-voxceleb.*download=False"):
        load_speaker_model("speechbrain", None, download=False)


def test_wavlm_ecapa_needs_checkpoint_and_code(tmp_path) -> None:
    with pytest.raises(
        ModelNotAvailableError, match="no checkpoint given.*wavlm_large_finetune.pth.*--sim-model"
    ):
        load_speaker_model("wavlm-ecapa")
    with pytest.raises(ModelNotAvailableError, match="not found"):
        load_speaker_model("wavlm-ecapa", tmp_path / "wavlm_large_finetune.pth")
    ckpt = tmp_path / "wavlm_large_finetune.pth"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotAvailableError, match="--sim-code"):
        load_speaker_model("wavlm-ecapa", ckpt, code_dir=tmp_path)


def test_unknown_backend() -> None:
    with pytest.raises(EvalError, match="resemblyzer, speechbrain, wavlm-ecapa"):
        load_speaker_model("ivector")


# The structure of speechbrain/spkrec-ecapa-voxceleb's hyperparams.yaml (same keys, modules and
# `pretrained_path` indirection), with a small ECAPA so that random weights are written in seconds.
_ECAPA_YAML = """\
n_mels: 80
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 2
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 24
    out_neurons: !ref <out_n_neurons>
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def test_speechbrain_loads_a_released_layout_folder_offline(tmp_path, monkeypatch) -> None:
    # A folder laid out like the hub release, random weights: loading must read these files and never go
    # to the hub id written in `pretrained_path` (HF_HUB_OFFLINE makes any hub access fail).
    require("speechbrain", "pip install speechbrain==1.1.2 torchaudio==2.11.0")
    import torch
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS, get_default_hook

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPARKTTS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "spkrec-ecapa-voxceleb"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(_ECAPA_YAML, encoding="utf-8")
    torch.manual_seed(0)
    hp = load_hyperpyyaml(_ECAPA_YAML)
    hp["label_encoder"].update_from_iterable(["spk_a", "spk_b"])
    for name in ("embedding_model", "mean_var_norm_emb", "classifier"):
        get_default_hook(hp[name], DEFAULT_SAVE_HOOKS)(hp[name], folder / f"{name}.ckpt")
    hp["label_encoder"].save(folder / "label_encoder.txt")

    model = load_speaker_model("speechbrain", folder)
    emb = model.embed(ARCTIC)
    assert emb.shape == (24,) and np.all(np.isfinite(emb))
    # The saved random weights were loaded (not a fresh random init): same embedding as the saved module.
    expected = (
        hp["embedding_model"]
        .eval()(
            hp["mean_var_norm"](
                hp["compute_features"](torch.from_numpy(sf.read(ARCTIC, dtype="float32")[0])[None]),
                torch.ones(1),
            )
        )
        .reshape(-1)
    )
    assert np.allclose(emb, expected.detach().numpy(), atol=1e-4)


# Voices resemblyzer tells apart (en-us and en-gb+m3 score 0.84 to each other, as high as to themselves).
VOICES = ("en-us", "en-us+f3", "en-us+m7")


@requires_espeak
def test_prompt_identification_finds_each_clone_s_own_voice(tmp_path) -> None:
    """Outputs in a prompt's voice (other sentences) are nearest that prompt; one in the wrong voice is not."""
    import shutil as sh

    from sparktts.eval.lists import EvalItem
    from sparktts.eval.runner import SIM_MATRIX_FILE, run_eval
    from sparktts.eval.scoring import ScoringConfig
    from sparktts.eval.similarity import prompt_identification

    model = resemblyzer()
    prompts, outputs, wavs = {}, {}, tmp_path / "wavs"
    wavs.mkdir()
    for i, voice in enumerate(VOICES):
        for k in (1, 2):
            utt = f"u{i}{k}"
            prompts[utt] = espeak(SENTENCES[0], voice)
            outputs[utt] = espeak(SENTENCES[k + 2], voice)
    outputs["u02"] = espeak(SENTENCES[5], VOICES[1])  # claims voice 0's prompt, speaks in voice 1
    found = prompt_identification(outputs, prompts, model)
    assert found.matrix.shape == (6, 3)
    assert found.correct.to_dict() == {u: u != "u02" for u in prompts}
    assert found.accuracy == pytest.approx(5 / 6)

    # The runner's --identify: the same figure in the summary and the matrix beside it.
    for utt, path in outputs.items():
        sh.copy(path, wavs / f"{utt}.wav")
    items = [EvalItem(utt=u, text=SENTENCES[0], prompt_wav=p, lang="en") for u, p in prompts.items()]
    run = run_eval(items, tmp_path / "out", wav_dir=wavs, progress=False,
                   config=ScoringConfig(asr_backend=None, sim_backend="resemblyzer", identify=True))
    assert run.summary["identification"] == {"accuracy": round(5 / 6, 4), "n": 6, "prompts": 3}
    matrix = (tmp_path / "out" / SIM_MATRIX_FILE).read_text().splitlines()
    assert len(matrix) == 7 and matrix[0].startswith("utt,") and matrix[0].endswith("own_prompt,nearest")
