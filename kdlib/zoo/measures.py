"""What the zoo records of every self-supervised or pretrained teacher, measured the same way for each:

- :func:`layer_profile`: linear probes on every hidden state (speaker, keyword, word content) on held-out
  speakers, mean and spread over random fit/score splits, next to MFCC frames;
- :func:`headroom`: the teacher against its own ``student_layers``-layer student before any distillation (its
  stem and first layers copied) on notebook 03's SUPERB-style suite, clean and harsh, over seeds of the suite's
  downstream models: how much a distilled student could gain;
- :func:`costs`: CPU latency on one thread, throughput as a distillation teacher, peak memory;
- :func:`real_voices`: one layer's pooled statistics as a speaker embedding on the real voice prompts.

``python -m kdlib.zoo measure --teacher NAME`` runs them and writes the result into the manifest entry.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

from kdlib.data.features import stats_pool
from kdlib.data.sources import KWS_LABELS, Source
from kdlib.evaluation.probing import linear_probe, pooled_features, probe_tasks, random_split
from kdlib.runtime import REPO_ROOT

SUITE_CLIPS = {"train_words": 800, "test_words": 500}
"""Notebook 03's full-mode suite."""


def hidden_states_fn(model: nn.Module):
    """``wave -> list`` of the model's hidden states (float32, eval mode)."""
    model = model.float().eval()
    return lambda wave: model(wave, output_hidden_states=True).hidden_states


def _word_task(keyword_task: dict) -> dict:
    """Which word a clip says: the keyword probe's clips without silence, labelled by their text."""
    keep = np.array([r["kind"] != "silence" for r in keyword_task["rows"]])
    rows = [r for r, k in zip(keyword_task["rows"], keep) if k]
    words = sorted({r["text"] for r in rows})
    return {"rows": rows, "keep": keep, "classes": words}


def layer_profile(layers_fn, source: Source, splits: int = 3, progress: bool = True) -> dict:
    """``{task: {"mean": [per hidden state], "std": [...], "values": [[per split] per state]}}`` for ``speaker``
    (half of each test speaker's sentences fit), ``keyword`` (the 12 KWS classes) and ``word`` (which word, silence
    excluded), the last two fitted on half of the test speakers and scored on the others; ``splits`` random halves
    (:func:`kdlib.evaluation.probing.random_split`, seeds 0..splits-1)."""
    from threadpoolctl import threadpool_limits

    tasks = probe_tasks(source)
    words = _word_task(tasks["keyword"])
    feats = {
        "speaker": pooled_features(layers_fn, source, tasks["speaker"]["rows"], progress=progress),
        "keyword": pooled_features(layers_fn, source, tasks["keyword"]["rows"], progress=progress),
    }
    feats["word"] = [f[words["keep"]] for f in feats["keyword"]]
    setup = {
        "speaker": (tasks["speaker"]["rows"], "speaker", "row", None),
        "keyword": (tasks["keyword"]["rows"], "label", "speaker", KWS_LABELS),
        "word": (words["rows"], "text", "speaker", words["classes"]),
    }
    out = {}
    for task, (rows, key, fit_by, classes) in setup.items():
        values = []
        for f in feats[task]:
            accs = []
            for split in range(splits):
                labels, fit = random_split(rows, key, fit_by, seed=split, classes=classes)
                with threadpool_limits(1):
                    accs.append(linear_probe(f, labels, fit))
            values.append(accs)
        out[task] = {
            "mean": [float(np.mean(v)) for v in values],
            "std": [float(np.std(v)) for v in values],
            "values": values,
        }
    out["protocol"] = {
        "splits": splits,
        "pooling": "mean+std over whole clips",
        "clips": {
            "speaker": len(tasks["speaker"]["rows"]),
            "keyword": len(tasks["keyword"]["rows"]),
            "word": len(words["rows"]),
        },
    }
    return out


def _spread(values) -> dict:
    """``{"mean", "std", "values"}`` of per-seed values, as the manifest records them."""
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}


def _teacher_and_student(model: nn.Module, student_layers: int) -> dict[str, nn.Module]:
    """The two systems a headroom measure compares: the teacher and its first ``student_layers`` layers, copied
    (:func:`kdlib.models.ssl.make_student`), under the names the manifest records."""
    from kdlib.models.ssl import make_student

    return {"teacher": model, f"student, first {student_layers} layers": make_student(model, student_layers)}


