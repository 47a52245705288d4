"""The toy task's verifier, the statistics of its report, and the whole train_tiny.py run in
its fast setting."""
import itertools
import json
import math
import os
import random
import zlib

import numpy as np
import pytest
import torch

import train_tiny as tt


@pytest.fixture(autouse=True)
def one_thread():
    """A model this small gains nothing from a second thread, and torch's waiting threads
    spin: with another process on the cores, two threads run many times slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("answer,want", [
    ("3*5=15,15+7=22", 1.0),          # correct
    ("5*3=15,7+15=22", 1.0),          # operand order is free
    ("3*5=16,16+7=23", 0.0),          # wrong step (even if consistent afterwards)
    ("3*5=15,15+7=21", 0.0),          # wrong result
    ("3*5=15,15+5=20", 0.0),          # 5 reused
    ("3*5=15", 0.0),                  # 7 missing
    ("3*5=15,15+7=22,22-0=22", 0.0),  # too many steps / number not in the pool
    ("3*5=15;15+7=22", 0.0),          # malformed
    ("", 0.0), ("3*5=15,15+7=", 0.0), ("3*5==15,15+7=22", 0.0),
    ("4*5=20,20+2=22", 0.0),          # numbers not from the problem
])
def test_verifier(answer, want):
    assert tt.verify_countdown([3, 5, 7], 22, answer) == want


def test_verifier_subtraction_and_generated_paths():
    assert tt.verify_countdown([9, 2, 4], 28, "9-2=7,7*4=28") == 1.0
    assert tt.verify_countdown([9, 2, 4], 28, "2-9=7,7*4=28") == 0.0
    rng = random.Random(0)
    for _ in range(200):   # every generated problem is solved by the path that made it
        nums = [rng.randint(2, 9) for _ in range(4)]
        steps = tt.random_path(rng, nums)
        assert tt.verify_countdown(nums, steps[-1][3], tt.write_steps(steps)) == 1.0


@pytest.mark.parametrize("numbers,target,answer", [
    ([2, 3, 9], 15, "3+3=6,6+9=15"),          # 3 used twice, 2 never: right target
    ([2, 5, 4], 20, "5*4=20,20*1=20"),         # a number not in the pool
    ([6, 2, 2], 8, "6+2=8,8*1=8"),             # a second 2 left unused
    ([7, 7, 1], 49, "7*7=49,49*1=49"),         # 7 twice is fine, 1 is in the pool
])
def test_verifier_counts_every_number_exactly_once(numbers, target, answer):
    want = 1.0 if answer == "7*7=49,49*1=49" else 0.0
    assert tt.verify_countdown(numbers, target, answer) == want


def test_tokenizer_round_trip():
    text = "3,5,7>22:3*5=15,15+7=22"
    assert tt.decode(tt.encode(text)) == text


# ----------------------------------------------------------------------------- statistics


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
    b = tt.boot_means(x, tt.bootstrap_draws(S, P, 200_000, seed=1))
    assert b.mean() == pytest.approx(exact_mean, abs=4 * math.sqrt(exact_var / 200_000))
    assert b.var() == pytest.approx(exact_var, rel=0.02)
    # and the S - 1 draws make the seed part unbiased: with one problem, Var* = s^2 / S
    col = x[:, :1]
    b1 = tt.boot_means(col, tt.bootstrap_draws(S, 1, 200_000, seed=2))
    assert b1.var() == pytest.approx(col.var(ddof=1) / S, rel=0.02)


def test_bootstrap_distribution_brute_force():
    """One seed, four problems: all 4^4 equally likely resamples, enumerated."""
    vals = np.array([0.0, 1.0, 1.0, 5.0])
    exact = {}
    for idx in itertools.product(range(4), repeat=4):
        m = round(float(vals[list(idx)].mean()), 6)
        exact[m] = exact.get(m, 0) + 1 / 256
    b = np.round(tt.boot_means(vals[None], tt.bootstrap_draws(1, 4, 100_000, seed=3)), 6)
    got = {m: float((b == m).mean()) for m in exact}
    assert set(np.unique(b)) <= set(exact)
    assert max(abs(got[m] - exact[m]) for m in exact) < 0.006
    ci = tt.interval(vals[None], tt.bootstrap_draws(1, 4, 100_000, seed=3))
    cdf = np.cumsum([exact[m] for m in sorted(exact)])
    atoms = sorted(exact)
    assert ci["lo"] == atoms[int(np.searchsorted(cdf, 0.025))]
    assert ci["hi"] == atoms[int(np.searchsorted(cdf, 0.975))]
    assert ci["mean"] == pytest.approx(1.75)


def coverage(make, S, P, sims=300):
    rng = np.random.default_rng(S)
    draws = tt.bootstrap_draws(S, P, 400)      # the data sets are independent: draws may repeat
    hits = 0
    for _ in range(sims):
        x, truth = make(rng)
        ci = tt.interval(x, draws)
        hits += ci["lo"] <= truth <= ci["hi"]
    return hits / sims


def test_interval_covers_a_known_mean_at_about_95_percent():
    # one seed: 100 problems solved with probability 0.3 each
    one = coverage(lambda r: ((r.random((1, 100)) < 0.3).astype(float), 0.3), 1, 100)
    # 12 seeds x 200 problems, training noise dominating (as in the settle run)
    crossed = coverage(lambda r: (r.normal(0, 0.05, (12, 1)) + r.normal(0, 0.02, (1, 200))
                                  + r.normal(0, 0.1, (12, 200)), 0.0), 12, 200)
    # 300 simulations: a standard error of 0.013 around the rate
    assert 0.91 <= one <= 0.98 and 0.91 <= crossed <= 0.98, (one, crossed)


def test_variance_parts_recover_known_components():
    rng = np.random.default_rng(0)
    S, P, sa, sb, se = 20, 200, 0.05, 0.2, 0.3
    est = [tt.variance_parts(rng.normal(0, sa, (S, 1)) + rng.normal(0, sb, (1, P))
                             + rng.normal(0, se, (S, P))) for _ in range(200)]
    mean = {k: np.mean([e[k] for e in est]) for k in est[0]}
    assert mean["training"] == pytest.approx(sa ** 2, rel=0.1)
    assert mean["evaluation"] == pytest.approx(se ** 2 / P, rel=0.05)
    assert mean["problems"] == pytest.approx(sb ** 2 / P, rel=0.1)
    # 1.96^2 (0.0004 + 0.0001) / (0.02^2 - 1.96^2 * 0.00001) = 0.0019208 / 0.00036158 -> 6
    assert tt.seeds_needed({"training": 4e-4, "evaluation": 1e-4, "problems": 1e-5}, 0.02) == 6
    assert tt.seeds_needed({"training": 4e-4, "evaluation": 1e-4, "problems": 1e-3}, 0.02) \
        == math.inf


def test_frontier_height_by_hand():
    fx = np.array([[0.1, 0.3, 0.2]])              # fixed τ points in τ order (a fold back)
    fy = np.array([[0.2, 0.5, 0.4]])
    h = tt.frontier_height(fx, fy, np.array([0.25]))
    assert h[0] == pytest.approx(max(0.2 + 0.75 * 0.3, 0.5 - 0.5 * 0.1))   # = 0.45
    assert np.isnan(tt.frontier_height(fx, fy, np.array([0.05]))[0])


def test_sample_hits_gives_each_row_its_own_decoding(monkeypatch):
    """Greedy rows, near-greedy sampled rows and a one-problem-at-a-time greedy loop agree."""
    monkeypatch.setattr(tt, "verify_countdown",   # a reward that tells problems apart
                        lambda nums, t, answer: float(zlib.crc32(f"{nums}{t}{answer}".encode()) % 2))
    args = tt.parse_args(["--fast"])
    torch.manual_seed(0)
    model = tt.build_model(args).eval()
    head = torch.nn.Linear(args.hidden, tt.VOCAB)  # a random model that ends its answers:
    with torch.no_grad():                          # the EOS logit raised by a bias
        head.weight.copy_(model.get_input_embeddings().weight)
        head.bias.zero_()
        head.bias[tt.EOS] = 1.8
    model.lm_head = head
    problems = tt.held_out_sets(args)["test"]
    decodings = {"hot": tt.schedule("tau=1.5", args, 0), "greedy": tt.schedule("greedy", args, 0),
                 "cold": tt.schedule("tau=0.001", args, 0)}
    args.batch_rows = 7                            # chunks that cut through decodings
    res = tt.sample_hits(model, problems, decodings, 4, seed=5, args=args)
    again = tt.sample_hits(model, problems, decodings, 4, seed=5, args=args)
    assert res == again                            # seeded: the pairing is reproducible
    assert res["greedy"]["n"] == 1 and res["hot"]["n"] == 4
    assert all(0 <= h <= 4 for h in res["hot"]["hits"])
    assert res["cold"]["hits"] == [4 * h for h in res["greedy"]["hits"]]
    one_by_one = []
    for p in problems:
        ids, am = tt.ead.left_pad([[tt.BOS] + tt.encode(tt.prompt_text(*p))], tt.PAD)
        roll = tt.ead.sample(model, ids, am, decodings["greedy"], eos_token_id=tt.EOS,
                             pad_token_id=tt.PAD)
        one_by_one.append(int(tt.rewards_of(roll, [p])[0]))
    assert res["greedy"]["hits"] == one_by_one
    assert 0 < sum(one_by_one) < len(problems)     # the check is not vacuous


# ----------------------------------------------------------------------------- whole runs


def check_interval(ci):
    assert set(ci) == {"mean", "lo", "hi"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in ci.values())
    assert ci["lo"] - 1e-12 <= ci["mean"] <= ci["hi"] + 1e-12


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    """A --fast run in this process, two seeds, rewards from a spy on the verifier (a hash of
    the answer, so that the statistics have something to chew on)."""
    tmp = tmp_path_factory.mktemp("tiny")
    calls = []
    real = tt.verify_countdown

    def spy(numbers, target, answer):
        calls.append(answer)
        real(numbers, target, answer)
        return float(zlib.crc32(answer.encode()) % 3 == 0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tt, "verify_countdown", spy)
        run_dir, summary = tt.main(["--fast", "--out", str(tmp / "runs"), "--cache",
                                    str(tmp / "cache"), "--seeds", "2", "--jobs", "1"])
    return tmp, run_dir, summary, calls


def test_fast_run_end_to_end(fast_run):
    tmp, run_dir, summary, calls = fast_run
    assert calls, "rewards must come from the verifier"
    recs = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    names = {"ead", "tau=0.6"}
    assert {r["schedule"] for r in recs if "schedule" in r} == names | {"warm start"}
    train = [r for r in recs if "rollout/reward" in r]
    assert len(train) == 2 * 2 * 2                    # schedules x seeds x steps
    evals = [r for r in recs if "eval/t1/pass@4" in r]
    assert len(evals) == 2 * 2 * 3                    # steps 0, 1, 2
    for r in evals:
        assert 0 <= r["eval/t1/mean@4"] <= r["eval/t1/pass@4"] <= 1
        assert r["eval/t1/worst@4"] <= r["eval/t1/mean@4"]
        assert len(r["eval/own/entropy_by_pos"]) >= 1
    table = open(os.path.join(run_dir, "table.md")).read()
    for name in names | {"warm start"}:
        assert f"| {name} |" in table
    assert "[" in table and ("excludes 0" in table or "includes 0" in table)
    # the warm start is cached: a second run does not train it again
    cached = os.listdir(tmp / "cache")
    assert len(cached) == 1 and cached[0].endswith(".pt")


def test_summary_json_is_well_formed_and_recomputes(fast_run):
    _, run_dir, summary, _ = fast_run
    on_disk = json.load(open(os.path.join(run_dir, "summary.json")))
    assert on_disk == json.loads(json.dumps(summary))
    assert set(on_disk["schedules"]) == {"ead", "tau=0.6"}
    assert set(on_disk["differences"]) == {"tau=0.6"}
    metrics = {"t1/mean@4", "t1/pass@2", "t1/pass@4", "t1/worst@2", "greedy/acc"}
    for block in (*on_disk["schedules"].values(), *on_disk["differences"].values()):
        assert set(block) == metrics
        for ci in block.values():
            check_interval(ci)
    for m in metrics:                                 # a difference is of the two means
        assert on_disk["differences"]["tau=0.6"][m]["mean"] == pytest.approx(
            on_disk["schedules"]["ead"][m]["mean"] - on_disk["schedules"]["tau=0.6"][m]["mean"])
    # the means, recomputed from the raw counts in metrics.jsonl
    recs = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    for name in ("ead", "tau=0.6"):
        finals = [r for r in recs if r.get("kind") == "final" and r["schedule"] == name]
        assert len(finals) == 2
        t1 = np.mean([np.mean(r["eval"]["t1"]["hits"]) / 4 for r in finals])
        greedy = np.mean([np.mean(r["eval"]["greedy"]["hits"]) for r in finals])
        assert on_disk["schedules"][name]["t1/mean@4"]["mean"] == pytest.approx(t1)
        assert on_disk["schedules"][name]["greedy/acc"]["mean"] == pytest.approx(greedy)
    assert 0 < on_disk["schedules"]["ead"]["t1/mean@4"]["mean"] < 1   # not a vacuous check
    parts = on_disk["variance"]["EAD − tau=0.6"]["t1/pass@4"]
    assert {"training", "evaluation", "problems"} <= set(parts)
    assert set(on_disk["frontier"]) == {"warm start", "ead", "tau=0.6"}
    pts = on_disk["frontier"]["ead"]["points"]
    assert {"tau=0.5", "tau=1", "ead 1.2→0.6 d=8"} <= set(pts)
    for p in pts.values():
        for ci in p.values():
            check_interval(ci)


def test_report_rebuilds_a_stopped_run(fast_run, tmp_path):
    """A run cut short keeps the seeds that every schedule finished, so pairs stay paired."""
    _, run_dir, _, _ = fast_run
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "args.json").write_text(open(os.path.join(run_dir, "args.json")).read())
    lines = open(os.path.join(run_dir, "metrics.jsonl")).read().splitlines()
    cut = [ln for ln in lines if not ('"final"' in ln and '"tau=0.6"' in ln and '"seed": 1,' in ln)]
    assert len(cut) == len(lines) - 1
    (stopped / "metrics.jsonl").write_text("\n".join(cut) + "\n{\"kind\": \"fin")   # torn line
    _, summary = tt.main(["--report", str(stopped)])
    assert summary["seeds"] == [0]
    assert "1 seed(s)" in (stopped / "table.md").read_text()


def test_parallel_workers(tmp_path):
    """Two worker processes: every job's records arrive whole in the one metrics.jsonl."""
    run_dir, summary = tt.main(["--fast", "--out", str(tmp_path / "runs"), "--cache",
                                str(tmp_path / "cache"), "--jobs", "2", "--frontier-problems",
                                "0"])
    recs = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    finals = {r["schedule"] for r in recs if r.get("kind") == "final"}
    assert finals == {"ead", "tau=0.6", "warm start"}
    assert len([r for r in recs if r.get("kind") == "train"]) == 2 * 2
    assert summary["seeds"] == [0] and set(summary["schedules"]) == {"ead", "tau=0.6"}


@pytest.mark.parametrize("argv,message", [
    (["--schedules", "ead,hot"], "unknown decoding"),
    (["--schedules", "greedy"], "nothing to learn"),
    (["--ks", "1,32"], "--ks"),
    (["--frontier-ead", "1.2:0.6"], "tau_max:tau_min:d0"),
    (["--report", "/nonexistent/run"], "no metrics.jsonl"),
])
def test_bad_flags_exit_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        tt.parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.count("\n") == 1


def test_warm_report(tmp_path, capsys):
    run_dir, summary = tt.main(["--fast", "--warm-report", "--cache", str(tmp_path / "c"),
                                "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert run_dir is None and summary == {} and not (tmp_path / "runs").exists()
    assert out.count("\n| ") == 6 and "| 1.2 |" in out           # header + 5 temperatures
