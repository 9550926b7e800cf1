import numpy as np
import pytest
import soundfile as sf

from kdlib.data import datasets, sources


def _wav(path, seconds=1.0, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.random.default_rng(len(str(path))).normal(0, 0.1, int(seconds * sr)), sr)


def test_voxceleb1_reader_on_a_fake_tree(tmp_path):
    for spk in ("id10001", "id10002", "id10270", "id10271"):
        for video in ("vidA", "vidB"):
            for n in (1, 2):
                _wav(tmp_path / "wav" / spk / video / f"{n:05d}.wav", 1.5)
    (tmp_path / "veri_test2.txt").write_text(
        "1 id10270/vidA/00001.wav id10270/vidB/00002.wav\n0 id10270/vidA/00001.wav id10271/vidA/00001.wav\n"
    )
    src = sources.voxceleb1(tmp_path)
    assert len(src.manifest) == 16
    assert {r["speaker"] for r in src.select("test")} == {"id10270", "id10271"}
    assert {r["speaker"] for r in src.select("train")} == {"id10001", "id10002"}
    assert src.trials() == [
        (1, "id10270/vidA/00001.wav", "id10270/vidB/00002.wav"),
        (0, "id10270/vidA/00001.wav", "id10271/vidA/00001.wav"),
    ]
    crops = datasets.SVTrainCrops(src, seconds=1.0)
    wave, label = crops[0]
    assert wave.shape == (16000,) and crops.n_speakers == 2 and label == 0


def test_voxceleb1_rows_name_gender_and_nationality_from_its_metadata(tmp_path):
    for spk in ("id10001", "id10270", "id10271"):
        _wav(tmp_path / "wav" / spk / "vidA" / "00001.wav")
    (tmp_path / "veri_test2.txt").write_text("0 id10270/vidA/00001.wav id10271/vidA/00001.wav\n")
    (tmp_path / "vox1_meta.csv").write_text(
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        "id10001\tA.J._Buckley\tm\tIreland\tdev\nid10270\tEric_McCormack\tm\tCanada\ttest\n"
        "id10271\tEthel_Merman\tf\tUSA\ttest\n"
    )
    rows = {r["speaker"]: r for r in sources.voxceleb1(tmp_path).manifest}
    assert (rows["id10001"]["gender"], rows["id10001"]["nationality"]) == ("male", "Ireland")
    assert (rows["id10271"]["gender"], rows["id10271"]["nationality"]) == ("female", "USA")
    assert rows["id10270"]["split"] == "test" and rows["id10001"]["split"] == "train"

    (tmp_path / "vox1_meta.csv").write_text(
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\nid10001\tA.J._Buckley\tmale?\tIreland\tdev\n"
    )
    with pytest.raises(ValueError, match=r"vox1_meta.csv, line 2: expected .*<m or f>"):
        sources.voxceleb1(tmp_path).manifest
    (tmp_path / "vox1_meta.csv").unlink()  # without metadata the rows simply name neither
    assert all("gender" not in r for r in sources.voxceleb1(tmp_path).manifest)


def test_voxceleb1_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="wav/idXXXXX"):
        sources.voxceleb1(tmp_path)
    (tmp_path / "wav").mkdir()
    with pytest.raises(FileNotFoundError, match="no idXXXXX"):
        sources.voxceleb1(tmp_path)


def test_speech_commands_reader_on_a_fake_tree(tmp_path):
    layout = {
        "yes": ["aa11_nohash_0", "bb22_nohash_0", "cc33_nohash_0"],
        "stop": ["aa11_nohash_1"],
        "marvin": ["dd44_nohash_0", "ee55_nohash_0"],
    }
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
    assert by_path["_background_noise_/white_noise.wav"]["text"] == ""  # no words, as in the embedded corpus
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
    from kdlib.data import corpus

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


def _speech_commands_tree(root, test_speakers=("cc33", "ff66")):
    layout = {
        "yes": ["aa11_nohash_0", "cc33_nohash_0", "cc33_nohash_1", "ff66_nohash_0", "ff66_nohash_1"],
        "no": ["aa11_nohash_0", "cc33_nohash_0", "ff66_nohash_0"],
        "marvin": ["dd44_nohash_0"],
    }
    for word, names in layout.items():
        for name in names:
            _wav(root / word / f"{name}.wav", 0.8)
    (root / "validation_list.txt").write_text("")
    (root / "testing_list.txt").write_text(
        "".join(f"{w}/{n}.wav\n" for w, names in layout.items() for n in names if n.split("_")[0] in test_speakers)
    )


