"""train_tiny.py: RL with verifiable rewards that visibly works on a laptop CPU, then the
paper's question: does EAD beat the best fixed sampling temperature?

    python train_tiny.py                  # warm start, RL with EAD and with tau = 0.8, one seed
    python train_tiny.py --seeds 12 --schedules ead,tau=0.8,tau=0.6,tau=1.2   # settle it
    python train_tiny.py --split val --seeds 2 --schedules ead,tau=0.2,tau=0.4,tau=0.6,tau=0.8,tau=1.0,tau=1.2
                                          # choose the fixed tau to beat (and EAD's knobs) on val
    python train_tiny.py --warm-report    # the warm start's two failure modes, by temperature
    python train_tiny.py --report RUN_DIR # rebuild the tables and plots of a (stopped) run

The task is Countdown in two written-out steps. A prompt lists a two-digit number, two one-digit
numbers and a target; the answer combines the first two numbers and writes the result, then
applies the third, and the verifier computes that last step:

    prompt "47,6,3>285:"    answer "47*6=282,282+3"    282 + 3 = 285: reward 1
                            answer "47-6=41,41+3"      44 != 285: reward 0

The first tokens choose the approach (the operation of the first step); the rest is arithmetic
that the choice fully determines, written digit by digit, where a hot token breaks the answer.
The warm start has a habit (subtract first) that never reaches the target, and has seen
solutions now and then: it samples the right operation sometimes, it does not prefer it. That
is what RL with a verifier improves, and what EAD's hot start and cold tail are built for.

This file is the tutorial: the task and its verifier, the tokenizer and model, the warm start,
evaluation, the RL loop (ead.rl_step, the same step as the GPU runner), main. The experiment
machinery (worker processes, the run folder, statistics, tables, plots) is in tiny_lab.py and
tiny_stats.py. docs/toy.md has the measurements, and the commands that made them.
"""
from __future__ import annotations

import os

# torch's OpenMP threads spin while they wait, burning a core another process needs (a 2-thread
# RL step measured 10x slower beside a busy process): wait passively. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
import zlib

import torch
import torch.nn.functional as F
from tqdm import tqdm

import ead
import tiny_lab

# =====================================================================================
# 1. The task: Countdown in two written-out steps, and its verifier
# =====================================================================================

TARGET_OPS = "+*"     # the first step of a target's own derivation
HABIT = "-"           # the warm start's favourite first step: it never reaches a target
SFT_OPS = "+-*"       # what the warm start's random derivations use


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def make_problem(rng: random.Random, big: tuple, small: tuple):
    """numbers [a, b, c] (a from `big`, b and c from `small`) and the target (a op b) + c."""
    a, b, c = rng.randint(*big), rng.randint(*small), rng.randint(*small)
    return [a, b, c], apply(a, rng.choice(TARGET_OPS), b) + c


def derivation(numbers: list[int], op: str) -> str:
    """The answer that applies `op` to the first two numbers, then adds the third."""
    a, b, c = numbers
    x = apply(a, op, b)
    return f"{a}{op}{b}={x},{x}+{c}"


def solution_op(numbers: list[int], target: int) -> str:
    return next(op for op in TARGET_OPS if apply(numbers[0], op, numbers[1]) + numbers[2] == target)


_N = r"(0|[1-9][0-9]{0,5})"                 # a numeral as the prompt writes it: no leading zero
_STEP = re.compile(f"{_N}([+\\-*]){_N}(?:={_N})?")


def verify_countdown(numbers: list[int], target: int, answer: str) -> float:
    """1.0 when `answer` reaches the target using every number exactly once, else 0.0.

    The answer is steps "x op y=r" joined by commas, the last one without "=r" (its value is
    the result). Each operand is a number not used yet or an earlier result; each written
    result must be right. Any order of the numbers counts, not only the warm start's.

    >>> verify_countdown([47, 6, 3], 285, "47*6=282,282+3")
    1.0
    >>> verify_countdown([47, 6, 3], 285, "6*47=282,3+282")    # another order: still right
    1.0
    >>> verify_countdown([47, 6, 3], 285, "47*6=283,283+2")    # a wrong step, 2 never given
    0.0
    """
    steps = answer.split(",")
    if len(steps) != len(numbers) - 1:
        return 0.0
    pool = list(numbers)
    for i, s in enumerate(steps):
        m = _STEP.fullmatch(s)
        last = i == len(steps) - 1
        if not m or (m[4] is None) != last:
            return 0.0
        x, op, y = int(m[1]), m[2], int(m[3])
        for v in (x, y):                               # operands come from the pool, each once
            if v not in pool:
                return 0.0
            pool.remove(v)
        r = apply(x, op, y)
        if not last and r != int(m[4]):
            return 0.0
        pool.append(r)
    return 1.0 if pool == [target] else 0.0


