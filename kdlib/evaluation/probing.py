"""Linear probes on frozen features: how much speaker or keyword information a representation holds.

Every feature is pooled the same way, the mean and standard deviation over time, then standardised and
fed to a multinomial logistic regression (scikit-learn). Probes run on held-out speakers, so they measure
what the frozen model encodes rather than what it memorised:

- ``speaker``: test speakers' sentences, half of each speaker's utterances to fit, half to score;
- ``keyword``: the 12 KWS classes on test speakers' one-second clips, fitted on half of the speakers and
  scored on the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from kdlib.data.datasets import map_clips
from kdlib.data.features import stats_pool
from kdlib.data.sources import KWS_LABELS, Source
from kdlib.runtime import resolve_device


def probe_split(rows: list[dict], key: str, fit_by: str = "row", classes=None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the fit/score partition of a probe over ``rows``: the label of a row is the index of its
    ``key`` value in ``classes`` (default: the sorted values). ``fit_by="row"``: within each speaker, the
    even-numbered rows fit and the odd ones are scored (a property known from other clips of the same
    speakers); ``fit_by="speaker"``: every other speaker (sorted) fits and the rest are scored (it must
    generalise to new speakers)."""
    classes = list(classes) if classes is not None else sorted({r[key] for r in rows})
    labels = np.array([classes.index(r[key]) for r in rows])
    if fit_by == "row":
        seen: dict[str, int] = {}
        fit = []
        for r in rows:
            fit.append(seen.get(r["speaker"], 0) % 2 == 0)
            seen[r["speaker"]] = seen.get(r["speaker"], 0) + 1
    elif fit_by == "speaker":
        fit_speakers = set(sorted({r["speaker"] for r in rows})[::2])
        fit = [r["speaker"] in fit_speakers for r in rows]
    else:
        raise ValueError(f"fit_by must be 'row' or 'speaker', got {fit_by!r}")
    return labels, np.array(fit)


def probe_tasks(source: Source, split: str = "test") -> dict[str, dict]:
    """Rows, labels and fit/score partition of the ``speaker`` probe (test speakers' sentences, alternate
    utterances of each speaker) and the ``keyword`` probe (the 12 KWS classes, half of the speakers)."""
    sid_rows = [r for rows in source.by_speaker(split, "sentence").values() for r in rows]
    kws_rows = [r for r in source.select(split, ("keyword", "unknown", "silence")) if r["label"] in KWS_LABELS]
    tasks = {
        "speaker": (sid_rows, probe_split(sid_rows, "speaker", "row")),
        "keyword": (kws_rows, probe_split(kws_rows, "label", "speaker", classes=KWS_LABELS)),
    }
    return {task: {"rows": rows, "labels": labels, "fit": fit} for task, (rows, (labels, fit)) in tasks.items()}


