"""tiny_lab.py: the experiment machinery of train_tiny.py: workers, the run folder, the report.

Taken out of train_tiny.py so that the toy reads as the RL tutorial, the way cleanRL keeps its
benchmark and plot utilities beside ppo.py. Nothing here imports train_tiny: the worker pool
receives the job function as an argument, and the report reads only the run folder's records.

    run_jobs(job_fn, jobs, ...)     jobs in worker processes under one progress bar
    new_run_dir, append_record      the run folder: config.json and metrics.jsonl (append-only)
    summarize(records, cfg)         every number of the report, with its interval: a pure dict
    tables(summary), plots(...)     table.md and the pictures, made from that dict alone

A record is one JSON line: {"kind": "train" | "curve" | "final" | "frontier" | "done", ...};
"curve", "final" and "frontier" records hold, per decoding, how many of n samples were correct
on each held-out problem ({"n": n, "hits": [...]}), so that every statistic is recomputed from
raw counts.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import queue
import signal
import time
import traceback
from typing import Callable

import numpy as np
from tqdm import tqdm

import ead
import tiny_stats as st

# =====================================================================================
# Workers and the run folder
# =====================================================================================


def _stop(signum, frame):
    raise KeyboardInterrupt        # a kill: leave run_jobs, whose `finally` ends the workers


def _worker(job_fn: Callable, ctx, threads: int, tasks, results) -> None:
    """A worker process: jobs from `tasks` until None; ("rows", n) progress and ("done", result)
    or ("error", traceback) on `results`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # Ctrl-C is the parent's to handle
    import torch
    torch.set_num_threads(threads)
    for job in iter(tasks.get, None):
        try:
            results.put(("done", job_fn(job, ctx, lambda rows: results.put(("rows", rows)))))
        except Exception:                                # the parent reports it, then stops
            results.put(("error", traceback.format_exc()))
            return


def run_jobs(job_fn: Callable, jobs: list, ctx, *, workers: int, threads: int, total_rows: int):
    """Run job_fn(job, ctx, tick) for every job, in `workers` processes (1: in this one), under
    one progress bar fed by tick(rows sampled); yield each job's result as it finishes. A job
    that fails, or a worker that dies (killed, out of memory), raises RuntimeError here instead
    of leaving the run waiting for a result that never comes.

    Small models leave a second thread idle most of the time, so two 1-thread processes do
    about twice the work of one 2-thread process; a job's result never depends on where it
    ran (each job seeds its own generators)."""
    bar = tqdm(total=total_rows, desc="samples drawn", unit="row", unit_scale=True,
               smoothing=0.05)
    old, procs = signal.signal(signal.SIGTERM, _stop), []
    try:
        if workers == 1:
            import torch
            torch.set_num_threads(threads)
            for job in jobs:
                yield job_fn(job, ctx, bar.update)
            return
        mp = multiprocessing.get_context("spawn")        # fork is unsafe once torch has threads
        tasks, results = mp.Queue(), mp.Queue()
        n = min(workers, len(jobs))
        for item in jobs + [None] * n:
            tasks.put(item)
        procs = [mp.Process(target=_worker, args=(job_fn, ctx, threads, tasks, results),
                            daemon=True) for _ in range(n)]
        for proc in procs:
            proc.start()
        left = len(jobs)
        while left:
            try:
                kind, value = results.get(timeout=1.0)
            except queue.Empty:
                dead = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a worker process died (exit code {dead[0]})") from None
                continue
            if kind == "rows":
                bar.update(value)
            elif kind == "error":
                raise RuntimeError("a job failed in a worker process:\n" + value)
            else:
                left -= 1
                yield value
    finally:
        for proc in procs:
            proc.terminate()
            proc.join()
        signal.signal(signal.SIGTERM, old)
        bar.close()


