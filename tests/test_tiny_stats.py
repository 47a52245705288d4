"""tiny_stats: the bootstrap, the variance split, the frontier and the learning-curve area,
each against a closed form, a hand-worked value or brute-force enumeration."""
import itertools
import math

import numpy as np
import pytest

import tiny_stats as st


def test_bootstrap_variance_matches_its_closed_form():
    """Var* of the resampled mean, exactly: counts w ~ Multinomial(S - 1, 1/S) for seeds and
    v ~ Multinomial(P, 1/P) for problems, independent, mean = w'Xv / ((S - 1) P)."""
    rng = np.random.default_rng(0)
    S, P = 4, 5
    x = rng.normal(size=(S, P))

    def second_moment(m, n):              # E[w w'] of Multinomial(m, 1/n)
        p = np.full(n, 1 / n)
        return m * (np.diag(p) - np.outer(p, p)) + m * m * np.outer(p, p)

    A, Bm = second_moment(S - 1, S), second_moment(P, P)
    exact_mean = x.mean()                 # E[w] = (S-1)/S, E[v] = 1: unbiased
    exact_var = np.trace(x.T @ A @ x @ Bm) / ((S - 1) * P) ** 2 - exact_mean ** 2
    b = st.boot_means(x, st.bootstrap_draws(S, P, 200_000, seed=1))
    assert b.mean() == pytest.approx(exact_mean, abs=4 * math.sqrt(exact_var / 200_000))
    assert b.var() == pytest.approx(exact_var, rel=0.02)
    # and the S - 1 draws make the seed part unbiased: with one problem, Var* = s^2 / S
    col = x[:, :1]
    b1 = st.boot_means(col, st.bootstrap_draws(S, 1, 200_000, seed=2))
    assert b1.var() == pytest.approx(col.var(ddof=1) / S, rel=0.02)


def test_bootstrap_distribution_brute_force():
    """One seed, four problems: all 4^4 equally likely resamples, enumerated."""
    vals = np.array([0.0, 1.0, 1.0, 5.0])
    exact = {}
    for idx in itertools.product(range(4), repeat=4):
        m = round(float(vals[list(idx)].mean()), 6)
        exact[m] = exact.get(m, 0) + 1 / 256
    b = np.round(st.boot_means(vals[None], st.bootstrap_draws(1, 4, 100_000, seed=3)), 6)
    got = {m: float((b == m).mean()) for m in exact}
    assert set(np.unique(b)) <= set(exact)
    assert max(abs(got[m] - exact[m]) for m in exact) < 0.006
    ci = st.interval(vals[None], st.bootstrap_draws(1, 4, 100_000, seed=3))
    cdf = np.cumsum([exact[m] for m in sorted(exact)])
    atoms = sorted(exact)
    assert ci["lo"] == atoms[int(np.searchsorted(cdf, 0.025))]
    assert ci["hi"] == atoms[int(np.searchsorted(cdf, 0.975))]
    assert ci["mean"] == pytest.approx(1.75)


def coverage(make, S, P, sims=300):
    rng = np.random.default_rng(S)
    draws = st.bootstrap_draws(S, P, 400)      # the data sets are independent: draws may repeat
    hits = 0
    for _ in range(sims):
        x, truth = make(rng)
        ci = st.interval(x, draws)
        hits += ci["lo"] <= truth <= ci["hi"]
    return hits / sims


def test_interval_covers_a_known_mean_at_about_95_percent():
    # one seed: 100 problems solved with probability 0.3 each
    one = coverage(lambda r: ((r.random((1, 100)) < 0.3).astype(float), 0.3), 1, 100)
    # 12 seeds x 200 problems, training noise dominating (as in a seed study)
    crossed = coverage(lambda r: (r.normal(0, 0.05, (12, 1)) + r.normal(0, 0.02, (1, 200))
                                  + r.normal(0, 0.1, (12, 200)), 0.0), 12, 200)
    # 300 simulations: a standard error of 0.013 around the rate
    assert 0.91 <= one <= 0.98 and 0.91 <= crossed <= 0.98, (one, crossed)


