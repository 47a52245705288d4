"""train_tiny.py: watch EAD and fixed-temperature sampling compete in a real RLVR loop, on a CPU.

    python train_tiny.py                     # EAD vs the best fixed τ, one seed: about 4.5 minutes
    python train_tiny.py --seeds 18          # the paired measurement, 18 seeds: about 27 minutes
    python train_tiny.py --split val --seeds 3 --frontier-problems 0 \
        --schedules ead,tau=0.2,tau=0.4,tau=0.6,tau=0.8,tau=1.0   # pick the fixed τ to beat
    python train_tiny.py --report RUN_DIR    # rebuild the tables and plots of a (stopped) run
    python train_tiny.py --help              # every knob

The task is Countdown with written-out steps. A prompt lists numbers and a target; the answer
combines all numbers, one step at a time, and writes every intermediate result:

    prompt  "3,5,7>22:"        answer  "3*5=15,15+7=22"

A verifier recomputes every step: operands must come from the pool (each used once), each
result must be right, and the last one must be the target. Both failure modes of a fixed
temperature live here:
  * the first tokens pick a path (which numbers, which operation); the warm start has a
    favourite path (add the first two numbers) that is usually wrong, so a cold sampler keeps
    taking it: exploration pays early;
  * the rest is arithmetic that is fully determined by that choice (results written digit by
    digit, carried to the next step), where every hot token is a chance to break the answer:
    exploitation pays late.
EAD runs hot on the first tokens and cools down over the tail (README eq. 1 with d of the order
of the answer length). All schedules start from the same warm start with the same seeds and the
same number of samples, and are evaluated on the same held-out problems.

What it prints, and why it can be trusted:
  * every number has a 95% interval: a percentile bootstrap over held-out problems (one seed)
    or over seeds and problems (--seeds > 1);
  * the question, does annealing beat the best fixed temperature, is a paired difference: EAD
    minus that fixed τ, same seeds, same problems, with its interval. The fixed τ to beat
    (--baseline) is chosen on the validation split, so the test split never picks it;
  * the inference-time experiment: one policy, many decodings, no training. Each decoding is a
    point of the precision-exploration plane (x: mean@n or worst@k, y: pass@k); the fixed
    temperatures trace a frontier, and an EAD decoding either lies above it or it does not.
The run folder holds metrics.jsonl (every record, appended as it is made: a crash or Ctrl-C
loses nothing finished), table.md, summary.json, curves.png and frontier.png.
"""
from __future__ import annotations

import os

# torch's OpenMP threads spin while they wait for work. With another process on the machine a
# spinning thread burns the core that process needs, and a 2-thread RL step was measured 10x
# slower than a 1-thread one. Passive waiting avoids that; it must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import hashlib
import json
import math
import multiprocessing
import random
import re
import signal
import sys
import time
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import ead

# =====================================================================================
# The task: Countdown with written-out steps, and its verifier
# =====================================================================================

OPS = "+-*"


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def random_path(rng: random.Random, numbers: list[int]) -> list[tuple[int, str, int, int]]:
    """A random way to combine all numbers: steps (a, op, b, result) with results >= 0."""
    pool, steps = list(numbers), []
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        op = rng.choice(OPS)
        a, b = pool[i], pool[j]
        if op == "-" and a < b:
            a, b = b, a
        r = apply(a, op, b)
        pool = [x for k, x in enumerate(pool) if k not in (i, j)] + [r]
        steps.append((a, op, b, r))
    return steps


def favourite_path(numbers: list[int]) -> list[tuple[int, str, int, int]]:
    """The warm start's habit: add the numbers left to right."""
    steps, acc = [], numbers[0]
    for x in numbers[1:]:
        steps.append((acc, "+", x, acc + x))
        acc += x
    return steps


def write_steps(steps) -> str:
    return ",".join(f"{a}{op}{b}={r}" for a, op, b, r in steps)


def make_problem(rng: random.Random, n_numbers: int, lo: int, hi: int):
    """Numbers and a target that a random path reaches (so a solution exists)."""
    numbers = [rng.randint(lo, hi) for _ in range(n_numbers)]
    return numbers, random_path(rng, numbers)[-1][3]


def prompt_text(numbers, target) -> str:
    return ",".join(map(str, numbers)) + f">{target}:"


_STEP = re.compile(r"(\d+)([+\-*])(\d+)=(\d+)")


def verify_countdown(numbers: list[int], target: int, answer: str) -> float:
    """1.0 when the answer is a correct derivation of the target using every number once."""
    steps = answer.split(",")
    if len(steps) != len(numbers) - 1:
        return 0.0
    pool = list(numbers)
    result = None
    for s in steps:
        m = _STEP.fullmatch(s)
        if not m:
            return 0.0
        a, op, b, r = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        for x in (a, b):                       # operands come from the pool, each once
            if x not in pool:
                return 0.0
            pool.remove(x)
        if apply(a, op, b) != r:
            return 0.0
        pool.append(r)
        result = r
    return 1.0 if result == target and len(pool) == 1 else 0.0


# =====================================================================================
# A character tokenizer and a tiny Qwen2 (the exact model class of the GPU run)
# =====================================================================================

PAD, BOS, EOS = 0, 1, 2
CHARS = "0123456789+-*=,>:"
STOI = {ch: i + 3 for i, ch in enumerate(CHARS)}
ITOS = {i: ch for ch, i in STOI.items()}
VOCAB = 3 + len(CHARS)


def encode(text: str) -> list[int]:
    return [STOI[ch] for ch in text]


def decode(ids) -> str:
    return "".join(ITOS.get(int(i), "") for i in ids)


def build_model(args):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=max(1, args.heads // 2), max_position_embeddings=64,
                      tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=EOS,
                      pad_token_id=PAD)
    return Qwen2ForCausalLM(cfg)


# =====================================================================================
# Warm start: supervised steps on the favourite path and on random paths (cached on disk)
# =====================================================================================


def sft_example(rng, numbers, target, p_fav):
    steps = favourite_path(numbers) if rng.random() < p_fav else random_path(rng, numbers)
    return [BOS] + encode(prompt_text(numbers, target)), encode(write_steps(steps)) + [EOS]


