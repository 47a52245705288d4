"""train_tiny.py: watch EAD and fixed-temperature sampling compete in a real RLVR loop, on a CPU.

    python train_tiny.py                 # the default comparison, about 2.5 minutes on 2 cores
    python train_tiny.py --seeds 5       # with statistics (about 9 minutes)
    python train_tiny.py --help          # every knob

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
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import statistics
import time

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


def warm_start(args, held_out: set) -> dict:
    """State dict of the warm-started model; trained once per setting, then read from disk."""
    keys = ["n_numbers", "lo", "hi", "hidden", "layers", "heads", "sft_steps", "sft_batch",
            "sft_lr", "p_fav"]
    tag = hashlib.sha1(json.dumps({k: getattr(args, k) for k in keys}).encode()).hexdigest()[:10]
    path = os.path.join(args.cache, f"warm_{tag}.pt")
    if os.path.exists(path):
        return torch.load(path)
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
    return model.state_dict()


# =====================================================================================
# Evaluation: pass@k, worst@k, mean@k, greedy, and where the policy is uncertain
# =====================================================================================


def schedule(name: str, args, step: int) -> torch.Tensor:
    """Temperatures of the named decoding ('ead', 'tau=X', 'greedy') at training step `step`."""
    return ead.decoding(name, args.max_new, step, tau_max=args.tau_max, tau_min=args.tau_min,
                        d0=args.d0, alpha=args.alpha, c=args.c)


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
def evaluate(model, problems, decodings: dict, args, gen: torch.Generator) -> dict:
    """Metrics per decoding; each decoding is a (T,) temperature tensor (zeros: greedy)."""
    model.eval()
    k = args.eval_k
    ids, am = ead.left_pad([[BOS] + encode(prompt_text(n, t)) for n, t in problems], PAD)
    res = {}
    for name, temperatures in decodings.items():
        n = 1 if bool((temperatures == 0).all()) else k    # greedy: one answer says it all
        roll = ead.sample(model, ids.repeat_interleave(n, 0), am.repeat_interleave(n, 0),
                          temperatures, eos_token_id=EOS, pad_token_id=PAD, generator=gen)
        r = rewards_of(roll, [p for p in problems for _ in range(n)]).view(-1, n)
        for metric, vals in ead.per_problem_metrics(r.bool().tolist(), [k]).items():
            res[f"{name}/{metric}"] = statistics.mean(vals)
        if n > 1:
            m = roll.mask.float()
            ent = (roll.entropy * m).sum(0) / m.sum(0).clamp(min=1)
            res[f"{name}/entropy_by_pos"] = [round(float(e), 3) for e in ent]
    return res


# =====================================================================================
# One RL run: a schedule, a seed, the shared warm start
# =====================================================================================


def train_one(name: str, seed: int, args, warm: dict, train_rng_seed: int, eval_set, held_out,
              log) -> dict:
    torch.manual_seed(seed)
    model = build_model(args)
    model.load_state_dict(warm)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = random.Random(train_rng_seed + seed)               # same problems for every schedule
    gen = torch.Generator().manual_seed(seed)
    eval_gen_seed = 10_000 + seed
    decodings = {"t1": schedule("tau=1.0", args, 0), "greedy": schedule("greedy", args, 0),
                 "own": None}                                # own: the schedule being trained
    tokens_sampled, t0, last = 0, time.time(), {}
    bar = tqdm(range(args.steps + 1), desc=f"{name:>8s} seed {seed}", leave=False)
    for step in bar:
        if step % args.eval_every == 0 or step == args.steps:
            decodings["own"] = schedule(name, args, step)
            ev = evaluate(model, eval_set, decodings, args,
                          torch.Generator().manual_seed(eval_gen_seed))
            last = {"schedule": name, "seed": seed, "step": step, "tokens": tokens_sampled,
                    "time_s": round(time.time() - t0, 2), **{f"eval/{k}": v for k, v in ev.items()}}
            log(last)
        if step == args.steps:
            break
        problems = []
        while len(problems) < args.prompts:
            p = make_problem(rng, args.n_numbers, args.lo, args.hi)
            if (tuple(p[0]), p[1]) not in held_out:
                problems.append(p)
        ids, am = ead.left_pad([[BOS] + encode(prompt_text(n, t)) for n, t in problems], PAD)
        grouped = [p for p in problems for _ in range(args.group)]
        stats, roll, _ = ead.rl_step(
            model, opt, ids, am, lambda r: rewards_of(r, grouped),
            schedule(name, args, step), group_size=args.group, eos_token_id=EOS,
            pad_token_id=PAD, generator=gen, num_minibatches=args.minibatches,
            micro_batch=args.prompts * args.group // args.minibatches,
            tis_cap=None if args.no_tis else args.tis_cap, recompute_old=False)
        tokens_sampled += stats["rollout/tokens"]
        log({"schedule": name, "seed": seed, "step": step, **stats})
        bar.set_postfix(reward=f"{stats['rollout/reward']:.2f}")
    last["time_s"] = round(time.time() - t0, 2)
    return last


@torch.no_grad()
def warm_report(model, problems, args) -> str:
    """How the warm start behaves by temperature: success, favourite path, broken arithmetic."""
    model.eval()
    k = args.eval_k
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
# Plumbing: flags, the run folder, the closing table and the plot
# =====================================================================================


def parse_args(argv=None):
    class Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        """Keep the docstring's layout and show every default."""

    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    a = p.add_argument
    a("--schedules", default="ead,tau=0.6,tau=1.0,tau=1.2",
      help="comma list of training decodings: 'ead' and/or 'tau=X' fixed temperatures")
    a("--seeds", type=int, default=1, help="seeds per schedule (statistics: use >= 5)")
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
    a("--eval-problems", type=int, default=128, help="held-out problems")
    a("--eval-k", type=int, default=8, help="samples per held-out problem (pass@k, worst@k)")
    a("--eval-every", type=int, default=50, help="evaluate every N steps")
    a("--split", choices=["test", "val"], default="test",
      help="held-out set to report on: tune knobs on 'val', report on 'test'")
    a("--threads", type=int, default=2, help="torch CPU threads")
    a("--out", default="runs", help="parent folder of the run folder")
    a("--cache", default=os.path.join(".cache", "train_tiny"), help="warm-start cache folder")
    a("--fast", action="store_true", help="seconds-long smoke setting (tests)")
    a("--warm-report", action="store_true",
      help="print how the warm start behaves at several temperatures, then exit")
    args = p.parse_args(argv)
    if args.fast:
        args.steps, args.prompts, args.group, args.sft_steps = 2, 4, 4, 20
        args.eval_problems, args.eval_k, args.eval_every, args.hidden = 8, 4, 1, 32
    for name in args.schedules.split(","):
        try:
            schedule(name, args, 0)
        except ValueError as e:
            p.error(str(e))
        if name == "greedy":
            p.error("--schedules greedy: a group of identical answers has nothing to learn from")
    if args.prompts * args.group % args.minibatches:
        p.error("--prompts x --group must be divisible by --minibatches")
    if args.eval_k < 1 or args.group < 2 or args.seeds < 1 or args.steps < 0:
        p.error("--eval-k >= 1, --group >= 2, --seeds >= 1 and --steps >= 0 are required")
    return args


