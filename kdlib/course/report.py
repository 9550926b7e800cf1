"""The reproduction report: every notebook's ``results/<notebook>.json`` side by side.

Notebook 06 draws from it (every model's error against its size and latency, every paper claim beside ours),
and ``python -m kdlib.course.report docs`` rewrites the marked results section of ``docs/results.md`` and the README's
notebook table from a full run's results,
so that the tables a reader sees are generated, never typed::

    python -m kdlib.course.report promote                      # a checked full run in results/ becomes the reference
    python -m kdlib.course.report docs                         # rewrite the sections from results/reference/
    python -m kdlib.course.report docs --check                 # exit 1 when docs/results.md or the README disagrees

``results/reference/`` holds the results of the reference full run that the docs show; a test checks that
the generated sections are exactly what this module makes of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdlib.course.results import tally
from kdlib.course.runner import recorded_knobs, rerun_command
from kdlib.evaluation.verdicts import describe
from kdlib.runtime import REPO_ROOT, TIMES_FILE, duration, load_times

NOTEBOOKS = {
    "00_data_and_teachers": "00 · data, SV scoring and teachers",
    "01_os_kdft": "01 · OS-KDFT (Heo et al., Interspeech 2023)",
    "02_iml_kd": "02 · IML-KD (Yang et al., arXiv 2409.09389)",
    "03_ensemble_kd": "03 · ensemble KD (Huang et al., arXiv 2302.12757)",
    "04_joint_kd_multitask": "04 · KD + joint KWS/SV (Kerpicci et al., arXiv 2210.16611)",
    "05_quantization": "05 · weight quantization (Li et al., arXiv 2210.17326)",
}
"""The notebooks whose results the report reads, in course order, with a short title."""

PROTOCOLS = {
    "00_data_and_teachers": "20,000 test trials, whole utterances",
    "01_os_kdft": "20,000 test trials, whole utterances",
    "02_iml_kd": "51,040 pairs of 3 s crops",
    "03_ensemble_kd": "20,000 test trials, 1.5 s crops, frozen model + probe",
    "04_joint_kd_multitask": "keyword-speaker trials and 12-class KWS",
    "05_quantization": "28,680 pairs of 2 s crops",
}
"""How each notebook scores its models: EERs compare across notebooks only roughly."""

HEADLINE = {
    "00_data_and_teachers": {
        "mfcc_stats_cosine": "MFCC statistics + cosine",
        "ecapa_c256_aam": "ECAPA-TDNN C=256, AAM-softmax",
    },
    "01_os_kdft": {
        "a_teacher_ecapa_L4": "(a) frozen teacher + ECAPA",
        "c_ft_no_kd_L2": "(c) student FT, no KD",
        "b_kd_then_ft_L2": "(b) KD, then FT",
        "e_oskdft_L2": "(e) OS-KDFT, 2 layers",
    },
    "02_iml_kd": {
        "teacher_ecapa_c512": "teacher ECAPA C=512",
        "student_c128_alone": "student C=128 alone",
        "student_c128_multilevel_kd": "student + multi-level KD",
        "student_c128_iml_kd_a": "student + IML-KD (a)",
    },
    "03_ensemble_kd": {
        "teacher_whisper_tiny_en": "teacher Whisper tiny.en",
        "teacher_whisper_base": "teacher Whisper base",
        "single_whisper_tiny_en": "student of tiny.en alone",
        "ensemble_average": "student, layerwise average",
        "ensemble_concat": "student, concatenation",
        "ensemble_multi_head": "student, multiple heads",
    },
    "04_joint_kd_multitask": {
        "Whisper_tiny_en_teacher_fine_tuned_kws_sv": "Whisper tiny.en, KWS + SV fine-tuned",
        "distilled_Whisper_tiny_en_frozen_kws_sv": "its student, frozen",
        "distilled_Whisper_tiny_en_fine_tuned_kws_sv": "its student, KWS + SV fine-tuned",
    },
    "05_quantization": {
        "ecapa_fp32": "ECAPA-TDNN fp32",
        "ecapa_ptq-uniform_8b": "ECAPA-TDNN 8-bit PTQ",
        "ecapa_ptq-uniform_4b": "ECAPA-TDNN 4-bit PTQ",
        "ecapa_qat-uniform_2b": "ECAPA-TDNN 2-bit QAT",
        "resnet34_fp32": "ResNet-34 fp32",
        "resnet34_ptq-uniform_4b": "ResNet-34 4-bit PTQ",
    },
}
"""The models docs/results.md's table shows per notebook (key in the results file -> readable name)."""

