import numpy as np
import pytest
import soundfile as sf

from kdlib import datasets, sources


def _wav(path, seconds=1.0, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.random.default_rng(len(str(path))).normal(0, 0.1, int(seconds * sr)), sr)


def test_voxceleb1_reader_on_a_fake_tree(tmp_path):
    for spk in ("id10001", "id10002", "id10270", "id10271"):
        for video in ("vidA", "vidB"):
            for n in (1, 2):
                _wav(tmp_path / "wav" / spk / video / f"{n:05d}.wav", 1.5)
    (tmp_path / "veri_test2.txt").write_text(
        "1 id10270/vidA/00001.wav id10270/vidB/00002.wav\n0 id10270/vidA/00001.wav id10271/vidA/00001.wav\n")
    src = sources.voxceleb1(tmp_path)
    assert len(src.manifest) == 16
    assert {r["speaker"] for r in src.select("test")} == {"id10270", "id10271"}
    assert {r["speaker"] for r in src.select("train")} == {"id10001", "id10002"}
    assert src.trials() == [(1, "id10270/vidA/00001.wav", "id10270/vidB/00002.wav"),
                            (0, "id10270/vidA/00001.wav", "id10271/vidA/00001.wav")]
    crops = datasets.SVTrainCrops(src, seconds=1.0)
    wave, label = crops[0]
    assert wave.shape == (16000,) and crops.n_speakers == 2 and label == 0


def test_voxceleb1_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="wav/idXXXXX"):
        sources.voxceleb1(tmp_path)
    (tmp_path / "wav").mkdir()
    with pytest.raises(FileNotFoundError, match="no idXXXXX"):
        sources.voxceleb1(tmp_path)


