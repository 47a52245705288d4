"""Data parallel on CPU: two gloo processes compute what one process computes.

(a) one update over a fixed batch of answers, split by whole groups over 2 ranks, moves the
    weights exactly as one process over all answers does (FSDP2 and DDP);
(b) evaluation split over ranks reduces sums of counts, not means of means;
(c) `torchrun --nproc_per_node 2 train_qwen.py` writes a sharded checkpoint that one process
    resumes (and the reverse);
(d) a rank that leaves while a collective is still finishing on gloo's thread does not hang.

Every multi-process step has a deadline: a rank still running after DEADLINE seconds is
aborted, its Python stacks go to the captured stderr, and the test fails naming it.
"""
import copy
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.distributed.nn.functional  # noqa: F401  (see leave_mid_collective_body)
import torch.multiprocessing as mp

import ead
import train_qwen as tq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOS, PAD, V_REAL = [3, 5, 7, 11], 0, 40
PROMPTS = [[1, 20, 21, 22], [1, 30, 31, 32, 33], [1, 25], [1, 12, 13, 14, 15, 16]]
DEADLINE = 120                                               # seconds for one multi-process step


def as_rank(rank, world, rdzv, body, *args):
    """A spawned rank: join (a file rendezvous in the test's folder: no port to race for),
    run body(rank, world, *args), leave. The body's frame, with any DDP/FSDP wrapper, is gone
    before train_qwen.leave_ranks runs; the process then ends without the interpreter's
    shutdown, as train_qwen's ranks do."""
    if world > 1:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world)
    body(rank, world, *args)
    tq.leave_ranks(finished=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(tmp_path, body, world, *args):
    """body on `world` spawned ranks, within DEADLINE seconds."""
    rdzv = tmp_path / f"rdzv-{time.monotonic_ns()}"
    with mock.patch.dict(os.environ, PYTHONFAULTHANDLER="1"):   # an aborted rank prints its stacks
        ctx = mp.start_processes(as_rank, args=(world, str(rdzv), body, *args), nprocs=world,
                                 join=False, start_method="spawn")
    end = time.monotonic() + DEADLINE
    while not ctx.join(timeout=max(end - time.monotonic(), 0.01)):   # raises if a rank failed
        if time.monotonic() >= end:
            stuck = {r: p.pid for r, p in enumerate(ctx.processes) if p.is_alive()}
            for pid in stuck.values():
                os.kill(pid, signal.SIGABRT)
            for p in ctx.processes:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
            pytest.fail(f"{body.__name__}: rank(s) {sorted(stuck)} (pid {list(stuck.values())}) "
                        f"still running after {DEADLINE} s; aborted, their Python stacks are in "
                        f"the captured stderr")


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


def update_body(rank, world, parallel, model, out):
    model = copy.deepcopy(model)                             # spawn shares tensor memory
    tied = model.lm_head.weight is model.get_input_embeddings().weight
    ids, am, roll, adv = fixed_batch(model)
    mine = slice(rank * 8, rank * 8 + 8)                     # whole groups: 2 of 4 per rank
    part = ead.Rollout(*(x[mine] for x in roll))
    wrapped = tq.wrap_ranks(model, SimpleNamespace(parallel=parallel), world, "cpu")
    lookups, apply = [], ead._TiedLookup.apply               # the wrapper keeps the tie seen
    ead._TiedLookup.apply = lambda *x: lookups.append(1) or apply(*x)
    one_update(wrapped, ids[mine], am[mine], part, adv[mine], tq.mean_over_ranks)
    assert bool(lookups) == tied, f"rank {rank}: {len(lookups)} tied lookups, tied={tied}"
    full = {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach()
            for n, p in tq.inner(wrapped).named_parameters()}
    if rank == 0:
        torch.save(full, out)


@pytest.mark.parametrize("parallel,tied", [("fsdp", False), ("ddp", False), ("fsdp", True),
                                           ("ddp", True)])
def test_two_ranks_update_like_one_process(tiny_model, parallel, tied, tmp_path):
    """tied: the head is the input embedding, whose gradient the scorer's buffer collects."""
    model = copy.deepcopy(tiny_model)
    if tied:
        model.lm_head.weight = model.get_input_embeddings().weight
    ids, am, roll, adv = fixed_batch(model)
    assert (adv == 0).any() and (adv != 0).any()
    single = copy.deepcopy(model)
    sums = one_update(single, ids, am, roll, adv)
    assert sums["updates"] == 1
    out = str(tmp_path / "ranks.pt")
    spawn(tmp_path, update_body, 2, parallel, model, out)
    ranks = torch.load(out)
    moved = 0.0
    for (name, p), p0 in zip(single.named_parameters(), tiny_model.parameters()):
        torch.testing.assert_close(ranks[name], p.detach(), atol=1e-6, rtol=1e-5, msg=name)
        moved = max(moved, float((p - p0).abs().max().detach()))
    assert moved > 1e-4                                      # the update did move the weights


def eval_body(rank, world, model_dir, out):
    import verify
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


def test_eval_over_ranks_sums_counts(model_dir, tmp_path):
    out1, out2 = str(tmp_path / "one.json"), str(tmp_path / "two.json")
    spawn(tmp_path, eval_body, 1, model_dir, out1)
    spawn(tmp_path, eval_body, 2, model_dir, out2)
    one, two = json.load(open(out1)), json.load(open(out2))
    assert one == two
    assert two["eval/f/tau=1.0/mean@2"] == pytest.approx(2 / 5)   # 3 + 2 problems, not 1/3, 1/2
    assert two["eval/all/greedy/acc"] == pytest.approx(2 / 5)


def gloo_threads() -> int:
    return sum(open(f"/proc/self/task/{t}/comm").read().strip() == "pt_gloo_runloop"
               for t in os.listdir("/proc/self/task"))


def leave_mid_collective_body(rank, world, model, started):
    """Rank 1 leaves while an all-reduce it started is still running on gloo's thread, and
    that all-reduce's end runs Python there (its callback), as the end of a collective that a
    backward started does (freeing its saved thread-local state). Rank 0 joins the all-reduce
    only once rank 1 is leaving. destroy_process_group must be the group's last owner, and
    end it: this module imports torch.distributed.nn.functional before any group exists,
    since its functions' default `group` would otherwise hold the world group."""
    ddp = tq.wrap_ranks(copy.deepcopy(model), SimpleNamespace(parallel="ddp"), world, "cpu")
    if rank == 0:
        while not os.path.exists(started):
            time.sleep(0.01)
        time.sleep(1.0)                                      # rank 1 into destroy_process_group
    work = dist.all_reduce(torch.ones(3), async_op=True)
    done = work.get_future().then(lambda fut: fut.value())
    if rank == 0:
        done.wait()
    else:
        open(started, "w").close()
    del ddp, work, done                                      # the wrapper goes first
    assert gloo_threads() > 0
    tq.leave_ranks(finished=False)                           # as after an error: no barrier
    assert gloo_threads() == 0                               # the group ended, threads joined


def test_a_rank_leaving_mid_collective_does_not_hang(tiny_model, tmp_path):
    """A wrapper dropped after destroy_process_group makes DDP's reducer the group's last
    owner: freeing it joins gloo's threads with the GIL held, while the all-reduce's end waits
    for the GIL. This test then hangs until its deadline."""
    spawn(tmp_path, leave_mid_collective_body, 2, tiny_model, str(tmp_path / "leaving"))


def ranks_alive(root: int) -> dict:
    """{rank: pid} of the live processes under `root` that torchrun started (the root itself
    as rank 0 when it runs alone)."""
    parent = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, todo = {}, [c for c, p in parent.items() if p == root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if b"RANK" in env:
            found[int(env[b"RANK"])] = pid
        todo += [c for c, p in parent.items() if p == pid]
    return found or {0: root}


def torchrun(model_dir, out, steps, nproc, *extra):
    data = os.path.join(ROOT, "data", "sample_math.jsonl")
    args = ["train_qwen.py", "--model", model_dir, "--train", data, "--out", str(out),
            "--batch", "8", "--group", "4", "--minibatches", "2", "--micro-batch", "4",
            "--max-new-tokens", "6", "--lr", "1e-3", "--device", "cpu", "--eval-every", "0",
            "--algo", "grpo", "--steps", str(steps), *extra]    # grpo's KL: every step updates
    # --standalone: torchrun binds its own free port and hands it to the ranks (no race)
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(nproc)] if nproc > 1 else [sys.executable])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(launch + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        stuck = ranks_alive(proc.pid)
        for pid in stuck.values():
            os.kill(pid, signal.SIGABRT)
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(launch[2:])} train_qwen.py: rank(s) {sorted(stuck)} still "
                    f"running after {DEADLINE} s; aborted, their Python stacks:\n{stderr[-6000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_checkpoints_survive_a_change_of_rank_count(model_dir, tmp_path):
    import torch.distributed.checkpoint as dcp
    out = tmp_path / "run"
    r = torchrun(model_dir, out, 2, 2)                       # 2 ranks, FSDP2, 2 steps
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = out / "checkpoint"
    state = json.load(open(ckpt / tq.STATE))
    assert state["step"] == 2 and state["world"] == 2 and state["pos"] == 4
    # sharded: each rank wrote its own file, and each parameter is two halves, one per rank
    assert sorted(f for f in os.listdir(ckpt / "dcp") if f.endswith(".distcp")) == [
        "__0_0.distcp", "__1_0.distcp"]
    meta = dcp.FileSystemReader(str(ckpt / "dcp")).read_metadata().state_dict_metadata
    emb = meta["params.model.embed_tokens.weight"]
    assert sorted(c.offsets[0] for c in emb.chunks) == [0, emb.size[0] // 2]
    assert [c.sizes[0] for c in emb.chunks] == [emb.size[0] // 2] * 2
    assert len(meta["adam.model.embed_tokens.weight.exp_avg"].chunks) == 2
    r = torchrun(model_dir, out, 3, 1, "--resume")           # 1 process continues
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed at step 2" in r.stdout
    assert json.load(open(ckpt / tq.STATE))["world"] == 1
    r = torchrun(model_dir, out, 4, 2, "--resume")           # and 2 ranks again
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [x["step"] for x in recs] == [1, 2, 3, 4]
    assert all(x["loss/updates"] == 2 for x in recs)
    state = json.load(open(ckpt / tq.STATE))
    assert state["step"] == 4 and state["pos"] == 8
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    dcp_to_torch_save(str(ckpt / "dcp"), str(tmp_path / "whole.pt"))   # torch's own reader
    whole = torch.load(tmp_path / "whole.pt")["params"]
    model, _ = tq.load_model(str(ckpt))                     # one process reads the shards
    assert [n for n, _ in model.named_parameters()] == list(whole)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, whole[n], rtol=0, atol=0, msg=n)


def test_launch_errors_are_one_line(model_dir, tmp_path, monkeypatch, capsys):
    data = os.path.join(ROOT, "data", "sample_math.jsonl")
    base = ["--model", model_dir, "--train", data, "--out", str(tmp_path), "--device", "cpu"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert tq.main(base + ["--batch", "12", "--group", "4"]) == 2  # 12 = 3 groups for 2 ranks
    assert "2 rank(s) x --group 4" in capsys.readouterr().err
    assert tq.main(base + ["--batch", "8", "--group", "4"]) == 2   # no RANK, MASTER_ADDR...
    err = capsys.readouterr().err
    assert "launch with torchrun" in err and err.count("\n") == 1
