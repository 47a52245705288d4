"""The toy task's verifier, and the whole train_tiny.py run in its fast setting."""
import json
import os
import random

import pytest

import train_tiny as tt


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


def test_tokenizer_round_trip():
    text = "3,5,7>22:3*5=15,15+7=22"
    assert tt.decode(tt.encode(text)) == text


def test_fast_run_end_to_end(tmp_path, monkeypatch):
    calls = []
    real = tt.verify_countdown

    def spy(numbers, target, answer):
        calls.append(answer)
        return real(numbers, target, answer)

    monkeypatch.setattr(tt, "verify_countdown", spy)
    run_dir, finals = tt.main(["--fast", "--out", str(tmp_path / "runs"),
                               "--cache", str(tmp_path / "cache"), "--seeds", "2"])
    assert calls, "rewards must come from the verifier"
    recs = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    names = {"ead", "tau=0.6", "tau=1.0", "tau=1.2"}
    assert {r["schedule"] for r in recs} == names
    train = [r for r in recs if "rollout/reward" in r]
    assert len(train) == 4 * 2 * 2                    # schedules x seeds x steps
    evals = [r for r in recs if "eval/t1/pass@4" in r]
    for r in evals:
        assert 0 <= r["eval/t1/mean@4"] <= r["eval/t1/pass@4"] <= 1
        assert r["eval/t1/worst@4"] <= r["eval/t1/mean@4"]
        assert len(r["eval/own/entropy_by_pos"]) >= 1
    table = open(os.path.join(run_dir, "table.md")).read()
    for name in names:
        assert f"| {name} |" in table
    assert "±" in table                               # two seeds: a spread is reported
    assert len(finals) == 8
    # the warm start is cached: a second run does not train it again
    cached = os.listdir(tmp_path / "cache")
    assert len(cached) == 1 and cached[0].endswith(".pt")


def test_bad_flags_exit_with_a_message(capsys):
    with pytest.raises(SystemExit):
        tt.parse_args(["--schedules", "ead,hot"])
    assert "unknown decoding" in capsys.readouterr().err


def test_warm_report(tmp_path, capsys):
    run_dir, finals = tt.main(["--fast", "--warm-report", "--cache", str(tmp_path / "c"),
                               "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert run_dir is None and finals == [] and not (tmp_path / "runs").exists()
    assert out.count("\n| ") == 6 and "| 1.2 |" in out           # header + 5 temperatures


@pytest.mark.parametrize("numbers,target,answer", [
    ([2, 3, 9], 15, "3+3=6,6+9=15"),          # 3 used twice, 2 never: right target
    ([2, 5, 4], 20, "5*4=20,20*1=20"),         # a number not in the pool
    ([6, 2, 2], 8, "6+2=8,8*1=8"),             # a second 2 left unused
    ([7, 7, 1], 49, "7*7=49,49*1=49"),         # 7 twice is fine, 1 is in the pool
])
def test_verifier_counts_every_number_exactly_once(numbers, target, answer):
    want = 1.0 if answer == "7*7=49,49*1=49" else 0.0
    assert tt.verify_countdown(numbers, target, answer) == want
