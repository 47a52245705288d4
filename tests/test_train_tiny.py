"""train_tiny.py: the task's verifier by category, the evaluation sampler against a one-by-one
loop, and --fast runs end to end (summary recomputed from raw counts, stopped runs, workers,
determinism, bad flags)."""
import doctest
import json
import os
import zlib

import numpy as np
import pytest
import torch

import tiny_lab
import train_tiny as tt

# ----------------------------------------------------------------------------- the task


def test_the_docstring_examples_run():
    assert doctest.testmod(tt).attempted == 3 and doctest.testmod(tt).failed == 0


@pytest.mark.parametrize("answer,want", [
    ("47*6=282,282+3", 1.0),          # the target's own derivation
    ("6*47=282,3+282", 1.0),          # operands in any order
    ("47*6=282,282-3", 0.0),          # arithmetic right, target missed
    ("47*6=283,283+2", 0.0),          # a wrong result, then a number never given
    ("47*6=282,282+3=285", 0.0),      # the last step is the verifier's: no written result
    ("47*6,282+3", 0.0),              # an earlier step without its result
    ("47*6=282", 0.0),                # a number unused
    ("47*6=282,282+3,1+1", 0.0),      # too many steps
    ("47*6=282,282+6", 0.0),          # 6 used twice
    ("47*6=282,282+03", 0.0),         # numbers as the prompt writes them: no leading zero
    ("", 0.0), ("47*6=282,", 0.0), ("4 7*6=282,282+3", 0.0),
])
def test_verifier_by_category(answer, want):
    assert tt.verify_countdown([47, 6, 3], 285, answer) == want


def test_verifier_needs_each_number_once_also_when_numbers_repeat():
    assert tt.verify_countdown([12, 3, 3], 39, "12*3=36,36+3") == 1.0
    assert tt.verify_countdown([12, 3, 3], 21, "3*3=9,12+9") == 1.0     # both 3s in one step
    assert tt.verify_countdown([12, 3, 4], 39, "12*3=36,36+3") == 0.0     # the second 3 is not there
    assert tt.verify_countdown([12, 3, 4], 21, "3*3=9,12+9") == 0.0


def test_generated_problems_are_solved_by_their_derivation_and_never_by_the_habit():
    import random
    rng = random.Random(0)
    for _ in range(2000):
        numbers, target = tt.make_problem(rng, (10, 99), (2, 9))
        op = tt.solution_op(numbers, target)
        assert tt.verify_countdown(numbers, target, tt.derivation(numbers, op)) == 1.0
        assert tt.verify_countdown(numbers, target, tt.derivation(numbers, tt.HABIT)) == 0.0


def test_problem_space_counts_what_the_generator_can_make():
    import random
    for big, small in [((10, 14), (2, 4)), ((20, 25), (3, 9)), ((10, 99), (2, 9))]:
        every = {(a, b, c, tt.apply(a, op, b) + c) for a in range(big[0], big[1] + 1)
                 for b in range(small[0], small[1] + 1) for c in range(small[0], small[1] + 1)
                 for op in tt.TARGET_OPS}
        assert tt.problem_space(big, small) == len(every)
        rng = random.Random(0)
        drawn = {(*n, t) for n, t in (tt.make_problem(rng, big, small) for _ in range(20_000))}
        assert drawn <= every


def test_training_never_sees_a_held_out_problem():
    import random
    sets = tt.held_out_sets(1024, (10, 99), (2, 9))
    held = frozenset((tuple(n), t) for s in sets.values() for n, t in s)
    assert len(held) == 2048                               # val and test are disjoint
    stream, rng = tt.training_stream(held, (10, 99), (2, 9)), random.Random(tt.stream_seed(0))
    drawn = [stream(rng) for _ in range(20_000)]
    assert not {(tuple(n), t) for n, t in drawn} & held


def test_problem_space_by_hand():
    # a in {10, 11}, b, c in {2}: targets 10+2+2=14, 10*2+2=22, 11+2+2=15, 11*2+2=24
    assert tt.problem_space((10, 11), (2, 2)) == 4
    # a = 10, b, c in {2, 3}: (10+b)+c gives 14, 15, 15, 16; (10*b)+c gives 22, 23, 32, 33
    assert tt.problem_space((10, 10), (2, 3)) == 8


