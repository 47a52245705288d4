"""Exploratory Annealed Decoding (EAD) for RL with verifiable rewards, in one file.

Read top to bottom:
  1. the schedule        tau_t = max(1 + tau_max - exp(t / d_s), tau_min)     (SPEC §2)
  2. the sampler         one loop over the KV cache that records log mu(y_t)    (SPEC §3)
  3. generate() hook     the same schedule as a transformers LogitsProcessor
  4. the scorer          log pi(y_t) at temperature 1, micro-batched            (SPEC §3)
  5. the update          group advantages + truncated-IS clipped loss           (SPEC §4)
  6. the metrics         pass@k, worst@k, maj@k                                 (SPEC §5)
  7. the RL step         all of the above, once per training step
  8. the command line    Qwen2.5-Math-1.5B on one GPU (plumbing)

"SPEC §n" is a section of the project's one-page restatement of arXiv 2510.05251 ("Let it Calm:
Exploratory Annealed Decoding for Verifiable RL"): §2 the schedule, §3 which policy is which,
§4 the update, §5 evaluation. The README's "EAD in six steps" carries the same formulas.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import time
from collections import Counter
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, LogitsProcessor

# =====================================================================================
# 1. The EAD temperature schedule (SPEC §2)
# =====================================================================================


def ead_schedule(num_tokens: int, step: int = 0, *, tau_max: float = 1.2, tau_min: float = 0.1,
                 d0: float = 500.0, alpha: float = 100.0, d_max: float = 800000.0,
                 c: int = 10) -> torch.Tensor:
    """Temperature tau_t for answer tokens t = 0..num_tokens-1 at training step `step`.

    d is measured in TOKENS. The released code writes exp(t / (20 * decay_freq)) with
    decay_freq = 25 (+5 per step), i.e. d0 = 20 * 25 = 500 and alpha = 20 * 5 = 100 here.
    A fixed-temperature baseline is simply torch.full((num_tokens,), tau).
    """
    if num_tokens < 0:
        raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if tau_min <= 0:
        raise ValueError(f"tau_min must be > 0, got {tau_min}")
    if tau_min > tau_max:
        raise ValueError(f"tau_min ({tau_min}) must be <= tau_max ({tau_max})")
    if d0 <= 0:
        raise ValueError(f"d0 must be > 0 (tokens), got {d0}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if d_max <= 0:
        raise ValueError(f"d_max must be > 0 (tokens), got {d_max}")
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    d_s = min(d0 + alpha * step, d_max)                     # SPEC §2: d grows with the step
    t = torch.arange(num_tokens, dtype=torch.float64)
    tau = (1.0 + tau_max - torch.exp(t / d_s)).clamp(min=tau_min)  # SPEC §2 (exp->inf is fine)
    tau[:c] = 1.0                                            # SPEC §2: template tokens at tau=1
    return tau.float()


def schedule_by_name(name: str, num_tokens: int, step: int = 0, **ead_kwargs) -> torch.Tensor:
    """'ead' -> ead_schedule(num_tokens, step, **ead_kwargs); 'tau=X' -> X for every token."""
    if name == "ead":
        return ead_schedule(num_tokens, step, **ead_kwargs)
    m = re.fullmatch(r"tau=(\d+(?:\.\d+)?)", name)
    if not m or float(m[1]) <= 0:
        raise ValueError(f"unknown schedule {name!r}: use 'ead' or 'tau=X' with X > 0")
    return torch.full((num_tokens,), float(m[1]))


# =====================================================================================
# 2. The annealed sampler over the KV cache (SPEC §3)
# =====================================================================================


class Rollout(NamedTuple):
    tokens: torch.Tensor   # (B, T) long, pad after EOS
    mask: torch.Tensor     # (B, T) bool, True on answer tokens (EOS included)
    logp_mu: torch.Tensor  # (B, T) float32, log mu(y_t): softmax(logits / tau_t)
    logp_pi: torch.Tensor  # (B, T) float32, log pi(y_t): softmax(logits), same logits
    entropy: torch.Tensor  # (B, T) float32, entropy of pi (temperature 1) at each step


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _cache_kwarg(model) -> str:
    # transformers renamed forward(past_key_values=) to forward(cache=) in 5.2x
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _eos_list(eos_token_id) -> list[int]:
    return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)


@torch.no_grad()
def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
           temperatures: torch.Tensor, *, eos_token_id, pad_token_id: int,
           generator: torch.Generator | None = None, vocab_size: int | None = None) -> Rollout:
    """Sample up to len(temperatures) answer tokens for a left-padded batch of prompts.

    Token t is drawn from softmax(logits_t / temperatures[t]) (no top-k/top-p: that would
    change mu). Returns a Rollout whose width is the number of steps actually taken: the
    loop stops as soon as every row has emitted an EOS. `generator` (on the model's device)
    makes the draw reproducible; `vocab_size` masks lm_head rows past the tokenizer.
    """
    B, device = input_ids.shape[0], input_ids.device
    taus = [float(x) for x in temperatures]                  # one host read, not one per step
    eos = torch.tensor(_eos_list(eos_token_id), device=device)
    cache = DynamicCache(config=model.config)
    cache_kw = _cache_kwarg(model)
    attention_mask = attention_mask.long()
    position_ids = positions_from_mask(attention_mask)       # the scorer uses the same ids
    step_ids = input_ids                                     # prefill: the whole prompt
    done = torch.zeros(B, dtype=torch.bool, device=device)
    zero = torch.zeros((), device=device)
    tokens, mask, logp_mu, logp_pi, entropy = [], [], [], [], []
    for tau in taus:
        out = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=position_ids,
                    use_cache=True, logits_to_keep=1, **{cache_kw: cache})
        logits = out.logits[:, -1].float()                   # (B, V), never (B, L, V)
        if vocab_size is not None:
            logits[:, vocab_size:] = float("-inf")           # Qwen pads its lm_head
        lp_pi = F.log_softmax(logits, dim=-1)                # (B, V) target policy, T = 1
        lp_mu = F.log_softmax(logits / tau, dim=-1)          # (B, V) behaviour policy
        # inverse-CDF sampling: one uniform per row (torch.multinomial is ~8x slower on CPU);
        # u stays strictly below the total, so a zero-probability token is never picked
        cdf = lp_mu.exp().cumsum(-1)                         # (B, V)
        u = torch.rand(B, 1, generator=generator, device=device) * cdf[:, -1:]
        u = torch.minimum(u, cdf[:, -1:].nextafter(zero))
        y = torch.searchsorted(cdf, u, right=True).squeeze(1)  # (B,)
        y = torch.where(done, pad_token_id, y)               # ended rows only emit pad
        tokens.append(y)
        mask.append(~done)
        logp_mu.append(lp_mu.gather(1, y[:, None]).squeeze(1))
        logp_pi.append(lp_pi.gather(1, y[:, None]).squeeze(1))
        entropy.append(torch.special.entr(lp_pi.exp()).sum(-1))   # -sum p log p, 0 log 0 = 0
        done = done | torch.isin(y, eos)
        if bool(done.all()):
            break
        step_ids = y[:, None]                                # (B, 1): one new token per step
        attention_mask = F.pad(attention_mask, (0, 1), value=1)
        position_ids = position_ids[:, -1:] + 1
    if not tokens:                                           # zero temperatures: empty rollout
        e = torch.zeros(B, 0, device=device)
        return Rollout(e.long(), e.bool(), e, e.clone(), e.clone())
    m = torch.stack(mask, 1)
    return Rollout(torch.stack(tokens, 1), m, torch.stack(logp_mu, 1).where(m, zero),
                   torch.stack(logp_pi, 1).where(m, zero), torch.stack(entropy, 1).where(m, zero))


# =====================================================================================
# 3. The same schedule inside model.generate
# =====================================================================================

class EADLogitsProcessor(LogitsProcessor):
    """Divides the logits of answer token t by temperatures[t] inside model.generate.

    Call generate with do_sample=True, temperature=1.0, top_k=0, top_p=1.0: transformers
    otherwise applies top_k=50 silently, and the sampled tokens would not follow mu.
    `prompt_length` is input_ids.shape[1] of the (left-padded) prompt batch. Past the end of
    `temperatures` the last value is kept. With output_scores=True, generate's scores are
    logits / tau_t, so log_softmax(scores) gives log mu exactly as `sample` records it.
    """

    def __init__(self, temperatures: torch.Tensor, prompt_length: int,
                 vocab_size: int | None = None):
        if len(temperatures) == 0:
            raise ValueError("temperatures must hold at least one value")
        self.temperatures = torch.as_tensor(temperatures, dtype=torch.float32)
        self.prompt_length = prompt_length
        self.vocab_size = vocab_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        t = min(input_ids.shape[1] - self.prompt_length, len(self.temperatures) - 1)
        scores = scores.float() / float(self.temperatures[t])
        if self.vocab_size is not None:
            scores[:, self.vocab_size:] = float("-inf")
        return scores


# =====================================================================================
# 4. The scorer: log pi(y_t) of given answers (SPEC §3)
# =====================================================================================


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   tokens: torch.Tensor, mask: torch.Tensor, *, micro_batch: int = 8,
                   temperatures: torch.Tensor | None = None, vocab_size: int | None = None,
                   with_entropy: bool = False):
    """log-softmax(logits / tau_t) at `tokens` (B, T), in fp32, micro_batch rows at a time.

    Grad flows when grad is enabled. Position ids come from the attention mask exactly as in
    `sample`, and only the T answer positions are projected to the vocabulary
    (logits_to_keep), so memory is micro_batch x T x V, not B x (prompt + T) x V.
    """
    T = tokens.shape[1]
    logps, ents = [], []
    for i in range(0, tokens.shape[0], micro_batch):
        ids = torch.cat([input_ids[i:i + micro_batch], tokens[i:i + micro_batch]], 1)
        am = torch.cat([attention_mask[i:i + micro_batch].long(),
                        mask[i:i + micro_batch].long()], 1)
        out = model(input_ids=ids, attention_mask=am, position_ids=positions_from_mask(am),
                    use_cache=False, logits_to_keep=T + 1)
        logits = out.logits[:, :-1].float()                  # (b, T, V): predicts tokens
        if vocab_size is not None:
            logits[..., vocab_size:] = float("-inf")
        if temperatures is not None:
            logits = logits / temperatures[:T].to(logits.device)[None, :, None]
        lp = F.log_softmax(logits, dim=-1)                   # fp32 log-softmax (bf16 weights ok)
        logps.append(lp.gather(-1, tokens[i:i + micro_batch, :, None]).squeeze(-1))
        if with_entropy:
            ents.append(torch.special.entr(lp.exp()).sum(-1).detach())
    logp = torch.cat(logps).where(mask, torch.zeros((), device=tokens.device))
    return (logp, torch.cat(ents)) if with_entropy else logp


# =====================================================================================
# 5. The update: group advantages and the truncated-IS clipped loss (SPEC §4)
# =====================================================================================


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """(R - group mean) / (group std + eps) for consecutive groups of `group_size` answers."""
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)                 # (G, n)
    std = r.std(-1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
    adv = (r - r.mean(-1, keepdim=True)) / (std + eps)      # SPEC §4 (unbiased std, as verl)
    flat = r.amax(-1, keepdim=True) == r.amin(-1, keepdim=True)
    return adv.masked_fill(flat, 0.0).view(-1)               # equal rewards: exactly no signal


def policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, logp_mu: torch.Tensor,
                advantages: torch.Tensor, mask: torch.Tensor, *, clip_low: float = 0.2,
                clip_high: float = 0.28, tis_cap: float | None = 2.0,
                dual_clip: float | None = None, kl_coef: float = 0.0,
                logp_ref: torch.Tensor | None = None, num_tokens: float | None = None,
                tis_level: str = "token"):
    """Token-level clipped policy loss with truncated importance sampling (SPEC §4).

    logp, logp_old, logp_mu, mask: (B, T); advantages: (B,). `num_tokens` is the token-mean
    normaliser: pass the mask sum of the whole mini-batch when accumulating micro-batches.
    tis_level="token" (all released code) weights each token by min(pi_old/mu, C);
    "sequence" (the paper's formula) weights every token of an answer by one
    min(prod_t pi_old/mu, C). Returns (loss, stats) with stats as plain floats.
    """
    if tis_level not in ("token", "sequence"):
        raise ValueError(f"tis_level must be 'token' or 'sequence', got {tis_level!r}")
    m = mask.float()
    n = m.sum().clamp(min=1.0) if num_tokens is None else float(num_tokens)
    A = advantages.float()[:, None]                          # (B, 1) broadcast to every token
    ratio = torch.exp(logp - logp_old)                       # SPEC §4: r_t
    pg1 = -A * ratio
    pg2 = -A * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg = torch.maximum(pg1, pg2)                             # SPEC §4: l_t
    if dual_clip is not None:                                # SPEC §4: optional, A < 0 only
        pg = torch.where(A < 0, torch.minimum(pg, -A * dual_clip), pg)
    log_w = (logp_old - logp_mu) * m                         # (B, T) log pi_old / mu
    if tis_level == "sequence":                              # one weight per answer
        log_w = log_w.sum(-1, keepdim=True).expand_as(log_w)
    if tis_cap is not None:                                  # SPEC §4: w_t, detached, no floor
        w = torch.exp(log_w).clamp(max=tis_cap).detach()
    else:
        w = torch.ones_like(pg)
    per_token = w * pg
    kl = torch.zeros_like(pg)
    if kl_coef:
        if logp_ref is None:
            raise ValueError("kl_coef > 0 needs logp_ref")
        d = logp_ref - logp
        kl = torch.exp(d) - d - 1.0                          # SPEC §4: k3 estimator
        per_token = per_token + kl_coef * kl
    loss = (per_token * m).sum() / n                         # SPEC §4: token-mean
    with torch.no_grad():
        tot = m.sum().clamp(min=1.0)
        clipped = (pg2 > pg1).float() * m
        stats = {
            "clip_frac_low": float((clipped * (ratio < 1.0).float()).sum() / tot),
            "clip_frac_high": float((clipped * (ratio > 1.0).float()).sum() / tot),
            "tis_trunc_frac": float(((torch.exp(log_w) > tis_cap).float() * m).sum() / tot)
                              if tis_cap is not None else 0.0,
            "tis_weight_mean": float((w * m).sum() / tot),
            "mu_gap": float(((logp_old - logp_mu).abs() * m).sum() / tot),
            "ratio_mean": float((ratio * m).sum() / tot),
            "kl": float((kl * m).sum() / tot),
            "tokens": float(m.sum()),
        }
    return loss, stats


# =====================================================================================
# 6. Metrics (SPEC §5)
# =====================================================================================


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))  # stable product form


def worst_at_k(n: int, c: int, k: int) -> float:
    """Unbiased worst@k: the chance that k of the n samples, drawn together, are all correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if c < k:
        return 0.0
    return math.prod((c - i) / (n - i) for i in range(k))   # C(c, k) / C(n, k)


def entropy_buckets(entropy: torch.Tensor, mask: torch.Tensor,
                    edges: Sequence[int] = (0, 4, 16, 64, 256, 1024)) -> dict:
    """Mean entropy of pi per answer-position bucket: where does the policy still explore?"""
    out = {}
    for lo, hi in zip(edges, list(edges[1:]) + [None]):
        m = mask[:, lo:hi].float()
        if m.sum() > 0:
            name = f"{lo}-{hi - 1}" if hi else f"{lo}+"
            out[f"entropy/{name}"] = float((entropy[:, lo:hi] * m).sum() / m.sum())
    return out


def maj_at_k(answers: Sequence, correct: Sequence[bool]) -> float:
    """1.0 if the most frequent non-empty answer (ties: the earliest) is correct, else 0.0."""
    votes = Counter(a for a in answers if a is not None and a != "")
    if not votes:
        return 0.0
    top = max(votes.values())
    winner = next(a for a in answers if votes.get(a) == top)
    return float(correct[list(answers).index(winner)])


# =====================================================================================
# 7. One RL step: sample groups, verify, advantages, old log-probs, mini-batch updates
# =====================================================================================


def rl_step(policy, optimizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
            reward_fn: Callable[[Rollout], torch.Tensor], temperatures: torch.Tensor, *,
            group_size: int, eos_token_id, pad_token_id: int,
            generator: torch.Generator | None = None, vocab_size: int | None = None,
            num_minibatches: int = 4, micro_batch: int = 8, clip_low: float = 0.2,
            clip_high: float = 0.28, tis_cap: float | None = 2.0,
            dual_clip: float | None = None, kl_coef: float = 0.0, ref_model=None,
            max_grad_norm: float = 1.0, recompute_old: bool = True, tis_level: str = "token"):
    """One training step of TIS-DAPO (or GRPO with kl_coef > 0) on P prompts (P, L).

    Every prompt is answered group_size times by the annealed sampler (behaviour policy mu);
    reward_fn(rollout) -> (P * group_size,) rewards. The batch is then cut into
    num_minibatches optimiser updates (SPEC §4: 4 per step), each accumulated over
    micro-batches whose loss is normalised by the token count of the whole mini-batch.
    Returns (stats, rollout, rewards).
    """
    N = input_ids.shape[0] * group_size
    if N % num_minibatches:
        raise ValueError(f"{N} answers do not split into {num_minibatches} mini-batches")
    ids = input_ids.repeat_interleave(group_size, 0)          # (N, L): rows of a group adjacent
    am = attention_mask.repeat_interleave(group_size, 0)
    was_training = policy.training
    policy.eval()                                             # KV cache on, no checkpointing
    t0 = time.perf_counter()
    roll = sample(policy, ids, am, temperatures, eos_token_id=eos_token_id,
                  pad_token_id=pad_token_id, generator=generator, vocab_size=vocab_size)
    t_rollout = time.perf_counter() - t0
    rewards = reward_fn(roll).float().to(ids.device)          # (N,)
    t0 = time.perf_counter()
    adv = group_advantages(rewards, group_size)               # (N,)
    # a row with A = 0 and no KL term has zero gradient: it is never scored nor updated,
    # but its tokens still count in the token mean
    live = (adv != 0) | bool(kl_coef)                         # (N,) bool
    score = dict(micro_batch=micro_batch, vocab_size=vocab_size)
    logp_old, logp_ref = roll.logp_pi.clone(), None
    with torch.no_grad():
        if recompute_old and live.any():
            # pi_old by a fresh forward with exactly the numerics of the update (in bf16 the
            # sampler's KV-cache logits differ from it by ~1e-2); else the sampler's own T=1
            logp_old[live] = token_logprobs(policy, ids[live], am[live], roll.tokens[live],
                                            roll.mask[live], **score)
        if kl_coef:
            logp_ref = token_logprobs(ref_model, ids, am, roll.tokens, roll.mask, **score)
    policy.train()                                            # checkpointing/dropout as set
    params = [p for p in policy.parameters() if p.requires_grad]
    mb_size = N // num_minibatches
    sums, n_updates, grad_norms = Counter(), 0, []
    for mb in torch.arange(N, device=ids.device).split(mb_size):
        n_tok = float(roll.mask[mb].sum())                    # SPEC §4: mean over mini-batch
        rows = mb[live[mb]]
        if len(rows) == 0:
            continue                                          # no signal: no optimiser step
        optimizer.zero_grad(set_to_none=True)
        for mu in rows.split(micro_batch):
            T = int(roll.mask[mu].sum(1).max())               # trim this micro-batch's padding
            logp = token_logprobs(policy, ids[mu], am[mu], roll.tokens[mu, :T],
                                  roll.mask[mu, :T], **score)
            loss, st = policy_loss(logp, logp_old[mu, :T], roll.logp_mu[mu, :T], adv[mu],
                                   roll.mask[mu, :T], clip_low=clip_low, clip_high=clip_high,
                                   tis_cap=tis_cap, dual_clip=dual_clip, kl_coef=kl_coef,
                                   logp_ref=None if logp_ref is None else logp_ref[mu, :T],
                                   num_tokens=max(n_tok, 1.0), tis_level=tis_level)
            loss.backward()
            sums.update({k: v * st["tokens"] for k, v in st.items() if k != "tokens"})
            sums["tokens"] += st["tokens"]
            sums["loss"] += float(loss.detach())
        grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)))
        optimizer.step()
        n_updates += 1
    policy.train(was_training)
    t_update = time.perf_counter() - t0
    tok = max(sums.pop("tokens", 0.0), 1.0)
    loss_sum = sums.pop("loss", 0.0)
    stats = {f"loss/{k}": v / tok for k, v in sums.items()}
    lengths = roll.mask.sum(1).float()
    stats.update({
        "loss/pg_loss": loss_sum / max(n_updates, 1),
        "loss/grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
        "loss/updates": n_updates,
        "rollout/reward": float(rewards.mean()),
        "rollout/answer_len": float(lengths.mean()),
        "rollout/tokens": int(roll.mask.sum()),
        "rollout/zero_var_groups": float((rewards.view(-1, group_size).std(-1) == 0).float()
                                         .mean()) if group_size > 1 else 1.0,
        "rollout/tau_max": float(temperatures[:roll.tokens.shape[1]].max()),
        "rollout/tau_min": float(temperatures[:roll.tokens.shape[1]].min()),
        "perf/rollout_tok_s": float(roll.mask.sum()) / max(t_rollout, 1e-9),
        "perf/update_tok_s": float(roll.mask.sum()) / max(t_update, 1e-9),
        **entropy_buckets(roll.entropy, roll.mask),
    })
    return stats, roll, rewards


