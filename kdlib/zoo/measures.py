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

from kdlib.models.heads import stats_pool
from kdlib.probing import linear_probe, pooled_features, probe_tasks, random_split
from kdlib.sources import KWS_LABELS, Source

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
    (:func:`kdlib.probing.random_split`, seeds 0..splits-1)."""
    from threadpoolctl import threadpool_limits

    tasks = probe_tasks(source)
    words = _word_task(tasks["keyword"])
    feats = {"speaker": pooled_features(layers_fn, source, tasks["speaker"]["rows"], progress=progress),
             "keyword": pooled_features(layers_fn, source, tasks["keyword"]["rows"], progress=progress)}
    feats["word"] = [f[words["keep"]] for f in feats["keyword"]]
    setup = {"speaker": (tasks["speaker"]["rows"], "speaker", "row", None),
             "keyword": (tasks["keyword"]["rows"], "label", "speaker", KWS_LABELS),
             "word": (words["rows"], "text", "speaker", words["classes"])}
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
        out[task] = {"mean": [float(np.mean(v)) for v in values], "std": [float(np.std(v)) for v in values],
                     "values": values}
    out["protocol"] = {"splits": splits, "pooling": "mean+std over whole clips", "clips": {
        "speaker": len(tasks["speaker"]["rows"]), "keyword": len(tasks["keyword"]["rows"]), "word": len(words["rows"])}}
    return out


def headroom(model: nn.Module, source: Source, student_layers: int = 2, seeds=(0, 1, 2),
             suite_clips: dict | None = None, downstream_steps: int = 100, progress: bool = True) -> dict:
    """The teacher and its ``student_layers``-layer student before distillation (:func:`kdlib.models.ssl.make_student`)
    on notebook 03's suite (:mod:`kdlib.downstream`, data seed 0), each downstream model trained once per seed
    in ``seeds``. Returns per system and condition the mean, spread and per-seed values of every task, and the
    seconds each system's statistics took."""
    from kdlib import downstream
    from kdlib.models.ssl import make_student
    from kdlib.progress import bar

    suite = downstream.build_suite(source, seed=0, **(suite_clips or SUITE_CLIPS))
    systems = {"teacher": model, f"student, first {student_layers} layers": make_student(model, student_layers)}
    out = {"suite": suite.settings, "seeds": list(seeds), "downstream_steps": downstream_steps, "systems": {}}
    for name, system in bar(systems.items(), desc="headroom", unit="system", disable=not progress):
        start = time.time()
        with torch.inference_mode():
            stats = suite.statistics(hidden_states_fn(system), device="cpu")
        seconds = time.time() - start
        runs = [downstream.run_suite(stats, suite, steps=downstream_steps, seed=s) for s in seeds]
        record = {"statistics_seconds": round(seconds, 1)}
        for cond in downstream.CONDITIONS:
            record[cond] = {task: {"mean": float(np.mean([r[cond][task] for r in runs])),
                                   "std": float(np.std([r[cond][task] for r in runs])),
                                   "values": [float(r[cond][task]) for r in runs]} for task in runs[0][cond]}
        record["layer_weights"] = runs[0]["layer_weights"]
        out["systems"][name] = record
    return out


@torch.no_grad()
def costs(model: nn.Module, zoo_name: str | None = None, batch: int = 24, crop_seconds: float = 1.0,
          student_layers: int = 2) -> dict:
    """CPU costs: median latency of the last hidden state on 1 s and 4 s of audio (one thread, batch 1); audio
    seconds per second of the teacher's forward pass over ``batch`` crops of ``crop_seconds`` (all hidden states,
    the threads torch has: what computing distillation targets costs), and of one training step of its
    ``student_layers``-layer student (forward, an L1 loss on its last state, backward); the peak resident memory
    of a fresh process that loads ``zoo_name`` and runs the teacher's batch (when ``zoo_name`` is given)."""
    from kdlib.bench import count_params, cpu_latency_ms
    from kdlib.models.ssl import SSLFrontEnd, make_student

    out = {"params": count_params(model), "threads": torch.get_num_threads()}
    for seconds in (1, 4):
        example = torch.randn(1, 16_000 * seconds)
        out[f"latency_ms_{seconds}s"] = round(cpu_latency_ms(SSLFrontEnd(model).eval(), example, warmup=3,
                                                             repeats=15), 2)
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
    code = (f"import resource, torch\nfrom kdlib import zoo\nm = zoo.load({zoo_name!r})\n"
            f"with torch.inference_mode():\n    m(torch.randn({batch}, {int(16_000 * crop_seconds)}), "
            "output_hidden_states=True)\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(done.stdout.split()[-1]) / 1024, 1)


class PooledLayer(nn.Module):
    """A frozen encoder's hidden state ``layer`` as a speaker embedding: its mean and standard deviation over
    frames, z-scored with statistics of training clips (:meth:`fit`), as MFCC statistics are
    (:class:`kdlib.features.MFCCStats`). Cosine scoring on it needs no training about speakers."""

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
    def fit(self, waves) -> "PooledLayer":
        feats = torch.cat([self.pooled(torch.as_tensor(w)) for w in waves])
        self.mean.copy_(feats.mean(0))
        self.std.copy_(feats.std(0).clamp(min=1e-5))
        return self

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return (self.pooled(wave) - self.mean) / self.std


def pooled_layer_model(encoder: nn.Module, layer: int, source: Source, max_utterances: int = 400) -> PooledLayer:
    """:class:`PooledLayer` z-scored on about ``max_utterances`` training sentences of ``source``, evenly spread
    (the same clips as :func:`kdlib.features.mfcc_baseline`)."""
    from kdlib.datasets import AudioCache

    rows = source.select("train", "sentence")
    audio = AudioCache(source)
    return PooledLayer(encoder, layer).fit(audio(r["path"]) for r in rows[:: max(1, len(rows) // max_utterances)])


def real_voices(model: nn.Module, layers: list[int], source: Source) -> dict:
    """EER of :class:`PooledLayer` embeddings of each of ``layers`` on the real voice prompts
    (:mod:`kdlib.corpus.real`), all trials and same-language trials, plain and centred on the prompts' mean
    embedding (the analysis :func:`kdlib.transfer.centring_check` applies to the other SV models), and on the
    synthetic test trials of ``source``."""
    from kdlib import evaluate
    from kdlib.corpus import real
    from kdlib.transfer import same_language_trials, trial_eers

    prompts = real.load()
    trials, keep = prompts.trials("trials"), same_language_trials(prompts)
    out = {}
    for layer in layers:
        system = pooled_layer_model(model, layer, source)
        scored = evaluate.sv(system, prompts, trials="trials", progress=False)
        emb, paths = scored["embeddings"], scored["paths"]
        synthetic = evaluate.sv(system, source, trials="trials", progress=False)
        out[layer] = {how: trial_eers(e, paths, trials, keep) for how, e in (("plain", emb),
                                                                             ("centred", emb - emb.mean(0)))}
        out[layer]["synthetic_eer"] = float(synthetic["eer"])
    return out
