"""Attempts at closing the gap between synthetic and real voices, kept with their results (docs/real-voices.md
holds the log). Not part of kdlib: nothing in the notebooks depends on them; run them from the repository root.

    python -m experiments.real_voice_transfer scratch      # an ECAPA-TDNN trained from scratch on GE2E's embeddings
    python -m experiments.real_voice_transfer festival     # the zoo's ECAPA fine-tuned with Festival's voices
    python -m experiments.real_voice_transfer centring     # an analysis: scores with and without centring

The method notebook 00 teaches (a synthetic-trained student matching a real-speech teacher's embeddings) is
:mod:`kdlib.kd.real_teacher`; its real clips come from :mod:`kdlib.data.unlabelled`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdlib import train
from kdlib.data.audio import SAMPLE_RATE, crop
from kdlib.data.datasets import torch_seeded_rng
from kdlib.data.unlabelled import same_language_trials, unlabelled_real_speech
from kdlib.evaluation import metrics
from kdlib.evaluation.verification import trial_eers
from kdlib.kd.losses import embedding_cosine


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
    from kdlib.evaluation.verification import batched

    with torch.no_grad():
        return batched(teacher.eval(), waves, batch_size)


def distil_cached(
    student: nn.Module,
    banks: dict[str, dict[str, torch.Tensor]],
    *,
    steps: int,
    batch: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 2e-5,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> train.History:
    """Train ``student`` under :class:`EmbeddingRegression` for ``steps`` batches of ``batch`` crops drawn
    from ``banks`` (``{name: {"wave": (n, samples), "target": (n, teacher_dim)}}``, one crop length per bank,
    each batch from one bank); AdamW, a linear warm-up over a tenth of the steps (at most 100), cosine decay.
    Returns the loss history; the student is trained in place."""
    from kdlib.data.datasets import BucketBatches

    dims = {b["target"].shape[1] for b in banks.values()}
    if len(dims) != 1:
        raise ValueError(f"every bank needs targets of one width, got {sorted(dims)}")
    batches = BucketBatches(banks, batch, seed=seed)
    wrapper = EmbeddingRegression(student, dims.pop())
    epochs = max(1, -(-steps // len(batches)))
    return train.fit(
        wrapper,
        batches,
        wrapper.loss,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=min(100, steps // 10),
        device=device,
        seed=seed,
        max_steps_per_epoch=-(-steps // epochs),
        progress=progress,
        desc="regress real teacher",
    )


def score(model: nn.Module, prompts, synthetic) -> dict:
    """EER on the real prompts (all trials and same-language trials) and on a synthetic corpus's test trials."""
    from kdlib.evaluation import verification

    real = verification.sv(model, prompts, trials="trials", progress=False)
    keep = same_language_trials(prompts)
    return {
        "eer_real": real["eer"],
        "eer_real_same_language": metrics.eer(real["scores"][keep], real["labels"][keep]),
        "eer_synthetic": verification.sv(model, synthetic, trials="trials", progress=False)["eer"],
    }


def centring_check() -> dict:
    """An evaluation-only analysis of the gap: each SV model's EERs on the real prompts (all trials, same-language
    trials) with plain cosine scoring and with every embedding centred on the mean embedding of the 210 prompts
    first (an unsupervised shift that uses the evaluation set's own statistics: an analysis, not a system)."""
    from kdlib import zoo
    from kdlib.data import corpus, features
    from kdlib.data.corpus import real
    from kdlib.evaluation import verification
    from kdlib.models.ge2e import load_ge2e

    prompts, data = real.load(), corpus.load()
    trials, keep = prompts.trials("trials"), same_language_trials(prompts)
    models = {
        "ecapa": zoo.load("ecapa"),
        "resnet34": zoo.load("resnet34"),
        "mfcc_stats": features.mfcc_baseline(data),
        "ge2e": load_ge2e(),
    }
    out = {}
    for name, model in models.items():
        emb, paths = (
            verification.sv(model.eval(), prompts, trials="trials", progress=False)[k] for k in ("embeddings", "paths")
        )
        out[name] = {
            how: trial_eers(e, paths, trials, keep) for how, e in (("plain", emb), ("centred", emb - emb.mean(0)))
        }
    return out


def scratch_attempt(
    steps: int = 1500,
    channels: int = 256,
    syn_crops: int = 2,
    real_crops: int = 2,
    batch: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    corpus_name: str = "default",
) -> dict:
    """An ECAPA-TDNN trained from scratch on GE2E's embeddings alone (:func:`distil_cached`): ``syn_crops``
    random 2 s crops of every synthetic training sentence and ``real_crops`` random 1 s crops of every KDE word
    clip, GE2E's embedding of each computed once. Returns its EERs (:func:`score`) beside GE2E's and MFCC
    statistics', and what it took."""
    import time

    from kdlib.data import corpus, features
    from kdlib.data.corpus import real
    from kdlib.data.datasets import AudioCache
    from kdlib.models import speaker_model
    from kdlib.models.ge2e import load_ge2e

    start = time.time()
    rng = np.random.default_rng(seed)
    data, prompts, teacher = corpus.load(corpus_name), real.load(), load_ge2e()
    audio = AudioCache(data)
    sentences = data.select("train", "sentence")
    syn = torch.stack(
        [
            torch.from_numpy(crop(audio(r["path"]), 2 * SAMPLE_RATE, rng).copy())
            for r in sentences
            for _ in range(syn_crops)
        ]
    )
    words = unlabelled_real_speech(progress=False)
    real_x = torch.stack(
        [
            torch.from_numpy(np.ascontiguousarray(crop(w, SAMPLE_RATE, rng), dtype=np.float32))
            for w in words
            for _ in range(real_crops)
        ]
    )
    banks = {
        "synthetic 2 s": {"wave": syn, "target": teacher_embeddings(teacher, syn)},
        "real words 1 s": {"wave": real_x, "target": teacher_embeddings(teacher, real_x)},
    }
    prepared = time.time() - start
    torch.manual_seed(seed)
    student = speaker_model("ecapa_tdnn", channels=channels)
    history = distil_cached(student, banks, steps=steps, batch=batch, lr=lr, seed=seed)
    trained = time.time() - start - prepared
    student.eval()
    mfcc = features.mfcc_baseline(data)
    return {
        "student": score(student, prompts, data),
        "ge2e": score(teacher, prompts, data),
        "mfcc_stats": score(mfcc, prompts, data),
        "setup": {
            "steps": steps,
            "channels": channels,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "synthetic_crops": len(syn),
            "real_crops": len(real_x),
            "final_kd": float(np.mean(history["kd"][-50:])),
            "first_kd": float(np.mean(history["kd"][:50])),
            "prepare_s": round(prepared),
            "train_s": round(trained),
            "total_s": round(time.time() - start),
        },
    }