def warm_start(args, held_out: set) -> str:
    """Path of the warm-started model's state dict: trained once per setting, then read."""
    keys = ["n_numbers", "lo", "hi", "hidden", "layers", "heads", "sft_steps", "sft_batch",
            "sft_lr", "p_fav", "eval_problems"]     # eval_problems: which problems are held out
    tag = hashlib.sha1(json.dumps({k: getattr(args, k) for k in keys}).encode()).hexdigest()[:10]
    path = os.path.join(args.cache, f"warm_{tag}.pt")
    if os.path.exists(path):
        return path
    torch.manual_seed(0)
    rng = random.Random(0)
    model = build_model(args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.sft_lr, weight_decay=0.0)
    bar = tqdm(range(args.sft_steps), desc="warm start (SFT)", leave=False)
    for it in bar:
        batch = []
        while len(batch) < args.sft_batch:
            numbers, target = make_problem(rng, args.n_numbers, args.lo, args.hi)
            if (tuple(numbers), target) not in held_out:
                batch.append(sft_example(rng, numbers, target, args.p_fav))
        seqs = [p + a for p, a in batch]
        L = max(map(len, seqs))
        ids = torch.tensor([s + [PAD] * (L - len(s)) for s in seqs])
        labels = torch.full_like(ids, -100)              # learn the answers, not the prompts
        for b, (p, a) in enumerate(batch):
            labels[b, len(p):len(p) + len(a)] = torch.tensor(a)
        lr = args.sft_lr * min(1.0, (it + 1) / 50) * 0.5 * (1 + math.cos(math.pi * it / args.sft_steps))
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(input_ids=ids).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    os.makedirs(args.cache, exist_ok=True)
    torch.save(model.state_dict(), path + ".tmp")
    os.replace(path + ".tmp", path)                       # atomic: no half-written cache
    return path


# =====================================================================================
# Evaluation: every decoding of a policy in one batched sampler
# =====================================================================================


def schedule(name: str, args, step: int, **knobs) -> torch.Tensor:
    """Temperatures of the named decoding ('ead', 'tau=X', 'greedy') at training step `step`;
    `knobs` override the EAD flags (the inference-time experiment's EAD settings)."""
    ead_knobs = {"tau_max": args.tau_max, "tau_min": args.tau_min, "d0": args.d0,
                 "alpha": args.alpha, "c": args.c, **knobs}
    return ead.decoding(name, args.max_new, step, **ead_knobs)


def rewards_of(roll, problems) -> torch.Tensor:
    out = []
    for b in range(roll.tokens.shape[0]):
        numbers, target = problems[b]
        n = int(roll.mask[b].sum())
        ids = roll.tokens[b, :n].tolist()
        if not ids or ids[-1] != EOS:                    # never finished: no answer
            out.append(0.0)
            continue
        out.append(verify_countdown(numbers, target, decode(ids[:-1])))
    return torch.tensor(out)


@torch.no_grad()
def sample_hits(model, problems, decodings: dict, n: int, seed: int, args,
                tick: Callable = lambda rows: None) -> dict:
    """How many of n samples are correct on each problem, under each decoding (greedy: 1).

    Every (decoding, problem, sample) row goes through ead.sample in chunks of --batch-rows,
    each row with its own temperature schedule: one call per chunk instead of one per
    decoding, and a bigger batch costs less per row. Each chunk draws from its own generator,
    seeded by (seed, chunk), so two policies evaluated with the same seed share their random
    numbers: a paired comparison then carries less sampling noise. Returns
    {name: {"n": samples per problem, "hits": [correct counts], "entropy_by_pos": [...]}}.
    """
    model.eval()
    ids, am = ead.left_pad([[BOS] + encode(prompt_text(nu, t)) for nu, t in problems], PAD)
    P = len(problems)
    sizes = [1 if bool((t == 0).all()) else n for t in decodings.values()]
    prob = torch.cat([torch.arange(P).repeat_interleave(k) for k in sizes])             # (R,)
    dec = torch.cat([torch.full((P * k,), d) for d, k in enumerate(sizes)])             # (R,)
    temps = torch.stack(list(decodings.values()))[dec]                                  # (R, T)
    correct = torch.zeros(len(prob))
    ent = torch.zeros(len(sizes), args.max_new)     # per decoding: entropy summed by position,
    cnt = torch.zeros(len(sizes), args.max_new)     # and how many answers were still running
    for c, start in enumerate(range(0, len(prob), args.batch_rows)):
        rows = slice(start, start + args.batch_rows)
        roll = ead.sample(model, ids[prob[rows]], am[prob[rows]], temps[rows], eos_token_id=EOS,
                          pad_token_id=PAD,
                          generator=torch.Generator().manual_seed(seed * 100_003 + c))
        correct[rows] = rewards_of(roll, [problems[i] for i in prob[rows].tolist()])
        w, m = roll.mask.shape[1], roll.mask.float()
        ent[:, :w].index_add_(0, dec[rows], roll.entropy * m)
        cnt[:, :w].index_add_(0, dec[rows], m)
        tick(len(roll.mask))
    out = {}
    for d, (name, k) in enumerate(zip(decodings, sizes)):
        out[name] = {"n": k, "hits": correct[dec == d].view(P, k).sum(1).int().tolist()}
        if k > 1:
            ran = int((cnt[d] > 0).sum())               # positions some answer reached
            out[name]["entropy_by_pos"] = [round(float(x), 3) for x in ent[d, :ran] / cnt[d, :ran]]
    return out


def problem_metrics(res: dict, ks) -> dict[str, np.ndarray]:
    """Per-problem metrics (eq. 8) of one sample_hits entry: mean@n, pass@k, worst@k or acc."""
    n = res["n"]
    verdicts = [[True] * h + [False] * (n - h) for h in res["hits"]]   # only counts matter
    return {m: np.array(v) for m, v in ead.per_problem_metrics(verdicts, ks).items()}


def final_decodings(args) -> dict:
    """What the final evaluation reports: sampling at τ = 1 and greedy decoding."""
    return {"t1": schedule("tau=1.0", args, 0), "greedy": schedule("greedy", args, 0)}


def frontier_decodings(args) -> dict:
    """The inference-time grid: fixed temperatures, then EAD settings (the trained one first)."""
    out = {f"tau={t:g}": schedule(f"tau={t:g}", args, 0) for t in args.frontier_taus}
    for tmax, tmin, d0 in [(args.tau_max, args.tau_min, args.d0)] + args.frontier_ead:
        out.setdefault(f"ead {tmax:g}→{tmin:g} d={d0:g}",
                       schedule("ead", args, 0, tau_max=tmax, tau_min=tmin, d0=d0))
    return out


