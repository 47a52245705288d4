"""Data parallel on CPU: two gloo processes compute what one process computes.

(a) one update over a fixed batch of answers, split by whole groups over 2 ranks, moves the
    weights exactly as one process over all answers does (FSDP2 and DDP);
(b) evaluation split over ranks reduces sums of counts, not means of means;
(c) `torchrun --nproc_per_node 2 train_qwen.py` writes a checkpoint that one process resumes
    (and the reverse).
"""
import copy
import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ead
import train_qwen as tq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOS, PAD, V_REAL = [3, 5, 7, 11], 0, 40
PROMPTS = [[1, 20, 21, 22], [1, 30, 31, 32, 33], [1, 25], [1, 12, 13, 14, 15, 16]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(rank: int, world: int, port: int):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo")


def fixed_batch(model):
    """A rollout of 4 prompts x 4 answers with rewards that leave some groups flat."""
    ids, am = ead.left_pad(PROMPTS, PAD)
    ids, am = ids.repeat_interleave(4, 0), am.repeat_interleave(4, 0)
    roll = ead.sample(model, ids, am, ead.ead_schedule(8, tau_max=1.5, tau_min=0.5, d0=4, c=1),
                      eos_token_id=EOS, pad_token_id=PAD, vocab_size=V_REAL,
                      generator=torch.Generator().manual_seed(3))
    rewards = ((roll.tokens % 3 == 0) & roll.mask).sum(1).float()
    rewards[4:8] = 1.0                                       # one flat group: no signal
    return ids, am, roll, ead.group_advantages(rewards, 4)


def one_update(model, ids, am, roll, adv, mean_over_ranks=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)        # FSDP: the sharded parameters
    with torch.no_grad():
        logp_old = ead.token_logprobs(model, ids, am, roll.tokens, roll.mask, vocab_size=V_REAL)
    return ead.update(model, opt, ids, am, roll, adv, logp_old, active=adv != 0,
                      num_minibatches=1, micro_batch=3, max_grad_norm=1e9, vocab_size=V_REAL,
                      mean_over_ranks=mean_over_ranks)


def update_worker(rank, world, port, parallel, model, out):
    join(rank, world, port)
    model = copy.deepcopy(model)                             # spawn shares tensor memory
    ids, am, roll, adv = fixed_batch(model)
    mine = slice(rank * 8, rank * 8 + 8)                     # whole groups: 2 of 4 per rank
    part = ead.Rollout(*(x[mine] for x in roll))
    wrapped = tq.wrap_ranks(model, SimpleNamespace(parallel=parallel), world, "cpu")
    one_update(wrapped, ids[mine], am[mine], part, adv[mine], tq.mean_over_ranks)
    full = {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach()
            for n, p in tq.inner(wrapped).named_parameters()}
    if rank == 0:
        torch.save(full, out)
    dist.destroy_process_group()


@pytest.mark.parametrize("parallel", ["fsdp", "ddp"])
def test_two_ranks_update_like_one_process(tiny_model, parallel, tmp_path):
    model = copy.deepcopy(tiny_model)
    ids, am, roll, adv = fixed_batch(model)
    assert (adv == 0).any() and (adv != 0).any()
    single = copy.deepcopy(model)
    sums = one_update(single, ids, am, roll, adv)
    assert sums["updates"] == 1
    out = str(tmp_path / "ranks.pt")
    mp.spawn(update_worker, args=(2, free_port(), parallel, model, out), nprocs=2)
    ranks = torch.load(out)
    moved = 0.0
    for (name, p), p0 in zip(single.named_parameters(), tiny_model.parameters()):
        torch.testing.assert_close(ranks[name], p.detach(), atol=1e-6, rtol=1e-5, msg=name)
        moved = max(moved, float((p - p0).abs().max().detach()))
    assert moved > 1e-4                                      # the update did move the weights


def eval_worker(rank, world, port, model_dir, out):
    import verify
    if world > 1:
        join(rank, world, port)
    # problem i's answers are right exactly when i is odd: known metrics, any decoding
    verify.extract_answer = lambda text: "x"
    verify.is_equiv = lambda pred, gold: gold[0] in ("1", "3")
    model, tok = tq.load_model(model_dir)
    sets = {"f": [{"problem": f"p{i}", "answer": [str(i)]} for i in range(5)]}
    a = SimpleNamespace(eval_schedules="tau=1.0,greedy", eval_k="1,2", eval_n=2, eval_batch=4,
                        max_new_tokens=3, tau_max=1.2, tau_min=0.1, d0=500.0, alpha=100.0,
                        d_max=8e5, c=10)
    res = tq.evaluate(model, tok, sets, a, 0, 0, tok.eos_token_id, None, "cpu", rank, world)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(res, f)
    if world > 1:
        dist.destroy_process_group()


def test_eval_over_ranks_sums_counts(model_dir, tmp_path):
    out1, out2 = str(tmp_path / "one.json"), str(tmp_path / "two.json")
    mp.spawn(eval_worker, args=(1, 0, model_dir, out1), nprocs=1)
    mp.spawn(eval_worker, args=(2, free_port(), model_dir, out2), nprocs=2)
    one, two = json.load(open(out1)), json.load(open(out2))
    assert one == two
    assert two["eval/f/tau=1.0/mean@2"] == pytest.approx(2 / 5)   # 3 + 2 problems, not 1/3, 1/2
    assert two["eval/all/greedy/acc"] == pytest.approx(2 / 5)


def torchrun(model_dir, out, steps, nproc, *extra):
    data = os.path.join(ROOT, "data", "sample_math.jsonl")
    args = ["train_qwen.py", "--model", model_dir, "--train", data, "--out", str(out),
            "--batch", "8", "--group", "4", "--minibatches", "2", "--micro-batch", "4",
            "--max-new-tokens", "6", "--lr", "1e-3", "--device", "cpu", "--eval-every", "0",
            "--algo", "grpo", "--steps", str(steps), *extra]    # grpo's KL: every step updates
    launch = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port())] if nproc > 1 else [sys.executable])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(launch + args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_checkpoints_survive_a_change_of_rank_count(model_dir, tmp_path):
    out = tmp_path / "run"
    r = torchrun(model_dir, out, 2, 2)                       # 2 ranks, 2 steps
    assert r.returncode == 0, r.stderr[-2000:]
    state = torch.load(out / "checkpoint" / "trainer.pt", weights_only=False)
    assert state["step"] == 2 and state["world"] == 2 and state["pos"] == 4
    assert all(v["exp_avg"].abs().sum() > 0 for v in state["adam"].values())
    r = torchrun(model_dir, out, 3, 1, "--resume")           # 1 process continues
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed at step 2" in r.stdout
    r = torchrun(model_dir, out, 4, 2, "--resume")           # and 2 ranks again
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [x["step"] for x in recs] == [1, 2, 3, 4]
    assert all(x["loss/updates"] == 2 for x in recs)
    state = torch.load(out / "checkpoint" / "trainer.pt", weights_only=False)
    assert state["step"] == 4 and state["pos"] == 8


def test_launch_errors_are_one_line(model_dir, tmp_path, monkeypatch, capsys):
    data = os.path.join(ROOT, "data", "sample_math.jsonl")
    base = ["--model", model_dir, "--train", data, "--out", str(tmp_path), "--device", "cpu"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert tq.main(base + ["--batch", "12", "--group", "4"]) == 2  # 12 = 3 groups for 2 ranks
    assert "2 rank(s) x --group 4" in capsys.readouterr().err
    assert tq.main(base + ["--batch", "8", "--group", "4"]) == 2   # no RANK, MASTER_ADDR...
    err = capsys.readouterr().err
    assert "launch with torchrun" in err and err.count("\n") == 1