def curve_steps(steps: int, every: int) -> list[int]:
    """RL steps of the held-out learning curves: every `every` steps, and at 1, 2, 5 and 10,
    where a policy moves fastest (sample efficiency is decided there)."""
    return sorted({steps, *range(0, steps + 1, every), *(k for k in (1, 2, 5, 10) if k < steps)})


def job_rows(job: tuple, c: dict, n_frontier: int) -> int:
    """Rows a train_tiny job samples (the progress bar's total), from the sizes it uses."""
    kind, _, seed = job
    rows = c["eval_problems"] * (c["eval_n"] + 1)                          # tau = 1 and greedy
    if kind == "train":
        rows += c["steps"] * c["prompts"] * c["group"]
        rows += len(curve_steps(c["steps"], c["eval_every"])) * c["curve_problems"] * (2 * c["curve_n"] + 1)
    if c["frontier_problems"] and seed == c["seeds"][0]:
        rows += n_frontier * c["frontier_problems"] * c["frontier_n"]
    return rows


RUN_FILES = ("metrics.jsonl", "config.json")            # what --report needs


def new_run_dir(parent: str, cfg: dict) -> str:
    """A fresh folder runs/tiny-<time> holding config.json, the settings of the run."""
    run_dir = os.path.join(parent, time.strftime("tiny-%Y%m%d-%H%M%S"))
    os.makedirs(parent, exist_ok=True)
    while True:
        try:
            os.mkdir(run_dir)                            # atomic: two runs never share one
            break
        except FileExistsError:
            run_dir += "x"
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return run_dir