# =====================================================================================
# 8. The command line: Qwen2.5-Math-1.5B on one GPU (plumbing, not algorithm)
# =====================================================================================

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
_PROBLEM_KEYS = ("problem", "question", "prompt")
_ANSWER_KEYS = ("answer", "final_answer", "gold", "target")


class CLIError(Exception):
    """Bad input: main() prints it as one line and exits with status 2."""


def load_problems(path: str) -> tuple[list[dict], int]:
    """JSONL -> [{"problem", "answer"}], skipped-line count. A malformed line is an error."""
    import verify  # only the command line needs the checker: sections 1-7 copy alone
    if not os.path.isfile(path):
        raise CLIError(f"{path}: no such file")
    rows, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise CLIError(f"{path}:{no}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise CLIError(f"{path}:{no}: expected a JSON object, got {type(rec).__name__}")
            problem = next((rec[k] for k in _PROBLEM_KEYS if isinstance(rec.get(k), str)), None)
            answer = next((str(rec[k]) for k in _ANSWER_KEYS
                           if isinstance(rec.get(k), (str, int, float))), None)
            if answer is None and isinstance(rec.get("solution"), str):
                answer = verify.extract_answer(rec["solution"])   # MATH: boxed in solution
            if not problem or answer is None or not str(answer).strip():
                skipped += 1
                continue
            rows.append({"problem": problem, "answer": str(answer)})
    if not rows:
        raise CLIError(f"{path}: no usable problems ({skipped} lines skipped: each needs one of "
                       f"{'/'.join(_PROBLEM_KEYS)} and an answer or a solution with \\boxed{{}})")
    return rows, skipped


def prompt_of(tokenizer, problem: str) -> str:
    """The chat template with the paper's system prompt, or a plain template."""
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem}]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return f"{SYSTEM_PROMPT}\n\nQuestion: {problem}\nAnswer: Let's think step by step."


