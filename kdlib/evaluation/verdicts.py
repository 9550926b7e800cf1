"""Judging a paper's claim against a run: an effect, its 95 % interval, and one of three outcomes.

Every claim is stated as a **region** that the paper says the effect lies in: "A is better than B" is the
region above 0, "multi-task costs at most 0.5 points" the region above -0.5, "about 76 % smaller, within 2
points" the region from 74 to 78. The effect is always signed so that positive means *A is better than B*
(lower EER, higher accuracy), in percentage points of the metric, or in percent of B's value when
``relative=True``. One rule then gives the outcome for every claim:

- **holds**: the whole 95 % interval lies inside the region;
- **contradicted**: the whole interval lies outside it (the run excludes the paper's effect);
- **inconclusive**: the interval straddles an edge of the region: this run could not tell.

Three ways to get the interval, and each verdict says which it used (``method``):

- :func:`from_trials` (:func:`from_eers` for any function of several systems' EERs, :func:`from_items` for
  means over shared items, such as accuracies from per-clip outcomes): a **bootstrap** that resamples speakers
  (every trial goes with the speaker of its first utterance; the same draw for both systems, since they scored
  the same trials) and, independently for each system, its seeds; the percentile interval of the effect over
  the draws (Efron & Tibshirani 1993). Speakers, not trials, are resampled because the trials of one speaker
  are correlated (the user-specific bootstrap of Poh, Martin & Bengio, IEEE TPAMI 2007);
- :func:`from_seeds`: a **Welch t-interval** over per-seed numbers, when only those exist (probe accuracies,
  task scores); a relative effect goes through the delta method;
- :func:`from_paired_seeds`: a **paired t-interval** over per-seed numbers, when seed *i* of A and seed *i* of B
  share something that moves both (the same batches, the same initial weights): the interval of the mean
  per-seed difference, which leaves out what a seed does to both systems alike (Student 1908; any text on
  paired designs).

``detectable`` is the smallest true effect the run would find with 80 % power at the 5 % level:
``(q_0.975 + q_0.80) · SE`` (t or normal quantiles), in the effect's unit: a paper's effect below it could
not have shown here. A measured value without sampling error (a parameter count, a ratio of sizes) goes
through :func:`from_value`, whose interval is the value itself.

Claims built from several comparisons combine with :func:`all_of` ("beats every baseline") and
:func:`at_least` ("on most tasks"). Records are plain JSON-ready dicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from kdlib.evaluation.metrics import SortedTrials

OUTCOMES = ("holds", "contradicted", "inconclusive")
LEVEL = 0.95
POWER = 0.80
BOOTSTRAP_DRAWS = 1000


@dataclass(frozen=True)
class Region:
    """Where the paper puts the effect: ``low < effect < high`` (either end may be infinite), and how to
    say it."""

    low: float
    high: float
    text: str

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"a claim's region needs low < high, got ({self.low}, {self.high})")


def better(by: float = 0.0) -> Region:
    """A is better than B (by more than ``by``, in the effect's unit)."""
    return Region(by, math.inf, f"effect > {by:g}")


def no_worse(margin: float) -> Region:
    """Non-inferiority: A is worse than B by less than ``margin`` (A may be better)."""
    if margin <= 0:
        raise ValueError(f"a no-loss margin must be positive, got {margin}")
    return Region(-margin, math.inf, f"effect > -{margin:g}")


def about(value: float, tolerance: float) -> Region:
    """The effect is ``value`` within ``tolerance`` either way."""
    if tolerance <= 0:
        raise ValueError(f"a tolerance must be positive, got {tolerance}")
    return Region(value - tolerance, value + tolerance, f"{value:g} ± {tolerance:g}")


def outcome(low: float, high: float, region: Region) -> str:
    """The one rule: holds when ``[low, high]`` lies inside the region, contradicted when it lies wholly
    outside, inconclusive otherwise."""
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if region.low < low and high < region.high:
        return "holds"
    if high <= region.low or low >= region.high:
        return "contradicted"
    return "inconclusive"


def _record(effect, low, high, se, df, region: Region, method: str, unit: str, **more) -> dict:
    q = (
        (stats.t.ppf((1 + LEVEL) / 2, df) + stats.t.ppf(POWER, df))
        if df is not None
        else (stats.norm.ppf((1 + LEVEL) / 2) + stats.norm.ppf(POWER))
    )
    detectable = float(q * se) if se is not None and math.isfinite(se) else math.inf
    rounded = lambda v: float(round(v, 4)) if math.isfinite(v) else None  # None: unbounded (JSON has no inf)
    return {
        "outcome": outcome(low, high, region),
        "effect": rounded(effect),
        "interval": [rounded(low), rounded(high)],
        "detectable": rounded(detectable),
        "region": region.text,
        "unit": unit,
        "method": method,
        **more,
    }


def _signed(a_mean, b_mean, higher_is_better: bool, relative: bool) -> float:
    gain = (a_mean - b_mean) if higher_is_better else (b_mean - a_mean)
    if relative and b_mean == 0:
        return math.nan  # no relative change from 0
    return 100 * (gain / b_mean if relative else gain)


def from_seeds(a, b, region: Region, *, higher_is_better: bool, relative: bool = False) -> dict:
    """Verdict from one number per seed for A and B (fractions: EER, accuracy). Welch t-interval of the
    difference of means, ``100·(mean_A − mean_B)`` signed so that positive favours A; ``relative``: in percent
    of B's mean, by the delta method. A system with one seed borrows the other's seed variance; one seed
    on both sides gives no interval (inconclusive)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"from_seeds needs finite numbers for both systems, got {a.tolist()} and {b.tolist()}")
    ma, mb = a.mean(), b.mean()
    effect = _signed(ma, mb, higher_is_better, relative)
    unit = "% of B" if relative else "points"
    if len(a) < 2 and len(b) < 2 or not math.isfinite(effect):
        why = "one run each" if math.isfinite(effect) else "a relative change from 0"
        return _record(
            effect, -math.inf, math.inf, math.inf, None, region, f"{why}: no interval", unit, seeds=[len(a), len(b)]
        )
    va = a.var(ddof=1) if len(a) > 1 else b.var(ddof=1)
    vb = b.var(ddof=1) if len(b) > 1 else a.var(ddof=1)
    # variance of each mean, carried to the effect's scale (delta method for mean_A / mean_B)
    ca, cb = va / len(a), vb / len(b)
    if relative:
        ca, cb = ca / mb**2, cb * ma**2 / mb**4
    ca, cb = 100**2 * ca, 100**2 * cb
    se = math.sqrt(ca + cb)
    if len(a) > 1 and len(b) > 1:
        df = (ca + cb) ** 2 / (ca**2 / (len(a) - 1) + cb**2 / (len(b) - 1)) if se > 0 else len(a) + len(b) - 2
        method = f"Welch t-interval over seeds ({len(a)} and {len(b)})"
    else:
        df = max(len(a), len(b)) - 1
        method = f"t-interval over seeds ({len(a)} and {len(b)}; the single run takes the other's seed spread)"
    half = stats.t.ppf((1 + LEVEL) / 2, df) * se
    return _record(effect, effect - half, effect + half, se, df, region, method, unit, seeds=[len(a), len(b)])


def from_paired_seeds(a, b, region: Region, *, higher_is_better: bool) -> dict:
    """Verdict from one number per seed for A and B where ``a[i]`` and ``b[i]`` share seed ``i`` (fractions).
    Effect: the mean of ``d_i = 100·(a_i − b_i)``, signed so that positive favours A; interval: the t-interval
    ``mean(d) ± t_{n−1} · sd(d) / √n``. It is narrower than :func:`from_seeds`'s Welch interval when the pairs
    move together: ``var(d) = var(a) + var(b) − 2·cov(a, b)``, while it has n − 1 degrees of freedom against
    Welch's up to 2n − 2. The record keeps ``correlation``, Pearson's r of a and b over the seeds (None where
    either does not vary). One pair gives no interval (inconclusive)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(
            f"from_paired_seeds needs one number per seed for both, paired: got {a.tolist()} and {b.tolist()}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"from_paired_seeds needs finite numbers, got {a.tolist()} and {b.tolist()}")
    d = 100 * ((a - b) if higher_is_better else (b - a))
    effect, n = float(d.mean()), len(d)
    r = float(np.corrcoef(a, b)[0, 1]) if n > 1 and a.std() > 0 and b.std() > 0 else None
    more = {"seeds": [n, n], "correlation": None if r is None else round(r, 4)}
    if n < 2:
        return _record(effect, -math.inf, math.inf, math.inf, None, region, "one pair: no interval", "points", **more)
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = stats.t.ppf((1 + LEVEL) / 2, n - 1) * se
    method = f"paired t-interval over seeds ({n} pairs)"
    return _record(effect, effect - half, effect + half, se, n - 1, region, method, "points", **more)


def _bootstrap(groups, effect_of_draw, draws: int, seed: int) -> tuple[np.ndarray, int]:
    """Up to ``draws`` effects, each from ``effect_of_draw(weights, rng)`` where ``weights`` counts how often a
    resampling of the groups (speakers) with replacement drew each item's group. A draw the statistic cannot
    use (it raises ``ValueError`` or ``ZeroDivisionError``, or gives NaN: no target trial, an EER of 0 to
    divide by) is drawn again; after ``10·draws`` such draws the bootstrap gives up with what it has."""
    names, index = np.unique(np.asarray(groups), return_inverse=True)
    rng = np.random.default_rng(seed)
    effects, failed = [], 0
    while len(effects) < draws and failed < 10 * draws:
        weights = np.bincount(rng.integers(0, len(names), len(names)), minlength=len(names))[index].astype(float)
        try:
            effect = float(effect_of_draw(weights, rng))
        except (ValueError, ZeroDivisionError):
            effect = math.nan
        if math.isfinite(effect):
            effects.append(effect)
        else:
            failed += 1
    return np.asarray(effects), len(names)


def _point(statistic, *args) -> float:
    """The statistic on the whole run; NaN where it is undefined (a division by an EER of 0)."""
    try:
        return float(statistic(*args))
    except ZeroDivisionError:
        return math.nan


def _from_draws(effect: float, effects: np.ndarray, region: Region, method: str, unit: str, **more) -> dict:
    if len(effects) < 2 or not math.isfinite(effect):
        return _record(
            effect,
            -math.inf,
            math.inf,
            math.inf,
            None,
            region,
            method + "; the statistic is undefined on this run (no interval)",
            unit,
            **more,
        )
    low, high = np.quantile(effects, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return _record(effect, float(low), float(high), float(effects.std(ddof=1)), None, region, method, unit, **more)


def _as_seeds(scores) -> list[np.ndarray]:
    return [np.asarray(scores, dtype=float)] if np.ndim(scores) == 1 else [np.asarray(s, dtype=float) for s in scores]


def from_eers(
    systems: dict,
    labels,
    speakers,
    statistic,
    region: Region,
    *,
    unit: str = "points",
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> dict:
    """Verdict on any function of several systems' EERs on the same trials: ``systems`` maps a name to its
    score arrays (one per seed, or one array); ``statistic`` maps ``{name: mean EER over seeds}`` (fractions)
    to the effect, signed so that positive favours the paper. Percentile bootstrap over speakers (one draw
    shared by every system) and, per system, its seeds."""
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    seeds = {name: _as_seeds(scores) for name, scores in systems.items()}
    for name, arrays in seeds.items():
        bad = [len(a) for a in arrays if len(a) != len(labels)]
        if bad:
            raise ValueError(f"system {name}: score arrays of length {bad}, the trials number {len(labels)}")
    if len(speakers) != len(labels):
        raise ValueError(f"{len(speakers)} speakers for {len(labels)} trials")
    presorted = {name: [SortedTrials(a, labels) for a in arrays] for name, arrays in seeds.items()}
    effect = _point(statistic, {name: float(np.mean([run.eer() for run in runs])) for name, runs in presorted.items()})

    def one_draw(weights, rng):
        return statistic(
            {
                name: float(np.mean([runs[i].eer(weights) for i in rng.integers(0, len(runs), len(runs))]))
                for name, runs in presorted.items()
            }
        )

    effects, n_speakers = _bootstrap(speakers, one_draw, draws, seed)
    counts = [len(a) for a in seeds.values()]
    runs = "one run per system" if max(counts) == 1 else "and seeds: " + "/".join(map(str, counts))
    method = f"bootstrap over {n_speakers} speakers ({runs}), {draws} draws, {len(labels)} trials"
    return _from_draws(effect, effects, region, method, unit, seeds=counts, trials=len(labels))


def from_trials(
    a_scores,
    b_scores,
    labels,
    speakers,
    region: Region,
    *,
    relative: bool = False,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> dict:
    """Verdict on EER from trial scores: ``a_scores``/``b_scores`` are one score array per seed (or a single
    array), every array over the same trials (``labels``: 1 = target; ``speakers``: the speaker each trial
    belongs to, e.g. its first utterance's). Effect: ``100·(EER_B − EER_A)`` of the mean EER over seeds
    (positive favours A; ``relative``: in percent of B's EER). Interval: :func:`from_eers`'s bootstrap."""
    return from_eers(
        {"A": a_scores, "B": b_scores},
        labels,
        speakers,
        lambda e: _signed(e["A"], e["B"], False, relative),
        region,
        unit="% of B" if relative else "points",
        draws=draws,
        seed=seed,
    )


def from_items(
    a_values,
    b_values,
    groups,
    region: Region,
    *,
    higher_is_better: bool = True,
    relative: bool = False,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> dict:
    """Verdict on a mean over items that A and B share (per-clip correctness 0/1 for an accuracy, a deletion
    area per clip), ``groups`` the speaker (or other cluster) of each item. Effect: ``100·(mean_A − mean_B)``
    signed so that positive favours A (``relative``: in percent of B's mean); interval: percentile
    bootstrap over the groups, one draw shared by A and B."""
    a, b = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    if not len(a) == len(b) == len(groups):
        raise ValueError(f"values of A ({len(a)}) and B ({len(b)}) and their groups ({len(groups)}) differ in length")

    def effect_of(weights, rng=None):
        total = weights.sum()
        return _signed((weights @ a) / total, (weights @ b) / total, higher_is_better, relative)

    effects, n_groups = _bootstrap(groups, effect_of, draws, seed)
    method = f"bootstrap over {n_groups} groups of {len(a)} items, {draws} draws"
    return _from_draws(
        effect_of(np.ones(len(a))), effects, region, method, "% of B" if relative else "points", items=len(a)
    )


def from_value(value: float, region: Region, unit: str, method: str = "a measured value, no sampling error") -> dict:
    """Verdict on a number without sampling error (a parameter count, a size ratio): the interval is the
    value itself, so the claim holds or is contradicted."""
    value = float(value)
    return _record(value, value, value, 0.0, None, region, method, unit)


def all_of(verdicts: list[dict]) -> dict:
    """A claim that needs every part: holds when all hold, contradicted when any part is, else inconclusive."""
    return at_least(verdicts, len(verdicts))


def at_least(verdicts: list[dict], k: int) -> dict:
    """A claim that needs ``k`` of the parts: holds when at least ``k`` hold, contradicted when so many are
    contradicted that ``k`` can no longer hold, else inconclusive. The parts are kept in ``parts``."""
    if not 1 <= k <= len(verdicts):
        raise ValueError(f"at_least needs 1 <= k <= {len(verdicts)} parts, got k={k}")
    counts = count(verdicts)
    result = (
        "holds"
        if counts["holds"] >= k
        else "contradicted"
        if counts["contradicted"] > len(verdicts) - k
        else "inconclusive"
    )
    return {"outcome": result, "needs": f"{k} of {len(verdicts)}", "parts": verdicts}


def describe(verdict: dict) -> str:
    """One line for a table: ``+1.70 points [-0.9, +4.3], detectable 3.6`` or, for combined claims, the count
    of each outcome among the parts."""
    if "parts" in verdict:
        return f"needs {verdict['needs']}: " + ", ".join(f"{n} {o}" for o, n in count(verdict["parts"]).items() if n)
    low, high = verdict["interval"]
    unit = verdict["unit"]
    if verdict["effect"] is None:
        return f"undefined ({verdict['method']})"
    if low is None or high is None:
        return f"{verdict['effect']:+.2f} {unit} ({verdict['method']})"
    if low == high:
        return f"{verdict['effect']:+.2f} {unit} (measured)"
    return f"{verdict['effect']:+.2f} {unit} [{low:+.2f}, {high:+.2f}], detectable {verdict['detectable']:.2f}"


def count(claims: list[dict]) -> dict:
    """How many claims hold, are contradicted and are inconclusive."""
    return {o: sum(c.get("outcome") == o for c in claims) for o in OUTCOMES}
