import numpy as np
import pytest
import soundfile as sf

from kdlib.data import audio


def _write(path, x, sr=16000):
    sf.write(str(path), x, sr, subtype="FLOAT" if path.suffix == ".wav" else "PCM_16")
    return path


def test_reads_mono_16k(tmp_path):
    x = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 0.5
    y = audio.read_audio(_write(tmp_path / "a.wav", x))
    assert y.dtype == np.float32 and y.shape == (16000,)
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_other_rate_is_resampled_with_a_warning_naming_the_rate(tmp_path):
    path = _write(tmp_path / "a8k.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 8000)
    with pytest.warns(UserWarning, match="8000 Hz resampled to 16000 Hz"):
        y = audio.read_audio(path)
    assert y.shape == (16000,)


def test_other_rate_can_be_rejected(tmp_path):
    path = _write(tmp_path / "a44.wav", np.zeros(44100, np.float32) + 0.1, 44100)
    with pytest.raises(ValueError, match=r"a44.wav: sample rate is 44100 Hz; expected 16000 Hz"):
        audio.read_audio(path, on_rate_mismatch="error")


def test_multichannel_is_downmixed_or_rejected(tmp_path):
    stereo = np.stack([np.full(16000, 0.2), np.full(16000, 0.4)], axis=1).astype(np.float32)
    path = _write(tmp_path / "stereo.wav", stereo)
    with pytest.warns(UserWarning, match="2 channels downmixed"):
        y = audio.read_audio(path)
    np.testing.assert_allclose(y, 0.3, atol=1e-6)
    with pytest.raises(ValueError, match="stereo.wav: has 2 channels"):
        audio.read_audio(path, on_multichannel="error")


@pytest.mark.parametrize(
    "name,x,message",
    [
        ("empty.wav", np.zeros(0, np.float32), "empty"),
        ("short.wav", np.zeros(100, np.float32), "too short"),
        ("nan.wav", np.r_[np.zeros(4000), np.nan, np.zeros(4000)].astype(np.float32), "NaN"),
    ],
)
def test_bad_audio_raises_value_error_naming_the_file(tmp_path, name, x, message):
    path = _write(tmp_path / name, x)
    with pytest.raises(ValueError, match=f"{name}.*{message}"):
        audio.read_audio(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        audio.read_audio(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="junk.wav: not a readable audio file"):
        audio.read_audio(tmp_path / "junk.wav")


def test_crops():
    x = np.arange(10, dtype=np.float32)
    assert audio.crop(x, 4).tolist() == [3, 4, 5, 6]  # centred without a generator
    short = audio.crop(x[:3], 7)
    assert short.tolist() == [0, 1, 2, 0, 1, 2, 0]  # wrap-padded
    a = audio.crop(x, 4, np.random.default_rng(1))
    b = audio.crop(x, 4, np.random.default_rng(1))
    assert a.tolist() == b.tolist() and len(a) == 4
    segments = audio.fixed_crops(x, 4, 3)
    assert segments[:, 0].tolist() == [0, 3, 6]


def test_write_audio_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="unsupported suffix"):
        audio.write_audio(tmp_path / "a.mp3", np.zeros(100))


def test_distorted_crops_repeat_bit_for_bit_and_keep_the_undrawn_crops_clean():
    import torch

    from kdlib.data.augment import distort_crops

    waves = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 4000)).astype(np.float32) * 0.1)
    a, b = distort_crops(waves, p=0.5, seed=3), distort_crops(waves, p=0.5, seed=3)
    assert torch.equal(a, b) and a.shape == waves.shape and a.dtype == waves.dtype
    changed = [not torch.equal(x, y) for x, y in zip(a, waves)]
    assert 0 < sum(changed) < 6  # some distorted, some kept clean
    assert torch.equal(distort_crops(waves, p=0.0), waves)
    assert all(not torch.equal(x, y) for x, y in zip(distort_crops(waves, p=1.0), waves))
    with pytest.raises(ValueError, match="probability"):
        distort_crops(waves, p=1.5)


def test_a_telephone_channel_keeps_length_and_removes_everything_above_4_khz():
    from kdlib.data.augment import telephone

    t = np.arange(32_000) / 16_000
    x = (0.3 * np.sin(2 * np.pi * 200 * t) + 0.1 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    for p_codec in (0.0, 1.0):  # 8 kHz sampling alone, and with the GSM 6.10 codec
        y = telephone(x, np.random.default_rng(0), p_codec=p_codec)
        spectrum, freqs = np.abs(np.fft.rfft(y)), np.fft.rfftfreq(len(y), 1 / 16_000)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert spectrum[freqs > 4_500].max() < 1e-3 * spectrum.max()  # the 6 kHz tone is gone
        assert abs(freqs[np.argmax(spectrum)] - 200) < 1  # the 200 Hz tone is kept
        assert np.corrcoef(x, y)[0, 1] > 0.9  # 0.949 when only the 6 kHz tone's tenth of the power is lost
    coded, plain = (telephone(x, np.random.default_rng(0), p_codec=p) for p in (1.0, 0.0))
    assert not np.allclose(coded, plain, atol=1e-3)  # the codec leaves its own error
