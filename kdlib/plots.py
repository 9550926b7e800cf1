"""A small, consistent set of figures: loss curves, score histograms, DET curves, spectrograms, log-log axes."""

from __future__ import annotations

import numpy as np

from kdlib.evaluation import metrics


def loss_curves(history, keys=None, ax=None, smooth: int = 10):
    """Each logged loss term against the step, smoothed with a moving average of ``smooth`` steps."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3))[1]
    keys = keys or [k for k in history if k not in ("epoch", "lr")]
    for key in keys:
        y = np.asarray(history[key])
        if smooth > 1 and len(y) > smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(y, label=key)
    ax.set(xlabel="step", ylabel="loss")
    ax.legend()
    return ax


def score_histogram(scores, labels, ax=None, title: str = ""):
    """Target and non-target score distributions."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    labels = np.asarray(labels).astype(bool)
    sns.histplot(scores[labels], ax=ax, stat="density", color="tab:green", label="target", alpha=0.5)
    sns.histplot(scores[~labels], ax=ax, stat="density", color="tab:red", label="non-target", alpha=0.5)
    ax.set(xlabel="cosine score", title=title)
    ax.legend()
    return ax


def det_curve(curves: dict, ax=None):
    """Detection error trade-off curves on normal-deviate axes; ``curves`` maps a name to (scores, labels)."""
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    ax = ax or plt.subplots(figsize=(4.5, 4.5))[1]
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5])
    for name, (scores, labels) in curves.items():
        p_miss, p_fa, _ = metrics.error_rates(scores, labels)
        eps = 1e-4
        ax.plot(
            norm.ppf(np.clip(p_fa, eps, 1 - eps)),
            norm.ppf(np.clip(p_miss, eps, 1 - eps)),
            label=f"{name} (EER {100 * metrics.eer(scores, labels):.1f} %)",
        )
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set(
        xlabel="false alarm rate (%)", ylabel="miss rate (%)", xlim=norm.ppf([5e-4, 0.6]), ylim=norm.ppf([5e-4, 0.6])
    )
    ax.plot(ax.get_xlim(), ax.get_xlim(), ":", color="grey")
    ax.legend(fontsize=8)
    return ax


def spectrogram(feats, ax=None, title: str = "", label: str = "log energy"):
    """A log-mel spectrogram ``(n_mels, frames)`` as an image, with a colour bar named ``label``."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 2.5))[1]
    image = ax.imshow(np.asarray(feats), origin="lower", aspect="auto", cmap="magma")
    ax.figure.colorbar(image, ax=ax, label=label, pad=0.01)
    ax.set(xlabel="frame (10 ms)", ylabel="mel bin", title=title)
    return ax


def probe_curves(reports: dict, axes=None):
    """Layer-wise probe accuracies of SSL teachers (``{name: zoo probe report}``, as the zoo manifest records
    them): one panel per task, each teacher solid, its random twin dotted, MFCC statistics as a grey line."""
    import matplotlib.pyplot as plt

    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(12, 3.2))[1]
    for ax, task in zip(axes, ("speaker", "keyword")):
        for i, (name, m) in enumerate(reports.items()):
            ax.plot(m["teacher"][task], "o-", color=f"C{i}", label=name)
            ax.plot(m["random_twin"][task], ":", color=f"C{i}")
        first = next(iter(reports.values()))
        ax.axhline(first["mfcc"][task][0], color="grey", lw=1.5, ls="--", label="MFCC statistics")
        ax.set_xticks(range(len(first["teacher"][task])))
        ax.set(
            xlabel="layer (0 = CNN output)",
            ylabel="probe accuracy",
            ylim=(0, 1.05),
            title=f"{task} probe (dotted: random twin)",
        )
    axes[0].legend(fontsize=8, loc="lower right")
    return axes


def layer_profiles(profiles: dict, mfcc: dict | None = None, axes=None):
    """Probe accuracy of every hidden state (``{name: layer profile}``, :func:`kdlib.zoo.measures.layer_profile`):
    one panel per task (speaker, keyword, word), the spread over fit/score splits as a band, MFCC frames as a grey
    dashed line. Layer 0 is the stem's output (CNN, or Whisper's convolutions)."""
    import matplotlib.pyplot as plt

    tasks = ("speaker", "keyword", "word")
    axes = axes if axes is not None else plt.subplots(1, len(tasks), figsize=(15, 3.4), sharey=True)[1]
    depth = 0
    for ax, task in zip(axes, tasks):
        for i, (name, profile) in enumerate(profiles.items()):
            mean, std = np.array(profile[task]["mean"]), np.array(profile[task]["std"])
            layers = np.arange(len(mean))
            depth = max(depth, len(mean))
            ax.plot(layers, 100 * mean, "o-", color=f"C{i}", ms=4, label=name)
            ax.fill_between(layers, 100 * (mean - std), 100 * (mean + std), color=f"C{i}", alpha=0.2)
        if mfcc is not None:
            ax.axhline(100 * mfcc[task]["mean"][0], color="grey", lw=1.5, ls="--", label="MFCC frames")
        ax.set_xticks(range(depth))
        ax.set(xlabel="hidden state (0 = stem output)", title=f"{task} probe", ylim=(0, 100))
    axes[0].set_ylabel("accuracy %  (band: ± std over splits)")
    axes[-1].legend(fontsize=8, loc="lower left", bbox_to_anchor=(1.02, 0.0))
    return axes


def log_log(ax, grid: bool = True):
    """Both axes logarithmic, the y tick labels (major and minor, the minor ones smaller) as plain numbers
    (``0.5``, ``2``, ``10``) rather than powers of ten, and a light grid on both tick levels: for an error rate
    against a size or a latency, each spanning decades. Returns ``ax``."""
    from matplotlib import ticker

    ax.set(xscale="log", yscale="log")
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    if grid:
        ax.grid(alpha=0.3, which="both")
    return ax
