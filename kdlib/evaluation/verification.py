"""Speaker-verification evaluation, one path for every notebook and the zoo: embeddings in batches, a trial
list or all pairs of a fixed set scored by cosine similarity, EER and minDCF.

- whole utterances (``seconds=None``): a :class:`kdlib.models.SpeakerModel` runs its front end clip by
  clip, then its encoder on batches of clips with the same number of frames. Nothing is padded or cut, so
  the embeddings are those of one clip at a time; other models (any callable) run clip by clip.
- fixed crops (``seconds=2.0``): centred crops, wrap-padded when shorter, in batches; much faster on a CPU
  where many variants are compared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from kdlib.data.datasets import centred_crops, map_clips
from kdlib.data.sources import Source
from kdlib.evaluation import metrics
from kdlib.runtime import resolve_device


@torch.no_grad()  # not inference_mode: the outputs are often cached and trained on later
def batched(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 64, device: str | None = None
) -> torch.Tensor:
    """``fn`` over ``x`` in batches on ``device`` (by kdlib's device rule; a module is moved there), outputs
    concatenated on the CPU."""
    device = resolve_device(fn, device)
    if isinstance(fn, torch.nn.Module):
        fn.to(device)
    return torch.cat([fn(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def _prepare(model, device: str | None) -> str:
    device = resolve_device(model, device)
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()
    return device


def _by_shape(
    fn: Callable[[torch.Tensor], torch.Tensor], items: list[torch.Tensor], batch_size: int, device: str
) -> list[torch.Tensor]:
    """``fn`` over ``(1, ...)`` tensors, those of equal shape stacked and run in batches (exact: nothing is
    padded or cut); the outputs ``(1, ...)`` in the order of ``items``."""
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(tuple(item.shape), []).append(i)
    out: list = [None] * len(items)
    for group in groups.values():
        for i, value in zip(group, batched(fn, torch.cat([items[i] for i in group]), batch_size, device)):
            out[i] = value.unsqueeze(0)
    return out


def _precomputed(inputs: dict, source: Source, paths: list[str]) -> list[torch.Tensor]:
    missing = [p for p in paths if p not in inputs]
    if missing:
        raise KeyError(f"{source.name}: no precomputed input for {len(missing)} clips, e.g. {missing[0]}")
    return [inputs[p] for p in paths]


@torch.inference_mode()
def embed(
    model: Callable[[torch.Tensor], torch.Tensor],
    source: Source,
    paths: list[str],
    seconds: float | None = None,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
    inputs: dict | None = None,
) -> torch.Tensor:
    """Embeddings ``(len(paths), dim)`` of whole clips (``seconds=None``) or of centred ``seconds``-long crops,
    in the order of ``paths``. A model that is an ``nn.Module`` is put in eval mode on the device.

    ``inputs`` (``{path: (1, ...) tensor}``) replaces each clip's audio by a precomputed input, e.g. the
    output of a frozen front end that many compared models share, computed once per clip.

    In a data-parallel run (:mod:`kdlib.train.distributed`) each process embeds every ``world_size``-th clip and the
    processes exchange their embeddings, so evaluation is split between them too."""
    from kdlib.train import distributed

    if distributed.active():
        unique = sorted(set(paths))
        mine = unique[distributed.rank() :: distributed.world_size()]
        rows = (
            _embed_here(model, source, mine, seconds, batch_size, device, progress and distributed.is_main(), inputs)
            if mine
            else None
        )
        merged = distributed.gather(mine, rows)
        return torch.stack([merged[p] for p in paths])
    return _embed_here(model, source, paths, seconds, batch_size, device, progress, inputs)


def _embed_here(
    model,
    source: Source,
    paths: list[str],
    seconds: float | None,
    batch_size: int,
    device: str | None,
    progress: bool,
    inputs: dict | None,
) -> torch.Tensor:
    """:func:`embed` in this process alone."""
    from kdlib.models.speaker import SpeakerModel

    device = _prepare(model, device)
    if seconds is not None:
        if inputs is not None:
            raise ValueError("precomputed inputs are whole clips; leave seconds=None")
        return batched(model, centred_crops(source, paths, seconds), batch_size, device)
    unique = sorted(set(paths))
    if isinstance(model, SpeakerModel):  # front end per clip (inputs: batched by shape), encoder batched
        if inputs is None:
            feats = map_clips(model.frontend, source, unique, device, "features", progress)
        else:
            feats = _by_shape(model.frontend, _precomputed(inputs, source, unique), batch_size, device)
        out = [e[0] for e in _by_shape(model.encoder, feats, batch_size, device)]
    elif inputs is None:
        out = [e[0].float() for e in map_clips(model, source, unique, device, "embedding", progress)]
    else:
        out = [e[0] for e in _by_shape(model, _precomputed(inputs, source, unique), batch_size, device)]
    index = {p: i for i, p in enumerate(unique)}
    return torch.stack([out[index[p]] for p in paths])


def all_pairs_scores(emb: torch.Tensor, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and labels of every pair of rows (i < j): a dense trial list over a fixed set."""
    e = torch.nn.functional.normalize(emb.float(), dim=1)
    sim = (e @ e.T).numpy()
    i, j = np.triu_indices(len(speakers), k=1)
    spk = np.asarray(speakers)
    return sim[i, j], (spk[i] == spk[j]).astype(int)


def trial_indices(trial_list: list[tuple[int, str, str]], paths: list[str], what: str = "trial list") -> np.ndarray:
    """A trial list ``[(label, path_a, path_b), ...]`` as an ``(n, 3)`` integer array ``(label, i, j)``, ``i``
    and ``j`` indexing ``paths`` (the clips whose embeddings are computed). Names the missing clips."""
    index = {p: i for i, p in enumerate(paths)}
    missing = sorted({p for _, a, b in trial_list for p in (a, b)} - set(index))
    if missing:
        raise ValueError(f"{what} names {len(missing)} clips that are not among the scored ones, e.g. {missing[0]}")
    return np.array([(label, index[a], index[b]) for label, a, b in trial_list], dtype=np.int64).reshape(-1, 3)


def score_trials(embeddings: torch.Tensor, trials: np.ndarray) -> dict:
    """``eer`` and ``min_dcf`` of cosine scores on a trial array ``(label, i, j)`` indexing ``embeddings``
    (:func:`trial_indices`)."""
    scores = metrics.cosine_scores(embeddings[trials[:, 1]], embeddings[trials[:, 2]]).numpy()
    return {"eer": metrics.eer(scores, trials[:, 0]), "min_dcf": metrics.min_dcf(scores, trials[:, 0])}


def sv(
    model: Callable[[torch.Tensor], torch.Tensor],
    source: Source,
    *,
    trials: str | None = None,
    rows: list[dict] | None = None,
    seconds: float | None = None,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
    inputs: dict | None = None,
) -> dict:
    """Speaker verification of ``model`` on ``source``: either the trial list named ``trials`` (e.g.
    ``"trials"``, ``"trials_other"``) or every pair of ``rows`` (a fixed set, speakers from the rows).

    Returns ``eer`` and ``min_dcf`` (fractions), ``scores`` and ``labels`` (for plots), ``speakers`` (each
    trial's first utterance's speaker, for a bootstrap over speakers: :mod:`kdlib.evaluation.verdicts`; a
    path the manifest lacks stands for itself), ``n_trials``, and ``embeddings`` (in the order of ``rows``, or
    of the trial list's sorted paths) with their ``paths``.
    ``inputs``: precomputed model inputs per path instead of the audio (see :func:`embed`)."""
    if (trials is None) == (rows is None):
        raise ValueError("verification.sv needs either trials (a trial list's name) or rows (scored as all pairs)")
    if trials is not None:
        trial_list = source.trials(trials)
        paths = sorted({p for _, a, b in trial_list for p in (a, b)})
        emb = embed(model, source, paths, seconds, batch_size, device, progress, inputs)
        index = {p: i for i, p in enumerate(paths)}
        scores = metrics.cosine_scores(
            emb[[index[a] for _, a, _ in trial_list]], emb[[index[b] for _, _, b in trial_list]]
        ).numpy()
        labels = np.array([t[0] for t in trial_list])
        speaker_of = {r["path"]: r["speaker"] for r in source.manifest}
        speakers = np.array([speaker_of.get(a, a) for _, a, _ in trial_list])
    else:
        if not rows:
            raise ValueError(f"{source.name}: no rows to score")
        paths = [r["path"] for r in rows]
        emb = embed(model, source, paths, seconds, batch_size, device, progress, inputs)
        scores, labels = all_pairs_scores(emb, [r["speaker"] for r in rows])
        first, _ = np.triu_indices(len(rows), k=1)
        speakers = np.array([r["speaker"] for r in rows])[first]
    return {
        "eer": metrics.eer(scores, labels),
        "min_dcf": metrics.min_dcf(scores, labels),
        "scores": scores,
        "labels": labels,
        "speakers": speakers,
        "n_trials": len(labels),
        "embeddings": emb,
        "paths": paths,
    }


def trial_eers(emb: torch.Tensor, paths: list[str], trials: list[tuple[int, str, str]], keep: np.ndarray) -> dict:
    """Cosine-scored EER of ``trials`` over embeddings ``emb`` (rows in the order of ``paths``): on all trials
    (``eer_real``) and on those ``keep`` marks (``eer_real_same_language``)."""
    t = trial_indices(trials, paths)
    s, labels = metrics.cosine_scores(emb[t[:, 1]], emb[t[:, 2]]).numpy(), t[:, 0]
    return {"eer_real": metrics.eer(s, labels), "eer_real_same_language": metrics.eer(s[keep], labels[keep])}