# =====================================================================================
# Statistics: bootstrap intervals, and how the variance splits
# =====================================================================================


def bootstrap_draws(S: int, P: int, B: int, seed: int = 0):
    """B resamplings of S seeds and of P problems, as counts: (B, S) and (B, P).

    Seeds and problems are drawn independently (the 'pigeonhole' bootstrap of a crossed
    design: every seed is evaluated on the same problems), and one set of draws serves every
    quantity of a run, so that a difference of two schedules is resampled pairwise. Each
    resample holds S - 1 seeds, not S: the bootstrap variance of a mean of S values is then
    s^2 / S, where S draws give (S - 1) / S of it, too narrow an interval with few seeds."""
    rng = np.random.default_rng(seed)
    return (rng.multinomial(max(S - 1, 1), np.full(S, 1 / S), size=B),
            rng.multinomial(P, np.full(P, 1 / P), size=B))


def boot_means(x: np.ndarray, draws) -> np.ndarray:
    """The mean of x (S seeds, P problems) under each of the B resamplings: (B,)."""
    ws, wp = draws
    return ((ws @ x) * wp).sum(1) / (ws.sum(1) * wp.sum(1))


def interval(x: np.ndarray, draws) -> dict:
    """Mean of x (S, P) and its 95% percentile-bootstrap interval."""
    lo, hi = np.percentile(boot_means(x, draws), [2.5, 97.5])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi)}


def variance_parts(x: np.ndarray) -> dict:
    """Two-way random-effects split of x (S seeds, P problems): x_sp = m + a_s + b_p + e_sp.

    training = var(a): what a perfect evaluation would still see from seed to seed;
    evaluation = var(e) / P: the rest of the seed-to-seed variance of a run's mean (samples,
        and how a seed's policy happens to do on these particular problems), which more
        held-out problems and samples shrink;
    problems = var(b) / P: the uncertainty of the held-out set shared by all seeds.
    The variance of an S-seed mean is training / S + evaluation / S + problems.
    """
    S, P = x.shape
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    ms_e = float((resid ** 2).sum() / ((S - 1) * (P - 1)))       # ANOVA mean squares
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
    """Highest y of the polyline through the fixed-τ points (fx, fy), (B, G) in τ order, at x
    (B,); NaN where no segment reaches x."""
    best = np.full(x.shape, -np.inf)
    for i in range(fx.shape[1] - 1):
        x0, x1, y0, y1 = fx[:, i], fx[:, i + 1], fy[:, i], fy[:, i + 1]
        inside = (np.minimum(x0, x1) <= x) & (x <= np.maximum(x0, x1))
        t = np.where(x1 != x0, (x - x0) / np.where(x1 != x0, x1 - x0, 1.0), 0.0)
        best = np.where(inside, np.maximum(best, y0 + t * (y1 - y0)), best)
    return np.where(np.isfinite(best), best, np.nan)


def frontier_stats(res: dict, args, draws) -> dict:
    """One policy's decodings in the precision-exploration plane, with intervals, and each EAD
    point's height above the fixed-τ frontier at its own precision (paired over problems)."""
    ys, xs = frontier_axes(args)
    per = {d: problem_metrics(r, args.ks) for d, r in res.items()}
    points = {d: {m: interval(v[m][None], draws) for m in (ys, *xs)} for d, v in per.items()}
    fixed = [d for d in per if d.startswith("tau=")]
    gaps = {}
    for d in (d for d in per if d not in fixed):
        gaps[d] = {}
        for x in xs:
            def gap(mean):      # mean(decoding, metric) -> (B,) or (1,) array
                fx = np.stack([mean(f, x) for f in fixed], 1)
                fy = np.stack([mean(f, ys) for f in fixed], 1)
                return mean(d, ys) - frontier_height(fx, fy, mean(d, x))
            point = float(gap(lambda dd, m: np.array([per[dd][m].mean()]))[0])
            boot = gap(lambda dd, m: boot_means(per[dd][m][None], draws))
            ok = boot[np.isfinite(boot)]
            lo, hi = (np.percentile(ok, [2.5, 97.5]) if len(ok) >= 0.975 * len(boot)
                      else (None, None))     # the point often sits past the frontier's ends
            gaps[d][f"{ys} over {x}"] = {"mean": None if math.isnan(point) else point,
                                         "lo": None if lo is None else float(lo),
                                         "hi": None if hi is None else float(hi)}
    return {"points": points, "gaps": gaps}


def frontier_axes(args):
    """y: pass@k at the largest k (exploration); x: mean@n (precision) and worst@k at the
    smallest k > 1 (all k samples right)."""
    k2 = min([k for k in args.ks if k > 1], default=max(args.ks))
    return f"pass@{max(args.ks)}", (f"mean@{args.frontier_n}", f"worst@{k2}")


# =====================================================================================
# One RL run: a schedule, a seed, the shared warm start
# =====================================================================================

TRAIN_PROBLEMS_SEED = 100        # training problems of seed s come from Random(100 + s)
VAL_FIRST_SEED = 1000            # validation runs train other seeds than test runs (below)


def schedule_names(args) -> list[str]:
    """The trained schedules; none ('--schedules ""') evaluates the warm start alone."""
    return [n for n in args.schedules.split(",") if n]


def run_seeds(args) -> list[int]:
    """Training seeds of the run. Training does not depend on the split, so a validation run
    on the test run's seeds would pick knobs with the very policies that are then reported:
    its training luck would carry over. Disjoint seeds make the choice independent."""
    first = VAL_FIRST_SEED if args.split == "val" else 0
    return list(range(first, first + args.seeds))


def eval_steps(args) -> set[int]:
    return set(range(0, args.steps + 1, args.eval_every)) | {args.steps}


def curve_eval(model, name: str, step: int, seed: int, args, problems, tick) -> dict:
    """The cheap evaluation of the learning curves: the first --curve-problems problems."""
    decodings = {**final_decodings(args), "own": schedule(name, args, step)}
    res = sample_hits(model, problems[:args.curve_problems], decodings, args.curve_n,
                      10_000 + seed, args, tick)
    rec = {}
    for d, r in res.items():
        for m, v in problem_metrics(r, args.ks).items():
            rec[f"eval/{d}/{m}"] = float(v.mean())
        if "entropy_by_pos" in r:
            rec[f"eval/{d}/entropy_by_pos"] = r["entropy_by_pos"]
    return rec