_LATENCY_NOTE = (
    "fake-quantized weights run in fp32, so the latency is the fp32 model's; the size is the packed weights'"
)
REFERENCES = {
    "00_data_and_teachers": {"": "ecapa_c256_aam"},
    "01_os_kdft": {"": "a_teacher_ecapa_L4"},
    "02_iml_kd": {"": "teacher_ecapa_c512"},
    "03_ensemble_kd": {"": "teacher_whisper_tiny_en"},
    "04_joint_kd_multitask": {
        "Whisper_tiny_en": "Whisper_tiny_en_teacher_fine_tuned_kws_sv",
        "distilled_Whisper_tiny_en": "Whisper_tiny_en_teacher_fine_tuned_kws_sv",
        "HuBERT": "HuBERT_teacher_fine_tuned_kws_sv",
        "distilled_HuBERT": "HuBERT_teacher_fine_tuned_kws_sv",
    },
    "05_quantization": {"ecapa": "ecapa_fp32", "resnet34": "resnet34_fp32"},
}
"""What each model is compared with inside its notebook (the longest matching key prefix wins): the teacher or
the uncompressed model, scored on the same trials."""


def reference_of(notebook: str, key: str) -> str | None:
    """The key of the model that ``key`` is compared with in its own notebook (:data:`REFERENCES`)."""
    matches = [prefix for prefix in REFERENCES.get(notebook, {}) if key.startswith(prefix)]
    return REFERENCES[notebook][max(matches, key=len)] if matches else None


NAMES = {
    "00_data_and_teachers": {
        "zoo_ecapa": "zoo ecapa (ECAPA-TDNN C=512)",
        "zoo_resnet34": "zoo resnet34",
        "ge2e_resemblyzer": "GE2E (trained on real speech)",
    },
}
"""Readable names of models outside :data:`HEADLINE` that no naming rule of :func:`name_of` covers."""

_STUDENT_METHODS = {
    "alone": "student alone",
    "logit_kd": "student + logit KD",
    "embedding_kd": "student + embedding KD",
    "multilevel_kd": "student + multi-level KD",
    "iml_kd_a": "student + IML-KD (a)",
    "iml_kd_b": "student + IML-KD (b)",
}
_ARCHITECTURES = {"ecapa": "ECAPA-TDNN", "resnet34": "ResNet-34"}


def name_of(notebook: str, key: str) -> str:
    """A readable name for a model's key in a results file (``ecapa_ptq-pot_4b`` -> ``ECAPA-TDNN 4-bit PTQ,
    powers of two``)."""
    import re

    known = {**HEADLINE.get(notebook, {}), **NAMES.get(notebook, {})}
    if key in known:
        return known[key]
    if m := re.fullmatch(r"student_c(\d+)_(\w+?)(?:_seed\d+)?", key):
        if m.group(2) in _STUDENT_METHODS:
            return _STUDENT_METHODS[m.group(2)]
    if m := re.fullmatch(r"(ecapa|resnet34)_(ptq|qat)-(uniform|pot)_(\d+)b", key):
        scheme = "uniform" if m.group(3) == "uniform" else "powers of two"
        return f"{_ARCHITECTURES[m.group(1)]} {m.group(4)}-bit {m.group(2).upper()}, {scheme}"
    if m := re.fullmatch(r"(ecapa|resnet34)_(fp32|int8_torch_ao)", key):
        return f"{_ARCHITECTURES[m.group(1)]} {'fp32' if m.group(2) == 'fp32' else 'int8 (torch.ao)'}"
    return key.replace("_", " ")


BEGIN, END = "<!-- results:begin (python -m kdlib.course.report docs) -->", "<!-- results:end -->"
ANSWERS_BEGIN, ANSWERS_END = "<!-- answers:begin (python -m kdlib.course.report docs) -->", "<!-- answers:end -->"
EXERCISES_PAGE = REPO_ROOT / "docs" / "exercises.md"
GLANCE_BEGIN, GLANCE_END = "<!-- notebooks:begin (python -m kdlib.course.report docs) -->", "<!-- notebooks:end -->"
RESULTS_PAGE = REPO_ROOT / "docs" / "results.md"
README = REPO_ROOT / "README.md"

