"""The headless runner: a failure names the notebook, the cell and what to do; no cell time limit by default."""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

from kdlib.course import runner


def _notebook(tmp_path, *sources, name="99_t"):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# t")] + [nbformat.v4.new_code_cell(s) for s in sources]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failure_names_the_notebook_and_the_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    path = _notebook(tmp_path, "x = 1", "1 / 0\nprint('never')")
    [(name, _, status)] = runner.run([path])
    assert name == "99_t.ipynb"
    assert "FAILED" in status and "cell 2 (code cell 2: '1 / 0')" in status and "ZeroDivisionError" in status
    assert f"python -m kdlib.course.runner run --notebooks {path}" in status
    assert list((tmp_path / "results").rglob("99_t.ipynb"))  # the executed copy up to the failure is kept


def test_cell_timeout_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    path = _notebook(tmp_path, "import time\ntime.sleep(3)")
    assert runner.run([path])[0][2] == "ok"
    status = runner.run([path], cell_timeout=1)[0][2]
    assert "CellTimeoutError" in status and "--cell-timeout" in status


def test_the_run_times_record_each_notebooks_seconds_per_section(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    path = _notebook(tmp_path, "import time\ntime.sleep(1.5)", "x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("Some text\n## 2. Quick part"))
    nb.cells.insert(4, nbformat.v4.new_markdown_cell("### a subsection: counts to its section"))
    nb.cells.append(nbformat.v4.new_code_cell("y = 2"))
    nbformat.write(nb, path)
    runner.run([path])
    other = path.with_name("98_u.ipynb")
    other.write_text(path.read_text())
    runner.run([other])
    record = json.loads((runner.results_dir() / runner.TIMES_FILE).read_text())
    assert list(record["notebooks"]) == ["98_u", "99_t"]  # a later run merges in, in course order
    entry = record["notebooks"]["99_t"]
    assert entry["status"] == "ok" and entry["mode"] == ("smoke" if runner.SMOKE else "full")
    (first, slow), (second, quick) = [(s["section"], s["seconds"]) for s in entry["sections"]]
    assert (first, second) == ("t", "2. Quick part")
    assert 1.5 <= slow < entry["seconds"] and quick < 1.0
    assert entry["precision"] == (os.environ.get("KDLIB_PRECISION") or "fp32")


def test_the_run_times_record_the_kernels_peak_memory(tmp_path, monkeypatch):
    """A kernel that held 400 MB at one point (freed at once) records at least that as its peak."""
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    small = _notebook(tmp_path, "x = 1")
    big = _notebook(tmp_path, "import numpy as np\nnp.ones(50_000_000).sum()", name="98_big")
    runner.run([small, big])
    record = json.loads((runner.results_dir() / runner.TIMES_FILE).read_text())["notebooks"]
    assert 20 < record["99_t"]["peak_memory_mb"] < record["98_big"]["peak_memory_mb"] - 350


def test_reference_numerics_do_not_override_the_user(monkeypatch, unset):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    unset(
        "ONEDNN_MAX_CPU_ISA",
        "OMP_NUM_THREADS",
        "ATEN_CPU_CAPABILITY",
        "NPY_DISABLE_CPU_FEATURES",
        "OPENBLAS_CORETYPE",
        "KDLIB_PRECISION",
    )
    in_force = runner.set_numerics("reference")
    assert in_force == {
        "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "OPENBLAS_CORETYPE": "Haswell",
        "OMP_NUM_THREADS": "2",
        "KDLIB_PRECISION": None,
    }
    with pytest.raises(ValueError, match="numerics"):
        runner.set_numerics("fastest")


def test_fast_numerics_train_in_bfloat16_on_the_native_kernels(unset):
    unset(*runner.REFERENCE_NUMERICS, "OMP_NUM_THREADS", "KDLIB_PRECISION")
    in_force = runner.set_numerics("fast")
    assert in_force["KDLIB_PRECISION"] == "bf16"
    assert all(in_force[key] is None for key in runner.REFERENCE_NUMERICS)  # no cap: the processor's own kernels


EXP_BITS, MATMUL_BITS = "af895c6a34af10a4", "7857c6704d977c59"  # AVX2 paths, 2 threads (OpenBLAS splits by thread)


def test_reference_numerics_give_numpy_and_openblas_the_avx2_results_on_any_x86_machine():
    """Golden bits of NumPy's float64 exp and an OpenBLAS matrix product in a process started with the reference
    environment, computed on an AVX-512 machine (Zen 4) through the capped AVX2 code paths (OpenBLAS's Haswell and
    Zen kernels give the same bits). Without the caps that machine gives other last bits for both (NumPy's AVX-512
    exp, OpenBLAS's SkylakeX kernels)."""
    import platform
    import subprocess

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the reference numerics are defined for x86 processors with AVX2")
    code = (
        "import hashlib, numpy as np\n"
        "x = np.random.default_rng(0).standard_normal((300, 257))\n"
        "t = np.arange(8000) / 16000\n"
        "print(hashlib.sha256(np.exp(-6.9078 * t / 0.3).tobytes()).hexdigest()[:16])\n"
        "print(hashlib.sha256((x @ x[:190].T).tobytes()).hexdigest()[:16])\n"
    )
    env = {**os.environ, **runner.reference_environment()}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [EXP_BITS, MATMUL_BITS], out.stderr


def test_parameters_are_injected_after_the_knobs_cell_and_recorded(tmp_path, unset):
    from kdlib.runtime import REFERENCE_NUMERICS

    unset("KDLIB_PARAMETERS", "KDLIB_HEADLESS", "KDLIB_RESULTS", "OMP_NUM_THREADS", *REFERENCE_NUMERICS)
    path = _notebook(
        tmp_path,
        "import kdlib\nSMOKE = kdlib.runtime.SMOKE\nSTEPS, LR = 3, 0.1\nNAME = 'a'",
        "from kdlib.course import results\n"
        "assert (STEPS, LR, NAME) == (7, 0.1, 'b-c'), (STEPS, LR, NAME)\n"
        "results.save('99_t', seed=0, wall_time_s=0.0, models={})",
    )
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    out = tmp_path / "elsewhere"
    code = runner.main(
        ["run", "--notebooks", str(path), "-p", "STEPS", "7", "-p", "NAME", "b-c", "--results", str(out)]
    )
    assert code == 0
    smoke = "smoke/" if runner.SMOKE else ""
    record = json.loads((out / f"{smoke}99_t.json").read_text())
    assert record["parameters"] == {"STEPS": 7, "NAME": "b-c"}
    executed = nbformat.read(out / f"{smoke}executed" / "99_t.ipynb", as_version=4)
    assert executed.cells[2].metadata["tags"] == ["injected-parameters"]
    assert nbformat.read(path, as_version=4).cells[2].source.startswith("from kdlib")  # the original untouched
    assert not (tmp_path / "results").exists()
    assert "KDLIB_PARAMETERS" not in os.environ  # the kernel got the knobs; this process keeps none


def test_an_unknown_knob_or_a_missing_knobs_cell_is_refused_by_name(tmp_path, unset):
    unset("KDLIB_HEADLESS", "OMP_NUM_THREADS", *runner.REFERENCE_NUMERICS)  # main() sets them before it refuses
    path = _notebook(tmp_path, "STEPS = 3")
    nb = nbformat.read(path, as_version=4)
    with pytest.raises(ValueError, match="99_t.*exactly one cell tagged 'parameters'"):
        runner.inject_parameters(nb, {"STEPS": 1}, "99_t")
    nb.cells[1].metadata["tags"] = ["parameters"]
    with pytest.raises(ValueError, match="no knob named STEP; its knobs are STEPS"):
        runner.inject_parameters(nb, {"STEP": 1}, "99_t")
    with pytest.raises(SystemExit):  # the command line says so too, before anything runs
        nbformat.write(nb, path)
        runner.main(["run", "--notebooks", str(path), "-p", "STEP", "1"])


def test_knobs_are_injected_as_python_reads_them(tmp_path):
    """papermill's own translator writes a tuple as a string; the runner's writes what ``-p`` parsed."""
    import ast

    path = _notebook(tmp_path, "A, B, C, D = 1, 2, 3, 4")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata["tags"] = ["parameters"]
    knobs = {"A": (0, 1), "B": ("x",), "C": {"kws": 2, "sv": 1}, "D": [None, 1e-4, True, "it's"]}
    injected = runner.inject_parameters(nb, knobs).cells[2]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assigned = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(injected.source).body}
    assert assigned == knobs


def test_values_parse_as_python_else_stay_strings():
    assert [runner.parse_value(v) for v in ("3", "1e-4", "(0, 1)", "True", "None", "hubert-tiny", "'x'")] == [
        3,
        1e-4,
        (0, 1),
        True,
        None,
        "hubert-tiny",
        "x",
    ]
    assert runner.knob_names("A = 1\nB, C = 2, 3\nD: int = 4\nif A:\n    E = 5\nprint(A)") == ["A", "B", "C", "D"]


def test_every_notebook_has_a_parameters_cell_with_its_knobs():
    from kdlib.runtime import REPO_ROOT

    for path in sorted((REPO_ROOT / "notebooks").rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        runner.inject_parameters(nb, {"SMOKE": True}, path.name)  # raises if the cell or the knob is missing


def _smoke_run(monkeypatch, tmp_path, notebook: str, **knobs) -> dict:
    """Run ``notebooks/<notebook>.ipynb`` in smoke mode through the runner with ``-p`` knobs, in a clean numerics
    environment (restored afterwards); check that it ran and that its results record the knobs; return them."""
    from kdlib.runtime import REFERENCE_NUMERICS, REPO_ROOT

    for key in ("KDLIB_PARAMETERS", "KDLIB_HEADLESS", "KDLIB_RESULTS", "OMP_NUM_THREADS", *REFERENCE_NUMERICS):
        monkeypatch.setenv(key, "")  # recorded first, so that the value the runner sets is undone even where the
        monkeypatch.delenv(key)  # variable was absent (delenv alone records nothing to restore then)
    monkeypatch.setenv("KDLIB_SMOKE", "1")  # the kernel runs the smoke mode, whatever this process runs
    out = tmp_path / "results"
    parameters = [arg for key, value in knobs.items() for arg in ("-p", key, str(value))]
    assert (
        runner.main(
            [
                "run",
                "--notebooks",
                str(REPO_ROOT / "notebooks" / f"{notebook}.ipynb"),
                *parameters,
                "--results",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads((out / "smoke" / f"{notebook}.json").read_text())
    assert record["parameters"] == runner.recorded_parameters(
        {key: runner.parse_value(str(value)) for key, value in knobs.items()}
    )
    return record


def test_notebook_04_runs_with_unequal_task_turns(tmp_path, monkeypatch):
    """Exercise 3 of notebook 04 (two KWS batches per SV batch) runs: the turns change the multi-task
    fine-tuning only, so the frozen heads still equal the heads trained alone (the notebook asserts it)."""
    record = _smoke_run(monkeypatch, tmp_path, "04_joint_kd_multitask", TASK_TURNS={"kws": 2, "sv": 1})
    assert record["parameters"]["TASK_TURNS"] == {"kws": 2, "sv": 1}
    assert record["models"]["Whisper_tiny_en_teacher_fine_tuned_kws_sv"]["accuracy"] is not None


def test_a_course_notebook_runs_with_a_teacher_checkpoint_made_here(tmp_path, monkeypatch):
    """The path to other teachers: notebook 01 in smoke mode with its TEACHER knob set to a directory saved
    by ``save_pretrained`` (the zoo's hubert-tiny, copied), the results file recording both."""
    from kdlib import zoo

    checkpoint = tmp_path / "my-hubert"
    zoo.load("hubert-tiny").save_pretrained(checkpoint)
    record = _smoke_run(monkeypatch, tmp_path, "01_os_kdft", TEACHER=checkpoint)
    assert record["extra"]["teacher"] == str(checkpoint) and record["mode"] == "smoke"
    assert record["models"]["e_oskdft_L2"]["eer"] is not None


def test_a_notebook_trains_data_parallel_as_a_script_under_torchrun(tmp_path):
    """The several-GPU path, on two CPU processes: notebook 04 written as a script (a knob injected) and
    launched by torchrun; its trainings go through kdlib.train.fit, which joins the process group; rank 0
    alone writes the results, which record the two processes and the knob."""
    import subprocess
    import sys

    from kdlib.runtime import REPO_ROOT

    script = tmp_path / "04.py"
    assert (
        runner.main(
            [
                "script",
                str(REPO_ROOT / "notebooks" / "04_joint_kd_multitask.ipynb"),
                "-p",
                "SEEDS",
                "(0,)",
                "--out",
                str(script),
            ]
        )
        == 0
    )
    compile(script.read_text(), str(script), "exec")
    drop = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "KDLIB_PARAMETERS", "KDLIB_RESULTS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(KDLIB_SMOKE="1", KDLIB_RESULTS=str(tmp_path / "results"), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "--local-ranks-filter",
            "0",
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "data-parallel over 2 processes (gloo)" in done.stdout
    record = json.loads((tmp_path / "results" / "smoke" / "04_joint_kd_multitask.json").read_text())
    assert record["processes"] == 2 and record["parameters"] == {"SEEDS": [0]}
    assert all(0 <= m["eer"] <= 1 for m in record["models"].values() if m.get("eer") is not None)


def test_a_script_refuses_an_unknown_knob(tmp_path, capsys):
    from kdlib.runtime import REPO_ROOT

    with pytest.raises(SystemExit):
        runner.main(
            [
                "script",
                str(REPO_ROOT / "notebooks" / "04_joint_kd_multitask.ipynb"),
                "-p",
                "SEEDZ",
                "1",
                "--out",
                str(tmp_path / "x.py"),
            ]
        )
    assert "no knob named SEEDZ" in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists()


def _voxceleb1_tree_from(smoke, tree):
    """The smoke corpus's sentences rewritten as a VoxCeleb1 tree (wav/idXXXXX/<video>/<n>.wav, veri_test2.txt,
    and vox1_meta.csv: genders assigned in pairs, m m f f ..., since eSpeak NG leaves most unknown; each speaker's
    accent as its nationality)."""
    import itertools

    import soundfile as sf

    from kdlib.data.audio import read_audio

    test_clips, meta = [], ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
    for split, first in (("train", 10001), ("test", 10270)):
        for k, (_, rows) in enumerate(sorted(smoke.by_speaker(split, "sentence").items())):
            meta.append(f"id{first + k}\t{rows[0]['speaker']}\t{'mf'[k // 2 % 2]}\t{rows[0]['accent']}\t{split}")
            for j, row in enumerate(rows):
                rel = f"id{first + k}/vid{j % 2}/{j:05d}.wav"
                (tree / "wav" / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(tree / "wav" / rel, read_audio(smoke.path(row["path"])), 16_000)
                if split == "test":
                    test_clips.append(rel)
    (tree / "veri_test2.txt").write_text(
        "".join(f"{int(a[:7] == b[:7])} {a} {b}\n" for a, b in itertools.combinations(test_clips, 2))
    )
    (tree / "vox1_meta.csv").write_text("\n".join(meta) + "\n")
    return tree


def _speech_commands_tree_from(smoke, tree):
    """The smoke corpus's keywords, other words and silence as a Speech Commands tree: <word>/<speaker>_nohash_<n>
    .wav, the test speakers' clips in testing_list.txt, the silence clips under _background_noise_."""
    import soundfile as sf

    from kdlib.data.audio import read_audio

    speakers = sorted({r["speaker"] for r in smoke.manifest})
    testing = []
    for n, row in enumerate(r for r in smoke.manifest if r["kind"] in ("keyword", "unknown", "silence")):
        if row["kind"] == "silence":
            rel = f"_background_noise_/noise_{n:03d}.wav"
        else:
            rel = f"{row['text']}/{speakers.index(row['speaker']):08x}_nohash_{n}.wav"
            if row["split"] == "test":
                testing.append(rel)
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tree / rel, read_audio(smoke.path(row["path"])), 16_000)
    (tree / "validation_list.txt").write_text("")
    (tree / "testing_list.txt").write_text("".join(f"{rel}\n" for rel in testing))
    return tree


def _cnceleb_tree_from(smoke, tree):
    """The smoke corpus's other-language (Spanish) sentences as CN-Celeb's evaluation part: each speaker's first clip
    as eval/enroll/<id>-enroll.flac, the others under eval/test/, every enrolment against every test clip in
    eval/lists/trials.lst (naming .wav, as the FLAC release does)."""
    import soundfile as sf

    from kdlib.data.audio import read_audio

    enrolments, tests = [], []
    for k, (_, rows) in enumerate(sorted(smoke.by_speaker("other", "sentence").items())):
        speaker = f"id{800 + k:05d}"
        for j, row in enumerate(rows):
            rel = f"enroll/{speaker}-enroll.flac" if j == 0 else f"test/{speaker}-speech-01-{j:03d}.flac"
            (tree / "eval" / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(tree / "eval" / rel, read_audio(smoke.path(row["path"])), 16_000)
            (enrolments if j == 0 else tests).append(speaker if j == 0 else rel)
    (tree / "eval" / "lists").mkdir(parents=True)
    (tree / "eval" / "lists" / "trials.lst").write_text(
        "".join(f"{e}-enroll {t.replace('.flac', '.wav')} {int(t[5:12] == e)}\n" for e in enrolments for t in tests)
    )
    return tree


def test_a_notebook_runs_on_a_dataset_folder_in_voxceleb_layout(tmp_path, monkeypatch):
    """The full-scale data path: the smoke corpus's sentences rewritten as a VoxCeleb1 tree, given to notebook 02
    in smoke mode as a folder path (-p CORPUS)."""
    from kdlib.data import corpus

    tree = _voxceleb1_tree_from(corpus.load("smoke"), tmp_path / "voxceleb1")
    record = _smoke_run(monkeypatch, tmp_path, "02_iml_kd", CORPUS=tree)
    assert all(0 <= m["eer"] <= 1 for m in record["models"].values() if m.get("eer") is not None)


@pytest.mark.parametrize("notebook", ["03_ensemble_kd", "04_joint_kd_multitask"])
def test_the_keyword_notebooks_run_on_voxceleb_joined_with_speech_commands(notebook, tmp_path, monkeypatch):
    """Notebooks 03 and 04 at full scale read speakers from VoxCeleb1 and keywords from Speech Commands: both trees
    made from the smoke corpus, joined by -p CORPUS 'vox+sc', run in smoke mode."""
    from kdlib.data import corpus

    smoke = corpus.load("smoke")
    spec = (
        f"{_voxceleb1_tree_from(smoke, tmp_path / 'voxceleb1')}+"
        f"{_speech_commands_tree_from(smoke, tmp_path / 'speech_commands')}"
    )
    models = _smoke_run(monkeypatch, tmp_path, notebook, CORPUS=spec)["models"].values()
    assert any(m["eer"] is not None for m in models)
    assert all(0 <= m["eer"] <= 1 for m in models if m["eer"] is not None)
    if notebook.startswith("03"):  # keyword spotting on Speech Commands' classes
        assert all(0 <= m["clean_kws_acc"] <= 1 for m in models)
    else:
        assert any(m["accuracy"] is not None for m in models)
        assert all(0 <= m["accuracy"] <= 1 for m in models if m["accuracy"] is not None)
        assert all(0 <= m["keyword_sv_eer"] <= 1 for m in models if m["keyword_sv_eer"] is not None)


def test_the_quantization_notebook_runs_on_voxceleb_joined_with_cnceleb(tmp_path, monkeypatch):
    """Notebook 05 at full scale tests its language mismatch on CN-Celeb: a VoxCeleb1 tree and a CN-Celeb tree made
    from the smoke corpus (English and Spanish speakers), joined by -p CORPUS 'vox+cnc', run in smoke mode."""
    from kdlib.data import corpus

    smoke = corpus.load("smoke")
    spec = f"{_voxceleb1_tree_from(smoke, tmp_path / 'voxceleb1')}+{_cnceleb_tree_from(smoke, tmp_path / 'cnc')}"
    record = _smoke_run(monkeypatch, tmp_path, "05_quantization", CORPUS=spec)
    fp32 = [m for name, m in record["models"].items() if name.endswith("fp32")]
    assert fp32 and all(0 <= m[key] <= 1 for m in fp32 for key in ("eer", "eer_other_language"))
    probes = record["extra"]["probes"]  # VoxCeleb1's metadata: gender, and nationality where no accent is named
    assert probes and all(0 <= p[task] <= 1 for p in probes for task in ("speaker", "gender", "nationality"))
    assert all("accent" not in p for p in probes)


def test_lab_copy_makes_a_working_copy_and_never_overwrites_it(tmp_path):
    """make lab's working copy: every notebook and solution copied once; a learner's saved copy is kept, and one
    whose tracked original changed since is named."""
    import os

    source, dest = tmp_path / "notebooks", tmp_path / "lab"
    (source / "solutions").mkdir(parents=True)
    for name in ("00_a.ipynb", "solutions/00_a_solutions.ipynb"):
        (source / name).write_text('{"cells": []}')
    first = runner.lab_copy(source, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in first["copied"]) == [
        "00_a.ipynb",
        "solutions/00_a_solutions.ipynb",
    ]
    (dest / "00_a.ipynb").write_text('{"cells": ["my work"]}')  # the learner saves outputs
    os.utime(dest / "00_a.ipynb", (1_000_000, 1_000_000))
    (source / "01_b.ipynb").write_text('{"cells": []}')  # a new notebook lands
    second = runner.lab_copy(source, dest)
    assert [p.name for p in second["copied"]] == ["01_b.ipynb"]
    assert (dest / "00_a.ipynb").read_text() == '{"cells": ["my work"]}'  # never overwritten
    assert [p.name for p in second["behind"]] == ["00_a.ipynb"]  # but named as older
    assert (source / "00_a.ipynb").read_text() == '{"cells": []}'  # the tracked one untouched


def test_jump_to_definition_can_open_kdlib_from_the_lab_copy(tmp_path):
    """jupyterlab-lsp opens a definition outside the server's root at ``/.lsp_symlink/<absolute path>``: a Jupyter
    server started on the working copy with make lab's options serves kdlib's source there (it answered 404
    before the link and the option)."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    lab = tmp_path / "lab"
    runner.lab_copy(tmp_path / "no-notebooks", lab)
    assert (lab / ".lsp_symlink").resolve() == Path("/")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=kd",
            f"--ServerApp.root_dir={lab}",
            "--allow-root",
            *runner.LAB_SERVER_OPTIONS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    source = Path(runner.__file__).resolve()
    url = f"http://127.0.0.1:{port}/api/contents/.lsp_symlink{source.as_posix()}?token=kd"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    model = json.loads(answer.read())
                break
            except urllib.error.HTTPError as err:
                raise AssertionError(f"{url}: {err.code} {err.reason}") from None
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        else:
            raise AssertionError(f"the server did not answer {url}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert model["type"] == "file" and "def lab_copy(" in model["content"]


def test_a_course_notebook_can_be_named_by_its_number(tmp_path, unset):
    from kdlib.runtime import REPO_ROOT

    unset("KDLIB_HEADLESS", "OMP_NUM_THREADS", *runner.REFERENCE_NUMERICS)  # main() sets them before it refuses
    assert runner.notebook_path("01") == REPO_ROOT / "notebooks" / "01_os_kdft.ipynb"
    assert runner.notebook_path("03_ensemble") == REPO_ROOT / "notebooks" / "03_ensemble_kd.ipynb"
    assert runner.notebook_path("0") == Path("0")  # several match: left as given, refused later
    assert runner.notebook_path("99") == Path("99")
    own = tmp_path / "01"
    own.write_text("{}")
    assert runner.notebook_path(str(own)) == own  # an existing path wins
    with pytest.raises(SystemExit):
        runner.main(["run", "--notebooks", "99"])