def train_one(model, name: str, seed: int, args, problems, held_out, log, tick) -> None:
    """RL from the warm start with one schedule and one seed, then the final evaluation."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = random.Random(TRAIN_PROBLEMS_SEED + seed)          # same problems for every schedule
    gen = torch.Generator().manual_seed(seed)
    tokens, t0 = 0, time.time()
    for step in range(args.steps + 1):
        if step in eval_steps(args):
            log({"kind": "eval", "schedule": name, "seed": seed, "step": step, "tokens": tokens,
                 "time_s": round(time.time() - t0, 2),
                 **curve_eval(model, name, step, seed, args, problems, tick)})
        if step == args.steps:
            break
        batch = []
        while len(batch) < args.prompts:
            p = make_problem(rng, args.n_numbers, args.lo, args.hi)
            if (tuple(p[0]), p[1]) not in held_out:
                batch.append(p)
        ids, am = ead.left_pad([[BOS] + encode(prompt_text(n, t)) for n, t in batch], PAD)
        grouped = [p for p in batch for _ in range(args.group)]
        stats, roll, _ = ead.rl_step(
            model, opt, ids, am, lambda r: rewards_of(r, grouped),
            schedule(name, args, step), group_size=args.group, eos_token_id=EOS,
            pad_token_id=PAD, generator=gen, num_minibatches=args.minibatches,
            micro_batch=args.prompts * args.group // args.minibatches,
            tis_cap=None if args.no_tis else args.tis_cap, recompute_old=False)
        tokens += stats["rollout/tokens"]
        log({"kind": "train", "schedule": name, "seed": seed, "step": step, **stats})
        tick(len(grouped))
    train_s = round(time.time() - t0, 2)
    log({"kind": "final", "schedule": name, "seed": seed, "tokens": tokens, "time_s": train_s,
         "eval": sample_hits(model, problems, final_decodings(args), args.eval_n, 20_000 + seed,
                             args, tick)})


# =====================================================================================
# Jobs: (schedule, seed) runs in parallel worker processes
# =====================================================================================


class Context(NamedTuple):
    """What every job needs; sent once to each worker."""
    args: argparse.Namespace
    warm_path: str
    problems: list           # the held-out problems of --split
    held_out: frozenset      # every held-out problem (never trained on)
    metrics_path: str


_CTX: Context | None = None
_TICK: Callable = lambda rows: None                      # progress: rows sampled


def log(rec: dict) -> None:
    """Append one record to metrics.jsonl: one write() in append mode, so that lines from
    several processes never interleave and a crash loses nothing already written."""
    fd = os.open(_CTX.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(rec) + "\n").encode())
    finally:
        os.close(fd)


def run_job(job: tuple) -> tuple:
    """('warm', None, seed): evaluate the warm start; ('train', schedule, seed): one RL run.
    The first seed's policies also go through the inference-time experiment."""
    kind, name, seed = job
    args = _CTX.args
    model = build_model(args)
    model.load_state_dict(torch.load(_CTX.warm_path))
    if kind == "warm":
        name = "warm start"
        log({"kind": "final", "schedule": name, "seed": seed, "tokens": 0, "time_s": 0.0,
             "eval": sample_hits(model, _CTX.problems, final_decodings(args), args.eval_n,
                                 20_000 + seed, args, _TICK)})
    else:
        train_one(model, name, seed, args, _CTX.problems, _CTX.held_out, log, _TICK)
    if args.frontier_problems and seed == run_seeds(args)[0]:
        log({"kind": "frontier", "schedule": name, "seed": seed,
             "eval": sample_hits(model, _CTX.problems[:args.frontier_problems],
                                 frontier_decodings(args), args.frontier_n, 30_000 + seed,
                                 args, _TICK)})
    return job


def job_rows(job: tuple, args) -> int:
    """Rows sampled by a job (the progress bar's total), from the same sizes run_job uses."""
    kind, _, seed = job
    rows = args.eval_problems * (args.eval_n + 1)                        # τ = 1 and greedy
    if kind == "train":
        rows += args.steps * args.prompts * args.group
        rows += len(eval_steps(args)) * args.curve_problems * (2 * args.curve_n + 1)
    if args.frontier_problems and seed == run_seeds(args)[0]:
        rows += len(frontier_decodings(args)) * args.frontier_problems * args.frontier_n
    return rows


def _init_worker(ctx: Context, counter) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # Ctrl-C is the parent's to handle
    torch.set_num_threads(ctx.args.threads)
    global _CTX, _TICK
    _CTX = ctx

    def tick(rows):
        with counter.get_lock():
            counter.value += rows
    _TICK = tick


def run_jobs(jobs: list, ctx: Context):
    """Run the jobs in --jobs worker processes (1: in this process) under one progress bar;
    yield each job as it finishes. Small models leave a second thread idle most of the time,
    so two 1-thread processes do twice the work of one 2-thread process."""
    global _CTX, _TICK
    bar = tqdm(total=sum(job_rows(j, ctx.args) for j in jobs), desc="samples drawn",
               unit="row", unit_scale=True, smoothing=0.05)
    try:
        if ctx.args.jobs == 1:
            torch.set_num_threads(ctx.args.threads)
            _CTX, _TICK = ctx, bar.update
            for job in jobs:
                yield run_job(job)
            return
        mp = multiprocessing.get_context("spawn")        # fork is unsafe once torch has threads
        counter = mp.Value("q", 0)
        with mp.Pool(min(ctx.args.jobs, len(jobs)), _init_worker, (ctx, counter)) as pool:
            results, left = pool.imap_unordered(run_job, jobs), len(jobs)
            while left:
                try:
                    job = results.next(timeout=1.0)
                    left -= 1
                    yield job
                except multiprocessing.TimeoutError:
                    pass
                bar.update(counter.value - bar.n)
    finally:
        bar.close()