def test_speech_commands_reader_on_a_fake_tree(tmp_path):
    layout = {"yes": ["aa11_nohash_0", "bb22_nohash_0", "cc33_nohash_0"], "stop": ["aa11_nohash_1"],
              "marvin": ["dd44_nohash_0", "ee55_nohash_0"]}
    for word, names in layout.items():
        for name in names:
            _wav(tmp_path / word / f"{name}.wav", 0.8)
    _wav(tmp_path / "_background_noise_" / "white_noise.wav", 5.0)
    (tmp_path / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nmarvin/ee55_nohash_0.wav\n")
    src = sources.speech_commands(tmp_path)
    by_path = {r["path"]: r for r in src.manifest}
    assert by_path["yes/bb22_nohash_0.wav"]["split"] == "validation"
    assert by_path["marvin/ee55_nohash_0.wav"]["label"] == "_unknown_"
    assert by_path["marvin/ee55_nohash_0.wav"]["split"] == "test"
    assert by_path["stop/aa11_nohash_1.wav"]["speaker"] == "aa11"
    assert by_path["_background_noise_/white_noise.wav"]["label"] == "_silence_"
    train = datasets.KWSItems(src, "train")
    labels = sorted(sources.KWS_LABELS[train[i][1]] for i in range(len(train)))
    assert labels == ["_silence_", "_unknown_", "stop", "yes"]
    assert all(train[i][0].shape == (16000,) for i in range(len(train)))  # padded / cropped to 1 s


def test_speech_commands_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="validation_list.txt"):
        sources.speech_commands(tmp_path)
    _wav(tmp_path / "yes" / "aa11_nohash_0.wav", 0.5)
    (tmp_path / "validation_list.txt").write_text("yes/aa11_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("\nyes/aa11_nohash_0.wav\nyes/zz99_nohash_0.wav\n")
    with pytest.raises(FileNotFoundError, match=r"testing_list.txt, line 3: yes/zz99_nohash_0.wav is listed"):
        sources.speech_commands(tmp_path)
    (tmp_path / "testing_list.txt").write_text("yes aa11_nohash_0.wav\n")
    with pytest.raises(ValueError, match=r"testing_list.txt, line 1: expected '<word>/<speaker>_nohash_<n>.wav'"):
        sources.speech_commands(tmp_path)


def test_voxceleb1_offers_the_official_lists_and_streams_them_without_scanning_the_audio(tmp_path):
    (tmp_path / "wav" / "id10270").mkdir(parents=True)  # a speaker folder, no audio yet
    pair = "id10270/v/00001.wav id10271/v/00001.wav"
    (tmp_path / "veri_test.txt").write_text(f"1 {pair}\n0 {pair}\n")
    (tmp_path / "veri_test2.txt").write_text(f"1 {pair}\n")
    (tmp_path / "list_test_hard2.txt").write_text(f"0 {pair}\n1 {pair}\nnot a trial\n")
    src = sources.voxceleb1(tmp_path)  # opens: reads no audio, walks no folders
    assert set(src.trial_files) == {"trials", "O", "O-cleaned", "H-cleaned"}
    assert src.trial_files["trials"] == src.trial_files["O-cleaned"]
    assert len(src.trials("O")) == 2 and src.trials() == [(1, "id10270/v/00001.wav", "id10271/v/00001.wav")]
    stream = src.iter_trials("H-cleaned")
    assert next(stream)[0] == 0 and next(stream)[0] == 1  # read as it goes; the bad line is reached only now
    with pytest.raises(ValueError, match=r"list_test_hard2.txt, line 3"):
        next(stream)
    with pytest.raises(FileNotFoundError, match="no idXXXXX/<video>/<n>.wav files"):
        src.manifest  # the scan, on first use
    _wav(tmp_path / "wav" / "id10270" / "v" / "00001.wav")
    _wav(tmp_path / "wav" / "id10001" / "v" / "00001.wav")
    assert {(r["speaker"], r["split"]) for r in src.manifest} == {("id10270", "test"), ("id10001", "train")}
    hard = sources.voxceleb1(tmp_path, trial_list="veri_test.txt")
    assert len(hard.trials()) == 2
    with pytest.raises(FileNotFoundError, match="list_test_all2.txt: trial list not found"):
        sources.voxceleb1(tmp_path, trial_list="list_test_all2.txt")


def test_trial_list_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "trials.txt"
    bad.write_text("1 a.wav b.wav\n2 a.wav c.wav\n")
    with pytest.raises(ValueError, match=r"trials.txt, line 2"):
        sources.read_trials(bad)
    bad.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        sources.read_trials(bad)
    with pytest.raises(FileNotFoundError):
        sources.read_trials(tmp_path / "none.txt")


def test_by_speaker_groups_selected_rows_in_manifest_order(smoke_corpus):
    rows = smoke_corpus.select("test", "sentence")
    groups = smoke_corpus.by_speaker("test", "sentence")
    assert list(groups) == list(dict.fromkeys(r["speaker"] for r in rows))
    assert [r for g in groups.values() for r in g] == sorted(rows, key=lambda r: list(groups).index(r["speaker"]))
    assert all(r["speaker"] == s and r["kind"] == "sentence" for s, g in groups.items() for r in g)


def test_a_dataset_folder_opens_by_its_layout_where_a_corpus_name_is_expected(tmp_path):
    from kdlib import corpus

    _wav(tmp_path / "vox" / "wav" / "id10270" / "v" / "00001.wav")
    (tmp_path / "vox" / "veri_test2.txt").write_text("1 id10270/v/00001.wav id10270/v/00001.wav\n")
    _wav(tmp_path / "sc" / "yes" / "aa11_nohash_0.wav")
    (tmp_path / "sc" / "validation_list.txt").write_text("")
    (tmp_path / "sc" / "testing_list.txt").write_text("yes/aa11_nohash_0.wav\n")
    assert corpus.load(str(tmp_path / "vox")).name.startswith("VoxCeleb1 at")
    assert corpus.load(str(tmp_path / "sc")).select("test")[0]["label"] == "yes"
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a dataset layout kdlib reads"):
        corpus.load(str(tmp_path / "other"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        corpus.load(str(tmp_path / "missing"))