def append_record(path: str, rec: dict) -> None:
    """Append one record to metrics.jsonl: one write() in append mode, so lines from several
    processes never interleave and a crash loses nothing already written."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(rec) + "\n").encode())
    finally:
        os.close(fd)


def load_run(run_dir: str) -> tuple[dict, list[dict]]:
    """config.json and the records of a run folder (a line cut by a hard kill is skipped)."""
    with open(os.path.join(run_dir, "config.json")) as f:
        cfg = json.load(f)
    recs = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return cfg, recs


# =====================================================================================
# The command line's types: bad input is one line and status 2
# =====================================================================================


class Parser(argparse.ArgumentParser):
    def error(self, message):                            # bad input: one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_pair(text: str) -> tuple[int, int]:
    """argparse type: 'LO,HI' with 0 <= LO <= HI."""
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want LO,HI (two integers)") from None
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: want 0 <= LO <= HI")
    return lo, hi


def number_list(kind):
    """argparse type: a comma list of numbers, e.g. '0.2,0.4' or '1,4,16'."""
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: want a comma list of {kind.__name__}s") from None
    return parse


def ead_settings(text: str) -> list:
    """argparse type: EAD settings 'tau_max:tau_min:d0,...'."""
    try:
        out = [tuple(float(v) for v in s.split(":")) for s in text.split(",") if s]
    except ValueError:
        out = [()]
    if any(len(s) != 3 for s in out):
        raise argparse.ArgumentTypeError(f"{text!r}: want tau_max:tau_min:d0 triples, separated by commas")
    return out



# =====================================================================================
# summarize: records -> every number of the report, with intervals
# =====================================================================================


def problem_metrics(res: dict, ks) -> dict[str, np.ndarray]:
    """Per-problem metrics (eq. 8) of one decoding's {"n", "hits"}: mean@n, pass@k, worst@k
    (or acc for one sample)."""
    n = res["n"]
    verdicts = [[True] * h + [False] * (n - h) for h in res["hits"]]   # only counts matter
    return {m: np.array(v) for m, v in ead.per_problem_metrics(verdicts, ks).items()}


def stack(evals: list[dict], ks) -> dict[str, np.ndarray]:
    """One eval per seed ({decoding: {"n", "hits"}}) -> "decoding/metric" -> (S, P) values."""
    out = {}
    for ev in evals:
        for d, res in ev.items():
            for m, v in problem_metrics(res, ks).items():
                out.setdefault(f"{d}/{m}", []).append(v)
    return {m: np.stack(v) for m, v in out.items()}


def headline_metrics(cfg: dict) -> tuple[list[str], list[str]]:
    """The question's metrics (pass@k at tau = 1 at the largest k, and greedy accuracy), then
    every column of the tables."""
    ks = [k for k in cfg["eval_k"] if k > 1]
    cols = ([f"t1/mean@{cfg['eval_n']}"] + [f"t1/pass@{k}" for k in ks]
            + [f"t1/worst@{k}" for k in ks[:-1]] + ["greedy/acc"])     # worst@max k: about 0
    return [f"t1/pass@{max(cfg['eval_k'])}", "greedy/acc"], cols


def summarize(records: list[dict], cfg: dict) -> dict:
    """Every number of the report from the records alone (so a stopped run can be reported).
    Only seeds that every schedule finished count, so that every difference stays paired."""
    names = cfg["schedules"]
    finals = {(r["schedule"], r["seed"]): r for r in records if r.get("kind") == "final"}
    seeds = [s for s in cfg["seeds"] if names and all((n, s) in finals for n in names)]
    heads, cols = headline_metrics(cfg)
    draws = st.bootstrap_draws(max(len(seeds), 1), cfg["eval_problems"], cfg["boot"])
    warm_draws = st.bootstrap_draws(1, cfg["eval_problems"], cfg["boot"])
    out = {"split": cfg["split"], "seeds": seeds, "problems": cfg["eval_problems"],
           "samples": cfg["eval_n"], "bootstrap": cfg["boot"], "baseline": cfg["baseline"],
           "warm_start": {}, "schedules": {}, "improvement": {}, "differences": {},
           "learning": {}, "variance": {}, "per_seed": {}, "cost": {}, "frontier": {}}
    warm = finals.get(("warm start", cfg["seeds"][0]))
    per = {n: stack([finals[n, s]["eval"] for s in seeds], cfg["eval_k"]) for n in names
           if seeds}
    if warm:
        w = stack([warm["eval"]], cfg["eval_k"])
        out["warm_start"] = {m: st.interval(w[m], warm_draws) for m in cols}
        for n in per:                                   # trained minus warm start, paired
            out["improvement"][n] = {m: st.difference(per[n][m], w[m], draws) for m in cols}
    for n in per:
        out["schedules"][n] = {m: st.interval(per[n][m], draws) for m in cols}
        rows = [finals[n, s] for s in seeds]
        out["cost"][n] = {"tokens": float(np.mean([r["tokens"] for r in rows])),
                          "time_s": float(np.mean([r["time_s"] for r in rows]))}
        out["per_seed"][n] = {m: [float(v) for v in per[n][m].mean(1)] for m in heads}
    fixed = [n for n in names if n.startswith("tau=")] if "ead" in per else []
    for f in fixed:
        out["differences"][f] = {m: st.difference(per["ead"][m], per[f][m], draws) for m in cols}
    if cfg["split"] == "val" and fixed:
        out["best_fixed"] = {m: max(fixed, key=lambda f: out["schedules"][f][m]["mean"])
                             for m in cols}
        # --baseline's rule: one fixed tau for the whole question, the best on both its metrics
        out["baseline_rule"] = max(fixed, key=lambda f: np.mean(
            [out["schedules"][f][m]["mean"] for m in heads]))
    if len(seeds) > 1:
        for name, ms in [(n, per[n]) for n in names] + [
                (f"EAD − {f}", {m: per["ead"][m] - per[f][m] for m in heads}) for f in fixed]:
            out["variance"][name] = {}
            for m in heads:
                v = st.variance_parts(ms[m])
                if name.startswith("EAD − "):
                    need = st.seeds_needed(v, 0.02)
                    v["seeds_for_0.02"] = need if math.isfinite(need) else None
                out["variance"][name][m] = v
    out["learning"] = learning(records, cfg, seeds, fixed)
    fr = {r["schedule"]: r for r in records if r.get("kind") == "frontier"}
    for policy in [p for p in ["warm start"] + names if p in fr]:
        out["frontier"][policy] = frontier_stats(fr[policy]["eval"], cfg)
    done = [r for r in records if r.get("kind") == "done"]
    if done:
        out["wall_s"] = done[-1]["wall_s"]
    return out


def learning(records: list[dict], cfg: dict, seeds: list[int], fixed: list[str]) -> dict:
    """Sample efficiency: each schedule's held-out curves (mean over seeds, 95% band), the area
    under them per seed and problem, and EAD's area minus each fixed tau's, paired; plus the
    training reward by step."""
    steps = sorted({r["step"] for r in records if r.get("kind") == "curve"})
    out = {"steps": steps, "curves": {}, "area": {}, "area_difference": {}, "train_reward": {}}
    metrics = [f"t1/mean@{cfg['curve_n']}", "greedy/acc"]
    if not seeds or not steps:
        return out
    curves, draws = {}, None
    for n in cfg["schedules"]:
        by = {(r["seed"], r["step"]): r["eval"] for r in records
              if r.get("kind") == "curve" and r["schedule"] == n}
        if not all((s, k) in by for s in seeds for k in steps):
            continue
        vals = {m: np.stack([np.stack([stack([by[s, k]], cfg["eval_k"])[m][0] for k in steps], -1)
                             for s in seeds]) for m in metrics}          # (S, P, K)
        curves[n] = vals
        if draws is None:               # one set of draws for every curve: differences paired
            draws = st.bootstrap_draws(len(seeds), vals[metrics[0]].shape[1], cfg["boot"])
        out["curves"][n] = {}
        for m, v in vals.items():
            band = [st.interval(v[..., k], draws) for k in range(len(steps))]
            out["curves"][n][m] = {key: [b[key] for b in band] for key in ("mean", "lo", "hi")}
        out["area"][n] = {m: st.interval(st.curve_area(v, steps), draws) for m, v in vals.items()}
        train = [r for r in records if r.get("kind") == "train" and r["schedule"] == n
                 and r["seed"] in seeds]
        rewards = {}
        for r in train:
            rewards.setdefault(r["step"], []).append(r["rollout/reward"])
        out["train_reward"][n] = {"steps": sorted(rewards),
                                  "mean": [float(np.mean(rewards[k])) for k in sorted(rewards)]}
    for f in fixed:
        if "ead" in curves and f in curves:
            out["area_difference"][f] = {
                m: st.difference(st.curve_area(curves["ead"][m], steps),
                                 st.curve_area(curves[f][m], steps), draws) for m in metrics}
    return out


def frontier_axes(cfg: dict) -> tuple[str, tuple[str, str]]:
    """y: pass@k at the largest k (exploration); x: mean@n (precision) and worst@k at the
    smallest k > 1 (all k samples right)."""
    k2 = min([k for k in cfg["eval_k"] if k > 1], default=max(cfg["eval_k"]))
    return f"pass@{max(cfg['eval_k'])}", (f"mean@{cfg['frontier_n']}", f"worst@{k2}")


def frontier_stats(res: dict, cfg: dict) -> dict:
    """One policy's decodings in the precision-exploration plane, with intervals, and each EAD
    point's height above the fixed-tau frontier at its own precision (paired over problems)."""
    ys, xs = frontier_axes(cfg)
    per = {d: problem_metrics(r, cfg["eval_k"]) for d, r in res.items()}
    draws = st.bootstrap_draws(1, len(next(iter(res.values()))["hits"]), cfg["boot"])
    points = {d: {m: st.interval(v[m][None], draws) for m in (ys, *xs)} for d, v in per.items()}
    fixed = [d for d in per if d.startswith("tau=")]
    gaps = {}
    for d in (d for d in per if d not in fixed):
        gaps[d] = {}
        for x in xs:
            def gap(mean):      # mean(decoding, metric) -> (B,) or (1,) array
                fx = np.stack([mean(f, x) for f in fixed], 1)
                fy = np.stack([mean(f, ys) for f in fixed], 1)
                return mean(d, ys) - st.frontier_height(fx, fy, mean(d, x))
            point = float(gap(lambda dd, m: np.array([per[dd][m].mean()]))[0])
            boot = gap(lambda dd, m: st.boot_means(per[dd][m][None], draws))
            ok = boot[np.isfinite(boot)]
            lo, hi = (np.percentile(ok, [2.5, 97.5]) if len(ok) >= 0.975 * len(boot)
                      else (None, None))     # the point often sits past the frontier's ends
            gaps[d][f"{ys} over {x}"] = {"mean": None if math.isnan(point) else point,
                                         "lo": None if lo is None else float(lo),
                                         "hi": None if hi is None else float(hi)}
    return {"points": points, "gaps": gaps}