@torch.inference_mode()
def pooled_features(
    layers_fn: Callable[[torch.Tensor], list[torch.Tensor]],
    source: Source,
    rows: list[dict],
    device: str | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """For each layer returned by ``layers_fn(wave)`` (a list of ``(1, frames, dim)``), an
    ``(n_rows, 2·dim)`` matrix of mean+std pooled features (:func:`kdlib.models.stats_pool`, exact std)."""
    device = resolve_device(layers_fn, device)
    pooled = map_clips(
        lambda w: [stats_pool(h[0], dim=0, floor=0.0) for h in layers_fn(w)],
        source,
        [r["path"] for r in rows],
        device,
        "features",
        progress,
    )
    return [np.stack([clip[layer].float().numpy() for clip in pooled]) for layer in range(len(pooled[0]))]


def linear_probe(features: np.ndarray, labels: np.ndarray, fit: np.ndarray, seed: int = 0) -> float:
    """Accuracy of a standardised logistic regression fitted on ``fit`` rows and scored on the rest."""
    return float(probe_outcomes(features, labels, fit, seed).mean())


def probe_outcomes(features: np.ndarray, labels: np.ndarray, fit: np.ndarray, seed: int = 0) -> np.ndarray:
    """:func:`linear_probe` row by row: whether each scored row (``~fit``, in order) is classified right (for
    a bootstrap over its speakers: :func:`kdlib.evaluation.verdicts.from_items`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if fit.all() or not fit.any():
        raise ValueError("a probe needs both fit and score rows")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    clf.fit(features[fit], labels[fit])
    return clf.predict(features[~fit]) == labels[~fit]


def layerwise_probes(
    layers_fn, source: Source, split: str = "test", device: str | None = None, progress: bool = True
) -> dict[str, list[float]]:
    """``{task: [accuracy of layer 0, layer 1, ...]}`` for the speaker and keyword probes."""
    out = {}
    for task, spec in probe_tasks(source, split).items():
        feats = pooled_features(layers_fn, source, spec["rows"], device, progress)
        out[task] = [linear_probe(f, spec["labels"], spec["fit"]) for f in feats]
    return out


def random_twin(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A transformers SSL model's architecture with fresh random weights: the floor a probe must beat."""
    import copy

    torch.manual_seed(seed)
    return type(model)(copy.deepcopy(model.config)).eval()


def probe_report(model, source: Source, device: str | None = None) -> dict:
    """Layer-wise probe accuracies of an SSL model, its random twin and MFCC frames on one fixed fit/score split
    (:func:`probe_tasks`), for the curves of notebook 00. ``best``, ``beats_random_twin`` and ``matches_mfcc`` take
    each model's best layer on the half they score, which flatters every model a little; the zoo's bar is
    :func:`probe_spread`, which chooses layers on held-out rows (read it with :func:`clears_the_bar`)."""
    from kdlib.data.features import mfcc_frames

    device = resolve_device(model, device)

    def layers(m):
        m = m.float().to(device).eval()
        return lambda w: m(w, output_hidden_states=True).hidden_states

    report = {
        "teacher": layerwise_probes(layers(model), source, device=device, progress=False),
        "random_twin": layerwise_probes(layers(random_twin(model)), source, device=device, progress=False),
        "mfcc": layerwise_probes(lambda w: [mfcc_frames(w, cmvn=False)], source, device=device, progress=False),
    }
    best = {k: {task: max(v) for task, v in accs.items()} for k, accs in report.items()}
    report["best"] = best
    report["beats_random_twin"] = all(best["teacher"][t] > best["random_twin"][t] for t in ("speaker", "keyword"))
    report["matches_mfcc"] = any(best["teacher"][t] >= best["mfcc"][t] for t in ("speaker", "keyword"))
    return report


def random_split(rows: list[dict], key: str, fit_by: str, seed: int, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`probe_split`, but the fit half is drawn at random from ``seed``: within each speaker, half
    of its rows (``fit_by="row"``), or half of the speakers (``fit_by="speaker"``)."""
    labels, _ = probe_split(rows, key, fit_by, classes)
    rng = np.random.default_rng(seed)
    fit = np.zeros(len(rows), dtype=bool)
    if fit_by == "row":
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(r["speaker"], []).append(i)
        for idx in groups.values():
            fit[rng.permutation(idx)[: (len(idx) + 1) // 2]] = True
    else:
        speakers = sorted({r["speaker"] for r in rows})
        chosen = set(rng.permutation(speakers)[: (len(speakers) + 1) // 2])
        fit = np.array([r["speaker"] in chosen for r in rows])
    return labels, fit


def probe_on_a_held_out_layer(
    feats: list[np.ndarray], rows: list[dict], key: str, fit_by: str, seed: int, classes=None
) -> dict:
    """The probe of the layer chosen without the scored rows: split ``rows`` into fit and score halves
    (:func:`random_split`, ``seed``), split the fit half again the same way into a part that fits and a development
    part, choose the layer (of ``feats``, one matrix per layer) whose probe scores best on the development part, then
    fit that layer on the whole fit half and score it on the score half. For ``fit_by="speaker"`` the development
    speakers are disjoint from the scored ones. Returns ``{"accuracy", "layer", "development": [per layer]}``."""
    labels, fit = random_split(rows, key, fit_by, seed, classes)
    inside = np.flatnonzero(fit)
    _, inner_fit = random_split([rows[i] for i in inside], key, fit_by, seed + 1000, classes)
    development = [linear_probe(f[inside], labels[inside], inner_fit) for f in feats]
    layer = int(np.argmax(development))
    return {"accuracy": linear_probe(feats[layer], labels, fit), "layer": layer, "development": development}


def probe_spread(
    model, source: Source, splits: int = 3, twin_seeds: int = 3, device: str | None = None, progress: bool = True
) -> dict:
    """Probes that survive a change of protocol: the accuracy of ``model``, of ``twin_seeds`` random twins and of
    MFCC frames at the layer each chooses on a development part of its fit half (:func:`probe_on_a_held_out_layer`;
    the scored rows never choose), over ``splits`` random fit/score splits, with scikit-learn held to one thread per
    fit; ``layers`` records the chosen layer per split. Returns per-split values, their mean and standard deviation, and
    ``clears``: per task, whether the model beats its twins: the verdict "better" holds, i.e. the 95 % Welch
    t-interval of the difference of the means lies above 0 (:func:`kdlib.evaluation.verdicts.from_seeds`)."""
    from threadpoolctl import threadpool_limits

    from kdlib.data.features import mfcc_frames
    from kdlib.evaluation.verdicts import better, from_seeds
    from kdlib.progress import bar

    device = resolve_device(model, device)
    tasks = probe_tasks(source)
    fit_by = {"speaker": "row", "keyword": "speaker"}

    def layers(m):
        m = m.float().to(device).eval()
        return lambda w: m(w, output_hidden_states=True).hidden_states

    systems = {
        "teacher": [layers(model)],
        "random_twin": [layers(random_twin(model, s)) for s in range(twin_seeds)],
        "mfcc": [lambda w: [mfcc_frames(w, cmvn=False)]],
    }
    out: dict = {name: {task: [] for task in tasks} for name in systems}
    chosen: dict = {name: {task: [] for task in tasks} for name in systems}
    jobs = [(name, fn, task) for name, fns in systems.items() for fn in fns for task in tasks]
    for name, fn, task in bar(jobs, desc="probes", unit="system", disable=not progress):
        spec = tasks[task]
        feats = pooled_features(fn, source, spec["rows"], device, progress=False)
        key, classes = ("speaker", None) if task == "speaker" else ("label", KWS_LABELS)
        for split in range(splits):
            with threadpool_limits(1):
                probe = probe_on_a_held_out_layer(feats, spec["rows"], key, fit_by[task], split, classes)
            out[name][task].append(probe["accuracy"])
            chosen[name][task].append(probe["layer"])
    summary = {
        name: {
            task: {"values": v, "mean": float(np.mean(v)), "std": float(np.std(v)), "layers": chosen[name][task]}
            for task, v in accs.items()
        }
        for name, accs in out.items()
    }
    summary["clears"] = {
        task: from_seeds(out["teacher"][task], out["random_twin"][task], better(), higher_is_better=True)["outcome"]
        == "holds"
        for task in tasks
    }
    summary["protocol"] = {
        "splits": splits,
        "twin_seeds": twin_seeds,
        "pooling": "mean+std over whole clips",
        "fit": "half of each speaker's sentences (speaker), half of the speakers (keyword)",
        "layer": "chosen on a development half of the fit half (of each fit speaker's sentences; of the fit "
        "speakers), never on the scored rows",
    }
    return summary


def clears_the_bar(metrics: dict) -> bool:
    """The zoo's bar for an SSL teacher, from its manifest ``metrics``: it beats its random twins on both probes (the
    verdict of :func:`probe_spread`, layers chosen on held-out rows) and its mean accuracy matches or beats MFCC
    frames' on at least one probe. An entry without a probe spread is judged by the build-time report
    (:func:`probe_report`, best layer on the scored half)."""
    spread = metrics.get("probe_spread")
    if spread is None:
        return bool(metrics["beats_random_twin"] and metrics["matches_mfcc"])
    tasks = ("speaker", "keyword")
    matches_mfcc = any(spread["teacher"][t]["mean"] >= spread["mfcc"][t]["mean"] for t in tasks)
    return all(spread["clears"][t] for t in tasks) and matches_mfcc