FINDINGS = {
    "00_data_and_teachers": (
        "the corpus, SV scoring, an ECAPA-TDNN, the teacher zoo",
        "a trained ECAPA-TDNN far ahead of MFCC statistics on synthetic voices; on real "
        "voices no teacher beats MFCC statistics (the zoo's: inconclusive; Whisper's layers: "
        "contradicted)",
    ),
    "01_os_kdft": (
        "OS-KDFT (Heo et al., Interspeech 2023)",
        "on Whisper tiny.en every student beats the frozen teacher system (3.6 to 5.3 % against 8.25 % "
        "EER, itself 13.7 points ahead of MFCC statistics); distilling the teacher's last layer costs "
        "speaker accuracy ('distillation helps' contradicted by 1.2 points); one step against two steps "
        "and adapters unresolved; the size claim holds, the speed claim is contradicted",
    ),
    "02_iml_kd": (
        "IML-KD (Yang et al., arXiv 2409.09389)",
        "the paper's gain is contradicted: multi-level and logit KD beat IML-KD by 5 to 6 EER points",
    ),
    "03_ensemble_kd": (
        "Ensemble KD (Huang et al., ICASSP 2023)",
        "every claim inconclusive: distilled from two Whisper encoders for 500 steps, the students "
        "recover most of the teachers' lead on keywords and words and part of it on phonemes, but "
        "the methods lie closer together than three seeds resolve, and still do at 1,000 and 2,000 steps",
    ),
    "04_joint_kd_multitask": (
        "KD + joint KWS/SV (Kerpicci et al., arXiv 2210.16611)",
        "with every layer read, the 2-layer student of Whisper tiny.en matches its teacher: "
        "within 0.9 EER point (holds), KWS and multi-task's cost unresolved at three seeds; the "
        "size claim holds",
    ),
    "05_quantization": (
        "weight quantization (Li et al., arXiv 2210.17326)",
        "8 bits are lossless (within 10 %); 4-bit ResNet unresolved; ECAPA-TDNN does not degrade before "
        "ResNet: ResNet-34, trained as long, degrades first on both languages (contradicted)",
    ),
    "06_compare": (
        "all of the above side by side",
        "quantizing the teacher to a student's size beats distilling it (holds against every student)",
    ),
}
"""Each notebook's paper and, in words, what its reference run shows (the README's notebook table adds the
numbers from the results files)."""


def reference_dir() -> Path:
    """The committed results of the reference full run (what the docs show)."""
    return REPO_ROOT / "results" / "reference"


def load(results_dir: str | Path, notebooks=tuple(NOTEBOOKS), mode: str | None = "full") -> dict[str, dict]:
    """Every notebook's results record from ``results_dir``, in course order. Refuses, naming the file and the
    command that writes it, a missing or unreadable file and (unless ``mode`` is None) a run of another mode."""
    results_dir = Path(results_dir)
    records, missing = {}, []
    for name in notebooks:
        path = results_dir / f"{name}.json"
        if not path.is_file():
            missing.append(name)
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable results file ({err}); rerun its notebook") from None
        for key in ("notebook", "mode", "models", "claims", "wall_time_s"):
            if key not in record:
                raise ValueError(f"{path}: not a kdlib results file (no {key!r}); rerun its notebook")
        if mode is not None and record["mode"] != mode:
            raise ValueError(
                f"{path}: a {record['mode']} run, but this report needs a {mode} run; rerun with "
                f"{rerun_command([name])}"
            )
        records[name] = record
    if missing:
        raise FileNotFoundError(
            f"{results_dir}: no results of {', '.join(missing)}; produce them with "
            f"{rerun_command(missing)}  (or make results for every notebook)"
        )
    return records


def _kws_accuracy(m: dict):
    return m.get("accuracy", m.get("clean_kws_acc"))