def held_out_sets(args):
    """Fixed validation and test problems (never trained on), from their own seeds."""
    sets = {}
    for split, seed in (("val", 999), ("test", 1234)):
        rng, seen, probs = random.Random(seed), set(), []
        while len(probs) < args.eval_problems:
            nums, tgt = make_problem(rng, args.n_numbers, args.lo, args.hi)
            if (tuple(nums), tgt) not in seen:
                seen.add((tuple(nums), tgt))
                probs.append((nums, tgt))
        sets[split] = probs
    return sets


def closing_table(finals: list[dict], k: int) -> str:
    cols = [("t1/mean@%d" % k, "mean@k τ=1"), ("t1/pass@%d" % k, "pass@k τ=1"),
            ("t1/worst@%d" % k, "worst@k τ=1"), ("greedy/acc", "greedy"),
            ("own/pass@%d" % k, "pass@k own"), ("own/worst@%d" % k, "worst@k own")]
    lines = ["| schedule | " + " | ".join(c[1] for c in cols) + " | tokens | wall s |",
             "|---" * (len(cols) + 3) + "|"]
    for name in dict.fromkeys(f["schedule"] for f in finals):
        rows = [f for f in finals if f["schedule"] == name]
        cells = []
        for key, _ in cols:
            vals = [r[f"eval/{key}"] for r in rows]
            sd = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
            cells.append(f"{statistics.mean(vals):.3f}{sd}")
        tok = statistics.mean(r["tokens"] for r in rows)
        wall = statistics.mean(r["time_s"] for r in rows)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {tok:,.0f} | {wall:.0f} |")
    return "\n".join(lines)