def test_rewards_refuse_an_unfinished_answer_and_hidden_tokens():
    enc = tt.encode("47*6=282,282+3")
    hidden = tt.encode("47*6=282,") + [tt.PAD, tt.BOS] + tt.encode("282+3")   # decodes the same
    tokens = torch.tensor([enc + [tt.EOS, tt.PAD, tt.PAD], enc + [tt.PAD] * 3, hidden + [tt.EOS]])
    mask = torch.tensor([[True] * (len(enc) + 1) + [False] * 2, [True] * len(enc) + [False] * 3,
                         [True] * len(tokens[2])])
    roll = tt.ead.Rollout(tokens, mask, *(torch.zeros(3, len(tokens[0])) for _ in range(3)))
    assert tt.rewards_of(roll, [([47, 6, 3], 285)] * 3).tolist() == [1.0, 0.0, 0.0]


def test_tokenizer_round_trip():
    text = "47,6,3>285:47*6=282,282+3"
    assert tt.decode(tt.encode(text)) == text


# ----------------------------------------------------------------------------- evaluation


def test_sample_hits_gives_each_row_its_own_decoding(monkeypatch):
    """Greedy rows, near-greedy sampled rows and a one-problem-at-a-time greedy loop agree."""
    monkeypatch.setattr(tt, "verify_countdown",   # a reward that tells problems apart
                        lambda nums, t, answer: float(zlib.crc32(f"{nums}{t}{answer}".encode()) % 2))
    torch.manual_seed(0)
    model = tt.build_model(32, 2, 4).eval()
    head = torch.nn.Linear(32, tt.VOCAB)           # a random model that ends its answers:
    with torch.no_grad():                          # the EOS logit raised by a bias
        head.weight.copy_(model.get_input_embeddings().weight)
        head.bias.zero_()
        head.bias[tt.EOS] = 1.8
    model.lm_head = head
    problems = tt.held_out_sets(8, (10, 99), (2, 9))["test"]
    length = 12
    decodings = {"hot": tt.ead.decoding("tau=1.5", length),
                 "greedy": tt.ead.decoding("greedy", length),
                 "cold": tt.ead.decoding("tau=0.001", length)}
    res = tt.sample_hits(model, problems, decodings, 4, seed=5, batch=7)   # chunks cut decodings
    again = tt.sample_hits(model, problems, decodings, 4, seed=5, batch=7)
    assert res == again                            # seeded: the pairing is reproducible
    assert res["greedy"]["n"] == 1 and res["hot"]["n"] == 4
    assert all(0 <= h <= 4 for h in res["hot"]["hits"])
    assert res["cold"]["hits"] == [4 * h for h in res["greedy"]["hits"]]
    one_by_one = []
    for p in problems:
        ids, am = tt.ead.left_pad([tt.prompt_ids(*p)], tt.PAD)
        roll = tt.ead.sample(model, ids, am, decodings["greedy"], eos_token_id=tt.EOS,
                             pad_token_id=tt.PAD)
        one_by_one.append(int(tt.rewards_of(roll, [p])[0]))
    assert res["greedy"]["hits"] == one_by_one
    assert 0 < sum(one_by_one) < len(problems)     # the check is not vacuous


# ----------------------------------------------------------------------------- whole runs


def check_interval(ci):
    assert set(ci) == {"mean", "lo", "hi"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in ci.values())
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


def records(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]


def test_fast_run_end_to_end(fast_run):
    tmp, run_dir, summary, calls = fast_run
    assert calls, "rewards must come from the verifier"
    recs = records(run_dir)
    names = {"ead", "tau=0.8"}
    assert {r["schedule"] for r in recs if "schedule" in r} == names | {"warm start"}
    assert len([r for r in recs if r["kind"] == "train"]) == 2 * 2 * 2   # schedules x seeds x steps
    curves = [r for r in recs if r["kind"] == "curve"]
    assert len(curves) == 2 * 2 * 3                                      # steps 0, 1, 2
    for r in curves:
        assert set(r["eval"]) == {"t1", "greedy", "own"}
        assert len(r["eval"]["t1"]["hits"]) == 8 and len(r["eval"]["own"]["entropy_by_pos"]) >= 1
    table = open(os.path.join(run_dir, "table.md")).read()
    for name in names | {"warm start"}:
        assert f"| {name} |" in table
    assert "[" in table and ("excludes 0" in table or "includes 0" in table)
    assert os.path.exists(os.path.join(run_dir, "curves.png"))
    assert os.path.exists(os.path.join(run_dir, "frontier.png"))
    cached = os.listdir(tmp / "cache")            # the warm start is cached, once
    assert len(cached) == 1 and cached[0].endswith(".pt")