@torch.no_grad()
def warm_report(model, problems, args) -> str:
    """How the warm start behaves by temperature: success, favourite path, broken arithmetic."""
    model.eval()
    k = args.curve_n
    ids, am = ead.left_pad([[BOS] + encode(prompt_text(n, t)) for n, t in problems], PAD)
    rows = ["| τ | mean@k | pass@k | favourite first step | well-formed | a step's arithmetic wrong |",
            "|---|---|---|---|---|---|"]
    for tau in (0.3, 0.6, 1.0, 1.2, 1.5):
        roll = ead.sample(model, ids.repeat_interleave(k, 0), am.repeat_interleave(k, 0),
                          torch.full((args.max_new,), tau), eos_token_id=EOS, pad_token_id=PAD,
                          generator=torch.Generator().manual_seed(0))
        probs = [p for p in problems for _ in range(k)]
        r = rewards_of(roll, probs).view(-1, k)
        fav = formed = wrong = 0
        for b, (nums, _) in enumerate(probs):
            text = decode(roll.tokens[b, :int(roll.mask[b].sum())]).rstrip()
            fav += text.startswith(f"{nums[0]}+{nums[1]}=")
            steps = [_STEP.fullmatch(s) for s in text.split(",")]
            if len(steps) == len(nums) - 1 and all(steps):
                formed += 1
                wrong += any(apply(int(m[1]), m[2], int(m[3])) != int(m[4]) for m in steps)
        n = len(probs)
        rows.append(f"| {tau} | {float(r.mean()):.3f} | {float((r.sum(1) > 0).float().mean()):.3f}"
                    f" | {fav / n:.2f} | {formed / n:.2f} | {wrong / max(formed, 1):.2f} |")
    return "\n".join(rows)


# =====================================================================================
# The report: tables with intervals, the answer, the variance split, the plots
# =====================================================================================