def test_a_constant_paired_difference_has_an_interval_of_zero_width():
    """Pairing is what makes EAD − tau a sharp question: when EAD is exactly 0.05 better on
    every seed and problem, every paired resample says 0.05. Resampling the two independently
    would give a wide interval around it."""
    rng = np.random.default_rng(0)
    y = rng.random((3, 50))                          # seeds x problems, very unequal
    d = st.difference(y + 0.05, y, st.bootstrap_draws(3, 50, 500))
    assert d == {"mean": pytest.approx(0.05), "lo": pytest.approx(0.05), "hi": pytest.approx(0.05)}
    unpaired = (st.boot_means(y + 0.05, st.bootstrap_draws(3, 50, 500, seed=1))
                - st.boot_means(y, st.bootstrap_draws(3, 50, 500, seed=2)))
    assert np.percentile(unpaired, 97.5) - np.percentile(unpaired, 2.5) > 0.05


def test_variance_parts_of_an_additive_table_are_exact():
    """x_sp = a_s + b_p with no interaction: the evaluation part is 0, the training part is the
    unbiased variance of a (divisor S - 1), the problems part that of b over P."""
    a = np.array([0.0, 0.1, 0.3])                   # 3 seeds
    b = np.array([0.2, 0.5, 0.4, 0.9])              # 4 problems
    v = st.variance_parts(a[:, None] + b[None, :])
    assert v["evaluation"] == pytest.approx(0.0, abs=1e-15)
    assert v["training"] == pytest.approx(((a - a.mean()) ** 2).sum() / 2)           # 0.02333
    assert v["problems"] == pytest.approx(((b - b.mean()) ** 2).sum() / 3 / 4)       # 0.02
    assert v["training"] == pytest.approx(0.07 / 3)


def test_variance_parts_recover_known_components():
    rng = np.random.default_rng(0)
    S, P, sa, sb, se = 20, 200, 0.05, 0.2, 0.3
    est = [st.variance_parts(rng.normal(0, sa, (S, 1)) + rng.normal(0, sb, (1, P))
                             + rng.normal(0, se, (S, P))) for _ in range(200)]
    mean = {k: np.mean([e[k] for e in est]) for k in est[0]}
    assert mean["training"] == pytest.approx(sa ** 2, rel=0.1)
    assert mean["evaluation"] == pytest.approx(se ** 2 / P, rel=0.05)
    assert mean["problems"] == pytest.approx(sb ** 2 / P, rel=0.1)


def test_seeds_needed_by_hand():
    # 1.96^2 (0.0004 + 0.0001) / (0.02^2 - 1.96^2 * 0.00001) = 0.0019208 / 0.00036158 -> 6
    assert st.seeds_needed({"training": 4e-4, "evaluation": 1e-4, "problems": 1e-5}, 0.02) == 6
    assert st.seeds_needed({"training": 4e-4, "evaluation": 1e-4, "problems": 1e-3}, 0.02) \
        == math.inf


def test_frontier_height_at_a_segments_ends_and_inside():
    """One segment from (0.1, 0.2) to (0.5, 0.6): height 0.2 and 0.6 at its ends, 0.3 at
    x = 0.2 (a quarter of the way), NaN outside."""
    fx, fy = np.array([[0.1, 0.5]]), np.array([[0.2, 0.6]])
    for x, y in [(0.1, 0.2), (0.5, 0.6), (0.2, 0.3)]:
        assert st.frontier_height(fx, fy, np.array([x]))[0] == pytest.approx(y)
    assert np.isnan(st.frontier_height(fx, fy, np.array([0.6]))[0])
    # the same segment listed from its other end gives the same heights
    assert st.frontier_height(fx[:, ::-1], fy[:, ::-1], np.array([0.2]))[0] == pytest.approx(0.3)


def test_frontier_height_takes_the_highest_of_a_fold():
    fx = np.array([[0.1, 0.3, 0.2]])              # fixed tau points in tau order (a fold back)
    fy = np.array([[0.2, 0.5, 0.4]])
    h = st.frontier_height(fx, fy, np.array([0.25]))
    assert h[0] == pytest.approx(max(0.2 + 0.75 * 0.3, 0.5 - 0.5 * 0.1))   # = 0.45
    assert np.isnan(st.frontier_height(fx, fy, np.array([0.05]))[0])


def test_curve_area_is_the_trapezoid_average():
    steps = [0, 10, 30]
    v = np.array([[[0.0, 0.2, 0.8]], [[0.5, 0.5, 0.5]]])          # (S=2, P=1, K=3)
    # seed 0: (10 * (0 + 0.2) / 2 + 20 * (0.2 + 0.8) / 2) / 30 = (1 + 10) / 30
    assert st.curve_area(v, steps) == pytest.approx(np.array([[11 / 30], [0.5]]))
    assert st.curve_area(v[..., :1], [0]) == pytest.approx(np.array([[0.0], [0.5]]))