# =====================================================================================
# tables(summary): the markdown report
# =====================================================================================


def fmt(ci: dict, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    if ci["mean"] is None:
        return "n/a"
    if ci["lo"] is None:
        return f.format(ci["mean"]) + " [n/a]"
    return f"{f.format(ci['mean'])} [{f.format(ci['lo'])}, {f.format(ci['hi'])}]"


def verdict(ci: dict, higher: str = "EAD is higher", lower: str = "EAD is lower") -> str:
    if ci["lo"] > 0:
        return f"excludes 0: {higher}"
    if ci["hi"] < 0:
        return f"excludes 0: {lower}"
    return f"includes 0: no difference resolved (±{(ci['hi'] - ci['lo']) / 2:.3f})"


def label(m: str) -> str:
    return "greedy" if m.endswith("/acc") else m.split("/")[1] + " τ=1"


def tables(s: dict, cfg: dict) -> str:
    """The report as markdown, from summarize()'s dict alone."""
    heads, cols = headline_metrics(cfg)
    seeds = s["seeds"]
    over = "seeds and problems" if len(seeds) > 1 else "problems (one seed: training noise is NOT in it)"
    lines = [f"{len(seeds)} seed(s) {seeds[:3]}{'...' if len(seeds) > 3 else ''} x "
             f"{len(cfg['schedules'])} schedules x {cfg['steps']} steps x "
             f"{cfg['prompts'] * cfg['group']} samples; final evaluation on {s['problems']} "
             f"{s['split']} problems x {s['samples']} samples at τ = 1, and greedy. "
             f"[95% interval]: percentile bootstrap, B = {s['bootstrap']}, over {over}.", "",
             "| schedule | " + " | ".join(map(label, cols)) + " | tokens | wall s |",
             "|---" * (len(cols) + 3) + "|"]
    if s["warm_start"]:
        lines.append("| warm start | " + " | ".join(fmt(s["warm_start"][m]) for m in cols)
                     + " | – | – |")
    for n, cis in s["schedules"].items():
        c = s["cost"][n]
        lines.append(f"| {n} | " + " | ".join(fmt(cis[m]) for m in cols)
                     + f" | {c['tokens']:,.0f} | {c['time_s']:.0f} |")
    if s["improvement"]:
        lines += ["", "RL's gain: each trained schedule minus the warm start, paired over "
                  "problems:", "", "| trained − warm start | " + " | ".join(map(label, cols))
                  + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {n} | " + " | ".join(fmt(d[m], True) for m in cols) + " |"
                  for n, d in s["improvement"].items()]
    if s["differences"]:
        lines += ["", "EAD minus each fixed τ, paired (same seeds, same problems):", "",
                  "| EAD − | " + " | ".join(map(label, cols)) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for f, d in s["differences"].items():
            tag = " (baseline)" if f == s["baseline"] else ""
            lines.append(f"| {f}{tag} | " + " | ".join(fmt(d[m], True) for m in cols) + " |")
    L = s["learning"]
    if L.get("area"):
        ms = list(next(iter(L["area"].values())))
        lines += ["", f"Sample efficiency: area under the held-out curves (their average height "
                  f"over steps {L['steps'][0]}-{L['steps'][-1]}, on the first "
                  f"{cfg['curve_problems']} problems x {cfg['curve_n']} samples):", "",
                  "| schedule | " + " | ".join(map(label, ms)) + " |", "|---" * (len(ms) + 1) + "|"]
        lines += [f"| {n} | " + " | ".join(fmt(a[m]) for m in ms) + " |"
                  for n, a in L["area"].items()]
        lines += [f"| EAD − {f} | " + " | ".join(fmt(a[m], True) for m in ms) + " |"
                  for f, a in L["area_difference"].items()]
    b = s["baseline"]
    if b in s["differences"] and s["split"] == "test":
        d = s["differences"][b]
        lines += ["", f"The question: EAD − {b} (the fixed τ to beat, chosen on the validation "
                  "split): " + "; ".join(f"{label(m)} {fmt(d[m], True)} {verdict(d[m])}"
                                         for m in heads) + "."]
        if b in L.get("area_difference", {}):
            a = L["area_difference"][b]
            lines.append("Learns faster? Area under the held-out curves, EAD − " + b + ": "
                         + "; ".join(f"{label(m)} {fmt(a[m], True)} {verdict(a[m])}" for m in a)
                         + ".")
        if len(seeds) == 1:
            lines.append("One seed: these intervals cover the evaluation only; another training "
                         "seed moves a policy by far more (docs/toy.md: the variance split), so "
                         "one seed does not settle it: run --seeds N.")
    if "best_fixed" in s:
        lines += ["", "Best fixed τ on this validation run, by metric: " + ", ".join(
            f"{label(m)}: {f}" for m, f in s["best_fixed"].items()) + f". The rule for --baseline "
            f"(the best mean of {' and '.join(map(label, heads))}): {s['baseline_rule']}."]
    if len(seeds) > 1:
        lines += ["", "Run by run:", "", "| seed | " + " | ".join(
            f"{n} {label(m)}" for n in s["per_seed"] for m in heads) + " |",
            "|---" * (1 + len(s["per_seed"]) * len(heads)) + "|"]
        lines += [f"| {seed} | " + " | ".join(f"{s['per_seed'][n][m][i]:.3f}"
                                              for n in s["per_seed"] for m in heads) + " |"
                  for i, seed in enumerate(seeds)]
        lines += ["", "Variance split, as standard deviations: training and evaluation vary "
                  "from seed to seed, problems is the held-out set's share, common to all "
                  "seeds:", "", "| quantity | metric | training | evaluation | problems | "
                  "evaluation share of a seed's variance | seeds for ±0.02 |",
                  "|---|---|---|---|---|---|---|"]
        for q, by in s["variance"].items():
            for m, v in by.items():
                share = v["evaluation"] / max(v["training"] + v["evaluation"], 1e-12)
                need = v.get("seeds_for_0.02", "–")
                lines.append(f"| {q} | {label(m)} | {v['training'] ** 0.5:.3f} | "
                             f"{v['evaluation'] ** 0.5:.3f} | {v['problems'] ** 0.5:.3f} | "
                             f"{share:.0%} | {'–' if need is None else need} |")
    if s["frontier"]:
        ys, xs = frontier_axes(cfg)
        lines += ["", f"The inference-time experiment: each policy (first seed) decoded on "
                  f"{cfg['frontier_problems']} {s['split']} problems x {cfg['frontier_n']} "
                  f"samples, no training. Height of each EAD decoding above the frontier that "
                  f"the fixed temperatures trace ({ys} at the same x; paired over problems):", "",
                  "| policy | decoding | " + " | ".join(xs) + f" | {ys} | "
                  + " | ".join(f"above frontier at {x}" for x in xs) + " |",
                  "|---" * (3 + 2 * len(xs)) + "|"]
        for policy, fs in s["frontier"].items():
            for d, g in fs["gaps"].items():
                p = fs["points"][d]
                lines.append(f"| {policy} | {d} | " + " | ".join(fmt(p[x]) for x in xs)
                             + f" | {fmt(p[ys])} | "
                             + " | ".join(fmt(g[f'{ys} over {x}'], True) for x in xs) + " |")
    if "wall_s" in s:
        lines += ["", f"total wall time {s['wall_s']:.0f} s"]
    return "\n".join(lines)


# =====================================================================================
# plots(summary): curves.png and frontier.png
# =====================================================================================


def pyplot():
    """matplotlib is optional: None when it is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def plots(s: dict, cfg: dict, run_dir: str) -> list[str]:
    """curves.png (training reward and held-out curves with 95% bands) and frontier.png;
    returns one line per picture: its path, or why it is missing."""
    plt = pyplot()
    if plt is None:
        return ["matplotlib is not installed: no plots (pip install matplotlib)"]
    out = []
    L = s["learning"]
    if L.get("curves"):
        path = os.path.join(run_dir, "curves.png")
        ms = list(next(iter(L["curves"].values())))
        fig, axes = plt.subplots(1, 1 + len(ms), figsize=(5 * (1 + len(ms)), 4))
        w = max(1, len(L["steps"]) and L["steps"][-1] // 20)
        for n, tr in L["train_reward"].items():
            if len(tr["mean"]) >= w:
                y = np.convolve(tr["mean"], np.ones(w) / w, mode="valid")
                axes[0].plot(tr["steps"][w - 1:], y, label=n)
        axes[0].set_title(f"training reward (own decoding, {w}-step mean)")
        for ax, m in zip(axes[1:], ms):
            for n, c in L["curves"].items():
                line, = ax.plot(L["steps"], c[m]["mean"], marker="o", ms=3, label=n)
                ax.fill_between(L["steps"], c[m]["lo"], c[m]["hi"], color=line.get_color(),
                                alpha=0.2)
            ax.set_title(f"held-out {label(m)}")
        for ax in axes:
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"{len(s['seeds'])} seed(s); held-out: first {cfg['curve_problems']} "
                     f"{s['split']} problems x {cfg['curve_n']} samples; band: 95% interval")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.append(f"curves: {path}")
    if s["frontier"]:
        path = os.path.join(run_dir, "frontier.png")
        ys, xs = frontier_axes(cfg)
        fig, axes = plt.subplots(len(xs), len(s["frontier"]), squeeze=False,
                                 figsize=(4.5 * len(s["frontier"]), 8))
        for col, (policy, fs) in enumerate(s["frontier"].items()):
            pts = fs["points"]
            fixed = [d for d in pts if d.startswith("tau=")]
            for row, x in enumerate(xs):
                ax = axes[row, col]
                ax.plot([pts[d][x]["mean"] for d in fixed], [pts[d][ys]["mean"] for d in fixed],
                        "-", color="grey", zorder=1)
                for d, p in pts.items():
                    px, py = p[x], p[ys]
                    err = dict(xerr=[[px["mean"] - px["lo"]], [px["hi"] - px["mean"]]],
                               yerr=[[py["mean"] - py["lo"]], [py["hi"] - py["mean"]]])
                    if d in fixed:
                        ax.errorbar(px["mean"], py["mean"], fmt="o", color="grey", ms=4, **err)
                        ax.annotate(d[4:], (px["mean"], py["mean"]), fontsize=7,
                                    textcoords="offset points", xytext=(3, 3))
                    else:
                        ax.errorbar(px["mean"], py["mean"], fmt="*", ms=9, label=d, **err)
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
        out.append(f"frontier: {path}")
    return out


def report(run_dir: str) -> tuple[str, dict]:
    """table.md, summary.json and the plots of a run folder, from its records alone."""
    cfg, recs = load_run(run_dir)
    summary = summarize(recs, cfg)
    text = tables(summary, cfg)
    with open(os.path.join(run_dir, "table.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, allow_nan=False)
    return text + "\n\n" + "\n".join(plots(summary, cfg, run_dir)), summary