def fmt(ci: dict, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    if ci["mean"] is None:
        return "n/a"
    if ci["lo"] is None:
        return f.format(ci["mean"]) + " [n/a]"
    return f"{f.format(ci['mean'])} [{f.format(ci['lo'])}, {f.format(ci['hi'])}]"


def verdict(ci: dict) -> str:
    if ci["lo"] > 0:
        return "excludes 0: EAD is higher"
    if ci["hi"] < 0:
        return "excludes 0: EAD is lower"
    return f"includes 0: no difference resolved (±{(ci['hi'] - ci['lo']) / 2:.3f})"


def load_run(run_dir: str):
    with open(os.path.join(run_dir, "args.json")) as f:
        args = argparse.Namespace(**json.load(f))
    recs = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:                 # a line cut by a hard kill
                pass
    return args, recs


def report(run_dir: str) -> tuple[str, dict]:
    """table.md, summary.json and the plots of a run folder, from its metrics.jsonl alone
    (so a stopped run can be summarised): only seeds finished by every schedule count, so
    that every difference stays paired."""
    args, recs = load_run(run_dir)
    names = schedule_names(args)
    finals = {(r["schedule"], r["seed"]): r for r in recs if r.get("kind") == "final"}
    seeds = [s for s in run_seeds(args) if names and all((n, s) in finals for n in names)]
    summary = {"split": args.split, "seeds": seeds, "problems": args.eval_problems,
               "samples": args.eval_n, "bootstrap": args.boot, "baseline": args.baseline,
               "schedules": {}, "differences": {}, "variance": {}, "frontier": {}}
    per = {}                       # schedule -> metric -> (S, P) per-problem values
    first = run_seeds(args)[0]                           # the warm start is evaluated once
    if ("warm start", first) in finals:
        per["warm start"] = stack([finals["warm start", first]], args)
    per.update({n: stack([finals[n, s] for s in seeds], args) for n in names if seeds})
    fixed = [n for n in names if n.startswith("tau=")] if "ead" in per else []
    lines = [f"{len(seeds)} seed(s) {seeds[:3]}{'...' if len(seeds) > 3 else ''} x "
             f"{len(names)} schedules x {args.steps} steps x {args.prompts * args.group} "
             f"samples; final evaluation on {args.eval_problems} {args.split} problems x "
             f"{args.eval_n} samples at τ = 1, and greedy. [95% interval]: percentile bootstrap, "
             f"B = {args.boot}, over " + ("seeds and problems." if len(seeds) > 1 else
                                         "problems (one seed: training noise is NOT in it).")]
    lines += schedule_table(per, finals, seeds, args, summary)
    if fixed:
        lines += difference_table(per, fixed, len(seeds), args, summary)
    if len(seeds) > 1:
        lines += per_seed_table(per, names, seeds, headline_metrics(args)[0])
        lines += variance_table(per, names, fixed, headline_metrics(args)[0], summary)
    fr = {r["schedule"]: r for r in recs if r.get("kind") == "frontier"}
    fr = {n: fr[n] for n in ["warm start"] + names if n in fr}     # a fixed order
    if fr:
        lines += frontier_table(fr, args, summary)
    done = [r for r in recs if r.get("kind") == "done"]
    if done:
        summary["wall_s"] = done[-1]["wall_s"]
        lines += ["", f"total wall time {done[-1]['wall_s']:.0f} s ({args.jobs} process(es))"]
    text = "\n".join(lines)
    with open(os.path.join(run_dir, "table.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, allow_nan=False)
    text += "\n"
    if names:
        text += "\n" + plot_curves(recs, names, args, os.path.join(run_dir, "curves.png"))
    if fr:
        text += "\n" + plot_frontier(summary["frontier"], args,
                                     os.path.join(run_dir, "frontier.png"))
    return text, summary


def schedule_table(per, finals, seeds, args, summary) -> list[str]:
    """Each schedule's metrics with their intervals (the warm start: over problems only)."""
    cols = headline_metrics(args)[1]
    lines = ["", "| schedule | " + " | ".join(metric_label(m) for m in cols)
             + " | tokens | wall s |", "|---" * (len(cols) + 3) + "|"]
    for name, ms in per.items():
        S = len(next(iter(ms.values())))
        cis = {m: interval(ms[m], bootstrap_draws(S, args.eval_problems, args.boot))
               for m in cols}
        rows = [finals[name, s] for s in seeds] if name != "warm start" else []
        if rows:
            summary["schedules"][name] = cis
            cost = (f"{np.mean([r['tokens'] for r in rows]):,.0f} | "
                    f"{np.mean([r['time_s'] for r in rows]):.0f}")
        else:
            summary["warm_start"], cost = cis, "– | –"
        lines.append(f"| {name} | " + " | ".join(fmt(cis[m]) for m in cols) + f" | {cost} |")
    return lines


def difference_table(per, fixed, S, args, summary) -> list[str]:
    """EAD minus each fixed τ, paired; the question's answer for --baseline; on a validation
    run, which fixed τ is best (the rule that names --baseline)."""
    heads, cols = headline_metrics(args)
    draws = bootstrap_draws(S, args.eval_problems, args.boot)
    lines = ["", "EAD minus each fixed τ, paired (same seeds, same problems):", "",
             "| EAD − | " + " | ".join(metric_label(m) for m in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for f in fixed:
        d = {m: interval(per["ead"][m] - per[f][m], draws) for m in cols}
        summary["differences"][f] = d
        tag = " (baseline)" if f == args.baseline else ""
        lines.append(f"| {f}{tag} | " + " | ".join(fmt(d[m], True) for m in cols) + " |")
    if args.baseline in summary["differences"] and args.split == "test":
        d = summary["differences"][args.baseline]
        lines += ["", f"The question: EAD − {args.baseline} (the fixed τ to beat, chosen on the "
                  "validation split): " + "; ".join(
                      f"{metric_label(m)} {fmt(d[m], True)} {verdict(d[m])}" for m in heads) + "."]
        if S == 1:
            lines.append("One seed: these intervals cover the evaluation only; another training "
                         "seed moves the difference by far more (README: the variance split), so "
                         "one seed does not settle it: run --seeds N.")
    if args.split == "val":
        best = {m: max(fixed, key=lambda f: summary["schedules"][f][m]["mean"]) for m in cols}
        summary["best_fixed"] = best
        lines += ["", "Best fixed τ on this validation run (the rule for --baseline): "
                  + ", ".join(f"{metric_label(m)}: {b}" for m, b in best.items()) + "."]
    return lines


def stack(rows: list[dict], args) -> dict[str, np.ndarray]:
    """Final records of one schedule (one per seed) -> metric -> (S, P) per-problem values."""
    out = {}
    for r in rows:
        for d, res in r["eval"].items():
            for m, v in problem_metrics(res, args.ks).items():
                out.setdefault(f"{d}/{m}", []).append(v)
    return {m: np.stack(v) for m, v in out.items()}


def headline_metrics(args):
    """The question's metrics (pass@k at τ = 1 at the largest k, and greedy), then every
    column of the table."""
    k = [k for k in args.ks if k > 1]
    cols = ([f"t1/mean@{args.eval_n}"] + [f"t1/pass@{x}" for x in k]
            + [f"t1/worst@{x}" for x in k[:-1]] + ["greedy/acc"])   # worst@max k: about 0
    return [f"t1/pass@{max(args.ks)}", "greedy/acc"], cols


def metric_label(m: str) -> str:
    return "greedy" if m == "greedy/acc" else m.split("/")[1] + " τ=1"


def variance_table(per, names, fixed, heads, summary) -> list[str]:
    """How the seed-to-seed variance splits (variance_parts), and for the differences the
    seeds that a 95% interval of ±0.02 would need."""
    lines = ["", "Variance split, as standard deviations: training and evaluation vary from seed "
             "to seed, problems is the held-out set's share, common to all seeds:", "",
             "| quantity | metric | training | evaluation | problems | evaluation share of a "
             "seed's variance | seeds for ±0.02 |", "|---|---|---|---|---|---|---|"]
    rows = [(n, per[n], False) for n in names]
    rows += [(f"EAD − {f}", {m: per["ead"][m] - per[f][m] for m in heads}, True) for f in fixed]
    for label, ms, is_difference in rows:
        summary["variance"][label] = {}
        for m in heads:
            v = variance_parts(ms[m])
            share = v["evaluation"] / max(v["training"] + v["evaluation"], 1e-12)
            need = "–"
            if is_difference:
                n = seeds_needed(v, 0.02)
                v["seeds_for_0.02"] = n if math.isfinite(n) else None
                need = str(n)
            summary["variance"][label][m] = v
            lines.append(f"| {label} | {metric_label(m)} | {v['training'] ** 0.5:.3f} | "
                         f"{v['evaluation'] ** 0.5:.3f} | {v['problems'] ** 0.5:.3f} | "
                         f"{share:.0%} | {need} |")
    return lines


def per_seed_table(per, names, seeds, heads) -> list[str]:
    """The question's metrics run by run: the spread behind the intervals, visible."""
    lines = ["", "Run by run:", "", "| seed | " + " | ".join(
        f"{n} {metric_label(m)}" for n in names for m in heads) + " |",
        "|---" * (1 + len(names) * len(heads)) + "|"]
    for i, s in enumerate(seeds):
        lines.append(f"| {s} | " + " | ".join(f"{per[n][m][i].mean():.3f}" for n in names
                                               for m in heads) + " |")
    return lines


def frontier_table(fr: dict, args, summary) -> list[str]:
    ys, xs = frontier_axes(args)
    draws = bootstrap_draws(1, args.frontier_problems, args.boot)
    lines = ["", f"The inference-time experiment: each policy (first seed) decoded on "
             f"{args.frontier_problems} {args.split} problems x {args.frontier_n} samples, no "
             f"training. Height of each EAD decoding above the frontier that the fixed "
             f"temperatures trace ({ys} at the same x; paired over problems):", "",
             "| policy | decoding | " + " | ".join(xs) + f" | {ys} | "
             + " | ".join(f"above frontier at {x}" for x in xs) + " |",
             "|---" * (3 + 2 * len(xs)) + "|"]
    for policy, rec in fr.items():
        st = frontier_stats(rec["eval"], args, draws)
        summary["frontier"][policy] = st
        for d, g in st["gaps"].items():
            p = st["points"][d]
            lines.append(f"| {policy} | {d} | " + " | ".join(fmt(p[x]) for x in xs)
                         + f" | {fmt(p[ys])} | "
                         + " | ".join(fmt(g[f'{ys} over {x}'], True) for x in xs) + " |")
    return lines


def pyplot():
    """matplotlib is optional: None when it is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


NO_PLOT = "matplotlib is not installed: no {} (pip install matplotlib)"


def running_mean(y: np.ndarray, w: int) -> np.ndarray:
    """Mean of the last w values at each position (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(1, len(y) + 1)
    return (c[i] - c[np.maximum(i - w, 0)]) / np.minimum(i, w)


def plot_curves(records: list[dict], names: list[str], args, path: str) -> str:
    plt = pyplot()
    if plt is None:
        return NO_PLOT.format("curves")
    k = max(x for x in args.ks if x <= args.curve_n)
    panels = [("rollout/reward", "training reward (own decoding, 10-step mean)"),
              (f"eval/t1/mean@{args.curve_n}", "held-out mean@n at τ=1"),
              (f"eval/t1/pass@{k}", f"held-out pass@{k} at τ=1"),
              ("eval/greedy/acc", "held-out greedy accuracy")]
    fig, axes = plt.subplots(1, len(panels), figsize=(18, 4))
    for ax, (key, title) in zip(axes, panels):
        for name in names:
            rows = [r for r in records if r.get("schedule") == name and key in r]
            steps = sorted({r["step"] for r in rows})
            if not steps:
                continue
            by_seed = {}
            for r in rows:
                by_seed.setdefault(r["seed"], {})[r["step"]] = r[key]
            ys = np.array([[s.get(t, np.nan) for t in steps] for s in by_seed.values()])
            if key.startswith("rollout/"):              # per-step reward is noisy: smooth it
                ys = np.stack([running_mean(y, 10) for y in ys])
            mean = np.nanmean(ys, 0)
            line, = ax.plot(steps, mean, label=name)
            if len(ys) > 1:                             # 95% band of the mean over seeds
                half = 1.96 * np.nanstd(ys, 0, ddof=1) / np.sqrt(len(ys))
                ax.fill_between(steps, mean - half, mean + half, color=line.get_color(),
                                alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{args.curve_problems} {args.split} problems x {args.curve_n} samples; "
                 "band: 95% interval of the mean over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"curves: {path}"


def plot_frontier(frontier: dict, args, path: str) -> str:
    plt = pyplot()
    if plt is None:
        return NO_PLOT.format("frontier plot")
    ys, xs = frontier_axes(args)
    fig, axes = plt.subplots(len(xs), len(frontier), figsize=(4.5 * len(frontier), 8),
                             squeeze=False)
    for col, (policy, st) in enumerate(frontier.items()):
        pts = st["points"]
        fixed = [d for d in pts if d.startswith("tau=")]
        for row, x in enumerate(xs):
            ax = axes[row, col]
            ax.plot([pts[d][x]["mean"] for d in fixed], [pts[d][ys]["mean"] for d in fixed],
                    "-", color="grey", zorder=1)
            for d in pts:
                p, q = pts[d][x], pts[d][ys]
                err = dict(xerr=[[p["mean"] - p["lo"]], [p["hi"] - p["mean"]]],
                           yerr=[[q["mean"] - q["lo"]], [q["hi"] - q["mean"]]])
                if d in fixed:
                    ax.errorbar(p["mean"], q["mean"], fmt="o", color="grey", ms=4, **err)
                    ax.annotate(d[4:], (p["mean"], q["mean"]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
                else:
                    ax.errorbar(p["mean"], q["mean"], fmt="*", ms=9, label=d, **err)
            ax.set_xlabel(f"{x} (precision)")
            ax.set_ylabel(f"{ys} (exploration)")
            ax.set_title(f"policy: {policy}" if row == 0 else "")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("one policy, many decodings: grey = fixed τ (labelled), stars = EAD; "
                 "bars: 95% intervals over problems")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"frontier: {path}"


# =====================================================================================
# Command line
# =====================================================================================


class Parser(argparse.ArgumentParser):
    def error(self, message):                            # bad input: one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def number_list(kind):
    """argparse type: a comma list of numbers, e.g. '0.2,0.4' or '1,4,16'."""
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: want a comma list of {kind.__name__}s")
    return parse


def ead_settings(text: str) -> list[tuple[float, float, float]]:
    """argparse type: EAD settings 'tau_max:tau_min:d0,...'."""
    try:
        out = [tuple(float(v) for v in s.split(":")) for s in text.split(",") if s]
    except ValueError:
        out = [()]
    if any(len(s) != 3 for s in out):
        raise argparse.ArgumentTypeError(f"{text!r}: want tau_max:tau_min:d0 triples, "
                                         "separated by commas")
    return out


def parse_args(argv=None):
    class Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        """Keep the docstring's layout and show every default."""

    p = Parser(description=__doc__, formatter_class=Help)
    a = p.add_argument
    a("--schedules", default="ead,tau=0.6",
      help="comma list of training decodings: 'ead' and/or 'tau=X' fixed temperatures "
           "('': no training, the warm start's evaluation and inference-time experiment)")
    a("--baseline", default="tau=0.6",
      help="the fixed τ that EAD must beat: the best fixed τ of the --split val run (README)")
    a("--seeds", type=int, default=1, help="seeds per schedule (test: 0.., val: 1000..)")
    a("--steps", type=int, default=200, help="RL steps per run")
    a("--prompts", type=int, default=32, help="prompts per RL step")
    a("--group", type=int, default=8, help="samples per prompt (GRPO group size n)")
    a("--minibatches", type=int, default=2, help="optimiser updates per RL step")
    a("--lr", type=float, default=1.5e-4, help="RL learning rate (AdamW; chosen on --split val)")
    a("--tis-cap", type=float, default=2.0, help="truncated-IS cap C (README eq. 6)")
    a("--no-tis", action="store_true", help="turn truncated importance sampling off")
    a("--tau-max", type=float, default=1.2, help="EAD start temperature")
    a("--tau-min", type=float, default=0.6, help="EAD floor temperature")
    a("--d0", type=float, default=8.0, help="EAD decay d at step 0, in tokens")
    a("--alpha", type=float, default=0.0, help="EAD growth of d per step, in tokens")
    a("--c", type=int, default=0, help="EAD: tokens kept at tau = 1 before annealing")
    a("--n-numbers", type=int, default=3, help="numbers per Countdown problem")
    a("--lo", type=int, default=2, help="smallest number")
    a("--hi", type=int, default=9, help="largest number")
    a("--max-new", type=int, default=24, help="answer tokens at most")
    a("--hidden", type=int, default=64, help="model width")
    a("--layers", type=int, default=2, help="model depth")
    a("--heads", type=int, default=4, help="attention heads")
    a("--sft-steps", type=int, default=600, help="warm-start (supervised) steps")
    a("--sft-batch", type=int, default=128, help="warm-start batch")
    a("--sft-lr", type=float, default=3e-3, help="warm-start learning rate")
    a("--p-fav", type=float, default=0.6, help="share of warm-start answers on the favourite path")
    a("--eval-problems", type=int, default=1024,
      help="held-out problems per split (val and test are disjoint; never trained on)")
    a("--eval-n", type=int, default=16, help="samples per problem in the final evaluation")
    a("--ks", type=number_list(int), default=[1, 4, 16],
      help="k of pass@k and worst@k (unbiased estimates from --eval-n samples)")
    a("--curve-problems", type=int, default=128, help="problems of the learning-curve evaluations")
    a("--curve-n", type=int, default=8, help="samples per problem on the learning curves")
    a("--eval-every", type=int, default=50, help="learning-curve evaluation every N steps")
    a("--frontier-problems", type=int, default=256,
      help="problems of the inference-time experiment (0: skip it)")
    a("--frontier-n", type=int, default=16, help="samples per problem and decoding there")
    a("--frontier-taus", type=number_list(float), default=[0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4],
      help="fixed temperatures of the inference-time experiment")
    a("--frontier-ead", type=ead_settings, default=[(1.2, 0.3, 8.0), (1.5, 0.6, 8.0),
                                                     (1.0, 0.3, 4.0)],
      help="EAD settings tau_max:tau_min:d0 of the inference-time experiment, besides the "
           "trained one")
    a("--boot", type=int, default=2000, help="bootstrap resamples B of every interval")
    a("--split", choices=["test", "val"], default="test",
      help="held-out set to report on: tune knobs on 'val', report on 'test'")
    a("--jobs", type=int, default=min(8, os.cpu_count() or 1),
      help="worker processes, each running whole (schedule, seed) runs")
    a("--threads", type=int, default=1, help="torch threads per process")
    a("--batch-rows", type=int, default=4096, help="rows per sampler call in evaluations")
    a("--out", default="runs", help="parent folder of the run folder")
    a("--cache", default=os.path.join(".cache", "train_tiny"), help="warm-start cache folder")
    a("--fast", action="store_true", help="seconds-long smoke setting (tests)")
    a("--warm-report", action="store_true",
      help="print how the warm start behaves at several temperatures, then exit")
    a("--report", metavar="RUN_DIR",
      help="rebuild table.md, summary.json and the plots of a run folder (also a stopped one)")
    args = p.parse_args(argv)
    if args.report:
        if not os.path.exists(os.path.join(args.report, "metrics.jsonl")):
            p.error(f"--report {args.report}: no metrics.jsonl there")
        return args
    if args.fast:
        args.steps, args.prompts, args.group, args.sft_steps, args.hidden = 2, 4, 4, 20, 32
        args.eval_problems, args.eval_n, args.ks, args.eval_every = 8, 4, [1, 2, 4], 1
        args.curve_problems, args.curve_n, args.frontier_problems, args.frontier_n = 8, 4, 8, 4
        args.frontier_taus, args.boot = [0.5, 1.0], 200
    try:
        for name in schedule_names(args) + [args.baseline]:
            schedule(name, args, 0)
        frontier_decodings(args)
    except ValueError as e:
        p.error(str(e))
    if "greedy" in schedule_names(args):
        p.error("--schedules greedy: a group of identical answers has nothing to learn from")
    if args.prompts * args.group % args.minibatches:
        p.error("--prompts x --group must be divisible by --minibatches")
    if min(args.group, args.eval_n, args.curve_n) < 2 or min(args.seeds, args.jobs,
                                                              args.threads, args.boot) < 1:
        p.error("--group, --eval-n, --curve-n >= 2 and --seeds, --jobs, --threads, --boot >= 1")
    args.ks = sorted(set(args.ks))
    if args.steps < 0 or args.eval_every < 1 or not args.ks or args.ks[0] < 1 \
            or args.ks[-1] > min(args.eval_n, args.frontier_n):
        p.error("--steps >= 0, --eval-every >= 1, and 1 <= every --ks <= --eval-n, --frontier-n")
    args.curve_problems = min(args.curve_problems, args.eval_problems)
    args.frontier_problems = min(args.frontier_problems, args.eval_problems)
    return args


def held_out_sets(args):
    """Fixed validation and test problems, disjoint, from their own seeds; never trained on."""
    sets, seen = {}, set()
    for split, seed in (("val", 999), ("test", 1234)):
        rng, probs = random.Random(seed), []
        while len(probs) < args.eval_problems:
            nums, tgt = make_problem(rng, args.n_numbers, args.lo, args.hi)
            if (tuple(nums), tgt) not in seen:
                seen.add((tuple(nums), tgt))
                probs.append((nums, tgt))
        sets[split] = probs
    return sets


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        text, summary = report(args.report)
        print(text)
        return args.report, summary
    torch.set_num_threads(args.jobs * args.threads)      # the warm start has the machine alone
    t_start = time.time()
    sets = held_out_sets(args)
    held_out = frozenset((tuple(n), t) for s in sets.values() for n, t in s)
    warm_path = warm_start(args, held_out)
    if args.warm_report:
        model = build_model(args)
        model.load_state_dict(torch.load(warm_path))
        probs = sets[args.split][:args.curve_problems]
        print(f"warm start on {len(probs)} {args.split} problems, k = {args.curve_n}:\n"
              + warm_report(model, probs, args))
        return None, {}
    run_dir = os.path.join(args.out, time.strftime("tiny-%Y%m%d-%H%M%S"))
    while os.path.exists(run_dir):
        run_dir += "x"
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump(vars(args), f, indent=1)
    print(f"run folder: {run_dir}")
    ctx = Context(args, warm_path, sets[args.split], held_out,
                  os.path.join(run_dir, "metrics.jsonl"))
    names, seeds = schedule_names(args), run_seeds(args)
    # seed by seed, so that a stopped run has whole seeds; the short warm-start job last
    jobs = [("train", n, s) for s in seeds for n in names] + [("warm", None, seeds[0])]
    interrupted = False
    try:
        for _ in run_jobs(jobs, ctx):
            pass
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the tables use the seeds that every schedule finished")
    global _CTX
    _CTX = ctx
    log({"kind": "done", "wall_s": round(time.time() - t_start, 1), "interrupted": interrupted})
    text, summary = report(run_dir)
    print(text)
    if interrupted:
        raise SystemExit(130)
    return run_dir, summary


if __name__ == "__main__":
    main()