def encode_left(tokenizer, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    L = max(map(len, seqs))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (L - len(s)) + s for s in seqs], device=device)
    am = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, am


def completions(tokenizer, roll: Rollout) -> list[str]:
    return tokenizer.batch_decode([t[m].tolist() for t, m in zip(roll.tokens, roll.mask)],
                                  skip_special_tokens=True)


def ead_knobs(a) -> dict:
    return dict(tau_max=a.tau_max, tau_min=a.tau_min, d0=a.d0, alpha=a.alpha, d_max=a.d_max,
                c=a.c)


@torch.no_grad()
def evaluate_cli(model, tokenizer, problems, a, step, gen, eos, vocab) -> dict:
    """pass@k, worst@k, mean@k, maj@k per decoding schedule, and greedy accuracy (SPEC §5)."""
    import verify
    model.eval()
    ks = [int(k) for k in a.eval_k.split(",")]
    res = {}
    for name in a.eval_schedules.split(","):
        n = 1 if name == "greedy" else a.eval_n
        taus = (torch.full((a.max_new_tokens,), 1e-5) if name == "greedy"  # the tau -> 0 limit
                else schedule_by_name(name, a.max_new_tokens, step, **ead_knobs(a)))
        per_problem = []
        chunk = max(1, a.eval_batch // n)
        for i in tqdm(range(0, len(problems), chunk), desc=f"eval {name}", leave=False):
            batch = problems[i:i + chunk]
            ids, am = encode_left(tokenizer, [prompt_of(tokenizer, p["problem"]) for p in batch],
                                  a.device)
            roll = sample(model, ids.repeat_interleave(n, 0), am.repeat_interleave(n, 0), taus,
                          eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                          generator=gen, vocab_size=vocab)
            texts = completions(tokenizer, roll)
            for j, p in enumerate(batch):
                outs = texts[j * n:(j + 1) * n]
                preds = [verify.extract_answer(t) for t in outs]
                ok = [pr is not None and verify.is_equiv(pr, p["answer"]) for pr in preds]
                votes = []                                 # "1/2" and "0.5" are one vote
                for pr in preds:
                    votes.append(None if pr is None else next(
                        (votes[i] for i, q in enumerate(preds[:len(votes)])
                         if q is not None and verify.is_equiv(pr, q)), len(votes)))
                per_problem.append((ok, votes))
        if n == 1:
            res[f"eval/{name}/acc"] = sum(ok[0] for ok, _ in per_problem) / len(per_problem)
            continue
        res[f"eval/{name}/mean@{n}"] = sum(sum(ok) / n for ok, _ in per_problem) / len(per_problem)
        for k in ks:
            res[f"eval/{name}/pass@{k}"] = (sum(pass_at_k(n, sum(ok), k) for ok, _ in per_problem)
                                            / len(per_problem))
            res[f"eval/{name}/worst@{k}"] = (sum(worst_at_k(n, sum(ok), k)
                                                 for ok, _ in per_problem) / len(per_problem))
        res[f"eval/{name}/maj@{n}"] = (sum(maj_at_k(v, ok) for ok, v in per_problem)
                                       / len(per_problem))
    return res


def save_checkpoint(out_dir, model, tokenizer, optimizer, state: dict) -> str:
    """Write out_dir/checkpoint atomically: a crash mid-write leaves the previous one."""
    final, tmp, old = (os.path.join(out_dir, n) for n in ("checkpoint", "checkpoint.tmp",
                                                           "checkpoint.old"))
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save({"optimizer": optimizer.state_dict(), **state}, os.path.join(tmp, "trainer.pt"))
    if os.path.exists(final):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def master_adamw(model, lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """AdamW whose state and weights live in fp32 copies of a bf16 model's parameters.

    An update of ~lr = 1e-6 is far below bf16's resolution (~4e-3 relative) and would round
    away; the fp32 masters keep it. The model's bf16 weights are refreshed after every step.
    For an fp32 model this is plain AdamW.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if all(p.dtype == torch.float32 for p in params):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    masters = [p.detach().float().clone() for p in params]
    opt = torch.optim.AdamW(masters, lr=lr, weight_decay=weight_decay)

    def grads_in(optimizer, args, kwargs):
        for p, m in zip(params, masters):
            m.grad = None if p.grad is None else p.grad.float()

    def weights_out(optimizer, args, kwargs):
        with torch.no_grad():
            for p, m in zip(params, masters):
                p.copy_(m)
                p.grad = None                                # rl_step zeroes only the masters

    opt.register_step_pre_hook(grads_in)
    opt.register_step_post_hook(weights_out)
    return opt


def enable_checkpointing(model):
    # transformers 5.2x renamed gradient_checkpointing_enable to activation_checkpointing_enable
    fn = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    fn()


def rng_state(gen: torch.Generator) -> dict:
    st = {"python": random.getstate(), "torch": torch.get_rng_state(), "sampler": gen.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict, gen: torch.Generator):
    random.setstate(st["python"])
    torch.set_rng_state(st["torch"])
    gen.set_state(st["sampler"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def parse_cli(argv=None):
    p = argparse.ArgumentParser(
        prog="ead.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="RLVR with Exploratory Annealed Decoding: TIS-DAPO (or GRPO) on a causal LM "
                    "with transformers, one GPU. Defaults are the paper's Qwen2.5-Math-1.5B "
                    "settings (SPEC §2, §4), except the batch, which fits one GPU.")
    g = p.add_argument_group("data and model")
    g.add_argument("--model", required=True, help="hub id or local folder (weights + tokenizer)")
    g.add_argument("--train", help="training JSONL (problem/question/prompt + answer/solution)")
    g.add_argument("--eval", help="evaluation JSONL, same fields")
    g.add_argument("--out", default="runs/ead", help="run folder: metrics.jsonl + checkpoint/")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda")
    g.add_argument("--dtype", default="auto", help="auto (bf16 on cuda, fp32 on cpu), bfloat16, float32")
    g.add_argument("--grad-checkpointing", default="auto", choices=["auto", "on", "off"],
                   help="activation checkpointing in the update (auto: on with cuda)")
    g = p.add_argument_group("rollouts (SPEC §2)")
    g.add_argument("--schedule", default="ead", choices=["ead", "fixed"], help="training decoding")
    g.add_argument("--tau", type=float, default=1.0, help="temperature of --schedule fixed")
    g.add_argument("--tau-max", type=float, default=1.2, help="EAD start temperature")
    g.add_argument("--tau-min", type=float, default=0.1, help="EAD floor (0.8 for 7B models)")
    g.add_argument("--d0", type=float, default=500.0, help="EAD decay at step 0, in tokens")
    g.add_argument("--alpha", type=float, default=100.0, help="EAD growth of d per step, tokens")
    g.add_argument("--d-max", type=float, default=800000.0, help="EAD cap on d, tokens")
    g.add_argument("--c", type=int, default=10, help="EAD: first c tokens at tau = 1")
    g.add_argument("--batch", type=int, default=512, help="answers per step (prompts x group)")
    g.add_argument("--group", type=int, default=8, help="answers per prompt (n)")
    g.add_argument("--max-new-tokens", type=int, default=1024, help="answer length cap")
    g = p.add_argument_group("update (SPEC §4)")
    g.add_argument("--algo", default="dapo", choices=["dapo", "grpo"],
                   help="dapo: clip 0.2/0.28, no KL; grpo: clip 0.2/0.2 + k3 KL to a frozen reference")
    g.add_argument("--lr", type=float, default=1e-6, help="AdamW learning rate")
    g.add_argument("--minibatches", type=int, default=4, help="optimiser updates per step")
    g.add_argument("--micro-batch", type=int, default=8, help="answers per forward/backward")
    g.add_argument("--tis-cap", type=float, default=2.0, help="truncated-IS cap C")
    g.add_argument("--no-tis", action="store_true", help="turn truncated IS off")
    g.add_argument("--tis-level", default="token", choices=["token", "sequence"],
                   help="TIS weight per token (released code) or per answer (paper's formula)")
    g.add_argument("--kl-coef", type=float, default=0.001, help="k3 KL coefficient (grpo only)")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max grad norm")
    g.add_argument("--steps", type=int, default=440, help="training steps")
    g.add_argument("--seed", type=int, default=0, help="seed of data order and sampling")
    g = p.add_argument_group("evaluation (SPEC §5) and safety")
    g.add_argument("--eval-only", action="store_true", help="evaluate --model and exit")
    g.add_argument("--eval-every", type=int, default=20, help="evaluate every N steps (0: never)")
    g.add_argument("--eval-n", type=int, default=16, help="samples per evaluation problem")
    g.add_argument("--eval-k", default="1,4,16", help="k values of pass@k and worst@k (<= n)")
    g.add_argument("--eval-schedules", default="ead,tau=0.6,tau=1.0,greedy",
                   help="decodings compared at evaluation: ead, tau=X, greedy")
    g.add_argument("--eval-batch", type=int, default=256, help="answers decoded together in eval")
    g.add_argument("--eval-limit", type=int, default=0, help="use only the first N eval problems")
    g.add_argument("--save-every", type=int, default=20, help="checkpoint every N steps")
    g.add_argument("--resume", action="store_true", help="continue from --out/checkpoint")
    return p.parse_args(argv)


def check_cli(a):
    """Turn every foreseeable bad input into one clear CLIError."""
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError("--device cuda was requested but no CUDA device is available")
    if a.dtype == "auto":
        a.dtype = "bfloat16" if a.device.startswith("cuda") else "float32"
    if a.dtype not in ("bfloat16", "float32", "float16"):
        raise CLIError(f"--dtype {a.dtype!r}: use bfloat16 or float32")
    if not a.eval_only and not a.train:
        raise CLIError("--train is required unless --eval-only")
    if a.eval_only and not a.eval:
        raise CLIError("--eval-only needs --eval")
    for f in (a.train, a.eval):
        if f and not os.path.isfile(f):
            raise CLIError(f"{f}: no such file")
    if a.group < 2:
        raise CLIError("--group must be >= 2 (advantages compare answers to one prompt)")
    if a.batch % a.group:
        raise CLIError(f"--batch {a.batch} is not divisible by --group {a.group}")
    if a.batch % a.minibatches:
        raise CLIError(f"--batch {a.batch} is not divisible by --minibatches {a.minibatches}")
    ks = a.eval_k.split(",")
    if not all(k.strip().isdigit() and int(k) >= 1 for k in ks):
        raise CLIError(f"--eval-k {a.eval_k!r}: a comma list of positive integers")
    if max(map(int, ks)) > a.eval_n:
        raise CLIError(f"--eval-k {a.eval_k}: k cannot exceed --eval-n {a.eval_n}")
    for name in a.eval_schedules.split(","):
        if name != "greedy":
            try:
                schedule_by_name(name, 1)                  # the name only; knobs come next
            except ValueError as e:
                raise CLIError(f"--eval-schedules: {e}, or greedy") from None
    if a.resume and not os.path.isdir(os.path.join(a.out, "checkpoint")):
        raise CLIError(f"--resume: no checkpoint in {a.out}/checkpoint")
    ead_schedule(1, **ead_knobs(a))                          # ValueError names the argument
    if a.algo == "grpo":
        a.clip_high = 0.2
    else:
        a.clip_high, a.kl_coef = 0.28, 0.0


def load_model(path: str, dtype: str = "float32", device: str = "cpu"):
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise CLIError(f"--model {path}: cannot load ({str(e).splitlines()[0]})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device), tok


def main(argv=None) -> int:
    import verify
    try:
        a = parse_cli(argv)
        check_cli(a)
        train = load_problems(a.train) if a.train else ([], 0)
        evals = load_problems(a.eval) if a.eval else ([], 0)
        for path, (rows, skipped) in ((a.train, train), (a.eval, evals)):
            if path and skipped:
                print(f"{path}: {len(rows)} problems, {skipped} lines skipped (no problem/answer)")
        evals = evals[0][:a.eval_limit] if a.eval_limit else evals[0]
        train = train[0]
        src = os.path.join(a.out, "checkpoint") if a.resume else a.model
        model, tok = load_model(src, a.dtype, a.device)
    except (CLIError, ValueError) as e:
        print(f"ead.py: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    gen = torch.Generator(device=a.device).manual_seed(a.seed)
    vocab = len(tok) if len(tok) < model.config.vocab_size else None   # padded lm_head rows
    gen_eos = model.generation_config.eos_token_id   # Qwen chat models end on <|im_end|> too
    eos = sorted({t for t in [tok.eos_token_id, *(_eos_list(gen_eos) if gen_eos is not None
                                                   else [])] if t is not None})
    log_f = open(os.path.join(a.out, "metrics.jsonl"), "a")

    def log(rec):
        log_f.write(json.dumps(rec) + "\n")
        log_f.flush()

    if a.eval_only:
        res = evaluate_cli(model, tok, evals, a, 0, gen, eos, vocab)
        log({"step": 0, "eval_only": True, **res})
        print(json.dumps(res, indent=1))
        return 0

    if (a.grad_checkpointing == "on" or (a.grad_checkpointing == "auto"
                                         and a.device.startswith("cuda"))):
        enable_checkpointing(model)
    opt = master_adamw(model, a.lr)
    ref = None
    if a.kl_coef:
        ref = load_model(a.model, a.dtype, a.device)[0].eval().requires_grad_(False)
    step, order, pos = 0, list(range(len(train))), 0
    random.Random(a.seed).shuffle(order)
    if a.resume:
        st = torch.load(os.path.join(a.out, "checkpoint", "trainer.pt"), weights_only=False)
        opt.load_state_dict(st["optimizer"])
        with torch.no_grad():                              # the fp32 masters, not bf16 weights
            for m, saved in zip(opt.param_groups[0]["params"], st["masters"]):
                m.copy_(saved)
        step, order, pos = st["step"], st["order"], st["pos"]
        set_rng_state(st["rng"], gen)
        print(f"resumed at step {step}")
    n_prompts = a.batch // a.group

    def checkpoint():
        save_checkpoint(a.out, model, tok, opt,
                        {"step": step, "order": order, "pos": pos, "rng": rng_state(gen),
                         "masters": [m.detach().cpu() for m in opt.param_groups[0]["params"]]})

    stop = []

    def on_ctrl_c(signum, frame):
        if stop:                                           # a second Ctrl-C: leave right away
            raise KeyboardInterrupt
        stop.append(signum)
        print("\nCtrl-C: finishing this step, then saving a checkpoint (again to quit now)",
              file=sys.stderr)

    # a step stopped halfway would leave weights, data position and step count out of step
    # with each other: Ctrl-C lets the step finish, then checkpoints a consistent state
    old_handler = signal.signal(signal.SIGINT, on_ctrl_c)
    bar = tqdm(total=a.steps, initial=step, desc="RL steps")
    try:
        while step < a.steps and not stop:
            if a.eval_every and evals and step % a.eval_every == 0:
                log({"step": step, **evaluate_cli(model, tok, evals, a, step, gen, eos, vocab)})
            batch = []
            while len(batch) < n_prompts:                  # epochs reshuffle deterministically
                if pos == len(order):
                    random.Random(a.seed + step).shuffle(order)
                    pos = 0
                batch.append(train[order[pos]])
                pos += 1
            ids, am = encode_left(tok, [prompt_of(tok, p["problem"]) for p in batch], a.device)
            golds = [p["answer"] for p in batch for _ in range(a.group)]

            def reward_fn(roll, golds=golds):
                return torch.tensor([verify.reward(t, g) for t, g in
                                     zip(completions(tok, roll), golds)])

            if a.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            temps = (schedule_by_name("ead", a.max_new_tokens, step, **ead_knobs(a))
                     if a.schedule == "ead" else torch.full((a.max_new_tokens,), a.tau))
            stats, roll, _ = rl_step(
                model, opt, ids, am, reward_fn, temps, group_size=a.group, eos_token_id=eos,
                pad_token_id=tok.pad_token_id, generator=gen, vocab_size=vocab,
                num_minibatches=a.minibatches, micro_batch=a.micro_batch,
                clip_high=a.clip_high, tis_cap=None if a.no_tis else a.tis_cap,
                kl_coef=a.kl_coef, ref_model=ref, max_grad_norm=a.grad_clip,
                tis_level=a.tis_level)
            if a.device.startswith("cuda"):
                stats["perf/peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            step += 1
            log({"step": step, **stats})
            bar.update(1)
            bar.set_postfix(reward=f"{stats['rollout/reward']:.3f}",
                            rollout_tok_s=f"{stats['perf/rollout_tok_s']:.0f}",
                            update_tok_s=f"{stats['perf/update_tok_s']:.0f}",
                            **({"peak_gb": f"{stats['perf/peak_mem_gb']:.1f}"}
                               if "perf/peak_mem_gb" in stats else {}))
            if step % a.save_every == 0 or step == a.steps or stop:
                checkpoint()
        if stop:
            print(f"interrupted: checkpoint saved at step {step}; --resume continues",
                  file=sys.stderr)
            return 130
        if a.eval_every and evals and step % a.eval_every == 0:
            log({"step": step, **evaluate_cli(model, tok, evals, a, step, gen, eos, vocab)})
    finally:
        signal.signal(signal.SIGINT, old_handler)
        bar.close()
        log_f.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
