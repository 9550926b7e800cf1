"""Festival's real-speaker voices (kdlib.data.corpus.festival), driven here through a stand-in synthesizer: the
script Festival is given, the clips read back, resampled and session-augmented, and the errors."""

import re
import stat
import sys

import numpy as np
import pytest

from experiments.real_voice_transfer import LabelledWaves
from kdlib.data.corpus import festival

FAKE = """#!{python}
import re, sys
import numpy as np
import soundfile as sf
script = open(sys.argv[-1]).read()
if {fail}:
    sys.exit("cannot open voice")
pattern = r"Duration_Stretch ([0-9.]+)\\).*?\\(Utterance Text \\"[^\\"]*\\"\\)\\) \\"([^\\"]+)\\""
for stretch, path in re.findall(pattern, script):
    t = np.arange(int(22050 * float(stretch))) / 22050
    sf.write(path, 0.3 * np.sin(2 * np.pi * 150 * t), 22050)
"""


def _tree(tmp_path, fail=False):
    tree = tmp_path / "tree"
    binary = tree / "usr" / "bin" / "festival"
    binary.parent.mkdir(parents=True)
    binary.write_text(FAKE.format(python=sys.executable, fail=fail))
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return tree


def test_each_voice_reads_its_sentences_at_random_rates(tmp_path, monkeypatch):
    tree = _tree(tmp_path)
    monkeypatch.setattr(festival, "unpack", lambda: tree)
    monkeypatch.setattr(festival, "root", lambda: tmp_path)
    waves, names = festival.synthesize(per_voice=3, seed=0, voices=("kal_diphone", "lp_diphone"))
    assert names == ["kal_diphone"] * 3 + ["lp_diphone"] * 3
    lengths = [len(w) for w in waves]
    assert all(0.85 * 16_000 <= n <= 1.2 * 16_000 for n in lengths) and len(set(lengths)) > 1  # resampled to 16 kHz
    assert all(w.dtype == np.float32 and 0.09 < np.abs(w).max() < 0.91 for w in waves)  # a session's peak level
    script = (tmp_path / "clips" / "kal_diphone.scm").read_text()
    assert script.startswith("(voice_kal_diphone)") and len(re.findall(r"utt\.synth", script)) == 3
    again, _ = festival.synthesize(per_voice=3, seed=0, voices=("kal_diphone", "lp_diphone"))
    assert all(np.array_equal(a, b) for a, b in zip(waves, again))  # seeded


def test_warps_make_pseudo_speakers_with_scaled_pitch_and_duration(tmp_path, monkeypatch):
    """A warp α plays a clip α times faster: the stand-in's 150 Hz tone comes out at 150·α Hz, 1/α as long."""
    tree = _tree(tmp_path)
    monkeypatch.setattr(festival, "unpack", lambda: tree)
    monkeypatch.setattr(festival, "root", lambda: tmp_path)
    plain, _ = festival.synthesize(per_voice=6, seed=1, voices=("kal_diphone",))
    waves, names = festival.synthesize(per_voice=6, seed=1, voices=("kal_diphone",), warps=(0.84, 1.19))
    alphas = [float(name.split("*")[1]) for name in names]
    assert {name.split("*")[0] for name in names} == {"kal_diphone"} and set(alphas) == {0.84, 1.19}
    for wave, alpha in zip(waves, alphas):
        spectrum = np.abs(np.fft.rfft(wave))
        peak_hz = np.argmax(spectrum) * 16_000 / len(wave)
        assert abs(peak_hz - 150 * alpha) < 3, (alpha, peak_hz)
    stretches = [len(w) for w in plain]  # same seed, so the same stretches were drawn first
    ratios = [len(w) * alpha / n for w, alpha, n in zip(waves, alphas, stretches)]
    assert np.allclose(ratios, 1.0, atol=0.01)


def test_a_voice_that_fails_is_named(tmp_path, monkeypatch):
    tree = _tree(tmp_path, fail=True)
    monkeypatch.setattr(festival, "unpack", lambda: tree)
    monkeypatch.setattr(festival, "root", lambda: tmp_path)
    with pytest.raises(RuntimeError, match="Festival voice kal_diphone failed \\(2 clips missing\\)"):
        festival.synthesize(per_voice=2, voices=("kal_diphone",))


def test_labelled_waves_crop_and_check_their_labels():
    waves = [np.ones(8_000, np.float32), np.arange(40_000, dtype=np.float32)]
    data = LabelledWaves(waves, [3, 5], seconds=1.0)
    x, y = data[0]
    assert x.shape == (16_000,) and y == 3  # a short clip is wrap-padded
    assert data[1][0].shape == (16_000,) and data[1][1] == 5
    with pytest.raises(ValueError, match="2 waveforms but 1 labels"):
        LabelledWaves(waves, [1])