def test_summary_json_is_well_formed_and_recomputes(fast_run):
    _, run_dir, summary, _ = fast_run
    on_disk = json.load(open(os.path.join(run_dir, "summary.json")))
    assert on_disk == json.loads(json.dumps(summary))
    assert set(on_disk["schedules"]) == {"ead", "tau=0.8"}
    assert set(on_disk["differences"]) == {"tau=0.8"}
    metrics = {"t1/mean@4", "t1/pass@2", "t1/pass@4", "t1/worst@2", "greedy/acc"}
    for block in (on_disk["warm_start"], *on_disk["schedules"].values(),
                  *on_disk["differences"].values(), *on_disk["improvement"].values()):
        assert set(block) == metrics
        for ci in block.values():
            check_interval(ci)
    recs = records(run_dir)
    finals = {(r["schedule"], r["seed"]): r for r in recs if r["kind"] == "final"}
    warm_t1 = np.mean(finals["warm start", 0]["eval"]["t1"]["hits"]) / 4
    assert on_disk["warm_start"]["t1/mean@4"]["mean"] == pytest.approx(warm_t1)
    for name in ("ead", "tau=0.8"):               # the means, from the raw counts
        t1 = np.mean([np.mean(finals[name, s]["eval"]["t1"]["hits"]) / 4 for s in (0, 1)])
        greedy = np.mean([np.mean(finals[name, s]["eval"]["greedy"]["hits"]) for s in (0, 1)])
        assert on_disk["schedules"][name]["t1/mean@4"]["mean"] == pytest.approx(t1)
        assert on_disk["schedules"][name]["greedy/acc"]["mean"] == pytest.approx(greedy)
        assert on_disk["improvement"][name]["t1/mean@4"]["mean"] == pytest.approx(t1 - warm_t1)
    for m in metrics:                             # a difference is of the two means
        assert on_disk["differences"]["tau=0.8"][m]["mean"] == pytest.approx(
            on_disk["schedules"]["ead"][m]["mean"] - on_disk["schedules"]["tau=0.8"][m]["mean"])
    assert 0 < on_disk["schedules"]["ead"]["t1/mean@4"]["mean"] < 1   # not a vacuous check
    # the learning curves and their areas, from the raw counts of the curve records
    L = on_disk["learning"]
    assert L["steps"] == [0, 1, 2]
    for name in ("ead", "tau=0.8"):
        by = {(r["seed"], r["step"]): np.mean(r["eval"]["greedy"]["hits"]) for r in recs
              if r["kind"] == "curve" and r["schedule"] == name}
        means = [np.mean([by[s, k] for s in (0, 1)]) for k in (0, 1, 2)]
        assert L["curves"][name]["greedy/acc"]["mean"] == pytest.approx(means)
        area = (means[0] + 2 * means[1] + means[2]) / 4
        assert L["area"][name]["greedy/acc"]["mean"] == pytest.approx(area)
    assert set(L["area_difference"]) == {"tau=0.8"}
    parts = on_disk["variance"]["EAD − tau=0.8"]["t1/pass@4"]
    assert {"training", "evaluation", "problems"} <= set(parts)
    assert set(on_disk["frontier"]) == {"warm start", "ead", "tau=0.8"}
    pts = on_disk["frontier"]["ead"]["points"]
    assert {"tau=0.5", "tau=1", "ead 1.2→0.6 d=8"} <= set(pts)


