"""tiny_stats.py: the statistics behind train_tiny.py's intervals, as plain numpy functions.

Taken out of train_tiny.py (which is the RL tutorial) and used by tiny_lab.py's report; it knows
nothing of the task, the model or torch. A quantity is an (S, P) array: S training seeds x P
held-out problems (one seed: S = 1), one value per seed and problem (pass@k, greedy accuracy,
the area under a learning curve, or a paired difference of two of them).

    interval(x, draws)        mean and 95% percentile-bootstrap interval over seeds x problems
    difference(x, y, draws)   the same for x - y, resampled pairwise (one set of draws)
    variance_parts(x)         how the seed-to-seed variance splits (training, evaluation, problems)
    seeds_needed(parts, h)    seeds for an interval of +-h
    frontier_height(...)      the fixed-temperature frontier of the inference-time experiment
    curve_area(values, steps) the area under a learning curve, per seed and problem
"""
from __future__ import annotations

import math

import numpy as np


def bootstrap_draws(S: int, P: int, B: int, seed: int = 0):
    """B resamplings of S seeds and of P problems, as counts: (B, S) and (B, P).

    Seeds and problems are drawn independently (the 'pigeonhole' bootstrap of a crossed
    design: every seed is evaluated on the same problems), and one set of draws serves every
    quantity of a report, so that a difference of two schedules is resampled pairwise. Each
    resample holds S - 1 seeds, not S: the bootstrap variance of a mean of S values is then
    s^2 / S, where S draws give (S - 1) / S of it, too narrow an interval with few seeds."""
    rng = np.random.default_rng(seed)
    return (rng.multinomial(max(S - 1, 1), np.full(S, 1 / S), size=B),
            rng.multinomial(P, np.full(P, 1 / P), size=B))


def boot_means(x: np.ndarray, draws) -> np.ndarray:
    """The mean of x (S, P) under each of the B resamplings: (B,)."""
    ws, wp = draws
    return ((ws @ x) * wp).sum(1) / (ws.sum(1) * wp.sum(1))


def interval(x: np.ndarray, draws) -> dict:
    """Mean of x (S, P) and its 95% percentile-bootstrap interval."""
    lo, hi = np.percentile(boot_means(x, draws), [2.5, 97.5])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi)}


def difference(x: np.ndarray, y: np.ndarray, draws) -> dict:
    """Mean of x - y and its interval, paired: every resample takes the same seeds and problems
    for both, so what the two share (a hard problem, a lucky seed of the data order) cancels."""
    return interval(x - y, draws)


def variance_parts(x: np.ndarray) -> dict:
    """Two-way random-effects split of x (S seeds, P problems): x_sp = m + a_s + b_p + e_sp.

    training = var(a): what a perfect evaluation would still see from seed to seed;
    evaluation = var(e) / P: the rest of the seed-to-seed variance of a run's mean (samples,
        and how a seed's policy happens to do on these particular problems), which more
        held-out problems and samples shrink;
    problems = var(b) / P: the uncertainty of the held-out set shared by all seeds.
    The variance of an S-seed mean is training / S + evaluation / S + problems. Unbiased
    (ANOVA mean squares with S - 1 and P - 1 degrees of freedom): with 2-4 seeds a divisor of S
    would understate the training part by a quarter to a half."""
    S, P = x.shape
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    ms_e = float((resid ** 2).sum() / ((S - 1) * (P - 1)))
    ms_s = float(P * x.mean(1).var(ddof=1))
    ms_p = float(S * x.mean(0).var(ddof=1))
    return {"training": max(ms_s - ms_e, 0.0) / P, "evaluation": ms_e / P,
            "problems": max(ms_p - ms_e, 0.0) / (S * P)}


def seeds_needed(parts: dict, half_width: float) -> float:
    """Seeds for a 95% interval of +-half_width (normal approximation; inf: more problems)."""
    room = half_width ** 2 - 1.96 ** 2 * parts["problems"]
    per_seed = 1.96 ** 2 * (parts["training"] + parts["evaluation"])
    return math.ceil(per_seed / room) if room > 0 else math.inf


def frontier_height(fx: np.ndarray, fy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Highest y of the polyline through the fixed-temperature points (fx, fy), (B, G) in
    temperature order, at x (B,); NaN where no segment reaches x. A segment from (x0, y0) to
    (x1, y1) has height y0 + (x - x0) / (x1 - x0) * (y1 - y0) at x."""
    best = np.full(x.shape, -np.inf)
    for i in range(fx.shape[1] - 1):
        x0, x1, y0, y1 = fx[:, i], fx[:, i + 1], fy[:, i], fy[:, i + 1]
        inside = (np.minimum(x0, x1) <= x) & (x <= np.maximum(x0, x1))
        t = np.where(x1 != x0, (x - x0) / np.where(x1 != x0, x1 - x0, 1.0), 0.0)
        best = np.where(inside, np.maximum(best, y0 + t * (y1 - y0)), best)
    return np.where(np.isfinite(best), best, np.nan)


def curve_area(values: np.ndarray, steps) -> np.ndarray:
    """Normalised area under learning curves: values (..., K) measured at K RL steps -> (...),
    the trapezoid rule divided by the steps spanned, i.e. the curve's average height. Two
    schedules that end equal differ here when one got there sooner: sample efficiency."""
    s = np.asarray(steps, dtype=float)
    if len(s) < 2:
        return values[..., 0].astype(float)
    widths = np.diff(s)                                            # (K - 1,)
    heights = (values[..., 1:] + values[..., :-1]) / 2             # (..., K - 1)
    return (heights * widths).sum(-1) / (s[-1] - s[0])