def problem_space(big: tuple, small: tuple) -> int:
    """How many distinct problems the generator can make: (a + b) + c and (a * b) + c never
    coincide when a > b >= 2 (a * b - (a + b) = (a - 1)(b - 1) - 1 > 0), so every (a, b, c, op)
    is its own problem."""
    return len(TARGET_OPS) * (big[1] - big[0] + 1) * (small[1] - small[0] + 1) ** 2


# =====================================================================================
# 2. A character tokenizer and a tiny Qwen2 (the model class of the GPU run)
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


def prompt_ids(numbers, target) -> list[int]:
    return [BOS] + encode(",".join(map(str, numbers)) + f">{target}:")


def build_model(hidden: int, layers: int, heads: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=max(1, heads // 2), max_position_embeddings=64,
                      tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=EOS,
                      pad_token_id=PAD)
    return Qwen2ForCausalLM(cfg)


# =====================================================================================
# 3. The warm start: supervised steps on the habit, on solutions and on random derivations
# =====================================================================================


def sft_answer(rng: random.Random, numbers, target, p_habit: float, p_solve: float) -> str:
    """What the warm start learns to write: its habit (which never solves), now and then the
    solution, otherwise a random derivation. All of them with correct arithmetic."""
    u = rng.random()
    op = (HABIT if u < p_habit else solution_op(numbers, target) if u < p_habit + p_solve
          else rng.choice(SFT_OPS))
    return derivation(numbers, op)


def warm_start(model, problems, *, steps: int, batch: int, lr: float, p_habit: float,
               p_solve: float, seed: str) -> None:
    """Supervised fine-tuning on answers (not prompts): AdamW, 50 warm-up steps, cosine decay.
    `problems(rng)` draws a training problem (never a held-out one)."""
    rng = random.Random(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    bar = tqdm(range(steps), desc="warm start (SFT)", leave=False)
    for it in bar:
        pairs = [(prompt_ids(n, t), encode(sft_answer(rng, n, t, p_habit, p_solve)) + [EOS])
                 for n, t in (problems(rng) for _ in range(batch))]
        L = max(len(p) + len(a) for p, a in pairs)
        ids = torch.tensor([p + a + [PAD] * (L - len(p) - len(a)) for p, a in pairs])  # (B, L)
        labels = torch.full_like(ids, -100)              # learn the answers, not the prompts
        for b, (p, a) in enumerate(pairs):
            labels[b, len(p):len(p) + len(a)] = torch.tensor(a)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (it + 1) / 50) * 0.5 * (1 + math.cos(math.pi * it / steps))
        logits = model(input_ids=ids).logits[:, :-1]                                   # (B, L-1, V)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")


# =====================================================================================
# 4. Evaluation: every decoding of a policy in one batched sampler call
# =====================================================================================


def rewards_of(roll: ead.Rollout, problems: list) -> torch.Tensor:
    """(N,) verifier rewards of a rollout; an answer that never emitted EOS is unfinished, and
    one with a token that is not text (PAD, BOS) would hide it from the verifier: both 0."""
    out = []
    for b, (numbers, target) in enumerate(problems):
        ids = roll.tokens[b, :int(roll.mask[b].sum())].tolist()
        done = bool(ids) and ids[-1] == EOS and all(i in ITOS for i in ids[:-1])   # no hidden ids
        out.append(verify_countdown(numbers, target, decode(ids[:-1])) if done else 0.0)
    return torch.tensor(out)


@torch.no_grad()
def sample_hits(model, problems: list, decodings: dict, n: int, seed: int, *, batch: int,
                tick=lambda rows: None) -> dict:
    """How many of n samples are correct on each problem, under each decoding (greedy: 1).

    Every (decoding, problem, sample) row goes through ead.sample in chunks of `batch` rows,
    each row with its own temperatures. Chunk i draws from chunk_seed(seed, i): two policies
    evaluated with one seed share their random numbers, so their difference is paired. Returns
    {decoding: {"n", "hits": [correct counts], "entropy_by_pos": [entropy of pi by position]}}."""
    model.eval()
    ids, am = ead.left_pad([prompt_ids(*p) for p in problems], PAD)                 # (P, L)
    P, T = len(problems), len(next(iter(decodings.values())))
    sizes = [1 if bool((t == 0).all()) else n for t in decodings.values()]
    prob = torch.cat([torch.arange(P).repeat_interleave(k) for k in sizes])        # (R,)
    dec = torch.cat([torch.full((P * k,), d) for d, k in enumerate(sizes)])        # (R,)
    temps = torch.stack(list(decodings.values()))[dec]                             # (R, T)
    correct = torch.zeros(len(prob))
    ent, cnt = torch.zeros(len(sizes), T), torch.zeros(len(sizes), T)   # entropy by position
    for i, start in enumerate(range(0, len(prob), batch)):
        rows = slice(start, start + batch)
        gen = torch.Generator().manual_seed(chunk_seed(seed, i))
        roll = ead.sample(model, ids[prob[rows]], am[prob[rows]], temps[rows], eos_token_id=EOS,
                          pad_token_id=PAD, generator=gen)
        correct[rows] = rewards_of(roll, [problems[i] for i in prob[rows].tolist()])
        w, m = roll.mask.shape[1], roll.mask.float()
        ent[:, :w].index_add_(0, dec[rows], roll.entropy * m)
        cnt[:, :w].index_add_(0, dec[rows], m)
        tick(len(m))
    out = {}
    for d, (name, k) in enumerate(zip(decodings, sizes)):
        out[name] = {"n": k, "hits": correct[dec == d].view(P, k).sum(1).int().tolist()}
        if k > 1:
            ran = int((cnt[d] > 0).sum())                # positions some answer reached
            out[name]["entropy_by_pos"] = [round(float(x), 3) for x in ent[d, :ran] / cnt[d, :ran]]
    return out


# =====================================================================================
# 5. The RL loop: rollout, verifier, update (ead.rl_step), with held-out curves on the way
# =====================================================================================


def train(model, schedule: str, seed: int, stream, *, steps: int, prompts: int, group: int,
          lr: float, minibatches: int, max_grad_norm: float, tis_cap, ead_knobs: dict,
          length: int, curve: dict, log, tick) -> int:
    """RL from the warm start: `steps` steps of TIS-DAPO on `prompts` training problems x
    `group` answers sampled with `schedule` (README eq. 1-7). `stream(rng)` draws a training
    problem; at the RL steps in curve["steps"] the policy is evaluated on curve["problems"]
    (tau = 1, greedy, and its own schedule). Returns the answer tokens sampled."""
    # lr (docs/toy.md): 1/3 of it learns a little slower, 3x ends lower, 10x collapses. The first
    # updates move the operation away from the habit, and with it weights the arithmetic after it
    # shares; its tokens are near-certain, so RL's own gradient on them, (1 - p), is ~0 and
    # nothing holds them. Below the cliff the first right answers pull them back; above, they
    # break first: every reward 0, every advantage 0, no way back.
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = random.Random(stream_seed(seed))            # the same problems for every schedule
    gen = torch.Generator().manual_seed(rollout_seed(seed))
    tokens = 0
    for step in range(steps + 1):
        if step in curve["steps"]:                                  # held-out learning curves
            decodings = {"t1": ead.decoding("tau=1.0", length),
                         "greedy": ead.decoding("greedy", length),
                         "own": ead.decoding(schedule, length, step, **ead_knobs)}   # eq. 1-2
            log({"kind": "curve", "step": step, "tokens": tokens,
                 "eval": sample_hits(model, curve["problems"], decodings, curve["n"],
                                     curve_seed(seed), batch=curve["batch"], tick=tick)})
        if step == steps:
            return tokens
        batch = [stream(rng) for _ in range(prompts)]
        ids, am = ead.left_pad([prompt_ids(*p) for p in batch], PAD)              # (P, L)
        answered = [p for p in batch for _ in range(group)]                       # (P * n)
        stats, _, _ = ead.rl_step(
            model, opt, ids, am, lambda roll: rewards_of(roll, answered),
            ead.decoding(schedule, length, step, **ead_knobs), group_size=group,
            eos_token_id=EOS, pad_token_id=PAD, generator=gen, num_minibatches=minibatches,
            micro_batch=prompts * group // minibatches, max_grad_norm=max_grad_norm,
            recompute_old=False, tis_cap=tis_cap)      # fp32 on CPU: the sampler's log pi is pi_old
        tokens += stats["rollout/tokens"]
        log({"kind": "train", "step": step, **stats})
        tick(len(answered))


# =====================================================================================
# 6. Seeds: every random number of a run comes from one of these
# =====================================================================================


def held_out_seed(split: str) -> str:
    """The held-out sets depend on their split alone: every run reports on the same problems.
    (String seeds are deterministic, and each family's prefix keeps families apart.)"""
    return f"held-out/{split}"


def warm_seed() -> str:
    """The warm start's initial weights and its data: one warm start per setting, on any run."""
    return "warm-start"


def run_seeds(split: str, n: int) -> list[int]:
    """Training seeds: val runs use 1000, 1001, ..., test runs 0, 1, ..., so that a knob is
    never chosen with the very policies that are then reported."""
    return list(range(1000 if split == "val" else 0, (1000 if split == "val" else 0) + n))


def stream_seed(seed: int) -> str:
    """The training problems of a seed: one stream for every schedule of that seed."""
    return f"stream/{seed}"


def rollout_seed(seed: int) -> int:
    """The rollout sampler's generator of a seed: the same start for every schedule."""
    return seed


def curve_seed(seed: int) -> int:
    """Learning-curve evaluations of a seed: the same random numbers at every step and for
    every schedule, so curves differ by policy, not by sampling luck."""
    return 10_000 + seed


def final_seed(seed: int) -> int:
    """The final evaluation of a seed (the warm start's: the first seed's), shared by every
    schedule: their differences are paired down to the sampler's random numbers."""
    return 20_000 + seed


def frontier_seed(seed: int) -> int:
    """The inference-time experiment: one seed for every policy and decoding."""
    return 30_000 + seed


def warm_report_seed() -> int:
    """The warm-start report's samples: the same at every temperature."""
    return 0


def chunk_seed(seed: int, chunk: int) -> int:
    """Chunk `chunk` of an evaluation: distinct for every (seed, chunk) below 100,003 chunks."""
    return seed * 100_003 + chunk


# =====================================================================================
# 7. main: the held-out sets, the warm start, one job per (schedule, seed), the report
# =====================================================================================


def held_out_sets(n: int, big: tuple, small: tuple) -> dict[str, list]:
    """n validation and n test problems, disjoint, never trained on."""
    sets, seen = {}, set()
    for split in ("val", "test"):
        rng, probs = random.Random(held_out_seed(split)), []
        while len(probs) < n:
            numbers, target = make_problem(rng, big, small)
            if (tuple(numbers), target) not in seen:
                seen.add((tuple(numbers), target))
                probs.append((numbers, target))
        sets[split] = probs
    return sets


def training_stream(held_out: frozenset, big: tuple, small: tuple):
    """stream(rng) -> a training problem, never a held-out one."""
    def stream(rng):
        problem = make_problem(rng, big, small)
        return problem if (tuple(problem[0]), problem[1]) not in held_out else stream(rng)
    return stream


def run_job(job: tuple, ctx: dict, tick) -> tuple:
    """('warm', None, seed): evaluate the warm start; ('train', schedule, seed): one RL run and
    its final evaluation. The first seed's policies also go through the inference-time
    experiment (one policy, many decodings)."""
    kind, schedule, seed = job
    cfg, name = ctx["cfg"], schedule or "warm start"
    model = build_model(cfg["hidden"], cfg["layers"], cfg["heads"])
    model.load_state_dict(torch.load(ctx["warm_path"]))
    length, knobs, tokens, t0 = cfg["max_new_tokens"], ead_knobs(cfg), 0, time.time()
    def log(rec): tiny_lab.append_record(ctx["metrics"], {"schedule": name, "seed": seed, **rec})
    if kind == "train":
        curve = {"steps": tiny_lab.curve_steps(cfg["steps"], cfg["eval_every"]),
                 "problems": ctx["problems"][:cfg["curve_problems"]], "n": cfg["curve_n"],
                 "batch": cfg["eval_batch"]}
        stream = training_stream(ctx["held_out"], cfg["big"], cfg["small"])
        tokens = train(model, schedule, seed, stream,
                       steps=cfg["steps"], prompts=cfg["prompts"], group=cfg["group"], lr=cfg["lr"],
                       minibatches=cfg["minibatches"], max_grad_norm=cfg["max_grad_norm"],
                       tis_cap=None if cfg["no_tis"] else cfg["tis_cap"], ead_knobs=knobs,
                       length=length, curve=curve, log=log, tick=tick)
    final = {"t1": ead.decoding("tau=1.0", length), "greedy": ead.decoding("greedy", length)}
    log({"kind": "final", "tokens": tokens, "time_s": round(time.time() - t0, 2),
         "eval": sample_hits(model, ctx["problems"], final, cfg["eval_n"], final_seed(seed),
                             batch=cfg["eval_batch"], tick=tick)})
    if cfg["frontier_problems"] and seed == cfg["seeds"][0]:
        log({"kind": "frontier", "eval": sample_hits(
            model, ctx["problems"][:cfg["frontier_problems"]], frontier_decodings(cfg),
            cfg["frontier_n"],
            frontier_seed(seed), batch=cfg["eval_batch"], tick=tick)})
    return job


def ead_knobs(cfg: dict) -> dict:
    return {k: cfg[k] for k in ("tau_max", "tau_min", "d0", "alpha", "c")}


def frontier_decodings(cfg: dict) -> dict:
    """The inference-time grid: fixed temperatures, then EAD settings (the trained one first)."""
    out = {f"tau={t:g}": ead.decoding(f"tau={t:g}", cfg["max_new_tokens"])
           for t in cfg["frontier_taus"]}
    for tmax, tmin, d0 in [(cfg["tau_max"], cfg["tau_min"], cfg["d0"]), *cfg["frontier_ead"]]:
        knobs = {**ead_knobs(cfg), "tau_max": tmax, "tau_min": tmin, "d0": d0}
        out.setdefault(f"ead {tmax:g}→{tmin:g} d={d0:g}",
                       ead.decoding("ead", cfg["max_new_tokens"], **knobs))
    return out


def cached_warm_start(cfg: dict, held_out: frozenset) -> str:
    """The warm start's weights file: trained once per setting (keyed by everything that shapes
    it, eval_problems for what is held out), then read from the cache."""
    keys = ["big", "small", "hidden", "layers", "heads", "sft_steps", "sft_batch", "sft_lr",
            "p_habit", "p_solve", "eval_problems"]
    tag = hashlib.sha1(json.dumps({k: list(cfg[k]) if k in ("big", "small") else cfg[k]
                                   for k in keys}).encode()).hexdigest()[:10]
    path = os.path.join(cfg["cache"], f"warm_{tag}.pt")
    if not os.path.exists(path):
        torch.manual_seed(zlib.crc32(warm_seed().encode()))          # its initial weights
        model = build_model(cfg["hidden"], cfg["layers"], cfg["heads"])
        warm_start(model, training_stream(held_out, cfg["big"], cfg["small"]), steps=cfg["sft_steps"],
                   batch=cfg["sft_batch"], lr=cfg["sft_lr"], p_habit=cfg["p_habit"],
                   p_solve=cfg["p_solve"], seed=warm_seed())
        os.makedirs(cfg["cache"], exist_ok=True)
        torch.save(model.state_dict(), path + ".tmp")
        os.replace(path + ".tmp", path)                  # atomic: no half-written cache
    return path


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        text, summary = tiny_lab.report(args.report)
        print(text)
        return args.report, summary
    cfg = {**vars(args), "schedules": [n for n in args.schedules.split(",") if n],
           "seeds": run_seeds(args.split, args.seeds)}
    torch.set_num_threads(args.jobs * args.threads)          # the warm start has the machine
    t_start = time.time()
    sets = held_out_sets(args.eval_problems, args.big, args.small)
    held_out = frozenset((tuple(n), t) for s in sets.values() for n, t in s)
    warm_path = cached_warm_start(cfg, held_out)
    if args.warm_report:
        model = build_model(args.hidden, args.layers, args.heads)
        model.load_state_dict(torch.load(warm_path))
        probs = sets[args.split][:args.curve_problems]
        print(f"warm start on {len(probs)} {args.split} problems, {args.curve_n} samples each:\n"
              + warm_report(model, probs, args.curve_n, args.max_new_tokens))
        return None, {}
    run_dir = tiny_lab.new_run_dir(args.out, cfg)
    print(f"run folder: {run_dir}")
    ctx = {"cfg": cfg, "warm_path": warm_path, "problems": sets[args.split], "held_out": held_out,
           "metrics": os.path.join(run_dir, "metrics.jsonl")}
    # seed by seed, so that a stopped run has whole seeds; the short warm-start job last
    jobs = [("train", n, s) for s in cfg["seeds"] for n in cfg["schedules"]]
    jobs.append(("warm", None, cfg["seeds"][0]))
    stopped = None                                       # a record of why the run ended early
    try:
        rows = sum(tiny_lab.job_rows(j, cfg, len(frontier_decodings(cfg))) for j in jobs)
        for _ in tiny_lab.run_jobs(run_job, jobs, ctx, workers=args.jobs, threads=args.threads,
                                   total_rows=rows):
            pass
    except (KeyboardInterrupt, RuntimeError) as e:
        stopped = str(e) or "interrupted"
        print(f"\n{stopped}\nthe tables use the seeds that every schedule finished", file=sys.stderr)
    tiny_lab.append_record(ctx["metrics"], {"kind": "done", "wall_s": round(time.time() - t_start, 1),
                                            "interrupted": stopped})
    text, summary = tiny_lab.report(run_dir)
    print(text)
    if stopped:
        raise SystemExit(130 if stopped == "interrupted" else 1)
    return run_dir, summary


@torch.no_grad()
def warm_report(model, problems, k: int, length: int) -> str:
    """How the warm start behaves by temperature: success, its habit, broken arithmetic."""
    model.eval()
    ids, am = ead.left_pad([prompt_ids(*p) for p in problems], PAD)
    rows = ["| τ | mean@k | pass@k | habit first step | right first step | well-formed | "
            "first step's arithmetic wrong |", "|---|---|---|---|---|---|---|"]
    for tau in (0.0, 0.3, 0.6, 1.0, 1.2, 1.5):                          # 0.0: greedy
        roll = ead.sample(model, ids.repeat_interleave(k, 0), am.repeat_interleave(k, 0),
                          torch.full((length,), tau), eos_token_id=EOS, pad_token_id=PAD,
                          generator=torch.Generator().manual_seed(warm_report_seed()))
        probs = [p for p in problems for _ in range(k)]
        r = rewards_of(roll, probs).view(-1, k)
        habit = right = formed = wrong = 0
        for b, (numbers, target) in enumerate(probs):
            text = decode(roll.tokens[b, :int(roll.mask[b].sum())])
            m = _STEP.fullmatch(text.split(",")[0])
            habit += text.startswith(f"{numbers[0]}{HABIT}")
            right += text.startswith(f"{numbers[0]}{solution_op(numbers, target)}")
            if m and m[4] is not None:
                formed += 1
                wrong += apply(int(m[1]), m[2], int(m[3])) != int(m[4])
        n = len(probs)
        solved = float((r.sum(1) > 0).float().mean())
        rows.append(f"| {tau or 'greedy'} | {float(r.mean()):.3f} | {solved:.3f} | {habit / n:.2f} | "
                    f"{right / n:.2f} | {formed / n:.2f} | {wrong / max(formed, 1):.2f} |")
    return "\n".join(rows)


def parse_args(argv=None):
    class Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        """Keep the docstring's layout and show every default."""

    p = tiny_lab.Parser(prog="train_tiny.py", description=__doc__, formatter_class=Help)
    a = p.add_argument_group("the comparison").add_argument
    a("--schedules", "--schedule", default="ead,tau=0.8",
      help="comma list of training decodings: 'ead' and/or 'tau=X' ('': no training, "
           "the warm start's evaluation and inference-time experiment alone)")
    a("--baseline", default="tau=0.8",
      help="the fixed tau EAD must beat: the best mean of pass@16 and greedy on --split val")
    a("--seeds", type=int, default=1, help="training seeds per schedule (test: 0.., val: 1000..)")
    a("--split", choices=["test", "val"], default="test",
      help="held-out set reported on: choose knobs on val, report on test")
    a = p.add_argument_group("RL (README eq. 1-7)").add_argument
    a("--steps", type=int, default=200, help="RL steps per run")
    a("--prompts", type=int, default=32, help="prompts per RL step")
    a("--group", type=int, default=8, help="answers per prompt (n)")
    a("--minibatches", type=int, default=2, help="optimiser updates per RL step")
    a("--lr", type=float, default=1e-4, help="AdamW learning rate (measured on val: docs/toy.md)")
    a("--max-grad-norm", type=float, default=1.0, help="gradient clip")
    a("--tis-cap", type=float, default=2.0, help="truncated-IS cap C (eq. 6)")
    a("--no-tis", action="store_true", help="turn truncated importance sampling off")
    a("--tau-max", type=float, default=1.2, help="EAD start temperature")
    a("--tau-min", type=float, default=0.6, help="EAD floor temperature")
    a("--d0", type=float, default=8.0, help="EAD decay d at step 0, in tokens (chosen on val)")
    a("--alpha", type=float, default=0.0, help="EAD growth of d per step, in tokens")
    a("--c", type=int, default=0, help="EAD: first c tokens at tau = 1")
    a("--max-new-tokens", "--max-new", type=int, default=20, help="answer tokens at most")
    a = p.add_argument_group("task, model and warm start").add_argument
    a("--big", type=tiny_lab.int_pair, default=(10, 99), help="range LO,HI of the first number")
    a("--small", type=tiny_lab.int_pair, default=(2, 9), help="range LO,HI of the other two")
    a("--hidden", type=int, default=96, help="model width")
    a("--layers", type=int, default=2, help="model depth")
    a("--heads", type=int, default=4, help="attention heads")
    a("--sft-steps", type=int, default=600, help="warm-start (supervised) steps")
    a("--sft-batch", type=int, default=128, help="warm-start batch")
    a("--sft-lr", type=float, default=3e-3, help="warm-start learning rate")
    a("--p-habit", type=float, default=0.45, help="share of warm-start answers on the habit")
    a("--p-solve", type=float, default=0.3, help="share of warm-start answers that solve")
    a = p.add_argument_group("evaluation").add_argument
    a("--eval-problems", type=int, default=1024, help="held-out problems per split (val, test)")
    a("--eval-n", type=int, default=16, help="samples per problem in the final evaluation")
    a("--eval-k", "--ks", type=tiny_lab.number_list(int), default=[1, 4, 16],
      help="k of pass@k and worst@k (unbiased, from --eval-n samples)")
    a("--eval-batch", "--batch-rows", type=int, default=4096, help="rows per sampler call")
    a("--eval-every", type=int, default=25, help="learning curves every N steps (and at 1, 2, 5, 10)")
    a("--curve-problems", type=int, default=256, help="problems of the learning curves")
    a("--curve-n", type=int, default=4, help="samples per problem on the learning curves")
    a("--frontier-problems", type=int, default=128,
      help="problems of the inference-time experiment (0: skip it)")
    a("--frontier-n", type=int, default=16, help="samples per problem and decoding there")
    a("--frontier-taus", type=tiny_lab.number_list(float), default=[0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4],
      help="fixed temperatures of the inference-time experiment")
    a("--frontier-ead", type=tiny_lab.ead_settings, default=[(1.2, 0.3, 8.0), (1.5, 0.6, 8.0)],
      help="EAD settings tau_max:tau_min:d0 there, besides the trained one")
    a("--boot", type=int, default=2000, help="bootstrap resamples of every interval")
    a = p.add_argument_group("running").add_argument
    a("--jobs", type=int, default=min(8, os.cpu_count() or 1),
      help="worker processes, each running whole (schedule, seed) runs")
    a("--threads", type=int, default=1, help="torch threads per process")
    a("--out", default="runs", help="parent folder of the run folder")
    a("--cache", default=os.path.join(".cache", "train_tiny"), help="warm-start cache folder")
    a("--fast", action="store_true", help="seconds-long smoke setting (tests)")
    a("--warm-report", action="store_true", help="the warm start by temperature, then exit")
    a("--report", metavar="RUN_DIR", help="rebuild a run folder's tables and plots")
    args = p.parse_args(argv)
    if args.report:
        if not all(os.path.exists(os.path.join(args.report, f)) for f in tiny_lab.RUN_FILES):
            p.error(f"--report {args.report}: no metrics.jsonl and config.json there")
        return args
    if args.fast:
        args.steps, args.prompts, args.group, args.sft_steps, args.hidden = 2, 4, 4, 20, 32
        args.eval_problems, args.eval_n, args.eval_k, args.eval_every = 8, 4, [1, 2, 4], 1
        args.curve_problems, args.curve_n, args.frontier_problems, args.frontier_n = 8, 4, 8, 4
        args.frontier_taus, args.boot = [0.5, 1.0], 200
    check_args(p, args)
    return args


def check_args(p, args) -> None:
    """Every foreseeable bad setting is one line and status 2, before any work starts."""
    names = [n for n in args.schedules.split(",") if n]
    try:
        for name in names + [args.baseline]:
            ead.decoding(name, args.max_new_tokens, **ead_knobs(vars(args)))
        frontier_decodings(vars(args))
    except ValueError as e:
        p.error(str(e))
    if "greedy" in names:
        p.error("--schedules greedy: a group of identical answers has nothing to learn from")
    if args.prompts * args.group % args.minibatches:
        p.error("--prompts x --group must be divisible by --minibatches")
    if min(args.group, args.eval_n, args.curve_n) < 2 or min(
            args.seeds, args.jobs, args.threads, args.boot, args.steps + 1, args.eval_every,
            args.prompts, args.minibatches, args.eval_problems, args.eval_batch, args.hidden,
            args.layers, args.heads, args.sft_steps, args.sft_batch, args.max_new_tokens,
            args.curve_problems, args.frontier_problems + 1) < 1 or len(set(names)) < len(names):
        p.error("--group, --eval-n, --curve-n must be >= 2; --steps, --frontier-problems >= 0; "
                "every other size >= 1; no schedule twice")
    if not (args.lr > 0 and args.sft_lr > 0 and args.max_grad_norm > 0 and args.tis_cap > 0):
        p.error("--lr, --sft-lr, --max-grad-norm and --tis-cap must be > 0")
    if not (0 <= args.p_habit and 0 <= args.p_solve and args.p_habit + args.p_solve <= 1):
        p.error("--p-habit and --p-solve are shares: each >= 0, together <= 1")
    args.eval_k = sorted(set(args.eval_k))
    if not args.eval_k or args.eval_k[0] < 1 or args.eval_k[-1] > min(args.eval_n, args.frontier_n) \
            or args.eval_k[-1] < 2:
        p.error("--eval-k: every k between 1 and --eval-n and --frontier-n, the largest >= 2")
    args.frontier_taus = sorted(set(args.frontier_taus))      # the frontier runs in tau order
    if args.big[0] <= args.small[1] or args.small[0] < 2:
        p.error("--big must lie above --small, and --small start at 2 (the habit never solves)")
    space = problem_space(args.big, args.small)
    if space < 3 * args.eval_problems:
        p.error(f"--big {args.big[0]},{args.big[1]} --small {args.small[0]},{args.small[1]} make "
                f"{space} distinct problems: too few for 2 x {args.eval_problems} held-out "
                f"problems and a training stream as large (widen the ranges or lower --eval-problems)")
    args.curve_problems = min(args.curve_problems, args.eval_problems)
    args.frontier_problems = min(args.frontier_problems, args.eval_problems)


if __name__ == "__main__":
    main()