def _voxceleb1_tree(root):
    for spk in ("id10001", "id10270", "id10271"):
        _wav(root / "wav" / spk / "vid" / "00001.wav", 1.2)
    (root / "veri_test2.txt").write_text("0 id10270/vid/00001.wav id10271/vid/00001.wav\n")


def test_a_joined_source_reads_speakers_from_voxceleb_and_keywords_from_speech_commands(tmp_path):
    _voxceleb1_tree(tmp_path / "vox")
    _speech_commands_tree(tmp_path / "sc")
    src = sources.joined(
        sources.voxceleb1(tmp_path / "vox"), sources.speech_commands(tmp_path / "sc"), keyword_trials=6, seed=3
    )
    assert {r["path"] for r in src.select("train", "sentence")} == {"sv/id10001/vid/00001.wav"}
    assert src.path("sv/id10270/vid/00001.wav") == tmp_path / "vox" / "wav" / "id10270" / "vid" / "00001.wav"
    assert src.path("kws/yes/aa11_nohash_0.wav") == tmp_path / "sc" / "yes" / "aa11_nohash_0.wav"
    assert src.trials() == [(0, "sv/id10270/vid/00001.wav", "sv/id10271/vid/00001.wav")]
    assert src.trials("O-cleaned") == src.trials()
    keyword_trials = src.trials("trials_keywords")
    test_keywords = {r["path"] for r in src.select("test", "keyword")}
    assert len(test_keywords) == 6 and all(p.startswith("kws/") for p in test_keywords)
    assert sorted(t[0] for t in keyword_trials) == [0, 0, 0, 1, 1, 1]
    assert all(
        {a, b} <= test_keywords and (a.split("/")[2][:4] == b.split("/")[2][:4]) == bool(label)
        for label, a, b in keyword_trials
    )
    again = sources.joined(
        sources.voxceleb1(tmp_path / "vox"), sources.speech_commands(tmp_path / "sc"), keyword_trials=6, seed=3
    )
    assert again.trials("trials_keywords") == keyword_trials  # deterministic in the seed
    crops = datasets.KWSItems(src, "test")
    assert len(crops) == 6 and crops[0][0].shape == (16000,)  # audio resolved through the prefix
    assert src.info["parts"]["sv"]["name"].startswith("VoxCeleb1 at")


def test_a_joined_source_opens_from_two_folders_and_names_what_is_wrong(tmp_path):
    from kdlib.data import corpus

    _voxceleb1_tree(tmp_path / "vox")
    _speech_commands_tree(tmp_path / "sc")
    for spec in (f"{tmp_path / 'vox'}+{tmp_path / 'sc'}", f"{tmp_path / 'sc'}+{tmp_path / 'vox'}"):
        src = corpus.load(spec)  # what -p CORPUS /data/voxceleb1+/data/speech_commands does, in either order
        assert isinstance(src, sources.JoinedSource) and list(src.parts) == ["sv", "kws"]
    with pytest.raises(KeyError, match="starts with none of"):
        src.path("other/x.wav")
    with pytest.raises(KeyError, match="no trial list 'E'"):
        src.trials("E")
    with pytest.raises(ValueError, match="two 'kws' folders"):
        corpus.load(f"{tmp_path / 'vox'}+{tmp_path / 'sc'}+{tmp_path / 'sc'}")
    _cnceleb_tree(tmp_path / "cnc")
    with pytest.raises(ValueError, match="joins a folder with speakers and a trial list"):
        corpus.load(f"{tmp_path / 'sc'}+{tmp_path / 'cnc'}")
    with pytest.raises(FileNotFoundError, match="missing: no such folder"):
        corpus.load(f"{tmp_path / 'vox'}+{tmp_path / 'missing'}")
    _speech_commands_tree(tmp_path / "sc1", test_speakers=("cc33",))
    one_speaker = corpus.load(f"{tmp_path / 'vox'}+{tmp_path / 'sc1'}")
    with pytest.raises(ValueError, match="two or more speakers; found 3 clips"):
        one_speaker.trials("trials_keywords")