def headroom(
    model: nn.Module,
    source: Source,
    student_layers: int = 2,
    seeds=(0, 1, 2),
    suite_clips: dict | None = None,
    downstream_steps: int = 100,
    progress: bool = True,
) -> dict:
    """The teacher and its ``student_layers``-layer student before distillation (:func:`kdlib.models.ssl.make_student`)
    on notebook 03's suite (:mod:`kdlib.evaluation.superb`, data seed 0), each downstream model trained once per seed
    in ``seeds``. Returns per system and condition the mean, spread and per-seed values of every task, and the
    seconds each system's statistics took."""
    from kdlib.evaluation import superb
    from kdlib.progress import bar

    suite = superb.build_suite(source, seed=0, **(suite_clips or SUITE_CLIPS))
    systems = _teacher_and_student(model, student_layers)
    out = {"suite": suite.settings, "seeds": list(seeds), "downstream_steps": downstream_steps, "systems": {}}
    for name, system in bar(systems.items(), desc="headroom", unit="system", disable=not progress):
        start = time.time()
        with torch.inference_mode():
            stats = suite.statistics(hidden_states_fn(system), device="cpu")
        seconds = time.time() - start
        runs = [superb.run_suite(stats, suite, steps=downstream_steps, seed=s) for s in seeds]
        record = {"statistics_seconds": round(seconds, 1)}
        for cond in superb.CONDITIONS:
            record[cond] = {task: _spread([r[cond][task] for r in runs]) for task in runs[0][cond]}
        record["layer_weights"] = runs[0]["layer_weights"]
        out["systems"][name] = record
    return out


def phoneme_headroom(
    model: nn.Module,
    source: Source,
    student_layers: int = 2,
    seeds=(0, 1, 2),
    clips: dict | None = None,
    steps: int = 300,
    progress: bool = True,
) -> dict:
    """The teacher and its ``student_layers``-layer student before distillation on the phoneme-recognition task
    (:mod:`kdlib.evaluation.phoneme_recognition`: a CTC head on the frozen layers, whole sentences, data seed 0),
    the head trained once per seed in ``seeds``: per system and condition the phone error rate's mean, spread and
    per-seed values, and the seconds each system's frames took."""
    from kdlib.evaluation import phoneme_recognition as pr
    from kdlib.progress import bar

    task = pr.build_phoneme_task(source, seed=0, **(clips or {}))
    systems = _teacher_and_student(model, student_layers)
    out = {"task": task.settings, "seeds": list(seeds), "steps": steps, "systems": {}}
    for name, system in bar(systems.items(), desc="phoneme headroom", unit="system", disable=not progress):
        start = time.time()
        with torch.inference_mode():
            frames = task.frames(hidden_states_fn(system))
        record = {"frames_seconds": round(time.time() - start, 1)}
        runs = [pr.run_phoneme_task(frames, task, steps=steps, seed=s) for s in seeds]
        for cond in ("clean", "harsh"):
            record[cond] = {"per": _spread([r[cond]["per"] for r in runs])}
        record["layer_weights"] = runs[0]["layer_weights"]
        out["systems"][name] = record
    return out


