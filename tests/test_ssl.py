"""The real-checkpoint path: checkpoints saved with save_pretrained load through kdlib as a hub id would."""

import pytest
import torch

from kdlib.models import ssl

TINY = dict(
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)


def _save(tmp_path, model_type):
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

    classes = {
        "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
        "hubert": (HubertConfig, HubertModel),
        "wavlm": (WavLMConfig, WavLMModel),
    }
    config_cls, model_cls = classes[model_type]
    torch.manual_seed(0)
    model = model_cls(config_cls(**TINY)).eval()
    model.save_pretrained(tmp_path / model_type)
    return model, tmp_path / model_type


@pytest.mark.parametrize("model_type", ["wav2vec2", "hubert", "wavlm"])
def test_load_local_checkpoint_and_build_a_student(tmp_path, model_type):
    original, folder = _save(tmp_path, model_type)
    teacher = ssl.load_ssl(folder)
    assert type(teacher) is type(original) and not teacher.training
    wave = torch.randn(2, 16000)
    hidden = ssl.SSLEncoder(teacher)(wave)
    assert len(hidden) == 4 and all(h.shape == (2, 49, 32) for h in hidden)
    with torch.no_grad():
        assert torch.allclose(hidden[-1], original(wave).last_hidden_state, atol=1e-5)
    student = ssl.make_student(teacher, 1).eval()
    assert student.config.num_hidden_layers == 1
    s_hidden = ssl.SSLEncoder(student)(wave)
    assert len(s_hidden) == 2 and s_hidden[1].shape == (2, 49, 32)
    # the student's first layer is the teacher's: same weights, so the same input to it
    assert torch.allclose(
        student.encoder.layers[0].attention.q_proj.weight, teacher.encoder.layers[0].attention.q_proj.weight
    )
    assert torch.allclose(s_hidden[0], hidden[0], atol=1e-5)


def test_load_errors(tmp_path):
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        ssl.load_ssl(tmp_path / "file.bin")
    _, folder = _save(tmp_path, "hubert")
    with pytest.raises(ValueError, match="num_layers"):
        ssl.make_student(ssl.load_ssl(folder), 4)


def test_adapters_start_as_identity_and_switch_per_sample(tmp_path):
    _, folder = _save(tmp_path, "hubert")
    model = ssl.load_ssl(folder)
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        before = model(wave).last_hidden_state
    adapters = ssl.add_adapters(model, bottleneck=8)
    assert len(adapters) == 3
    with torch.no_grad():
        assert torch.allclose(model(wave).last_hidden_state, before, atol=1e-6)  # zero-initialised up-projection
        for a in adapters:
            torch.nn.init.normal_(a.up.weight)
        ssl.set_adapter_mask(adapters, torch.tensor([0.0, 1.0]))
        out = model(wave).last_hidden_state
    assert torch.allclose(out[0], before[0], atol=1e-6)  # adapters off for sample 0
    assert not torch.allclose(out[1], before[1], atol=1e-3)  # on for sample 1


def test_a_float16_checkpoint_loads_as_float32(tmp_path):
    """transformers keeps a checkpoint's stored dtype; kdlib casts to float32 so that float32 audio runs."""
    original, folder = _save(tmp_path, "hubert")
    original.half().save_pretrained(tmp_path / "fp16")
    teacher = ssl.load_ssl(tmp_path / "fp16")
    assert next(teacher.parameters()).dtype == torch.float32
    assert teacher(torch.randn(1, 16000)).last_hidden_state.dtype == torch.float32
    assert next(ssl.load_ssl(tmp_path / "fp16", dtype=torch.float16).parameters()).dtype == torch.float16


def test_paper_scale_architectures_have_the_published_sizes():
    """Parameter counts of OS-KDFT's published teachers and students, from their configurations (random
    weights): HuBERT Base 94.37 M and its 2-layer student 23.49 M (DistilHuBERT's size); the 4-layer
    student of wav2vec 2.0 XLSR-53 63.51 M."""
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(ssl.paper_scale_ssl("hubert-base-ls960")) == 94_371_712
    assert count(ssl.paper_scale_ssl("hubert-base-ls960", 2)) == 23_492_992
    assert count(ssl.paper_scale_ssl("wav2vec2-large-xlsr-53", 4)) == 63_514_240
    wav2vec2_base = ssl.paper_scale_ssl("wav2vec2-base")  # the multi-task paper's "96 M" teacher
    assert type(wav2vec2_base).__name__ == "Wav2Vec2Model" and count(wav2vec2_base) == 94_371_712
    with pytest.raises(KeyError, match="paper-scale"):
        ssl.paper_scale_ssl("wavlm-huge")


def test_ssl_front_end_gives_hidden_states_as_features(tmp_path):
    _, folder = _save(tmp_path, "wavlm")
    model = ssl.load_ssl(folder)
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        last = ssl.SSLFrontEnd(model)(wave)
        first = ssl.SSLFrontEnd(model, layer=1)(wave[0])
        hidden = model(wave, output_hidden_states=True).hidden_states
    assert last.shape == (2, 32, 49) and torch.allclose(last, hidden[-1].transpose(1, 2))
    assert first.shape == (1, 32, 49) and torch.allclose(first[0], hidden[1][0].T, atol=1e-5)
    with torch.no_grad():
        every = ssl.SSLFrontEnd(model, layer="all")(wave)
    assert every.shape == (2, len(hidden), 32, 49)
    assert all(torch.allclose(every[:, i], h.transpose(1, 2), atol=1e-5) for i, h in enumerate(hidden))
    with pytest.raises(ValueError, match="'all'"):
        ssl.SSLFrontEnd(model, layer="every")