def test_report_rebuilds_a_stopped_run(fast_run, tmp_path):
    """A run cut short keeps the seeds that every schedule finished, so pairs stay paired."""
    _, run_dir, _, _ = fast_run
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.json").write_text(open(os.path.join(run_dir, "config.json")).read())
    lines = open(os.path.join(run_dir, "metrics.jsonl")).read().splitlines()
    cut = [ln for ln in lines if not ('"final"' in ln and '"tau=0.8"' in ln and '"seed": 1,' in ln)]
    assert len(cut) == len(lines) - 1
    (stopped / "metrics.jsonl").write_text("\n".join(cut) + "\n{\"kind\": \"fin")   # torn line
    _, summary = tt.main(["--report", str(stopped)])
    assert summary["seeds"] == [0]
    assert "1 seed(s)" in (stopped / "table.md").read_text()


def test_two_workers_give_what_one_process_gives(tmp_path):
    """Two worker processes: every job's records arrive whole in the one metrics.jsonl, and
    each job's numbers are those of a run in one process (seeded per job, not per worker)."""
    runs = {}
    for jobs in ("1", "2"):
        run_dir, summary = tt.main(["--fast", "--out", str(tmp_path / f"runs{jobs}"), "--cache",
                                    str(tmp_path / "cache"), "--jobs", jobs])
        runs[jobs] = summary
        recs = records(run_dir)
        assert {r["schedule"] for r in recs if r["kind"] == "final"} == {"ead", "tau=0.8", "warm start"}
        assert len([r for r in recs if r["kind"] == "train"]) == 2 * 2
    for s in runs.values():
        s.pop("wall_s")
        for c in s["cost"].values():
            c.pop("time_s")
    assert runs["1"] == runs["2"]