def _cnceleb_tree(root, suffix=".flac"):
    """CN-Celeb1's evaluation part: enrolment and test clips, its lists naming .wav as the FLAC release does."""
    for name in ("id00800-enroll", "id00801-enroll"):
        _wav((root / "eval" / "enroll" / name).with_suffix(suffix), 1.5)
    tests = ("id00800-singing-01-001", "id00800-speech-02-003", "id00801-vlog-01-002")
    for name in tests:
        _wav((root / "eval" / "test" / name).with_suffix(suffix), 1.0)
    lists = root / "eval" / "lists"
    lists.mkdir(parents=True)
    (lists / "enroll.lst").write_text(
        "id00800-enroll enroll/id00800-enroll.wav\nid00801-enroll enroll/id00801-enroll.wav\n"
    )
    (lists / "trials.lst").write_text(
        "".join(f"{e}-enroll test/{t}.wav {int(t[:7] == e)}\n" for e in ("id00800", "id00801") for t in tests)
    )


def test_cnceleb_reader_maps_enrolment_ids_and_listed_paths_to_the_audio(tmp_path):
    _cnceleb_tree(tmp_path)
    src = sources.open_folder(tmp_path)
    assert isinstance(src, sources.CNCelebSource) and src.name.startswith("CN-Celeb at")
    trials = src.trials()
    assert len(trials) == 6 and sum(t[0] for t in trials) == 3
    assert trials[0] == (1, "eval/enroll/id00800-enroll.flac", "eval/test/id00800-singing-01-001.flac")
    assert all(src.path(p).is_file() for _, a, b in trials for p in (a, b))
    assert {r["speaker"] for r in src.select("test", "sentence")} == {"id00800", "id00801"}
    assert len(src.manifest) == 5 and {r["language"] for r in src.manifest} == {"zh"}
    (tmp_path / "eval" / "lists" / "test.lst").write_text(  # with test.lst, the rows come from the two lists
        "test/id00800-singing-01-001.wav\ntest/id00800-speech-02-003.wav\ntest/id00801-vlog-01-002.wav\n"
    )
    listed = sources.cnceleb(tmp_path)
    listed.iter_trials = None  # the rows must not need the trial list
    assert listed.manifest == src.manifest
    (tmp_path / "eval" / "lists" / "test.lst").write_text("test/id00800-singing-01-001.wav 1\n")
    with pytest.raises(ValueError, match=r"test.lst, line 1: expected 'test/<clip>'"):
        sources.cnceleb(tmp_path).manifest
    (tmp_path / "eval" / "lists" / "test.lst").write_text("test/id00802-drama-01-001.wav\n")
    with pytest.raises(FileNotFoundError, match=r"test.lst names 1 clips .*id00802-drama-01-001.flac"):
        sources.cnceleb(tmp_path).manifest
    wav = tmp_path / "wav-release"
    _cnceleb_tree(wav, suffix=".wav")
    (wav / "eval" / "lists" / "enroll.lst").unlink()  # without enroll.lst: enroll/<id>
    assert sources.cnceleb(wav).trials()[0] == (
        1,
        "eval/enroll/id00800-enroll.wav",
        "eval/test/id00800-singing-01-001.wav",
    )


def test_cnceleb_joined_with_voxceleb_is_the_other_language_and_errors_name_the_file(tmp_path):
    from kdlib.data import corpus

    _voxceleb1_tree(tmp_path / "vox")
    _cnceleb_tree(tmp_path / "cnc")
    src = corpus.load(f"{tmp_path / 'cnc'}+{tmp_path / 'vox'}")
    assert list(src.parts) == ["sv", "other"]
    assert {r["speaker"] for r in src.select("other", "sentence")} == {"id00800", "id00801"}
    assert src.trials("trials_other")[0] == (
        1,
        "other/eval/enroll/id00800-enroll.flac",
        "other/eval/test/id00800-singing-01-001.flac",
    )
    assert src.trials()[0][1] == "sv/id10270/vid/00001.wav"
    with pytest.raises(FileNotFoundError, match="eval/lists/trials.lst: not found"):
        sources.cnceleb(tmp_path / "vox")
    lists = tmp_path / "cnc" / "eval" / "lists"
    (lists / "trials.lst").write_text(
        "id00800-enroll test/id00800-singing-01-001.wav 1\nid00800-enroll test/id00801-vlog-01-002.wav\n"
    )
    with pytest.raises(ValueError, match=r"trials.lst, line 2: expected '<enroll id> <test path> <0 or 1>'"):
        sources.cnceleb(tmp_path / "cnc").trials()
    (lists / "trials.lst").write_text("id00800-enroll test/id00899-singing-01-001.wav 0\n")
    with pytest.raises(FileNotFoundError, match="names 1 clips that are not under.*id00899"):
        sources.cnceleb(tmp_path / "cnc").manifest
