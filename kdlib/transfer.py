"""Narrowing the gap between synthetic and real voices: distil a speaker encoder trained on real speech into
a student trained on the synthetic corpus.

The student (e.g. the zoo's ECAPA-TDNN) keeps its AAM-softmax objective on the synthetic training speakers
and, at the same time, matches the teacher's embeddings (embedding-level KD, Wang et al., ICASSP 2019)
through a linear map ``P`` from its embedding size to the teacher's::

    L = L_AAM(e_S(x_syn), y) + λ · [1 − cos(P e_S(x), e_T(x))]   averaged over the crops x of the batch

where ``x`` is the batch's synthetic crops and, optionally, crops of real speech without speaker labels; with
labels for the real crops (:func:`language_voices`: one pseudo-speaker per language folder), a second
AAM-softmax term ``L_AAM(e_S(x_real), y_real)`` joins the sum.
The real clips come from packages whose voices are not in the real-speech evaluation set
(:data:`UNLABELLED`): KDE's children's games ship words and letters recorded by volunteers in many languages.
``P`` is dropped after training; the shipped student scores with its own embedding.

The other attempts (``python -m kdlib.transfer --help``): a student trained from scratch on the teacher's
embeddings alone (:func:`scratch_attempt`), the zoo's ECAPA fine-tuned with Festival's real-speaker voices as more
classes, plain, frequency-warped or through a telephone channel (:func:`festival_attempt`), and an analysis of the
gap by centring (:func:`centring_check`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdlib import metrics, train
from kdlib.audio import SAMPLE_RATE, crop
from kdlib.datasets import _rng
from kdlib.distill import embedding_cosine

UNLABELLED = {
    "ktuberling-data": {"prefix": "usr/share/ktuberling/sounds/", "licence": "GPL-2+",
                        "what": "object names read by volunteers, about 25 languages"},
    "klettres-data": {"prefix": "usr/share/klettres/", "licence": "GPL-2+",
                      "what": "letters and syllables read by volunteers, about 20 languages"},
}
"""Real speech without speaker labels, for distillation only (never for evaluation)."""


def unlabelled_real_speech(debs=None, min_seconds: float = 0.4, progress: bool = True,
                           with_languages: bool = False):
    """The waveforms (16 kHz) of every ``.ogg``/``.wav`` clip of at least ``min_seconds`` in the packages
    of :data:`UNLABELLED`, downloaded with ``apt-get download`` like the evaluation set's. With
    ``with_languages``, also each clip's language folder (``fr``, ``en_GB``, ``sr`` for every Serbian script):
    the closest thing to a speaker label these packages record (see :func:`language_voices`)."""
    from kdlib.corpus import real

    found = real.fetch(sorted(UNLABELLED), real.debs_dir() if debs is None else debs)
    waves, languages = [], []
    for package, spec in UNLABELLED.items():
        files = real.deb_files(found[package], spec["prefix"])
        kept = 0
        for name in sorted(files):
            if not name.endswith((".ogg", ".wav")):
                continue
            x = real.decode(files[name], f"{found[package].name}:{name}")
            if len(x) >= min_seconds * SAMPLE_RATE and np.abs(x).max() > 1e-3:
                waves.append(x)
                languages.append(name[len(spec["prefix"]):].split("/")[0].split("@")[0])
                kept += 1
        if progress:
            print(f"{package}: {kept} clips ({spec['what']}; {spec['licence']})")
    return (waves, languages) if with_languages else waves


def language_voices(waves: list[np.ndarray], languages: list[str], min_clips: int = 40):
    """Pseudo-speaker labels for the KDE clips: one class per language folder with at least ``min_clips`` clips
    (both packages' folders of a language merged). A guess: each language was read by one or a few volunteers,
    and the packages do not say who. Returns ``(waves, labels, names)`` of the kept clips."""
    counts = {lang: languages.count(lang) for lang in sorted(set(languages))}
    names = [lang for lang, n in counts.items() if n >= min_clips]
    index = {lang: i for i, lang in enumerate(names)}
    kept = [(w, index[lang]) for w, lang in zip(waves, languages) if lang in index]
    return [w for w, _ in kept], [label for _, label in kept], names


class _RealCrops:
    """``n`` random ``samples``-long crops of real waveforms, drawn from torch's generator (seeded by fit), and
    their labels (None without ``labels``)."""

    def __init__(self, waves: list[np.ndarray], samples: int, labels: list[int] | None = None):
        self.waves, self.samples, self.labels = waves, samples, labels

    def __call__(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(0, len(self.waves), (n,)).tolist()
        rng = _rng()
        x = torch.stack([torch.from_numpy(np.ascontiguousarray(crop(self.waves[i], self.samples, rng)))
                         for i in idx])
        return x, (torch.tensor([self.labels[i] for i in idx]) if self.labels is not None else None)


class TeacherMatching(nn.Module):
    """Student plus the map ``P`` onto the teacher's embedding space; ``loss`` is the objective above."""

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher_dim: int, kd_weight: float = 1.0,
                 real_crops: _RealCrops | None = None):
        super().__init__()
        self.student, self.kd_weight, self.real_crops = student, kd_weight, real_crops
        self.project = nn.Linear(student.embed_dim, teacher_dim)
        self.teacher = [teacher.eval()]  # a list: not a submodule, so not trained or saved
        self.real_head = None  # with labelled real crops: AAM-softmax over their classes, dropped after training
        if real_crops is not None and real_crops.labels is not None:
            from kdlib.models.heads import AAMSoftmax

            self.real_head = AAMSoftmax(student.embed_dim, max(real_crops.labels) + 1, margin=student.head.margin,
                                        scale=student.head.scale)

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        x, label = batch
        emb = self.student(x)
        aam, logits = self.student.head(emb, label)
        terms = {"aam": aam}
        kd_inputs, kd_student = [x], [emb]
        if self.real_crops is not None:
            real_x, real_y = self.real_crops(len(x))
            real_x = real_x.to(x.device)
            kd_inputs.append(real_x)
            kd_student.append(self.student(real_x))
            if self.real_head is not None:
                terms["aam_real"] = self.real_head(kd_student[-1], real_y.to(x.device))[0]
        teacher = self.teacher[0].to(x.device)
        with torch.no_grad():
            targets = torch.cat([teacher(xi) for xi in kd_inputs])
        kd = embedding_cosine(self.project(torch.cat(kd_student)), targets)
        terms["kd"] = kd
        total = aam + self.kd_weight * kd + terms.get("aam_real", 0.0)
        return total, {**terms, "accuracy": metrics.accuracy(logits, label)}