def tidy(frame, digits: int = 3, missing: str = "–"):
    """``frame`` as a reader should see it: floats rounded to ``digits`` decimals and empty cells (NaN, None)
    shown as ``missing`` instead of "NaN". A Series becomes a one-column frame. Integers and text are kept."""
    import math

    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()

    def cell(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing
        if isinstance(value, float):
            return round(value, digits)
        return value

    return frame.map(cell)


def mean_and_spread(values, scale: float = 100, digits: int = 1, missing: str = "–") -> str:
    """``"mean ± std"`` of ``values`` (one per seed) times ``scale``, empty values (NaN) left out: the mean
    alone for a single value, ``missing`` for none. The std is the sample standard deviation (n − 1)."""
    import numpy as np

    from kdlib.course.results import number

    kept = [scale * v for v in map(number, values) if v is not None]
    if not kept:
        return missing
    mean = f"{np.mean(kept):.{digits}f}"
    return mean if len(kept) == 1 else f"{mean} ± {np.std(kept, ddof=1):.{digits}f}"


def models_table(records: dict[str, dict]):
    """One row per model of every notebook: size (params, MB as measured, e.g. packed for quantized weights),
    CPU latency, EER and keyword-spotting accuracy in % (``accuracy``, or notebook 03's probe ``clean_kws_acc``),
    the notebook's evaluation protocol, and size and relative EER change against the model's reference in its
    notebook (:func:`reference_of`)."""
    import pandas as pd

    rows = []
    for notebook, record in records.items():
        for key, m in record["models"].items():
            eer, acc = m.get("eer"), _kws_accuracy(m)
            ref_key = reference_of(notebook, key)
            ref = record["models"].get(ref_key) if ref_key else None
            ref_eer = ref.get("eer") if ref else None
            rows.append(
                {
                    "notebook": notebook,
                    "model": key,
                    "name": name_of(notebook, key),
                    "params (M)": m["params"] / 1e6,
                    "size (MB)": m["bytes"] / 1e6,
                    "CPU latency (ms)": m["latency_ms"],
                    "EER (%)": None if eer is None else 100 * eer,
                    "KWS accuracy (%)": None if acc is None else 100 * acc,
                    "protocol": PROTOCOLS.get(notebook, ""),
                    "reference": name_of(notebook, ref_key) if ref else None,
                    "size / reference": m["bytes"] / ref["bytes"] if ref else None,
                    "EER vs reference (%)": (100 * (eer / ref_eer - 1) if ref_eer and eer is not None else None),
                }
            )
    return pd.DataFrame(rows)


def claims_table(records: dict[str, dict]):
    """Every paper claim of every notebook beside ours: its outcome (holds, contradicted, inconclusive) and
    the effect with its 95 % interval (:func:`kdlib.evaluation.verdicts.describe`)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"notebook": notebook, **c, "effect [95 % interval]": describe(c["verdict"])}
            for notebook, record in records.items()
            for c in record["claims"]
        ],
        columns=["notebook", "claim", "paper", "ours", "effect [95 % interval]", "outcome"],
    )


def outcome_agreement(reference: dict[str, dict], other: dict[str, dict]):
    """The claims of the notebooks in ``other`` (a run in another numerics mode, another machine) beside the same
    claims in ``reference``: each run's outcome and effect [95 % interval], and whether the outcomes agree. A claim
    that only one run has shows "–" on the other side and counts as a disagreement."""
    import pandas as pd

    rows = []
    for notebook, record in other.items():
        theirs = {c["claim"]: c for c in record["claims"]}
        ours = {c["claim"]: c for c in reference.get(notebook, {}).get("claims", [])}
        for claim in [*ours, *(c for c in theirs if c not in ours)]:
            a, b = ours.get(claim), theirs.get(claim)
            rows.append(
                {
                    "notebook": notebook,
                    "claim": claim,
                    "reference": a["outcome"] if a else "–",
                    "other run": b["outcome"] if b else "–",
                    "reference effect": describe(a["verdict"]) if a else "–",
                    "other effect": describe(b["verdict"]) if b else "–",
                    "agree": bool(a and b and a["outcome"] == b["outcome"]),
                }
            )
    return pd.DataFrame(rows)


def pareto_front(x, y) -> list[bool]:
    """Which points (smaller is better on both axes) no other point beats on one axis while matching or
    beating it on the other; missing values (None/NaN) are never on the front."""
    import math

    points = [(float(a), float(b)) if a is not None and b is not None else (math.nan, math.nan) for a, b in zip(x, y)]
    front = []
    for i, (a, b) in enumerate(points):
        if math.isnan(a) or math.isnan(b):
            front.append(False)
            continue
        front.append(
            not any(
                (c <= a and d <= b and (c < a or d < b))
                for j, (c, d) in enumerate(points)
                if j != i and not (math.isnan(c) or math.isnan(d))
            )
        )
    return front


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e3:.1f} kB" if n_bytes < 100_000 else f"{n_bytes / 1e6:.2f} MB"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 10_000 else str(n)


def time_table(times: dict, top: int = 3) -> list[str]:
    """Markdown lines: every notebook's wall time as the runner measured it, and its ``top`` longest sections."""
    rows = ["| notebook | wall time | where it goes (the longest sections) |", "|---|---|---|"]
    for name, entry in times["notebooks"].items():
        longest = sorted(entry["sections"], key=lambda s: -s["seconds"])[:top]
        parts = "; ".join(f"{s['section']} {s['seconds']:.0f} s" for s in longest)
        rows.append(f"| {name} | {duration(entry['seconds'])} | {parts} |")
    total = sum(e["seconds"] for e in times["notebooks"].values())
    return [
        f"The runner's wall time, all {len(times['notebooks'])} notebooks: **{duration(total)}** "
        f"(kernel start-up included; `{TIMES_FILE}`).",
        "",
        *rows,
    ]


def processor(provenance: dict) -> str:
    """The machine a run was made on, as the results table shows it: the CPU's name and cores, and (from
    ``provenance["cpu"]``) its generation and widest vector extension, since one name covers several."""
    text = provenance.get("hardware", "?")
    cpu = provenance.get("cpu") or {}
    if "cpu family" in cpu:
        features = cpu.get("features", [])
        widest = "AVX-512" if "avx512f" in features else "AVX2" if "avx2" in features else "no AVX2"
        widest += " and AMX" if "amx_tile" in features else ""  # matrix tiles: bf16 products run far faster
        text += f" (family {cpu['cpu family']}, model {cpu.get('model', '?')}, {widest})"
    return text


def results_section(records: dict[str, dict], source: str = "results/reference/", times: dict | None = None) -> str:
    """The generated section of ``docs/results.md``: each run's time and hardware, the count of its claims'
    outcomes, its headline models, every claim with its outcome, effect and interval, and (given the runner's
    ``times``) where each notebook's time went; ``source`` names the folder the
    records came from."""
    runs = ["| notebook | wall time | hardware | device | claims |", "|---|---|---|---|---|"]
    models = [
        "| notebook | model | params | size | CPU latency | EER | KWS accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for notebook, record in records.items():
        title = NOTEBOOKS.get(notebook, notebook)
        hardware = processor(record.get("provenance", {}))
        runs.append(
            f"| {title} | {duration(record['wall_time_s'])} | {hardware} | {record.get('device', '?')} | "
            f"{tally(record['claims'])} |"
        )
        for key, name in HEADLINE.get(notebook, {}).items():
            if key not in record["models"]:
                raise KeyError(f"{notebook}: no model {key!r} in its results; update kdlib.course.report.HEADLINE")
            m = record["models"][key]
            mark = " †" if m.get("latency_note") and m.get("bits", 32) < 32 else ""
            models.append(
                f"| {notebook[:2]} | {name} | {_params(m['params'])} | {_size(m['bytes'])} | "
                f"{m['latency_ms']:.1f} ms{mark} | {_pct(m.get('eer'))} | {_pct(_kws_accuracy(m))} |"
            )
    claims = ["| notebook | claim | outcome | effect [95 % interval] |", "|---|---|---|---|"]
    claims += [
        f"| {notebook[:2]} | {c['claim']} | **{c['outcome']}** | {describe(c['verdict'])} |"
        for notebook, record in records.items()
        for c in record["claims"]
    ]
    total = sum(r["wall_time_s"] for r in records.values())
    lines = [
        BEGIN,
        "",
        f"Generated from `{source}` (a full run, {duration(total)} of notebooks in all)"
        " by `python -m kdlib.course.report docs`; do not edit by hand.",
        "",
        *runs,
        "",
        "Headline models (size as stored: fp32, or packed for quantized weights; CPU latency: one thread; "
        "each notebook's EER on its own trials, see its section):",
        "",
        *models,
        "",
        "† " + _LATENCY_NOTE,
        "",
        "Every paper claim, judged as [verdicts.md](verdicts.md) says (effects in points of the metric or in "
        "percent of the system compared with, positive in the paper's favour; a claim of several parts counts "
        "their outcomes):",
        "",
        *claims,
        "",
        *([*time_table(times), ""] if times else []),
        END,
    ]
    return "\n".join(lines)


def rewrite_section(section: str, page: str | Path = RESULTS_PAGE, begin: str = BEGIN, end: str = END) -> bool:
    """Replace the part of ``page`` marked by ``begin`` and ``end`` with ``section`` (which starts and ends with
    them); return whether it changed."""
    page = Path(page)
    text = page.read_text()
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"{page}: needs exactly one {begin!r} and one {end!r} line to rewrite between")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    new = head + section + tail
    if new != text:
        page.write_text(new)
    return new != text


def section_matches(section: str, page: str | Path = RESULTS_PAGE, begin: str = BEGIN, end: str = END) -> bool:
    """Whether the part of ``page`` marked by ``begin`` and ``end`` is exactly ``section``."""
    text = Path(page).read_text()
    return begin in text and end in text and text[text.index(begin) : text.index(end) + len(end)] == section


def write_or_check(
    section: str, page: str | Path, begin: str, end: str, *, check: bool, what: str, command: str
) -> int:
    """A ``docs`` subcommand's work: with ``check``, say whether ``page``'s generated ``what`` is ``section``
    (exit status 1 when not, naming ``command``); otherwise rewrite it (:func:`rewrite_section`) and say so."""
    if check:
        same = section_matches(section, page, begin, end)
        print(f"{page}: {what} " + ("matches" if same else f"differs; run {command}"))
        return 0 if same else 1
    changed = rewrite_section(section, page, begin, end)
    print(f"{page}: {what} {'rewritten' if changed else 'already up to date'}")
    return 0


def answers_section(reference: str | Path | None = None) -> str:
    """The generated table of docs/exercises.md: every committed answer of the solutions notebooks (the variants
    run once in full mode, under ``<reference>/variants/``), with its knobs, when it ran and how long it took."""
    import json

    folder = Path(reference) if reference else reference_dir()
    rows = ["| notebook | variant | knobs | measured | wall time |", "|---|---|---|---|---|"]
    for path in sorted(folder.glob("variants/*/*/*.json")):
        record = json.loads(path.read_text())
        knobs = ", ".join(f"`{k} = {v}`" for k, v in recorded_knobs(record).items())
        rows.append(
            f"| {path.parent.parent.name} | {path.parent.name} | {knobs} | "
            f"{record['provenance']['created'][:10]} | {duration(record['wall_time_s'])} |"
        )
    if len(rows) == 2:
        rows = ["No answer has been measured in full mode yet."]
    return "\n".join([ANSWERS_BEGIN, "", *rows, "", ANSWERS_END])


def glance_section(records: dict[str, dict], times: dict | None) -> str:
    """The README's generated table of notebooks: each one's paper, what its reference run shows (claims that
    hold), and its full-mode wall time on the reference machine (from the runner's run times)."""
    rows = ["| # | notebook | reproduces | what the reference run shows | full mode |", "|---|---|---|---|---|"]
    timed = (times or {}).get("notebooks", {})
    first = next(iter(records.values()), {}).get("provenance", {})  # the machine the footer names
    for name, (paper, finding) in FINDINGS.items():
        record = records.get(name)
        claims = f"claims: {tally(record['claims'])}; " if record and record["claims"] else ""
        seconds = timed.get(name, {}).get("seconds")
        hardware = timed.get(name, {}).get("hardware")
        elsewhere = f" ({hardware})" if seconds and hardware and hardware != first.get("hardware") else ""
        rows.append(
            f"| {name[:2]} | [`{name}`](notebooks/{name}.ipynb) | {paper} | {claims}{finding} | "
            f"{duration(seconds) + elsewhere if seconds else '–'} |"
        )
    machine = processor(first) if records else "?"
    return "\n".join(
        [
            GLANCE_BEGIN,
            "",
            *rows,
            "",
            f"Full mode: the reference run's wall time on {machine} (where "
            "no other machine is named), reference numerics (`results/reference/`); smoke mode takes "
            "about 1 to 2 min per notebook.",
            GLANCE_END,
        ]
    )


def promote(source: str | Path, reference: str | Path | None = None) -> list[Path]:
    """Copy a full run's results files (every notebook of :data:`NOTEBOOKS`, checked by :func:`load`) into the
    reference folder, replacing the reference's; return the files written."""
    import shutil

    load(source)
    reference = Path(reference) if reference else reference_dir()
    reference.mkdir(parents=True, exist_ok=True)
    written = [Path(shutil.copy2(Path(source) / f"{name}.json", reference / f"{name}.json")) for name in NOTEBOOKS]
    times = load_times(source)
    if times is not None:
        lacking = [n for n in (*NOTEBOOKS, "06_compare") if times["notebooks"].get(n, {}).get("mode") != "full"]
        if lacking:
            raise ValueError(
                f"{Path(source) / TIMES_FILE}: no full-mode time of {', '.join(lacking)}; rerun with "
                f"{rerun_command(lacking)}"
            )
        written.append(Path(shutil.copy2(Path(source) / TIMES_FILE, reference / TIMES_FILE)))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.course.report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "docs",
        aliases=["readme"],
        help="rewrite docs/results.md's section and the README's notebook table from a full run",
    )
    r.add_argument("--results", default=None, help="results folder (default: results/reference/)")
    r.add_argument("--page", default=str(RESULTS_PAGE), help="the results page (default: docs/results.md)")
    r.add_argument("--readme", default=str(README), help="the README with the notebook table")
    r.add_argument("--exercises", default=str(EXERCISES_PAGE), help="the page with the committed answers")
    r.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page disagrees")
    p = sub.add_parser(
        "promote",
        help="make a full run's results (default: results/) the reference, then "
        "rewrite the generated sections from them",
    )
    p.add_argument("--results", default=None, help="results folder of a full run (default: results/)")
    p.add_argument("--page", default=str(RESULTS_PAGE))
    p.add_argument("--readme", default=str(README))
    p.add_argument("--exercises", default=str(EXERCISES_PAGE))
    c = sub.add_parser("compare", help="each claim's outcome in a run (e.g. --numerics fast) beside the reference")
    c.add_argument("--results", required=True, help="results folder of the other run (its notebooks are compared)")
    c.add_argument("--against", default=None, help="the reference folder (default: results/reference/)")
    args = parser.parse_args(argv)
    from kdlib.runtime import results_dir

    if args.command == "compare":
        present = [n for n in NOTEBOOKS if (Path(args.results) / f"{n}.json").is_file()]
        if not present:
            parser.error(f"{args.results}: no notebook results to compare")
        table = outcome_agreement(load(args.against or reference_dir()), load(args.results, present))
        from kdlib.zoo.measures import markdown_table

        print(markdown_table(table.set_index("notebook")))
        print(f"\n{int(table.agree.sum())} of {len(table)} claims end the same way")
        return 0
    if args.command == "promote":
        written = promote(args.results or results_dir())
        print(f"reference results: {', '.join(p.name for p in written)} -> {reference_dir()}")
        args.results, args.check = str(reference_dir()), False
    folder = Path(args.results) if args.results else reference_dir()
    try:
        shown = folder.resolve().relative_to(REPO_ROOT).as_posix() + "/"
    except ValueError:
        shown = str(folder)
    records, times = load(folder), load_times(folder)
    sections = [
        (results_section(records, shown, times), args.page, BEGIN, END),
        (glance_section(records, times), args.readme, GLANCE_BEGIN, GLANCE_END),
        (answers_section(folder), args.exercises, ANSWERS_BEGIN, ANSWERS_END),
    ]
    if args.check:
        stale = [page for section, page, begin, end in sections if not section_matches(section, page, begin, end)]
        for page in stale:
            print(
                f"{page}: generated section differs; run python -m kdlib.course.report docs --results <folder>",
                file=sys.stderr,
            )
        if not stale:
            print("generated sections match")
        return 1 if stale else 0
    for section, page, begin, end in sections:
        changed = rewrite_section(section, page, begin, end)
        print(f"{page}: generated section {'rewritten' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