def plot(records: list[dict], k: int, path: str) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib to get one)"
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    names = list(dict.fromkeys(r["schedule"] for r in records))
    panels = [("rollout/reward", "training reward (own schedule, 10-step mean)"),
              (f"eval/t1/pass@{k}", f"held-out pass@{k} at τ=1"),
              (f"eval/t1/worst@{k}", f"held-out worst@{k} at τ=1")]
    for ax, (key, title) in zip(axes, panels):
        for name in names:
            rows = [r for r in records if r["schedule"] == name and key in r]
            steps = sorted({r["step"] for r in rows})
            ys = [statistics.mean(r[key] for r in rows if r["step"] == s) for s in steps]
            if key.startswith("rollout/"):                # per-step reward is noisy: smooth it
                w = 10
                ys = [statistics.mean(ys[max(0, i - w + 1):i + 1]) for i in range(len(ys))]
            ax.plot(steps, ys, label=name)
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return f"plot: {path}"


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    sets = held_out_sets(args)
    held_out = {(tuple(n), t) for s in sets.values() for n, t in s}
    warm = warm_start(args, held_out)
    if args.warm_report:
        model = build_model(args)
        model.load_state_dict(warm)
        print(f"warm start on {len(sets[args.split])} {args.split} problems, k = {args.eval_k}:\n"
              + warm_report(model, sets[args.split], args))
        return None, []
    run_dir = os.path.join(args.out, time.strftime("tiny-%Y%m%d-%H%M%S"))
    while os.path.exists(run_dir):
        run_dir += "x"
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump(vars(args), f, indent=1)
    metrics = open(os.path.join(run_dir, "metrics.jsonl"), "a")
    records = []

    def log(rec):
        records.append(rec)
        metrics.write(json.dumps(rec) + "\n")
        metrics.flush()                                  # a crash loses nothing written so far

    print(f"run folder: {run_dir}")
    finals = []
    names = args.schedules.split(",")
    for seed in range(args.seeds):
        for name in names:
            finals.append(train_one(name, seed, args, warm, 100, sets[args.split], held_out, log))
    metrics.close()
    k = args.eval_k
    table = closing_table(finals, k)
    wall = time.time() - t_start
    start = [r for r in records if r.get("step") == 0 and "eval/t1/mean@%d" % k in r][0]
    summary = (f"warm start on {args.split}: mean@{k} {start[f'eval/t1/mean@{k}']:.3f}, "
               f"pass@{k} {start[f'eval/t1/pass@{k}']:.3f}, greedy {start['eval/greedy/acc']:.3f}"
               f"\n{args.seeds} seed(s) x {len(names)} schedules x {args.steps} steps x "
               f"{args.prompts * args.group} samples; final evaluation on {len(sets[args.split])} "
               f"{args.split} problems (k = {k}); mean ± std over seeds\n\n{table}\n\n"
               f"total wall time {wall:.0f} s")
    with open(os.path.join(run_dir, "table.md"), "w") as f:
        f.write(summary + "\n")
    print(summary)
    print(plot(records, k, os.path.join(run_dir, "curves.png")))
    return run_dir, finals


if __name__ == "__main__":
    main()