@pytest.mark.parametrize("argv,message", [
    (["--schedules", "ead,hot"], "unknown decoding"),
    (["--schedules", "greedy"], "nothing to learn"),
    (["--eval-k", "1,32"], "--eval-k"),
    (["--ks", "1,32"], "--eval-k"),                       # the old spelling still works
    (["--frontier-ead", "1.2:0.6"], "tau_max:tau_min:d0"),
    (["--report", "/nonexistent/run"], "no metrics.jsonl and config.json"),
    (["--big", "10,12", "--small", "2,3"], "distinct problems"),   # would never finish
    (["--big", "10,99", "--eval-problems", "5000"], "distinct problems"),
    (["--big", "5,99"], "--big must lie above --small"),
    (["--schedules", "ead,ead"], "no schedule twice"),
    (["--curve-problems", "0"], "every other size >= 1"),
    (["--eval-k", "1"], "the largest >= 2"),
    (["--big", "x"], "LO,HI"),
    (["--p-habit", "0.8", "--p-solve", "0.3"], "shares"),
    (["--lr", "0"], "--lr"),
    (["--group", "1"], "--group"),
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
    assert out.count("\n| ") == 7 and "| 1.2 |" in out and "| greedy |" in out   # header + 6


def test_summarize_pairs_every_difference():
    """Synthetic records where EAD gets exactly one more of 4 samples right than tau=0.8, on
    every problem of every seed (which themselves vary a lot): mean@4 differs by 0.25, with an
    interval of zero width under paired resampling; unpaired resampling would be wide."""
    cfg = {"schedules": ["ead", "tau=0.8"], "seeds": [0, 1, 2], "baseline": "tau=0.8",
           "split": "test", "eval_problems": 8, "eval_n": 4, "eval_k": [1, 4], "boot": 300,
           "curve_n": 4, "curve_problems": 8, "frontier_n": 4, "steps": 2, "prompts": 1, "group": 2}
    rng = np.random.default_rng(0)
    recs = []
    for s in cfg["seeds"]:
        base = rng.integers(0, 4, 8)
        for name, hits in (("tau=0.8", base), ("ead", base + 1)):
            recs.append({"kind": "final", "schedule": name, "seed": s, "tokens": 1, "time_s": 1.0,
                         "eval": {"t1": {"n": 4, "hits": hits.tolist()},
                                  "greedy": {"n": 1, "hits": np.minimum(hits, 1).tolist()}}})
    d = tiny_lab.summarize(recs, cfg)["differences"]["tau=0.8"]["t1/mean@4"]
    assert d == {"mean": pytest.approx(0.25), "lo": pytest.approx(0.25), "hi": pytest.approx(0.25)}


def test_summarize_pins_learning_variance_and_frontier():
    """Synthetic records with numbers a hand can work out, read back through summarize:
    - curves: EAD holds exactly one more hit of 4 than tau=0.8 at every step, so its area under
      the mean@4 curve is 0.25 higher with an interval of zero width (paired over seeds and
      problems), and the area itself is the trapezoid average of the hand-made curve;
    - variance: EAD's pass@4 minus tau=0.8's is an additive seeds x problems table
      a_s + b_p, whose split has no evaluation part, var(a) as training and var(b) / P as
      problems, both with divisor n - 1;
    - frontier: fixed points (mean@4, pass@4) = (0.5, 0.5) and (0.25, 1.0) and an EAD point at
      (0.375, 1.0) sit 0.25 above the segment's height 0.75 there."""
    P, seeds, steps = 8, [0, 1, 2], [0, 1, 2]
    cfg = {"schedules": ["ead", "tau=0.8"], "seeds": seeds, "baseline": "tau=0.8",
           "split": "test", "eval_problems": P, "eval_n": 4, "eval_k": [1, 4], "boot": 300,
           "curve_n": 4, "curve_problems": P, "frontier_n": 4, "steps": 2, "prompts": 1,
           "group": 2}
    a = np.array([0, 1, 1])                         # seed effect on the pass@4 difference
    b = np.array([0, 0, -1, 0, -1, 0, 0, 0])        # problem effect; a + b in {-1, 0, 1}
    d = a[:, None] + b[None, :]
    recs = []
    for s in seeds:
        ead_hits = np.where(d[s] == -1, 0, 1 + (d[s] == 0))     # pass 1 unless d = -1
        fix_hits = np.where(d[s] == 1, 0, 1)                      # pass 1 unless d = +1
        for name, hits in (("ead", ead_hits), ("tau=0.8", fix_hits)):
            ev = {"t1": {"n": 4, "hits": hits.tolist()}, "greedy": {"n": 1, "hits": [1] * P}}
            recs.append({"kind": "final", "schedule": name, "seed": s, "tokens": 1,
                         "time_s": 1.0, "eval": ev})
        for k in steps:                         # tau=0.8 climbs 0 -> 1 -> 3 hits; EAD one more
            fix = [0, 1, 3][k]
            for name, h in (("tau=0.8", fix), ("ead", fix + 1)):
                recs.append({"kind": "curve", "schedule": name, "seed": s, "step": k,
                             "eval": {"t1": {"n": 4, "hits": [h] * P},
                                      "greedy": {"n": 1, "hits": [min(h, 1)] * P}}})
    fr = {"tau=0.5": [4, 4, 4, 4, 0, 0, 0, 0], "tau=1": [1] * 8,
          "ead 1.2→0.6 d=8": [2, 2, 2, 2, 1, 1, 1, 1]}
    recs.append({"kind": "frontier", "schedule": "ead", "seed": 0,
                 "eval": {n: {"n": 4, "hits": h} for n, h in fr.items()}})
    s = tiny_lab.summarize(recs, cfg)

    area = s["learning"]["area"]
    # the EAD curve of mean@4 is 1/4, 2/4, 4/4 at steps 0, 1, 2: trapezoids (3/8 + 6/8) / 2
    assert area["ead"]["t1/mean@4"]["mean"] == pytest.approx((3 / 8 + 6 / 8) / 2)
    diff = s["learning"]["area_difference"]["tau=0.8"]["t1/mean@4"]
    assert diff == {"mean": pytest.approx(0.25), "lo": pytest.approx(0.25),
                    "hi": pytest.approx(0.25)}

    v = s["variance"]["EAD − tau=0.8"]["t1/pass@4"]
    assert v["evaluation"] == pytest.approx(0, abs=1e-12)
    assert v["training"] == pytest.approx(a.var(ddof=1))
    assert v["problems"] == pytest.approx(b.var(ddof=1) / P)
    assert s["differences"]["tau=0.8"]["t1/pass@4"]["mean"] == pytest.approx(d.mean())

    gap = s["frontier"]["ead"]["gaps"]["ead 1.2→0.6 d=8"]["pass@4 over mean@4"]
    assert gap["mean"] == pytest.approx(0.25)