class LabelledWaves(torch.utils.data.Dataset):
    """Random ``seconds``-long crops of in-memory waveforms with integer labels (from torch's generator)."""

    def __init__(self, waves: list[np.ndarray], labels: list[int], seconds: float = 2.0):
        if len(waves) != len(labels):
            raise ValueError(f"{len(waves)} waveforms but {len(labels)} labels")
        self.waves, self.labels, self.samples = waves, labels, int(seconds * SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        wave = crop(self.waves[i], self.samples, torch_seeded_rng())
        return torch.from_numpy(np.ascontiguousarray(wave)), self.labels[i]


class TelephoneCrops(torch.utils.data.Dataset):
    """``(crop, label)`` items of another dataset, each put through a telephone channel
    (:func:`kdlib.data.augment.telephone`) with probability ``p``, drawn from torch's generator."""

    def __init__(self, items: torch.utils.data.Dataset, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability, got {p}")
        self.items, self.p = items, p

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from kdlib.data.augment import telephone

        wave, label = self.items[i]
        rng = torch_seeded_rng()
        if rng.random() < self.p:
            wave = torch.from_numpy(telephone(wave.numpy(), rng))
        return wave, label


def festival_attempt(
    steps: int = 300,
    per_voice: int = 80,
    with_festival: bool = True,
    batch: int = 32,
    lr: float = 5e-4,
    seed: int = 0,
    corpus_name: str = "default",
    warps: tuple[float, ...] = (),
    telephone: float = 0.0,
) -> dict:
    """The zoo's ECAPA-TDNN fine-tuned with AAM-softmax on the corpus's eSpeak NG training speakers plus, with
    ``with_festival``, Festival's real-speaker voices as more classes (``per_voice`` session-augmented
    sentences each, :func:`kdlib.data.corpus.festival.synthesize`); without them, the control: the same fine-tuning
    on eSpeak NG speakers alone. With ``warps``, each voice's clips are frequency-warped into one pseudo-speaker
    per factor (the same number of clips, spread over ``len(warps)`` times as many classes). With ``telephone``,
    that share of the training crops goes through a telephone channel (:class:`TelephoneCrops`). Returns the EERs
    (:func:`score`) and what it took."""
    import time

    from kdlib import zoo
    from kdlib.data import corpus
    from kdlib.data.corpus import festival, real
    from kdlib.data.datasets import SVTrainCrops
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
    history = train.fit(
        student,
        loader,
        student.loss,
        epochs=epochs,
        lr=lr,
        weight_decay=2e-5,
        warmup_steps=min(50, steps // 10),
        seed=seed,
        max_steps_per_epoch=-(-steps // epochs),
        desc="fine-tune" + (" with Festival voices" if with_festival else ""),
    )
    trained = time.time() - start - prepared
    student.eval()
    return {
        "student": score(student, prompts, data),
        "setup": {
            "steps": steps,
            "with_festival": with_festival,
            "warps": list(warps),
            "telephone": telephone,
            "voices": voices,
            "festival_clips": len(parts[1]) if with_festival else 0,
            "classes": n_classes,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "final_loss": float(np.mean(history["loss"][-30:])),
            "prepare_s": round(prepared),
            "train_s": round(trained),
            "total_s": round(time.time() - start),
        },
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m experiments.real_voice_transfer",
        description="attempts at real-voice transfer: scratch (an ECAPA-TDNN trained "
        "from scratch on GE2E's embeddings), festival (the zoo's ECAPA "
        "fine-tuned with Festival's real-speaker voices), festival-control "
        "(the same fine-tuning without them), festival-warped (each "
        "Festival voice warped into 7 pseudo-speakers), centring (an "
        "analysis: the SV models scored with and without centred "
        "embeddings)",
    )
    parser.add_argument("attempt", choices=["scratch", "festival", "festival-control", "festival-warped", "centring"])
    parser.add_argument("--steps", type=int, default=None, help="default: 1500 (scratch), 300 (festival)")
    parser.add_argument("--channels", type=int, default=256, help="scratch: the student's width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--telephone",
        type=float,
        default=0.0,
        help="festival*: the share of training crops put through a telephone channel (8 kHz, GSM)",
    )
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    if args.attempt == "centring":
        result = centring_check()
    elif args.attempt == "scratch":
        result = scratch_attempt(steps=args.steps or 1500, channels=args.channels, seed=args.seed)
    else:
        from kdlib.data.corpus.festival import WARPS

        result = festival_attempt(
            steps=args.steps or 300,
            with_festival=args.attempt != "festival-control",
            seed=args.seed,
            warps=WARPS if args.attempt == "festival-warped" else (),
            telephone=args.telephone,
        )
    print(json.dumps(result, indent=1, default=float))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=float)