def distil_real_teacher(student, teacher, loader, *, steps: int, teacher_dim: int = 256, kd_weight: float = 1.0,
                        real_waves: list[np.ndarray] | None = None, real_labels: list[int] | None = None,
                        real_seconds: float = 1.0, lr: float = 5e-4,
                        weight_decay: float = 2e-5, seed: int = 0, device: str | None = None,
                        progress: bool = True):
    """Train ``student`` (a :class:`kdlib.models.SpeakerModel` with its AAM head) for ``steps`` batches of
    ``loader`` (synthetic ``(crops, speaker)``) under the objective above; ``real_waves`` adds as many real
    crops of ``real_seconds`` per step, and ``real_labels`` (e.g. :func:`language_voices`) an AAM-softmax term
    over their classes: ``L + L_AAM(e_S(x_real), y_real)``. Returns the loss history; the student is trained
    in place."""
    if real_labels is not None and (not real_waves or len(real_labels) != len(real_waves)):
        raise ValueError(f"real_labels: {len(real_labels)} labels for {len(real_waves or [])} real waveforms")
    real_crops = _RealCrops(real_waves, int(real_seconds * SAMPLE_RATE), real_labels) if real_waves else None
    wrapper = TeacherMatching(student, teacher, teacher_dim, kd_weight, real_crops)
    epochs = max(1, -(-steps // len(loader)))
    return train.fit(wrapper, loader, wrapper.loss, epochs=epochs, lr=lr, weight_decay=weight_decay,
                     warmup_steps=min(50, steps // 10), device=device, seed=seed,
                     max_steps_per_epoch=-(-steps // epochs), progress=progress, desc="distil real teacher")


class EmbeddingRegression(nn.Module):
    """A student that learns the teacher's embedding space alone, with no speaker labels at all:

        L = 1 − cos(P e_S(x), e_T(x))   averaged over the crops x of the batch

    with the teacher's embeddings ``e_T(x)`` computed once per crop (:func:`teacher_embeddings`), so a step
    costs the student alone. Unlike :class:`TeacherMatching`, nothing ties the student to the synthetic
    speakers' identities: whatever separates voices, it learns from the teacher."""

    def __init__(self, student: nn.Module, teacher_dim: int):
        super().__init__()
        self.student, self.project = student, nn.Linear(student.embed_dim, teacher_dim)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        kd = embedding_cosine(self.project(self.student(batch["wave"])), batch["target"])
        return kd, {"kd": kd}


def teacher_embeddings(teacher: nn.Module, waves: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The teacher's embeddings of fixed crops ``(n, samples)``, once, on the CPU: ``(n, teacher_dim)``."""
    from kdlib.evaluate import batched

    with torch.no_grad():
        return batched(teacher.eval(), waves, batch_size)


def distil_cached(student: nn.Module, banks: dict[str, dict[str, torch.Tensor]], *, steps: int, batch: int = 32,
                  lr: float = 2e-3, weight_decay: float = 2e-5, seed: int = 0, device: str | None = None,
                  progress: bool = True) -> train.History:
    """Train ``student`` under :class:`EmbeddingRegression` for ``steps`` batches of ``batch`` crops drawn
    from ``banks`` (``{name: {"wave": (n, samples), "target": (n, teacher_dim)}}``, one crop length per bank,
    each batch from one bank); AdamW, a linear warm-up over a tenth of the steps (at most 100), cosine decay.
    Returns the loss history; the student is trained in place."""
    from kdlib.datasets import BucketBatches

    dims = {b["target"].shape[1] for b in banks.values()}
    if len(dims) != 1:
        raise ValueError(f"every bank needs targets of one width, got {sorted(dims)}")
    batches = BucketBatches(banks, batch, seed=seed)
    wrapper = EmbeddingRegression(student, dims.pop())
    epochs = max(1, -(-steps // len(batches)))
    return train.fit(wrapper, batches, wrapper.loss, epochs=epochs, lr=lr, weight_decay=weight_decay,
                     warmup_steps=min(100, steps // 10), device=device, seed=seed,
                     max_steps_per_epoch=-(-steps // epochs), progress=progress, desc="regress real teacher")


def same_language_trials(source) -> np.ndarray:
    """Which trials of a real-speech set's ``"trials"`` pair two clips of one language (en, es, fr, ...)."""
    lang = {r["path"]: r["language"][:2] for r in source.manifest}
    return np.array([lang[a] == lang[b] for _, a, b in source.trials("trials")])


def score(model: nn.Module, prompts, synthetic) -> dict:
    """EER on the real prompts (all trials and same-language trials) and on a synthetic corpus's test trials."""
    from kdlib import evaluate

    real = evaluate.sv(model, prompts, trials="trials", progress=False)
    keep = same_language_trials(prompts)
    return {"eer_real": real["eer"], "eer_real_same_language": metrics.eer(real["scores"][keep], real["labels"][keep]),
            "eer_synthetic": evaluate.sv(model, synthetic, trials="trials", progress=False)["eer"]}


def centring_check() -> dict:
    """An evaluation-only analysis of the gap: each SV model's EERs on the real prompts (all trials, same-language
    trials) with plain cosine scoring and with every embedding centred on the mean embedding of the 210 prompts
    first (an unsupervised shift that uses the evaluation set's own statistics: an analysis, not a system)."""
    from kdlib import corpus, evaluate, features, zoo
    from kdlib.corpus import real
    from kdlib.models.ge2e import load_ge2e

    prompts, data = real.load(), corpus.load()
    trials, keep = prompts.trials("trials"), same_language_trials(prompts)
    models = {"ecapa": zoo.load("ecapa"), "resnet34": zoo.load("resnet34"),
              "mfcc_stats": features.mfcc_baseline(data), "ge2e": load_ge2e()}
    out = {}
    for name, model in models.items():
        emb, paths = (evaluate.sv(model.eval(), prompts, trials="trials", progress=False)[k]
                      for k in ("embeddings", "paths"))
        out[name] = {how: trial_eers(e, paths, trials, keep) for how, e in (("plain", emb),
                                                                             ("centred", emb - emb.mean(0)))}
    return out


def trial_eers(emb: torch.Tensor, paths: list[str], trials: list[tuple[int, str, str]], keep: np.ndarray) -> dict:
    """Cosine-scored EER of ``trials`` over embeddings ``emb`` (rows in the order of ``paths``): on all trials
    (``eer_real``) and on those ``keep`` marks (``eer_real_same_language``)."""
    from kdlib.evaluate import trial_indices

    t = trial_indices(trials, paths)
    s, labels = metrics.cosine_scores(emb[t[:, 1]], emb[t[:, 2]]).numpy(), t[:, 0]
    return {"eer_real": metrics.eer(s, labels), "eer_real_same_language": metrics.eer(s[keep], labels[keep])}


def scratch_attempt(steps: int = 1500, channels: int = 256, syn_crops: int = 2, real_crops: int = 2,
                    batch: int = 32, lr: float = 2e-3, seed: int = 0, corpus_name: str = "default") -> dict:
    """An ECAPA-TDNN trained from scratch on GE2E's embeddings alone (:func:`distil_cached`): ``syn_crops``
    random 2 s crops of every synthetic training sentence and ``real_crops`` random 1 s crops of every KDE word
    clip, GE2E's embedding of each computed once. Returns its EERs (:func:`score`) beside GE2E's and MFCC
    statistics', and what it took."""
    import time

    from kdlib import corpus, features
    from kdlib.corpus import real
    from kdlib.datasets import AudioCache
    from kdlib.models import speaker_model
    from kdlib.models.ge2e import load_ge2e

    start = time.time()
    rng = np.random.default_rng(seed)
    data, prompts, teacher = corpus.load(corpus_name), real.load(), load_ge2e()
    audio = AudioCache(data)
    sentences = data.select("train", "sentence")
    syn = torch.stack([torch.from_numpy(crop(audio(r["path"]), 2 * SAMPLE_RATE, rng).copy())
                       for r in sentences for _ in range(syn_crops)])
    words = unlabelled_real_speech(progress=False)
    real_x = torch.stack([torch.from_numpy(np.ascontiguousarray(crop(w, SAMPLE_RATE, rng), dtype=np.float32))
                          for w in words for _ in range(real_crops)])
    banks = {"synthetic 2 s": {"wave": syn, "target": teacher_embeddings(teacher, syn)},
             "real words 1 s": {"wave": real_x, "target": teacher_embeddings(teacher, real_x)}}
    prepared = time.time() - start
    torch.manual_seed(seed)
    student = speaker_model("ecapa_tdnn", channels=channels)
    history = distil_cached(student, banks, steps=steps, batch=batch, lr=lr, seed=seed)
    trained = time.time() - start - prepared
    student.eval()
    mfcc = features.mfcc_baseline(data)
    return {"student": score(student, prompts, data), "ge2e": score(teacher, prompts, data),
            "mfcc_stats": score(mfcc, prompts, data),
            "setup": {"steps": steps, "channels": channels, "batch": batch, "lr": lr, "seed": seed,
                      "synthetic_crops": len(syn), "real_crops": len(real_x),
                      "final_kd": float(np.mean(history["kd"][-50:])), "first_kd": float(np.mean(history["kd"][:50])),
                      "prepare_s": round(prepared), "train_s": round(trained), "total_s": round(time.time() - start)}}


class LabelledWaves(torch.utils.data.Dataset):
    """Random ``seconds``-long crops of in-memory waveforms with integer labels (from torch's generator)."""

    def __init__(self, waves: list[np.ndarray], labels: list[int], seconds: float = 2.0):
        if len(waves) != len(labels):
            raise ValueError(f"{len(waves)} waveforms but {len(labels)} labels")
        self.waves, self.labels, self.samples = waves, labels, int(seconds * SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.ascontiguousarray(crop(self.waves[i], self.samples, _rng()))), self.labels[i]


class TelephoneCrops(torch.utils.data.Dataset):
    """``(crop, label)`` items of another dataset, each put through a telephone channel
    (:func:`kdlib.augment.telephone`) with probability ``p``, drawn from torch's generator."""

    def __init__(self, items: torch.utils.data.Dataset, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability, got {p}")
        self.items, self.p = items, p

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from kdlib.augment import telephone

        wave, label = self.items[i]
        rng = _rng()
        if rng.random() < self.p:
            wave = torch.from_numpy(telephone(wave.numpy(), rng))
        return wave, label


def festival_attempt(steps: int = 300, per_voice: int = 80, with_festival: bool = True, batch: int = 32,
                     lr: float = 5e-4, seed: int = 0, corpus_name: str = "default", warps: tuple[float, ...] = (),
                     telephone: float = 0.0) -> dict:
    """The zoo's ECAPA-TDNN fine-tuned with AAM-softmax on the corpus's eSpeak NG training speakers plus, with
    ``with_festival``, Festival's real-speaker voices as more classes (``per_voice`` session-augmented
    sentences each, :func:`kdlib.corpus.festival.synthesize`); without them, the control: the same fine-tuning
    on eSpeak NG speakers alone. With ``warps``, each voice's clips are frequency-warped into one pseudo-speaker
    per factor (the same number of clips, spread over ``len(warps)`` times as many classes). With ``telephone``,
    that share of the training crops goes through a telephone channel (:class:`TelephoneCrops`). Returns the EERs
    (:func:`score`) and what it took."""
    import time

    from kdlib import corpus, zoo
    from kdlib.corpus import festival, real
    from kdlib.datasets import SVTrainCrops
    from kdlib.models.heads import AAMSoftmax

    start = time.time()
    data, prompts = corpus.load(corpus_name), real.load()
    synthetic = SVTrainCrops(data, seconds=2.0)
    parts, n_classes, voices = [synthetic], synthetic.n_speakers, []
    if with_festival:
        waves, names = festival.synthesize(per_voice=per_voice, seed=seed, warps=warps)
        voices = sorted(set(names))
        parts.append(LabelledWaves(waves, [n_classes + voices.index(n) for n in names]))
        n_classes += len(voices)
    prepared = time.time() - start
    items = torch.utils.data.ConcatDataset(parts)
    if telephone:
        items = TelephoneCrops(items, telephone)
    loader = torch.utils.data.DataLoader(items, batch_size=batch, shuffle=True, drop_last=True)
    torch.manual_seed(seed)
    student = zoo.load("ecapa")
    student.head = AAMSoftmax(student.embed_dim, n_classes, margin=0.2, scale=30.0)
    epochs = max(1, -(-steps // len(loader)))
    history = train.fit(student, loader, student.loss, epochs=epochs, lr=lr, weight_decay=2e-5,
                        warmup_steps=min(50, steps // 10), seed=seed, max_steps_per_epoch=-(-steps // epochs),
                        desc="fine-tune" + (" with Festival voices" if with_festival else ""))
    trained = time.time() - start - prepared
    student.eval()
    return {"student": score(student, prompts, data),
            "setup": {"steps": steps, "with_festival": with_festival, "warps": list(warps), "telephone": telephone,
                      "voices": voices, "festival_clips": len(parts[1]) if with_festival else 0, "classes": n_classes,
                      "batch": batch, "lr": lr, "seed": seed, "final_loss": float(np.mean(history["loss"][-30:])),
                      "prepare_s": round(prepared), "train_s": round(trained), "total_s": round(time.time() - start)}}


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m kdlib.transfer",
                                     description="attempts at real-voice transfer: scratch (an ECAPA-TDNN trained "
                                                 "from scratch on GE2E's embeddings), festival (the zoo's ECAPA "
                                                 "fine-tuned with Festival's real-speaker voices), festival-control "
                                                 "(the same fine-tuning without them), festival-warped (each "
                                                 "Festival voice warped into 7 pseudo-speakers), centring (an "
                                                 "analysis: the SV models scored with and without centred "
                                                 "embeddings)")
    parser.add_argument("attempt", choices=["scratch", "festival", "festival-control", "festival-warped",
                                            "centring"])
    parser.add_argument("--steps", type=int, default=None, help="default: 1500 (scratch), 300 (festival)")
    parser.add_argument("--channels", type=int, default=256, help="scratch: the student's width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--telephone", type=float, default=0.0,
                        help="festival*: the share of training crops put through a telephone channel (8 kHz, GSM)")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    if args.attempt == "centring":
        result = centring_check()
    elif args.attempt == "scratch":
        result = scratch_attempt(steps=args.steps or 1500, channels=args.channels, seed=args.seed)
    else:
        from kdlib.corpus.festival import WARPS

        result = festival_attempt(steps=args.steps or 300, with_festival=args.attempt != "festival-control",
                                  seed=args.seed, warps=WARPS if args.attempt == "festival-warped" else (),
                                  telephone=args.telephone)
    print(json.dumps(result, indent=1, default=float))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=float)