@torch.no_grad()
def costs(
    model: nn.Module, zoo_name: str | None = None, batch: int = 24, crop_seconds: float = 1.0, student_layers: int = 2
) -> dict:
    """CPU costs: median latency of the last hidden state on 1 s and 4 s of audio (one thread, batch 1); audio
    seconds per second of the teacher's forward pass over ``batch`` crops of ``crop_seconds`` (all hidden states,
    the threads torch has: what computing distillation targets costs), and of one training step of its
    ``student_layers``-layer student (forward, an L1 loss on its last state, backward); the peak resident memory
    of a fresh process that loads ``zoo_name`` and runs the teacher's batch (when ``zoo_name`` is given)."""
    from kdlib.evaluation.bench import count_params, cpu_latency_ms
    from kdlib.models.ssl import SSLFrontEnd, make_student

    out = {"params": count_params(model), "threads": torch.get_num_threads()}
    for seconds in (1, 4):
        example = torch.randn(1, 16_000 * seconds)
        out[f"latency_ms_{seconds}s"] = round(
            cpu_latency_ms(SSLFrontEnd(model).eval(), example, warmup=3, repeats=15), 2
        )
    crops = torch.randn(batch, int(16_000 * crop_seconds))
    layers = hidden_states_fn(model)
    layers(crops)  # warm-up
    start = time.perf_counter()
    for _ in range(3):
        layers(crops)
    out["teacher_audio_s_per_s"] = round(3 * batch * crop_seconds / (time.perf_counter() - start), 1)
    student = make_student(model, student_layers).train()
    target = layers(crops)[student_layers]
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    with torch.enable_grad():

        def step():
            loss = (student(crops).last_hidden_state - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step()
        start = time.perf_counter()
        for _ in range(3):
            step()
    out["student_step_audio_s_per_s"] = round(3 * batch * crop_seconds / (time.perf_counter() - start), 1)
    out["batch"], out["crop_seconds"] = batch, crop_seconds
    if zoo_name is not None:
        out["peak_memory_mb"] = peak_memory_mb(zoo_name, batch, crop_seconds)
    return out


def peak_memory_mb(zoo_name: str, batch: int = 24, crop_seconds: float = 1.0) -> float:
    """Peak resident memory (MB) of a fresh Python process that imports torch, loads zoo teacher ``zoo_name`` and
    computes every hidden state of ``batch`` crops of ``crop_seconds``."""
    code = (
        f"import resource, torch\nfrom kdlib import zoo\nm = zoo.load({zoo_name!r})\n"
        f"with torch.inference_mode():\n    m(torch.randn({batch}, {int(16_000 * crop_seconds)}), "
        "output_hidden_states=True)\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(done.stdout.split()[-1]) / 1024, 1)


class PooledLayer(nn.Module):
    """A frozen encoder's hidden state ``layer`` as a speaker embedding: its mean and standard deviation over
    frames, z-scored with statistics of training clips (:meth:`fit`), as MFCC statistics are
    (:class:`kdlib.data.features.MFCCStats`). Cosine scoring on it needs no training about speakers."""

    def __init__(self, encoder: nn.Module, layer: int):
        super().__init__()
        self.encoder, self.layer = encoder.eval(), layer
        dim = encoder.config.hidden_size
        self.register_buffer("mean", torch.zeros(2 * dim))
        self.register_buffer("std", torch.ones(2 * dim))

    def pooled(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        return stats_pool(self.encoder(wave, output_hidden_states=True).hidden_states[self.layer], dim=1)

    @torch.no_grad()
    def fit(self, waves) -> PooledLayer:
        feats = torch.cat([self.pooled(torch.as_tensor(w)) for w in waves])
        self.mean.copy_(feats.mean(0))
        self.std.copy_(feats.std(0).clamp(min=1e-5))
        return self

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return (self.pooled(wave) - self.mean) / self.std


def pooled_layer_model(encoder: nn.Module, layer: int, source: Source, max_utterances: int = 400) -> PooledLayer:
    """:class:`PooledLayer` z-scored on about ``max_utterances`` training sentences of ``source``, evenly spread
    (the same clips as :func:`kdlib.data.features.mfcc_baseline`)."""
    from kdlib.data.datasets import AudioCache

    rows = source.select("train", "sentence")
    audio = AudioCache(source)
    return PooledLayer(encoder, layer).fit(audio(r["path"]) for r in rows[:: max(1, len(rows) // max_utterances)])


def real_voices(model: nn.Module, layers: list[int], source: Source) -> dict:
    """EER of :class:`PooledLayer` embeddings of each of ``layers`` on the real voice prompts
    (:mod:`kdlib.data.corpus.real`), all trials and same-language trials, plain and centred on the prompts' mean
    embedding (the analysis ``centring_check`` of ``experiments/real_voice_transfer.py`` applies to the other SV
    models), and on the
    synthetic test trials of ``source``."""
    from kdlib.data.corpus import real
    from kdlib.data.unlabelled import same_language_trials
    from kdlib.evaluation import verification
    from kdlib.evaluation.verification import trial_eers

    prompts = real.load()
    trials, keep = prompts.trials("trials"), same_language_trials(prompts)
    out = {}
    for layer in layers:
        system = pooled_layer_model(model, layer, source)
        scored = verification.sv(system, prompts, trials="trials", progress=False)
        emb, paths = scored["embeddings"], scored["paths"]
        synthetic = verification.sv(system, source, trials="trials", progress=False)
        out[layer] = {
            how: trial_eers(e, paths, trials, keep) for how, e in (("plain", emb), ("centred", emb - emb.mean(0)))
        }
        out[layer]["synthetic_eer"] = float(synthetic["eer"])
    return out


def _mean_std(record: dict, percent: bool = True) -> str:
    scale = 100 if percent else 1
    return f"{scale * record['mean']:.1f} ± {scale * record['std']:.1f}"


HEADROOM_TASKS = {"sid": "SID acc", "kws": "KWS acc", "words": "word acc", "sv_eer": "SV EER"}


def _compared_systems(entries: dict, measure: str):
    """For each zoo entry with a teacher-and-student record under ``measure`` (:func:`headroom`,
    :func:`phoneme_headroom`): its name, the two rows' labels, the teacher's record and the student's."""
    for name, entry in entries.items():
        record = entry.get("metrics", {}).get(measure)
        if record is None:
            continue
        teacher = record["systems"]["teacher"]
        student, s = next((k, v) for k, v in record["systems"].items() if k != "teacher")  # JSON sorts the keys
        yield name, (f"{name}: all {entry_depth(entry)} layers", f"{name}: {student}"), teacher, s


def headroom_table(entries: dict):
    """The headroom records of zoo ``entries`` (``{name: manifest entry}``) as one table: a row per teacher and
    per its student before distillation, columns ``(condition, task)`` as "mean ± std" in % over the suite's
    seeds, and a ``gap`` row per teacher (teacher − student; for SV EER, student − teacher: > 0 where the teacher
    is better)."""
    import pandas as pd

    rows = {}
    for name, labels, t, s in _compared_systems(entries, "headroom"):
        for label, system in zip(labels, (t, s)):
            rows[label] = {
                (c, shown): _mean_std(system[c][key])
                for c in ("clean", "harsh")
                for key, shown in HEADROOM_TASKS.items()
            }
        rows[f"{name}: gap (teacher better > 0)"] = {
            (c, shown): f"{100 * (t[c][key]['mean'] - s[c][key]['mean']) * (-1 if key == 'sv_eer' else 1):+.1f}"
            for c in ("clean", "harsh")
            for key, shown in HEADROOM_TASKS.items()
        }
    table = pd.DataFrame(rows).T
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def phoneme_table(entries: dict):
    """The phoneme-recognition records of zoo ``entries``: a row per teacher and per its student before
    distillation, the phone error rate in % ("mean ± std" over the head's seeds) clean and harsh, and a ``gap`` row
    per teacher (student − teacher: > 0 where the teacher is better)."""
    import pandas as pd

    rows = {}
    for name, labels, t, s in _compared_systems(entries, "phonemes"):
        for label, system in zip(labels, (t, s)):
            rows[label] = {f"{c} PER": _mean_std(system[c]["per"]) for c in ("clean", "harsh")}
        rows[f"{name}: gap (teacher better > 0)"] = {
            f"{c} PER": f"{100 * (s[c]['per']['mean'] - t[c]['per']['mean']):+.1f}" for c in ("clean", "harsh")
        }
    return pd.DataFrame(rows).T


def entry_depth(entry: dict) -> int:
    """Transformer layers of a zoo entry's model: recorded for pretrained teachers, else its probe's depth."""
    if "layers" in entry:
        return entry["layers"]
    return len(entry["metrics"]["layer_profile"]["model"]["speaker"]["mean"]) - 1


def costs_table(entries: dict):
    """The cost records of zoo ``entries`` as a table: parameters, latency on 1 s and 4 s (one thread), audio
    seconds per second as a distillation teacher and for its 2-layer student's training step, peak memory."""
    import pandas as pd

    rows = {}
    for name, entry in entries.items():
        c = entry.get("metrics", {}).get("costs")
        if c is not None:
            rows[name] = {
                "params (M)": round(c["params"] / 1e6, 2),
                "CPU ms, 1 s": c["latency_ms_1s"],
                "CPU ms, 4 s": c["latency_ms_4s"],
                "teacher: audio s / s": c["teacher_audio_s_per_s"],
                "student step: audio s / s": c["student_step_audio_s_per_s"],
                "peak memory (MB)": c.get("peak_memory_mb"),
            }
    return pd.DataFrame(rows).T


def pretrained_table(entries: dict):
    """The pretrained teachers among zoo ``entries``: packages, licence, original checkpoint, size, and how much
    padding to Whisper's 30 s window changes each hidden state (mean cosine,
    :func:`kdlib.models.whisper.padding_agreement`)."""
    import pandas as pd

    from kdlib.zoo.recipes import PRETRAINED

    rows = {}
    for name in (n for n in PRETRAINED if n in entries):
        e = entries[name]
        rows[name] = {
            "packages": " + ".join(f"{p['name']}=={p['version']}" for p in e["source"]["packages"]),
            "licence": e["licence"].split(" (")[0],
            "original": e["source"]["original"],
            "layers × width": f"{e['layers']} × {e['width']}",
            "params (M)": round(e["params"] / 1e6, 2),
        }
        cosines = e.get("metrics", {}).get("padding_agreement", {}).get("mean_cosine", [])
        rows[name]["padding to 30 s: mean cosine per state"] = ", ".join(f"{c:.3f}" for c in cosines)
    return pd.DataFrame(rows).T


README_BEGIN = "<!-- zoo-measures:begin (python -m kdlib.zoo docs) -->"
README_END = "<!-- zoo-measures:end -->"
ZOO_PAGE = REPO_ROOT / "docs" / "zoo.md"
"""The page whose marked section :func:`readme_section` writes."""


def markdown_table(frame) -> str:
    """A pandas table as GitHub markdown (index as the first column; multi-level columns joined by a space)."""
    columns = [" ".join(str(c) for c in col) if isinstance(col, tuple) else str(col) for col in frame.columns]
    lines = ["| " + " | ".join([str(frame.index.name or ""), *columns]) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in frame.iterrows():
        lines.append("| " + " | ".join([str(name), *("" if v is None or v != v else str(v) for v in row)]) + " |")
    return "\n".join(lines)


def profile_table(entries: dict):
    """Each measured teacher's best hidden state per probe task, as "accuracy ± std (state)" in %, and MFCC's."""
    import pandas as pd

    rows, mfcc = {}, None
    for name, entry in entries.items():
        profile = entry.get("metrics", {}).get("layer_profile")
        if profile is None:
            continue
        mfcc = profile["mfcc"]
        rows[name] = {}
        for task in ("speaker", "keyword", "word"):
            means = profile["model"][task]["mean"]
            best = int(np.argmax(means))
            rows[name][task] = f"{100 * means[best]:.1f} ± {100 * profile['model'][task]['std'][best]:.1f} ({best})"
    if mfcc is not None:
        rows["MFCC frames"] = {
            task: f"{100 * mfcc[task]['mean'][0]:.1f} ± {100 * mfcc[task]['std'][0]:.1f}"
            for task in ("speaker", "keyword", "word")
        }
    return pd.DataFrame(rows).T


def probe_spread_table(entries: dict):
    """The zoo's bar, as ``python -m kdlib.zoo probe`` recorded it (:func:`kdlib.evaluation.probing.probe_spread`):
    per SSL teacher and probe, accuracy % mean ± std over the splits with the layers chosen on the development parts,
    its random twins' and MFCC's, and whether it clears its twins."""
    import pandas as pd

    def spread(record: dict, layers: bool) -> str:
        chosen = sorted(set(record.get("layers", [])))
        return _mean_std(record) + (f" ({', '.join(map(str, chosen))})" if layers and chosen else "")

    rows, mfcc = {}, None
    for name, entry in entries.items():
        report = entry.get("metrics", {}).get("probe_spread")
        if report is None:
            continue
        mfcc = report["mfcc"]
        rows[name] = {}
        for task in ("speaker", "keyword"):
            rows[name][task] = spread(report["teacher"][task], True)
            rows[name][f"{task}: random twins"] = spread(report["random_twin"][task], False)
        rows[name]["clears its twins"] = ", ".join(t for t in ("speaker", "keyword") if report["clears"][t])
    if mfcc is not None:
        rows["MFCC frames"] = {task: spread(mfcc[task], False) for task in ("speaker", "keyword")}
    return pd.DataFrame(rows).T.fillna("")


def real_voices_table(entries: dict):
    """EER (%) of each pretrained teacher's pooled-statistics embedding on the real voice prompts and on the
    synthetic test trials, plain and centred on the prompts' mean."""
    import pandas as pd

    rows = {}
    for name, entry in entries.items():
        r = entry.get("metrics", {}).get("real_voices")
        if r is not None:
            rows[f"{name}, state {r['layer']}"] = {
                "real, all trials": round(100 * r["plain"]["eer_real"], 2),
                "real, same language": round(100 * r["plain"]["eer_real_same_language"], 2),
                "real, centred": round(100 * r["centred"]["eer_real"], 2),
                "real, centred, same language": round(100 * r["centred"]["eer_real_same_language"], 2),
                "synthetic test trials": round(100 * r["synthetic_eer"], 2),
            }
    return pd.DataFrame(rows).T


def readme_section(entries: dict) -> str:
    """The generated section of docs/zoo.md: layer profiles, headroom, the zoo's bar, real voices and costs of every
    measured teacher (:func:`profile_table`, :func:`headroom_table`, :func:`probe_spread_table`,
    :func:`real_voices_table`, :func:`costs_table`)."""
    hardware = sorted({run.get("hardware", "?") for e in entries.values() for run in e.get("measured", {}).values()})
    parts = [
        README_BEGIN,
        "",
        "Generated from `data/zoo/MANIFEST.json` by `python -m kdlib.zoo docs`; do not edit "
        "by hand. Measured by `python -m kdlib.zoo measure` on the embedded corpus, " + ", ".join(hardware) + ".",
        "",
        "Best hidden state per probe (accuracy % ± std over 3 splits; the state in brackets, 0 = stem output):",
        "",
        markdown_table(profile_table(entries)),
        "",
        "Headroom: each teacher against its own 2-layer student before distillation, notebook 03's suite (mean "
        "± std over the downstream models' seeds, %):",
        "",
        markdown_table(headroom_table(entries)),
        "",
    ]
    phones = phoneme_table(entries)
    if len(phones):
        task = next(e["metrics"]["phonemes"]["task"] for e in entries.values() if "phonemes" in e.get("metrics", {}))
        parts += [
            f"Phoneme recognition: each teacher against its own 2-layer student before distillation, a CTC "
            f"head on the frozen layers ({task['train_clips']} training and {task['test_clips']} test sentences, "
            f"{task['phones']} eSpeak NG phonemes), phone error rate % (mean ± std over the head's seeds):",
            "",
            markdown_table(phones),
            "",
        ]
    spread = probe_spread_table(entries)
    if len(spread):
        protocol = next(
            e["metrics"]["probe_spread"]["protocol"] for e in entries.values() if "probe_spread" in e.get("metrics", {})
        )
        parts += [
            f"The zoo's bar (`python -m kdlib.zoo probe`): linear probes over {protocol['splits']} random fit/score "
            f"splits ({protocol['fit']}), the random twins over the same splits × {protocol['twin_seeds']} seeds; each "
            "probe's layer is chosen on a development part of its fit half, never on the scored rows (the layers "
            "chosen in brackets, 0 = stem output). A teacher clears its twins when the 95 % interval of the "
            "difference lies above 0 (accuracy %, mean ± std):",
            "",
            markdown_table(spread),
            "",
        ]
    real = real_voices_table(entries)
    if len(real):
        parts += [
            "Real voices: the best speaker state's pooled statistics (z-scored on the corpus's training "
            "sentences), cosine scoring, EER %:",
            "",
            markdown_table(real),
            "",
        ]
    parts += [
        "Costs (CPU latency: one thread, batch 1; throughput: 24 crops of 1 s on the machine's threads):",
        "",
        markdown_table(costs_table(entries)),
        "",
        README_END,
    ]
    return "\n".join(parts)
