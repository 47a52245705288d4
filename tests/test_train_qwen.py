"""`python train_qwen.py ...` on CPU: a tiny random Qwen2 and a tiny tokenizer with a chat template,
saved to a temporary folder like a downloaded model; no network."""
import itertools
import json
import os

import pytest
import torch

import train_qwen as tq

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                    "sample_math.jsonl")
FAST = ["--batch", "8", "--group", "4", "--minibatches", "2", "--micro-batch", "4",
        "--max-new-tokens", "12", "--eval-n", "4", "--eval-k", "1,4", "--eval-limit", "3",
        "--lr", "1e-3", "--device", "cpu"]


def run(model_dir, out, *extra):
    return tq.main(["--model", model_dir, "--train", DATA, "--eval", DATA, "--out", str(out),
                     *FAST, *extra])


def alternating():
    """A reward of 0, 1, 0, 1, ... in call order: every group of answers has signal (a random
    model never writes a boxed answer)."""
    calls = itertools.count()
    return lambda text, gold: float(next(calls) % 2)


def records(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def test_prompt_uses_chat_template_and_system_prompt(model_dir):
    _, tok = tq.load_model(model_dir)
    text = tq.prompt_of(tok, "What is 1+1?")
    assert text.startswith("<|im_start|>system\n" + tq.SYSTEM_PROMPT)
    assert text.endswith("<|im_start|>assistant\n")


def test_train_checkpoint_resume_is_identical(model_dir, tmp_path, monkeypatch):
    import verify
    monkeypatch.setattr(verify, "reward", alternating())
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(model_dir, straight, "--steps", "4", "--save-every", "2", "--eval-every", "0") == 0
    assert run(model_dir, split, "--steps", "2", "--save-every", "2", "--eval-every", "0") == 0
    assert os.path.isfile(split / "checkpoint" / tq.STATE)
    assert run(model_dir, split, "--steps", "4", "--save-every", "2", "--eval-every", "0",
               "--resume") == 0
    a, b = records(straight), records(split)
    assert [r["step"] for r in a] == [1, 2, 3, 4] and [r["step"] for r in b] == [1, 2, 3, 4]
    assert all(r["loss/updates"] == 2 and r["loss/grad_norm"] > 0 for r in a)   # 2 mini-batches
    for ra, rb in zip(a, b):                               # same batches, same samples, same loss
        for key in ("rollout/reward", "rollout/tokens", "rollout/answer_len", "loss/pg_loss",
                    "loss/grad_norm"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-7), key
    for key in ("entropy/0-3", "rollout/tau_max", "rollout/tau_min", "rollout/zero_var_groups",
                "perf/rollout_tok_s", "perf/update_tok_s", "loss/updates"):
        assert key in a[0], key
    ma, _ = tq.load_model(str(straight / "checkpoint"))
    mb, _ = tq.load_model(str(split / "checkpoint"))
    for (n, p), (_, q) in zip(ma.named_parameters(), mb.named_parameters()):
        torch.testing.assert_close(p, q, msg=n)
    assert not os.path.exists(split / "checkpoint.tmp")


def test_eval_only_reports_every_metric(model_dir, tmp_path, monkeypatch):
    """Known verdicts, every metric pinned: the i-th answer of a problem's block (4 ead, 4
    tau=1.0, 1 greedy; one batch) states labels[i]; `correct` says which labels a gold takes."""
    import verify
    labels = "aabcdeefg"
    correct = {"11": "aeg", "\\frac{3}{4}": "bd", "6": labels}   # golds of the first 3 problems
    monkeypatch.setattr(tq, "completions", lambda tok, roll: [labels[j % 9] for j in
                                                              range(roll.tokens.shape[0])])
    monkeypatch.setattr(verify, "extract_answer", lambda text: text)
    monkeypatch.setattr(verify, "is_equiv", lambda pred, gold: pred in correct[gold[0]]
                        if isinstance(gold, list) else pred == gold)
    assert tq.main(["--model", model_dir, "--eval", DATA, "--eval-only", "--out",
                     str(tmp_path), *FAST, "--eval-schedules", "ead,tau=1.0,greedy"]) == 0
    rec = records(tmp_path)[0]
    # ead's verdicts: 1100, 0010, 1111; tau=1.0's: 0110, 1000, 1111; majorities a, e
    want = {"mean@4": (2 / 4 + 1 / 4 + 1) / 3, "pass@1": (2 / 4 + 1 / 4 + 1) / 3, "pass@4": 1.0,
            "worst@1": (2 / 4 + 1 / 4 + 1) / 3, "worst@4": 1 / 3, "maj@4": 2 / 3}
    for scope in ("sample_math", "all"):
        for name in ("ead", "tau=1.0"):
            for m, v in want.items():
                assert rec[f"eval/{scope}/{name}/{m}"] == pytest.approx(v), (scope, name, m)
        assert rec[f"eval/{scope}/greedy/acc"] == pytest.approx(2 / 3)


def test_load_problems_fields_and_skips(tmp_path):
    rows, skipped = tq.load_problems(DATA)
    assert len(rows) == 12 and skipped == 0
    assert rows[8]["answer"] == ["2"]                      # boxed answer from a solution
    assert rows[9]["answer"] == ["9"]                      # numeric answer
    f = tmp_path / "d.jsonl"
    f.write_text('{"problem": "a", "answer": "1"}\n{"problem": "no answer"}\n\n')
    rows, skipped = tq.load_problems(str(f))
    assert len(rows) == 1 and skipped == 1


@pytest.mark.parametrize("extra,message", [
    (["--train", "missing.jsonl"], "missing.jsonl: no such file"),
    (["--batch", "10"], "rank(s) x --group 4"),
    (["--eval-k", "1,8"], "cannot exceed --eval-n"),
    (["--device", "cuda"], "no CUDA device"),
    (["--tau-min", "2.0"], "tau_min <= tau_max"),
    (["--eval-schedules", "ead,hot"], "unknown decoding 'hot'"),
    (["--schedule", "greedy"], "identical answers"),
    (["--save-every", "0"], "--save-every must be >= 1"),
    (["--minibatches", "0"], "--minibatches must be >= 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    (["--micro-batch", "0"], "--micro-batch must be >= 1"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--eval", "nothere.jsonl"], "nothere.jsonl: no such file"),
    (["--eval-k", "1,x"], "comma list of positive integers"),
    (["--compile"], "--compile needs --kv-cache static"),
    (["--kv-cache", "paged"], "invalid choice"),
    (["--rollout-batch", "-1"], "--rollout-batch must be >= 0"),
])
def test_bad_input_is_one_clear_message(model_dir, tmp_path, capsys, extra, message):
    if "--device" in extra and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["--model", model_dir, "--train", DATA, "--out", str(tmp_path), *FAST, *extra]
    assert tq.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_data_line_names_file_and_line(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{"problem": oops}\n')
    assert tq.main(["--model", model_dir, "--train", str(bad), "--out", str(tmp_path),
                     *FAST]) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err


def test_model_path_is_checked_before_it_is_taken_for_a_hub_id(tmp_path, capsys):
    assert tq.main(["--model", str(tmp_path / "nope"), "--train", DATA, "--out",
                    str(tmp_path), *FAST]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert tq.main(["--model", str(tmp_path / "empty"), "--train", DATA, "--out",
                    str(tmp_path), *FAST]) == 2
    assert "cannot load" in capsys.readouterr().err


def test_help_lists_the_main_flags():
    import subprocess
    import sys
    root = os.path.dirname(DATA).rsplit(os.sep, 1)[0]
    out = subprocess.run([sys.executable, "train_qwen.py", "--help"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for flag in ("--model", "--train", "--eval", "--out", "--resume", "--eval-only",
                 "--memory-plan", "--parallel"):
        assert flag in out.stdout, flag


def test_master_adamw_keeps_updates_that_bf16_rounds_away():
    torch.manual_seed(0)
    plain = torch.nn.Linear(8, 8).to(torch.bfloat16)
    with torch.no_grad():                                  # |w| in [0.25, 0.5): ulp ~ 2e-3
        plain.weight.uniform_(0.25, 0.49)
        plain.bias.uniform_(0.25, 0.49)
    mixed = torch.nn.Linear(8, 8).to(torch.bfloat16)
    mixed.load_state_dict(plain.state_dict())
    w0 = plain.weight.detach().clone()
    opts = [torch.optim.AdamW(plain.parameters(), lr=1e-5), tq.master_adamw(mixed, lr=1e-5)]
    for _ in range(300):                                   # 300 x 1e-5 = 3e-3 of drift
        for m, opt in zip((plain, mixed), opts):
            m(torch.ones(1, 8, dtype=torch.bfloat16)).sum().backward()
            opt.step()
            opt.zero_grad()
    assert torch.equal(plain.weight, w0)                   # every bf16 update rounded away
    master = opts[1].param_groups[0]["params"][0]
    assert master.dtype == torch.float32
    assert (master - w0.float()).abs().mean() > 2e-3       # the fp32 masters moved
    assert torch.equal(mixed.weight, master.to(torch.bfloat16))
    assert mixed.weight.grad is None and master.grad is None   # no gradient outlives its step


@pytest.mark.parametrize("found", ["default", "ignored"])
def test_ctrl_c_finishes_the_step_and_checkpoints(model_dir, tmp_path, monkeypatch, found):
    """Ctrl-C with Python's default handler, or with SIGINT ignored as under nohup or a
    background job: the step finishes, a checkpoint is written, and the runner puts back
    the handler it found."""
    import signal

    import verify
    calls = []

    def reward(text, gold):                 # Ctrl-C arrives in the middle of step 2's rewards
        calls.append(1)
        if len(calls) == 10:
            os.kill(os.getpid(), signal.SIGINT)
        return float(len(calls) % 2)

    handler = {"default": signal.default_int_handler, "ignored": signal.SIG_IGN}[found]
    monkeypatch.setattr(verify, "reward", reward)
    parent = signal.signal(signal.SIGINT, handler)        # whatever this process started with
    try:
        out = tmp_path / "run"
        assert run(model_dir, out, "--steps", "4", "--save-every", "100", "--eval-every",
                   "0") == 130
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, parent)
    assert [r["step"] for r in records(out)] == [1, 2]
    state = json.load(open(out / "checkpoint" / tq.STATE))
    assert state["step"] == 2 and state["pos"] == 4          # 2 steps x 2 prompts consumed


def test_every_step_logs_the_same_keys_and_no_made_up_numbers(model_dir, tmp_path, monkeypatch):
    import verify
    monkeypatch.setattr(verify, "reward", lambda text, gold: 0.0)   # no signal: no update
    flat = tmp_path / "flat"
    assert run(model_dir, flat, "--steps", "1", "--eval-every", "0") == 0
    monkeypatch.setattr(verify, "reward", alternating())
    live = tmp_path / "live"
    assert run(model_dir, live, "--steps", "1", "--eval-every", "0") == 0
    (a,), (b,) = records(flat), records(live)
    assert a.keys() == b.keys()
    assert a["loss/updates"] == 0 and a["perf/update_tok_s"] is None
    assert a["loss/grad_norm"] is None and a["loss/clip_frac_high"] is None
    assert b["loss/updates"] == 2 and b["perf/update_tok_s"] > 0
    assert b["loss/grad_norm"] > 0 and b["loss/tis_weight_mean"] > 0


def test_resume_writes_each_record_once(model_dir, tmp_path, monkeypatch):
    import verify
    monkeypatch.setattr(verify, "reward", alternating())
    out = tmp_path / "run"
    common = ("--save-every", "2", "--eval-every", "2", "--eval-schedules", "tau=1.0")
    assert run(model_dir, out, "--steps", "2", *common) == 0
    with open(out / "metrics.jsonl", "a") as f:     # a crash after the checkpoint: lost work
        f.write(json.dumps({"step": 3, "rollout/reward": 0.5}) + "\n")
    assert run(model_dir, out, "--steps", "4", "--resume", *common) == 0
    recs = records(out)
    evals = [r["step"] for r in recs if any(k.startswith("eval/") for k in r)]
    steps = [r["step"] for r in recs if "rollout/reward" in r]
    assert evals == [0, 2, 4] and steps == [1, 2, 3, 4]


def test_eval_several_files_each_under_its_name(model_dir, tmp_path, monkeypatch, capsys):
    import verify
    a = tmp_path / "easy.jsonl"
    a.write_text('{"question": "q1", "answer": 7}\n{"question": "q2", "answer": "7"}\n'
                 '{"question": "q3", "final_answer": ["7", "x"]}\n{"note": "no problem"}\n')
    b = tmp_path / "hard.jsonl"
    b.write_text('{"problem": "p1", "target": "3"}\n')
    rows, skipped = tq.load_problems(str(a))
    assert [r["answer"] for r in rows] == [["7"], ["7"], ["7", "x"]] and skipped == 1
    # every answer of easy.jsonl is right and every one of hard.jsonl wrong
    monkeypatch.setattr(verify, "extract_answer", lambda text: "7")
    monkeypatch.setattr(verify, "is_equiv", lambda pred, gold: pred in gold)
    assert tq.main(["--model", model_dir, "--eval", f"{a},{b}", "--eval-only", "--out",
                    str(tmp_path / "o"), *FAST, "--eval-limit", "0",
                    "--eval-schedules", "tau=1.0,greedy"]) == 0
    out = capsys.readouterr().out
    assert "easy.jsonl: 3 problems used, 1 lines skipped" in out
    assert "hard.jsonl: 1 problems used, 0 lines skipped" in out
    rec = records(tmp_path / "o")[0]
    assert rec["eval/easy/tau=1.0/pass@4"] == 1.0 and rec["eval/hard/tau=1.0/pass@4"] == 0.0
    assert rec["eval/easy/greedy/acc"] == 1.0 and rec["eval/hard/greedy/acc"] == 0.0
    assert rec["eval/all/tau=1.0/mean@4"] == pytest.approx(3 / 4)   # weighted by problems
    assert rec["eval/all/greedy/acc"] == pytest.approx(3 / 4)


def test_memory_plan_prints_and_exits(model_dir, tmp_path, capsys):
    assert tq.main(["--model", model_dir, "--memory-plan", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "peak" in out and "KV cache" in out and not (tmp_path / "o").exists()


def test_rollout_in_chunks_equals_one_batch(tiny_model):
    """--rollout-batch: a few answers at a time (a smaller KV cache), one Rollout in the end.
    Greedy rows are exact, so the chunked rollout must equal the whole-batch one, padding
    included; sampled rows carry their own temperature row and a valid mask."""
    import ead
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14], [15, 16], [17, 18, 19]]
    ids, am = ead.left_pad(prompts, 0)
    kw = dict(eos_token_id=[3, 4], pad_token_id=0, vocab_size=40)
    greedy = ead.decoding("greedy", 10)
    whole = ead.sample(tiny_model, ids, am, greedy, **kw)
    for chunk_size in (1, 4, 0):
        parts = tq.sample_in_chunks(tiny_model, ids, am, greedy, chunk_size=chunk_size, **kw)
        for got, want in zip(parts, whole):        # batch size may move the last float bits
            assert got.dtype == want.dtype and got.shape == want.shape
            assert torch.equal(got, want) if not want.is_floating_point() else \
                torch.allclose(got, want, atol=1e-5)
    temps = torch.stack([ead.decoding("greedy", 10), ead.decoding("tau=1.3", 10)] * 3)   # (6, T)
    roll = tq.sample_in_chunks(tiny_model, ids, am, temps, chunk_size=4, **kw,
                               generator=torch.Generator().manual_seed(0))
    n = min(roll.tokens.shape[1], whole.tokens.shape[1])   # greedy rows: as in one batch
    assert torch.equal(roll.tokens[0::2, :n], whole.tokens[0::2, :n])
    assert not roll.mask[0::2, n:].any() and not whole.mask[0::2, n:].any()
    assert torch.equal(roll.logp_mu[0::2], torch.zeros_like(roll.logp_mu[0::2]))   # point mass
    assert (roll.logp_mu[1::2][roll.mask[1::2]] < 0).all()
    assert not roll.mask.any(1).logical_not().any() and (roll.tokens[~roll.mask] == 0).all()


def test_rollout_batch_runs_and_plans_a_smaller_cache(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tq.verify, "reward", alternating())
    assert run(model_dir, tmp_path / "o", "--steps", "1", "--rollout-batch", "3") == 0
    assert records(tmp_path / "o")[-1]["loss/updates"] == 2
    out = capsys.readouterr().out                     # the plan is printed at start
    assert "memory plan per rank" in out and "rollout batch 3" in out and "KV cache" in out
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(model_dir)
    plan = dict(batch=64, prompt_len=16, max_new_tokens=32, micro_batch=4, logits_chunk=8,
                dtype_bytes=4, checkpointing=True)
    full, part = tq.memory_plan(cfg, **plan), tq.memory_plan(cfg, **plan, rollout_batch=16)
    assert part["terms"]["KV cache (rollout)"] * 4 == pytest.approx(full["terms"]["KV cache (rollout)"])


@pytest.mark.parametrize("failing", ["shards", "trainer state"])
def test_a_save_that_fails_partway_leaves_the_last_checkpoint(model_dir, tmp_path, monkeypatch,
                                                              failing):
    """The save at step 4 fails after writing some of its files: the step-2 checkpoint is
    left byte for byte, and resuming from it again gives the uninterrupted run."""
    import torch.distributed.checkpoint as dcp

    import verify
    monkeypatch.setattr(verify, "reward", alternating())
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ("--save-every", "2", "--eval-every", "0")
    assert run(model_dir, straight, "--steps", "4", *common) == 0
    assert run(model_dir, split, "--steps", "2", *common) == 0

    def files(folder):
        return {str(f.relative_to(folder)): f.read_bytes() for f in folder.rglob("*")
                if f.is_file()}

    before = files(split / "checkpoint")
    save = dcp.save

    def save_then_fail(*args, **kwargs):                  # every shard written, then no room
        save(*args, **kwargs)
        raise OSError("No space left on device")

    def fail(*args, **kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as m:
        if failing == "shards":
            m.setattr(dcp, "save", save_then_fail)
        else:
            m.setattr(tq, "write_state", fail)
        with pytest.raises(OSError, match="No space left"):
            run(model_dir, split, "--steps", "4", "--resume", *common)
    assert files(split / "checkpoint") == before
    assert run(model_dir, split, "--steps", "4", "--resume", *common) == 0
    for ra, rb in zip(records(straight), records(split)):
        assert ra["step"] == rb["step"]
        assert ra["loss/pg_loss"] == pytest.approx(rb["loss/pg_loss"], rel=1e-5, abs=1e-7)
    ma, _ = tq.load_model(str(straight / "checkpoint"))
    mb, _ = tq.load_model(str(split / "checkpoint"))
    for (n, p), (_, q) in zip(ma.named_parameters(), mb.named_parameters()):
        torch.testing.assert_close(p, q, msg=n)


def simulated_ranks(monkeypatch, fn, world: int) -> list:
    """fn(rank) for each of `world` ranks in this process, with torch.distributed.all_reduce
    standing for an exact reduction of what the ranks send: every rank's result. A first pass
    records each rank's tensors, a second one hands every rank their sum (or maximum)."""
    import torch.distributed as dist
    sent = [[] for _ in range(world)]
    for r in range(world):
        monkeypatch.setattr(dist, "all_reduce", lambda t, op=dist.ReduceOp.SUM, r=r:
                            sent[r].append(t.clone()))
        fn(r)
    results = []
    for r in range(world):
        calls = itertools.count()

        def all_reduce(t, op=dist.ReduceOp.SUM):
            i = next(calls)
            parts = torch.stack([sent[q][i] for q in range(world)])
            t.copy_(parts.amax(0) if op == dist.ReduceOp.MAX else parts.sum(0))

        monkeypatch.setattr(dist, "all_reduce", all_reduce)
        results.append(fn(r))
    return results


def test_stats_over_two_ranks_sum_counts_and_weigh_means(monkeypatch):
    """Known per-rank stats, each logged value pinned: counts and throughputs summed, the
    peak memory the highest, entropy by position weighted by each rank's tokens there, the
    loss/ token means by each rank's updated tokens (an unweighted average of the ranks is
    0.3, not 0.4, for the clip fraction), per answer means averaged (ranks hold as many
    answers), None where no rank measured."""
    masks = [torch.tensor([[1] * 6 + [0] * 14, [1] * 3 + [0] * 17]).bool(),   # 9 tokens
             torch.tensor([[1] * 20, [1] * 2 + [0] * 18]).bool()]              # 22 tokens
    stats = [{"rollout/tokens": 9, "perf/rollout_tok_s": 100.0, "perf/update_tok_s": 40.0,
              "perf/peak_mem_gb": 3.0, "rollout/reward": 0.25, "loss/grad_norm": 2.0,
              "loss/tokens": 10.0, "loss/clip_frac_high": 0.1, "loss/ratio_mean": 1.0,
              "loss/kl": None, "entropy/0-3": 1.0, "entropy/4-15": 0.5, "entropy/16-63": None},
             {"rollout/tokens": 22, "perf/rollout_tok_s": 300.0, "perf/update_tok_s": 60.0,
              "perf/peak_mem_gb": 5.0, "rollout/reward": 0.75, "loss/grad_norm": 2.0,
              "loss/tokens": 30.0, "loss/clip_frac_high": 0.5, "loss/ratio_mean": 1.2,
              "loss/kl": None, "entropy/0-3": 2.0, "entropy/4-15": 1.5, "entropy/16-63": 4.0}]
    assert tq.token_weights(stats[0], masks[0]) == {
        "loss/clip_frac_high": 10.0, "loss/ratio_mean": 10.0, "loss/kl": 10.0,
        "entropy/0-3": 7.0, "entropy/4-15": 2.0, "entropy/16-63": 0.0}
    out = simulated_ranks(monkeypatch, lambda r: tq.reduce_stats(
        stats[r], 2, "cpu", tq.token_weights(stats[r], masks[r])), 2)
    assert out[0] == out[1]
    assert out[0] == {
        "rollout/tokens": 31, "perf/rollout_tok_s": 400.0, "perf/update_tok_s": 100.0,
        "perf/peak_mem_gb": 5.0, "rollout/reward": 0.5, "loss/grad_norm": 2.0, "loss/kl": None,
        "loss/tokens": 40.0,
        "loss/clip_frac_high": pytest.approx((0.1 * 10 + 0.5 * 30) / 40),      # 0.4
        "loss/ratio_mean": pytest.approx((1.0 * 10 + 1.2 * 30) / 40),          # 1.15
        "entropy/0-3": pytest.approx((1.0 * 7 + 2.0 * 6) / 13),      # 7 + 6 tokens at 0-3
        "entropy/4-15": pytest.approx((0.5 * 2 + 1.5 * 12) / 14),    # 2 + 12 tokens at 4-15
        "entropy/16-63": 4.0}                                        # rank 1's 4 tokens only
    assert tq.reduce_stats(stats[0], 1, "cpu") is stats[0]           # one rank: as measured


def test_eval_over_two_ranks_sums_counts(model_dir, monkeypatch):
    """Rank r decodes problems r, r + 2, ...; problem i is right exactly when i is odd, so
    rank 0 scores 0 of 3 and rank 1 2 of 2: 2/5 overall, not the mean of means 1/2."""
    import verify
    from types import SimpleNamespace
    monkeypatch.setattr(verify, "extract_answer", lambda text: "x")
    monkeypatch.setattr(verify, "is_equiv", lambda pred, gold: int(gold[0]) % 2 == 1
                        if isinstance(gold, list) else pred == gold)
    model, tok = tq.load_model(model_dir)
    sets = {"f": [{"problem": f"p{i}", "answer": [str(i)]} for i in range(5)]}
    a = SimpleNamespace(eval_schedules="tau=1.0,greedy", eval_k="1,2", eval_n=2, eval_batch=4,
                        max_new_tokens=3, tau_max=1.2, tau_min=0.1, d0=500.0, alpha=100.0,
                        d_max=8e5, c=10)

    def evaluate(rank, world=2):
        return tq.evaluate(model, tok, sets, a, 0, 0, tok.eos_token_id, None, "cpu", rank, world)

    two = simulated_ranks(monkeypatch, evaluate, 2)
    assert two[0] == two[1] == evaluate(0, world=1)
    for key in ("eval/f/tau=1.0/mean@2", "eval/f/tau=1.0/pass@2", "eval/all/greedy/acc"):
        assert two[0][key] == pytest.approx(2 / 5), key


@pytest.mark.parametrize("tied", [False, True])
def test_memory_plan_counts_the_real_parameters(tied):
    """The plan's parameter count is the model's own, and it holds one (V, H) temporary for
    the vocabulary matrix's gradient (the scorer accumulates its slices into one buffer)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=80, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    model = Qwen2ForCausalLM(cfg)
    plan = tq.memory_plan(cfg, batch=8, prompt_len=16, max_new_tokens=8, micro_batch=4,
                          logits_chunk=8, dtype_bytes=2, checkpointing=True)
    assert plan["parameters"] == sum(p.numel() for p in model.parameters())
    assert plan["terms"]["vocabulary gradient temporary"] == 97 * 32 * 2


@pytest.mark.parametrize("extra,want", [
    ([], dict(clip_high=0.28, kl_coef=0.0, tis_cap=2.0, tis_level="token", chunk_tokens=256,
              max_grad_norm=1.0, num_minibatches=2, micro_batch=4, cache="growing", tau=None)),
    (["--algo", "grpo"], dict(clip_high=0.2, kl_coef=0.001, ref_model=True)),
    (["--no-tis", "--tis-level", "sequence"], dict(tis_cap=None, tis_level="sequence")),
    (["--logits-chunk", "8", "--grad-clip", "0.5"], dict(chunk_tokens=8, max_grad_norm=0.5)),
    (["--schedule", "tau=0.6", "--kv-cache", "dynamic"], dict(tau=0.6, cache="dynamic")),
])
def test_flags_reach_the_algorithm(model_dir, tmp_path, monkeypatch, extra, want):
    """Each update and rollout flag arrives in ead.rl_step and ead.sample with its value
    (the other runner tests keep most of them at their defaults)."""
    import ead
    seen = {}
    rl_step, sample = ead.rl_step, ead.sample

    def spy_step(policy, opt, ids, am, reward_fn, temperatures, **kw):
        seen.update(kw, temperatures=temperatures)
        return rl_step(policy, opt, ids, am, reward_fn, temperatures, **kw)

    def spy_sample(*args, **kw):
        seen["cache"] = kw.get("cache")
        return sample(*args, **kw)

    monkeypatch.setattr(ead, "rl_step", spy_step)
    monkeypatch.setattr(ead, "sample", spy_sample)
    monkeypatch.setattr(tq.verify, "reward", alternating())
    assert run(model_dir, tmp_path / "o", "--steps", "1", "--eval-every", "0", *extra) == 0
    for k, v in want.items():
        if k == "ref_model":
            assert (seen[k] is not None) == v
        elif k == "tau":                                  # None: the paper's EAD, step 0
            want_temps = (torch.full((12,), v) if v else ead.decoding(
                "ead", 12, 0, tau_max=1.2, tau_min=0.1, d0=500.0, alpha=100.0, d_max=8e5, c=10))
            assert torch.equal(seen["temperatures"], want_temps)
        else:
            assert seen[k] == v, k
