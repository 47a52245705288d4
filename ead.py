"""Exploratory Annealed Decoding (EAD) for RL with verifiable rewards, in one file.

Read top to bottom. The sections follow the README's seven steps ("EAD in seven steps"), and
"eq. n" is the README's numbered equation n:
  1. sample with an annealed temperature   the schedule tau_t                      eq. 1-2
  2. record the behaviour policy           the KV-cache sampler keeps log mu(y_t)  eq. 3
  3. reward                                the caller's reward_fn (verify.reward)
  4. advantages per group                  (R - mean) / (std + eps)                eq. 4
  5. old log-probs                         the scorer: log pi(y_t) of given answers
  6. update                                the truncated-IS clipped token loss     eq. 5-7
  7. evaluate                              pass@k, worst@k, mean@n, maj@n          eq. 8
then rl_step, steps 1-6 in one call, and the machinery under them: the KV cache, gradient
clipping under FSDP, the step's log line.

The runners (train_tiny.py on a CPU, train_qwen.py on GPUs) import this module; it imports
nothing of theirs, and each function can be copied out on its own.
"""
from __future__ import annotations

import inspect
import math
import re
import time
from collections import Counter
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LogitsProcessor, StaticCache
from transformers.cache_utils import Cache, DynamicLayer


# === 1. Sample with an annealed temperature: the schedule (eq. 1-2) ======================
def ead_schedule(num_tokens: int, step: int = 0, *, tau_max: float = 1.2, tau_min: float = 0.1,
                 d0: float = 500.0, alpha: float = 100.0, d_max: float = 800000.0,
                 c: int = 10) -> torch.Tensor:
    """Temperature tau_t of answer tokens t = 0..num_tokens-1 at training step `step`. d is in
    TOKENS: the released code's exp(t / (20 * decay_freq)), decay_freq = 25 (+5 per step), is
    d0 = 500 and alpha = 100 here."""
    for rule, ok in {"num_tokens >= 0": num_tokens >= 0, "step >= 0": step >= 0, "c >= 0": c >= 0,
                     "tau_min > 0": tau_min > 0, "tau_min <= tau_max": tau_min <= tau_max,
                     "d0 > 0": d0 > 0, "alpha >= 0": alpha >= 0, "d_max > 0": d_max > 0}.items():
        if not ok:
            raise ValueError(f"the EAD schedule needs {rule} (d0, d_max in tokens); got tau_max="
                             f"{tau_max}, tau_min={tau_min}, d0={d0}, alpha={alpha}, d_max={d_max}"
                             f", c={c}, step={step}, num_tokens={num_tokens}")
    d_s = min(d0 + alpha * step, d_max)                     # eq. 2: d grows with the step
    t = torch.arange(num_tokens, dtype=torch.float64)
    tau = (1.0 + tau_max - torch.exp(t / d_s)).clamp(min=tau_min)  # eq. 1 (exp -> inf is fine)
    tau[:c] = 1.0                                            # eq. 1: template tokens at tau = 1
    return tau.float()


def decoding(name: str, num_tokens: int, step: int = 0, **ead_kwargs) -> torch.Tensor:
    """The one vocabulary of decodings: 'ead', 'tau=X' (fixed), 'greedy' (tau = 0: argmax)."""
    if name == "ead":
        return ead_schedule(num_tokens, step, **ead_kwargs)
    if name == "greedy":
        return torch.zeros(num_tokens)
    match = re.fullmatch(r"tau=(\d+(?:\.\d+)?)", name)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"unknown decoding {name!r}: use 'ead', 'tau=X' with X > 0, or 'greedy'")
    return torch.full((num_tokens,), float(match[1]))


# === 2. Record the behaviour policy: the sampler keeps log mu (eq. 3) ====================
class Rollout(NamedTuple):
    tokens: torch.Tensor   # (B, T) long, pad after EOS
    mask: torch.Tensor     # (B, T) bool, True on answer tokens (EOS included)
    logp_mu: torch.Tensor  # (B, T) float32, log mu(y_t): softmax(logits / tau_t), eq. 3
    logp_pi: torch.Tensor  # (B, T) float32, log pi(y_t): softmax(logits), same logits
    entropy: torch.Tensor  # (B, T) float32, entropy of pi (temperature 1) at each step


def left_pad(seqs: Sequence[Sequence[int]], pad_token_id: int, device=None):
    """Token lists -> (ids, attention_mask), both (B, L), padded on the left for decoding."""
    L = max(map(len, seqs))
    ids = torch.tensor([[pad_token_id] * (L - len(s)) + list(s) for s in seqs], device=device)
    am = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, am


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
           temperatures: torch.Tensor, *, eos_token_id, pad_token_id: int,
           generator: torch.Generator | None = None, vocab_size: int | None = None,
           cache: str = "growing", decode_step: Callable | None = None) -> Rollout:
    """Sample up to T answer tokens for a left-padded batch of prompts (B, L).

    Token t of row b comes from softmax(logits_t / temperatures[b, t]) (eq. 3; no top-k/top-p,
    which would change mu); temperature 0 is greedy, an exact argmax. `temperatures` is (T,),
    or (B, T) for one schedule per row. The loop stops once every row has emitted an EOS.
    `generator` (on the model's device) makes draws reproducible; `vocab_size` masks the
    padded vocabulary entries (ids >= vocab_size). `cache` is a kv_cache kind; with "static"
    every decode step has one shape, and `decode_step` (e.g. torch.compile(model)) can run
    those steps."""
    (B, L), device = input_ids.shape, input_ids.device
    temperatures = temperatures.to(device).float().expand(B, -1)     # (B, T)
    T = temperatures.shape[1]
    greedy = temperatures == 0                               # (B, T): tau = 0 is an argmax
    inv_tau = 1.0 / temperatures.masked_fill(greedy, 1.0)   # (B, T), one division per call
    any_greedy = bool(greedy.any())
    eos = torch.tensor(eos_token_id, device=device).view(-1)  # one id or several
    cache_kw = _cache_kwarg(model)
    static, cache = cache == "static", kv_cache(model, cache, L + T)
    # the mask of every step is a view of one (B, L + T) buffer: answer slots are switched
    # on as they are filled; a static cache sees all L + T slots, the others those so far
    full_mask = F.pad(attention_mask.long(), (0, T))
    position_ids = positions_from_mask(full_mask[:, :L])     # the scorer uses the same ids
    step_ids, forward = input_ids, model                     # prefill: the whole prompt
    done = torch.zeros(B, dtype=torch.bool, device=device)
    # inverse-CDF sampling: one uniform per row and step, all drawn at once (torch.multinomial
    # is ~8x slower on CPU); u in (0, 1] picks the first token whose cdf reaches u * total,
    # which always has probability > 0
    u = 1.0 - torch.rand(B, T, generator=generator, device=device)          # (B, T)
    tokens, ended, logp_mu, logp_pi, entropy = [], [], [], [], []
    for t in range(T):
        out = forward(input_ids=step_ids, position_ids=position_ids, use_cache=True,
                      attention_mask=full_mask if static else full_mask[:, :L + t],
                      logits_to_keep=1, **{cache_kw: cache})
        logits = out.logits[:, -1].float()                   # (B, V), never (B, L, V)
        if vocab_size is not None:     # Qwen pads its lm_head; a finite floor keeps 0 * log 0
            logits[:, vocab_size:] = -1e30                   # at 0 in the entropy below
        lp_pi = F.log_softmax(logits, dim=-1)                # (B, V) target policy, tau = 1
        lp_mu = F.log_softmax(logits * inv_tau[:, t, None], dim=-1)   # (B, V) behaviour, eq. 3
        cdf = lp_mu.exp().cumsum(-1)                         # (B, V)
        y = torch.searchsorted(cdf, u[:, t, None] * cdf[:, -1:]).squeeze(1)   # (B,)
        lp_mu_y = lp_mu.gather(1, y[:, None]).squeeze(1)
        if any_greedy:                                       # tau = 0: mu is a point mass
            y = torch.where(greedy[:, t], logits.argmax(-1), y)
            lp_mu_y = lp_mu_y.masked_fill(greedy[:, t], 0.0)
        y = torch.where(done, pad_token_id, y)               # ended rows only emit pad
        tokens.append(y)
        ended.append(done)
        logp_mu.append(lp_mu_y)
        logp_pi.append(lp_pi.gather(1, y[:, None]).squeeze(1))
        entropy.append((lp_pi.exp() * lp_pi).sum(-1).neg())  # -sum p log p of pi
        done = done | torch.isin(y, eos)
        if bool(done.all()) or t == T - 1:
            break
        full_mask[:, L + t] = 1                              # the slot y is written to
        step_ids = y[:, None]                                # (B, 1): one new token per step
        forward = model if decode_step is None else decode_step
        position_ids = position_ids[:, -1:] + 1
    if not tokens:                                           # zero temperatures: empty rollout
        e = torch.zeros(B, 0, device=device)
        return Rollout(e.long(), e.bool(), e, e.clone(), e.clone())
    m = ~torch.stack(ended, 1)                               # (B, T): up to each row's EOS
    zero = torch.zeros((), device=device)
    return Rollout(torch.stack(tokens, 1), m, *(torch.stack(x, 1).where(m, zero)
                                                for x in (logp_mu, logp_pi, entropy)))


class EADLogitsProcessor(LogitsProcessor):
    """The same schedule inside model.generate: divides the logits of answer token t by
    temperatures[t].

    Call generate with do_sample=True, temperature=1.0, top_k=0, top_p=1.0 (transformers
    otherwise applies top_k=50, and samples would not follow mu). `prompt_length` is the
    padded prompt width; past the end of `temperatures` the last value is kept. With
    output_scores=True, log_softmax(scores) is log mu exactly as `sample` records it."""

    def __init__(self, temperatures: torch.Tensor, prompt_length: int,
                 vocab_size: int | None = None):
        if len(temperatures) == 0 or bool((torch.as_tensor(temperatures) <= 0).any()):
            raise ValueError("temperatures must be > 0 (for greedy, call generate with "
                             "do_sample=False)")
        self.temperatures = torch.as_tensor(temperatures, dtype=torch.float32)
        self.prompt_length, self.vocab_size = prompt_length, vocab_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        t = min(input_ids.shape[1] - self.prompt_length, len(self.temperatures) - 1)
        scores = scores.float() / float(self.temperatures[t])
        if self.vocab_size is not None:
            scores[:, self.vocab_size:] = float("-inf")
        return scores


# === 4. Advantages per group (eq. 4); step 3, the reward, is the caller's reward_fn ======
def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """(R - group mean) / (group std + eps) for consecutive groups of `group_size` answers."""
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)                 # (G, n)
    std = r.std(-1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
    adv = (r - r.mean(-1, keepdim=True)) / (std + eps)      # eq. 4 (unbiased std, as verl)
    flat = r.amax(-1, keepdim=True) == r.amin(-1, keepdim=True)
    return adv.masked_fill(flat, 0.0).view(-1)               # equal rewards: exactly no signal


# === 5. Old log-probs: the scorer, log pi(y_t) of given answers ==========================
def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor,
                temperatures: torch.Tensor | None = None,
                vocab_size: int | None = None) -> torch.Tensor:
    """log_softmax(logits / tau)[y] in fp32 (eq. 3 with tau_t; log pi at tau = 1): the plain
    reading of the scorer. logits (..., V), tokens (...), temperatures (> 0) broadcast against
    tokens, e.g. (T,) for (B, T). It holds (..., V) fp32 log-probs: 0.6 MB per answer token at
    Qwen's 151,936 tokens, which token_logprobs below never holds for a whole answer."""
    z = logits.float()                                       # (..., V)
    if vocab_size is not None:                               # padded vocabulary entries
        z = z.masked_fill(torch.arange(z.shape[-1], device=z.device) >= vocab_size, -math.inf)
    if temperatures is not None:
        z = z / temperatures.to(z.device)[..., None]
    return F.log_softmax(z, -1).gather(-1, tokens[..., None]).squeeze(-1)


def _slice_logits(hidden, head, inv_tau, vocab_size, at: slice) -> torch.Tensor:
    """Positions `at` of hidden (b, T, H) -> (b, w, V) fp32 logits / tau_t, padded vocabulary
    entries at -inf: logprobs_of's z, for w positions."""
    logits = F.linear(hidden[:, at], head.weight, head.bias).float()
    if vocab_size is not None:
        logits[..., vocab_size:] = float("-inf")
    return logits if inv_tau is None else logits.mul_(inv_tau[at][None, :, None])


class _ChunkedLogprob(torch.autograd.Function):
    """logprobs_of(hidden @ W.T + bias, tokens, tau) of one micro-batch, `width` positions at
    a time: one (b, width, V) slice of logits is alive, never (b, T, V). The backward recomputes
    each slice's logits instead of saving them, turns them in place into the gradient
    d logp / d logits = onehot(y) - softmax, and adds every slice's share of the vocabulary
    matrix's gradient into ONE (V, H) buffer (a gradient per slice would leave autograd two
    (V, H) tensors to sum). W and bias are inputs so that autograd, and DDP/FSDP with it, route
    their gradients to the parameters; both passes read them from `head`. With a list `tied`
    (W is also the input embedding, looked up by _TiedLookup) the buffer goes into that list
    instead, for the lookup's backward to finish and hand to autograd."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, head, tokens, inv_tau, vocab_size, width, tied):
        logp = hidden.new_empty(tokens.shape, dtype=torch.float32)             # (b, T)
        lse = torch.empty_like(logp)                                           # (b, T)
        for s in range(0, tokens.shape[1], width):
            at = slice(s, s + width)
            z = _slice_logits(hidden, head, inv_tau, vocab_size, at)          # (b, w, V)
            lse[:, at] = torch.logsumexp(z, -1)
            logp[:, at] = z.gather(-1, tokens[:, at, None]).squeeze(-1) - lse[:, at]  # eq. 3
            del z                                            # before the next slice is built
        ctx.save_for_backward(hidden, tokens, inv_tau, lse)
        ctx.head, ctx.vocab_size, ctx.width, ctx.tied = head, vocab_size, width, tied
        return logp

    @staticmethod
    def backward(ctx, grad):                                                   # (b, T)
        hidden, tokens, inv_tau, lse = ctx.saved_tensors
        head, (need_h, need_w, need_b) = ctx.head, ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(hidden) if need_h else None                  # (b, T, H)
        grad_w = torch.zeros_like(head.weight) if need_w else None             # (V, H)
        grad_b = torch.zeros_like(head.bias) if need_b else None               # (V,)
        for s in range(0, tokens.shape[1], ctx.width):
            at, gr = slice(s, s + ctx.width), grad[:, s:s + ctx.width, None]   # (b, w, 1)
            g = _slice_logits(hidden, head, inv_tau, ctx.vocab_size, at)
            g = g.sub_(lse[:, at, None]).exp_().mul_(-gr)                     # -grad * softmax
            g.scatter_add_(-1, tokens[:, at, None], gr)                       # +grad at y
            if inv_tau is not None:
                g.mul_(inv_tau[at][None, :, None])                             # through z / tau
            g = g.to(hidden.dtype)                                             # (b, w, V)
            if need_h:
                grad_h[:, at] = g @ head.weight
            if need_w:                                                         # in place
                grad_w.addmm_(g.flatten(0, 1).T, hidden[:, at].flatten(0, 1))
            if need_b:
                grad_b += g.sum((0, 1))
            del g                                            # before the next slice is built
        if ctx.tied is not None and grad_w is not None:
            ctx.tied.append(grad_w)                          # _TiedLookup.backward takes it
            grad_w = None
        return grad_h, grad_w, grad_b, None, None, None, None, None, None


class _TiedLookup(torch.autograd.Function):
    """The input embedding's lookup W[ids] (b, L, H) when W is also the head (a tied
    vocabulary). Its backward runs after the scorer's (the body lies between them), adds the
    looked-up rows' gradients into the (V, H) buffer the scorer left in `tied`, and gives
    autograd that one buffer. nn.Embedding's own backward would build a second dense (V, H)
    gradient while autograd still holds the head's, then add the two. Each row's gradients
    are summed in token order (in fp32, as nn.Embedding does on GPU), padding_idx skipped, then
    added to the head's: nn.Embedding's arithmetic, so in fp32 on CPU the gradient is the same
    to the last bit."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx, tied):
        ctx.save_for_backward(ids)
        ctx.weight, ctx.padding_idx, ctx.tied = weight, padding_idx, tied
        return F.embedding(ids, weight)                                       # (b, L, H)

    @staticmethod
    def backward(ctx, grad):                                                  # (b, L, H)
        ids, = ctx.saved_tensors
        # the scorer's buffer (none only if the embedding ran twice in one forward)
        grad_w = ctx.tied.pop() if ctx.tied else torch.zeros_like(ctx.weight)  # (V, H)
        ids, grad = ids.flatten(), grad.flatten(0, -2)                        # (n,), (n, H)
        if ctx.padding_idx is not None:
            keep = ids != ctx.padding_idx
            ids, grad = ids[keep], grad[keep]
        rows, which = ids.unique(return_inverse=True)                         # (u,), (n,)
        sums = grad.new_zeros((len(rows), grad.shape[1]), dtype=torch.float32)
        grad_w.index_add_(0, rows, sums.index_add_(0, which, grad.float()).to(grad_w.dtype))
        return None, grad_w, None, None


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   tokens: torch.Tensor, mask: torch.Tensor, *, micro_batch: int = 8,
                   temperatures: torch.Tensor | None = None, vocab_size: int | None = None,
                   with_entropy: bool = False, chunk_tokens: int = 256):
    """logprobs_of(the model's logits, tokens, temperatures) at `tokens` (B, T), in fp32,
    micro_batch rows at a time, with its gradient.

    The body runs once per micro-batch; the vocabulary projection runs on slices of about
    `chunk_tokens` (row, position) pairs, so neither pass holds the (rows, T, V) logits (0.6 MB
    per answer token in fp32 at Qwen's 151,936 tokens). Position ids come from the attention
    mask as in `sample`. With with_entropy, also the (detached) entropy of each distribution.
    A trainable vocabulary matrix tied to the input embedding gets one (V, H) gradient buffer
    for both ends when the call runs one forward (B <= micro_batch, as in `update` up to 8
    rows), see _TiedLookup."""
    B, T = tokens.shape
    if T == 0:                                               # nothing to score
        return (tokens.float(), tokens.float()) if with_entropy else tokens.float()
    base = getattr(model, "module", model)                   # (DDP wraps the model)
    head, states, tied = base.get_output_embeddings(), [], []
    # the body's last hidden states, taken on their way to the head: the model itself runs
    # (so wrappers such as FSDP see their forward) but projects only its last position
    hook = base.get_decoder().register_forward_hook(lambda m, args, out: states.append(out[0]))

    # one forward only: with several in one backward autograd holds a running sum plus a new
    # (V, H) gradient anyway, and the lookup would only regroup the sums. Prepended, so that
    # other hooks on the embedding see its output.
    def lookup(m, args, out):
        if (B <= micro_batch and torch.is_grad_enabled() and m.weight.requires_grad
                and m.weight is head.weight and type(m).forward is torch.nn.Embedding.forward
                and m.max_norm is None and not m.scale_grad_by_freq and not m.sparse):
            pad = None if m.padding_idx is None else m.padding_idx % m.num_embeddings
            tied.append([])
            return _TiedLookup.apply(args[0], m.weight, pad, tied[-1])
    embed_hook = base.get_input_embeddings().register_forward_hook(lookup, prepend=True)
    inv_tau = None if temperatures is None else 1.0 / temperatures[:T].to(tokens.device)
    logps, ents = [], []
    try:
        for micro in torch.arange(B, device=tokens.device).split(micro_batch):
            ids = torch.cat([input_ids[micro], tokens[micro]], 1)                 # (b, L + T)
            am = torch.cat([attention_mask[micro].long(), mask[micro].long()], 1)
            model(input_ids=ids, attention_mask=am, position_ids=positions_from_mask(am),
                  use_cache=False, logits_to_keep=1)
            hidden = states.pop()[:, -T - 1:-1]              # (b, T, H): states predicting y_t
            width = max(1, chunk_tokens // len(micro))       # positions per slice
            logps.append(_ChunkedLogprob.apply(hidden, head.weight, head.bias, head,
                                               tokens[micro], inv_tau, vocab_size, width,
                                               tied.pop() if tied else None))      # (b, T)
            if with_entropy:                                 # a diagnostic: its own pass
                with torch.no_grad():
                    ents.append(torch.cat([torch.special.entr(F.softmax(_slice_logits(
                        hidden, head, inv_tau, vocab_size, slice(s, s + width)), -1)).sum(-1)
                        for s in range(0, T, width)], 1))
    finally:                                                 # an error leaves no hook behind
        hook.remove()
        embed_hook.remove()
    logp = torch.cat(logps).where(mask, torch.zeros((), device=tokens.device))
    return (logp, torch.cat(ents)) if with_entropy else logp


@torch.no_grad()
def old_logprobs(policy, input_ids, attention_mask, roll: Rollout, active: torch.Tensor, *,
                 micro_batch: int = 8, vocab_size: int | None = None, chunk_tokens: int = 256,
                 ref_model=None):
    """log pi_old (eq. 5) and, with a reference model, log pi_ref (eq. 7), no grad. `active`
    (bool, (N,)) get a fresh forward with the update's numerics (in bf16 the sampler's cached
    logits differ by ~1e-2); the others keep the sampler's tau = 1 log-probs, never used."""
    kw = dict(micro_batch=micro_batch, vocab_size=vocab_size, chunk_tokens=chunk_tokens)
    logp_old, logp_ref = roll.logp_pi.clone(), None
    if active.any():
        logp_old[active] = token_logprobs(policy, input_ids[active], attention_mask[active],
                                          roll.tokens[active], roll.mask[active], **kw)
    if ref_model is not None:
        logp_ref = token_logprobs(ref_model, input_ids, attention_mask, roll.tokens, roll.mask, **kw)
    return logp_old, logp_ref


# === 6. Update: the clipped, importance-corrected token loss (eq. 5-7) ===================
def policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, logp_mu: torch.Tensor,
                advantages: torch.Tensor, mask: torch.Tensor, *, clip_low: float = 0.2,
                clip_high: float = 0.28, tis_cap: float | None = 2.0,
                dual_clip: float | None = None, kl_coef: float = 0.0,
                logp_ref: torch.Tensor | None = None, normaliser: float | None = None,
                tis_level: str = "token"):
    """Token-level clipped policy loss with truncated importance sampling (eq. 5-7).

    logp, logp_old, logp_mu, mask: (B, T); advantages: (B,). `normaliser` is the token-mean
    normaliser (the mask sum of the whole mini-batch when micro-batches accumulate).
    tis_level "token" (the released code) or "sequence" (the paper's formula, eq. 6').
    Returns (loss, stats) with stats as plain floats."""
    if tis_level not in ("token", "sequence"):
        raise ValueError(f"tis_level must be 'token' or 'sequence', got {tis_level!r}")
    m = mask.float()
    normaliser = m.sum().clamp(min=1.0) if normaliser is None else float(normaliser)
    A = advantages.float()[:, None]                          # (B, 1) broadcast to every token
    ratio = torch.exp(logp - logp_old)                       # eq. 5: r_t
    pg1 = -A * ratio
    pg2 = -A * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg = torch.maximum(pg1, pg2)                             # eq. 5: l_t
    if dual_clip is not None:                                # eq. 5, optional: A < 0 only
        pg = torch.where(A < 0, torch.minimum(pg, -A * dual_clip), pg)
    log_w = ((logp_old - logp_mu) * m).detach()              # (B, T) log pi_old / mu, a constant
    if tis_level == "sequence":                              # eq. 6': one weight per answer
        log_w = log_w.sum(-1, keepdim=True).expand_as(log_w)
    w = torch.exp(log_w).clamp(max=tis_cap) if tis_cap is not None else torch.ones_like(pg)  # eq. 6
    per_token = w * pg
    kl = torch.zeros_like(pg)
    if kl_coef:
        if logp_ref is None:
            raise ValueError("kl_coef > 0 needs logp_ref")
        delta = logp_ref - logp
        kl = torch.exp(delta) - delta - 1.0                  # eq. 7: k3 estimator
        per_token = per_token + kl_coef * kl
    loss = (per_token * m).sum() / normaliser                # eq. 7: token mean
    with torch.no_grad():                                    # token means of the step's health
        avg = lambda x: float((x * m).sum() / m.sum().clamp(min=1.0))   # noqa: E731
        clipped = (pg2 > pg1).float()
        stats = {"clip_frac_low": avg(clipped * (ratio < 1.0)),
                 "clip_frac_high": avg(clipped * (ratio > 1.0)),
                 "tis_trunc_frac": avg(torch.exp(log_w) > tis_cap) if tis_cap is not None else 0.0,
                 "tis_weight_mean": avg(w), "mu_gap": avg((logp_old - logp_mu).abs()),
                 "ratio_mean": avg(ratio), "kl": avg(kl), "tokens": float(m.sum())}
    return loss, stats


def update(policy, optimizer, input_ids, attention_mask, roll: Rollout, advantages,
           logp_old, *, active: torch.Tensor, logp_ref=None, num_minibatches: int = 4,
           micro_batch: int = 8, max_grad_norm: float = 1.0, vocab_size: int | None = None,
           chunk_tokens: int = 256, mean_over_ranks: Callable | None = None, **loss_kwargs) -> dict:
    """num_minibatches optimiser steps over N answers (eq. 5-7), each accumulated over
    micro-batches of the `active` answers (bool, (N,): those with signal; the others have
    zero gradient), with the token mean over the whole mini-batch, and the global gradient
    norm clipped to max_grad_norm. Data parallel: `mean_over_ranks` averages a count over
    ranks; DDP/FSDP average gradients, so normalising by the mean count is the global token
    mean (ranks then score every row, to run the same forwards)."""
    N = roll.tokens.shape[0]
    if N % num_minibatches:
        raise ValueError(f"{N} answers do not split into {num_minibatches} mini-batches")
    avg = mean_over_ranks or (lambda x: x)
    sums, grad_norms = Counter(), []
    for mini in torch.arange(N, device=roll.tokens.device).split(N // num_minibatches):  # (N/M,)
        normaliser = max(float(avg(roll.mask[mini].sum().float())), 1.0)  # eq. 7: the mini-batch
        if float(avg(active[mini].sum().float())) == 0:
            continue                                          # no signal on any rank: no step
        scored = mini if mean_over_ranks else mini[active[mini]]   # ranks run the same forwards
        for micro in scored.split(micro_batch):              # (b,) one forward/backward
            T = int(roll.mask[micro].sum(1).max())           # trim this micro-batch's padding
            logp = token_logprobs(policy, input_ids[micro], attention_mask[micro],
                                  roll.tokens[micro, :T], roll.mask[micro, :T],
                                  vocab_size=vocab_size, chunk_tokens=chunk_tokens)  # (b, T)
            loss, st = policy_loss(logp, logp_old[micro, :T], roll.logp_mu[micro, :T],
                                   advantages[micro], roll.mask[micro, :T],
                                   logp_ref=None if logp_ref is None else logp_ref[micro, :T],
                                   normaliser=normaliser, **loss_kwargs)
            loss.backward()
            sums.update({k: v * st["tokens"] for k, v in st.items() if k != "tokens"})
            sums["tokens"] += st["tokens"]
            sums["loss"] += float(loss.detach())
        # listed after the backward: FSDP swaps sharded and gathered parameters in and out
        params = [p for p in policy.parameters() if p.requires_grad]
        grad_norms.append(clip_grad_norm(params, max_grad_norm))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)                # no gradient outlives its step
    sums["updates"], sums["grad_norm_sum"] = len(grad_norms), sum(grad_norms)
    return sums


# === 7. Evaluate (eq. 8) =================================================================
def worst_at_k(n: int, n_correct: int, k: int) -> float:
    """Unbiased worst@k: the chance that k of the n samples, drawn together, are all correct:
    C(n_correct, k) / C(n, k), as a product (no huge binomials)."""
    if not 1 <= k <= n or not 0 <= n_correct <= n:
        raise ValueError(f"need 1 <= k <= n and 0 <= n_correct <= n, got n={n} k={k} "
                         f"n_correct={n_correct}")
    return math.prod((n_correct - i) / (n - i) for i in range(k)) if n_correct >= k else 0.0


def pass_at_k(n: int, n_correct: int, k: int) -> float:
    """Unbiased pass@k: 1 - C(n - n_correct, k) / C(n, k): not all k drawn samples are wrong."""
    if not 1 <= k <= n or not 0 <= n_correct <= n:     # checked here: the error names n_correct
        raise ValueError(f"need 1 <= k <= n and 0 <= n_correct <= n, got n={n} k={k} "
                         f"n_correct={n_correct}")
    return 1.0 - worst_at_k(n, n - n_correct, k)


def maj_at_k(answers: Sequence, correct: Sequence[bool]) -> float:
    """1.0 if the most frequent non-empty answer (ties: the earliest) is correct, else 0.0."""
    votes = Counter(a for a in answers if a is not None and a != "")
    top = max(votes.values(), default=0)
    winner = next((i for i, a in enumerate(answers) if top and votes.get(a) == top), None)
    return 0.0 if winner is None else float(correct[winner])


def per_problem_metrics(correct: Sequence[Sequence[bool]], ks: Sequence[int] = (),
                        votes: Sequence[Sequence] | None = None) -> dict[str, list[float]]:
    """Each problem's mean@n, pass@k, worst@k (k <= n) and maj@n from its n verdicts (eq. 8):
    lists, to average, sum over ranks or bootstrap. `votes`: one answer key per sample
    (equivalent answers share one) for maj@n. With n = 1 (greedy) only "acc"."""
    n = len(correct[0])
    if any(len(verdicts) != n for verdicts in correct):
        raise ValueError("every problem needs the same number of samples")
    if n == 1:
        return {"acc": [float(verdicts[0]) for verdicts in correct]}
    hits = [sum(map(bool, verdicts)) for verdicts in correct]
    out = {f"mean@{n}": [h / n for h in hits]}
    for k in (k for k in ks if k <= n):
        out[f"pass@{k}"] = [pass_at_k(n, h, k) for h in hits]
        out[f"worst@{k}"] = [worst_at_k(n, h, k) for h in hits]
    if votes is not None:
        out[f"maj@{n}"] = [maj_at_k(keys, verdicts) for keys, verdicts in zip(votes, correct)]
    return out


# === One RL step: steps 1-6 in one call ==================================================
def rl_step(policy, optimizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
            reward_fn: Callable[[Rollout], torch.Tensor], temperatures: torch.Tensor, *,
            group_size: int, eos_token_id, pad_token_id: int, generator=None,
            vocab_size: int | None = None, num_minibatches: int = 4, micro_batch: int = 8,
            max_grad_norm: float = 1.0, ref_model=None, recompute_old: bool = True,
            chunk_tokens: int = 256, mean_over_ranks: Callable | None = None, sample_fn=sample,
            **loss_kwargs):
    """One step of TIS-DAPO (GRPO with kl_coef > 0) on P prompts (P, L): each is answered
    group_size times by the sampler (mu); reward_fn(rollout) -> (P * group_size,) rewards.
    `loss_kwargs` go to policy_loss (clip_low, clip_high, tis_cap, dual_clip, kl_coef,
    tis_level); `sample_fn` stands in for `sample` (e.g. to gather sharded weights first);
    `mean_over_ranks` is update's data-parallel hook. Returns (stats, rollout, rewards)."""
    ids = input_ids.repeat_interleave(group_size, 0)          # (N, L): rows of a group adjacent
    am = attention_mask.repeat_interleave(group_size, 0)
    kl = bool(loss_kwargs.get("kl_coef"))
    was_training = policy.training
    policy.eval()                                             # KV cache on, no checkpointing
    t0 = time.perf_counter()
    roll = sample_fn(policy, ids, am, temperatures, eos_token_id=eos_token_id,       # 1-2.
                     pad_token_id=pad_token_id, generator=generator, vocab_size=vocab_size)
    t_rollout = time.perf_counter() - t0
    rewards = reward_fn(roll).float().to(ids.device)                                   # 3.
    t0 = time.perf_counter()
    adv = group_advantages(rewards, group_size)                                        # 4.
    # an answer with A = 0 and no KL term has zero gradient: it is never scored nor updated,
    # but its tokens still count in the token mean
    active = (adv != 0) | kl                                                           # (N,)
    lockstep = active | (mean_over_ranks is not None)        # data parallel: score every row
    kw = dict(micro_batch=micro_batch, vocab_size=vocab_size, chunk_tokens=chunk_tokens)
    logp_old, logp_ref = old_logprobs(policy, ids, am, roll, lockstep & recompute_old,  # 5.
                                      ref_model=ref_model if kl else None, **kw)
    policy.train()                                            # checkpointing/dropout as set
    sums = update(policy, optimizer, ids, am, roll, adv, logp_old, active=active,     # 6.
                  logp_ref=logp_ref, num_minibatches=num_minibatches,
                  max_grad_norm=max_grad_norm, mean_over_ranks=mean_over_ranks, **kw,
                  **loss_kwargs)
    policy.train(was_training)
    stats = step_stats(roll, rewards, temperatures, group_size, sums,
                       t_rollout, time.perf_counter() - t0)
    return stats, roll, rewards


# === Machinery: the KV cache, gradient clipping under FSDP, the step's log line ==========
class _GrowingLayer(DynamicLayer):
    """One layer's KV cache, allocated once for all positions, that hands attention only the
    filled prefix: no copy of the whole cache per token (DynamicCache concatenates), and no
    attention over empty slots (StaticCache's fixed shape)."""

    def __init__(self, max_len: int):
        super().__init__()
        self.max_len, self.filled = max_len, 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:                          # (B, heads, max_len, head_dim)
            self.is_initialized, self.device = True, key_states.device
            self.k_buf, self.v_buf = (x.new_empty(*x.shape[:2], self.max_len, x.shape[-1])
                                      for x in (key_states, value_states))
        start, self.filled = self.filled, self.filled + key_states.shape[-2]
        self.k_buf[:, :, start:self.filled] = key_states
        self.v_buf[:, :, start:self.filled] = value_states
        self.keys, self.values = self.k_buf[:, :, :self.filled], self.v_buf[:, :, :self.filled]
        return self.keys, self.values


def kv_cache(model, kind: str, max_len: int):
    """'growing' (preallocated, attention over what is filled), 'static' (one shape for every
    decode step: what CUDA graphs need) or 'dynamic' (transformers' default: it concatenates)."""
    cfg = model.config.get_text_config()
    full = all(t == "full_attention" for t in getattr(cfg, "layer_types", None) or ["full_attention"])
    if kind == "growing" and full:                           # sliding windows: the default
        return Cache(layers=[_GrowingLayer(max_len) for _ in range(cfg.num_hidden_layers)])
    if kind == "static":
        return StaticCache(config=model.config, max_cache_len=max_len)
    if kind not in ("growing", "dynamic"):
        raise ValueError(f"unknown KV cache {kind!r}: use growing, static or dynamic")
    return DynamicCache(config=model.config)


def _cache_kwarg(model) -> str:
    # transformers renamed forward(past_key_values=) to forward(cache=) in 5.2x
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale the gradients so that their global L2 norm (all of them as one vector) is at most
    max_norm; returns the norm before clipping, computed in fp32 even for bf16 gradients."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads]))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm   # sharded (FSDP2)
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(norm)


def step_stats(roll: Rollout, rewards, temperatures, group_size: int, sums: dict,
               t_rollout: float, t_update: float) -> dict:
    """The step's log line; the same keys every step (None where nothing was measured)."""
    n_up, tok, answer_tokens = sums["updates"], sums.get("tokens", 0.0), float(roll.mask.sum())
    temperatures = temperatures[..., :max(roll.tokens.shape[1], 1)]   # the steps taken
    stats = {f"loss/{k}": sums[k] / tok if tok else None for k in (
        "clip_frac_low", "clip_frac_high", "tis_trunc_frac", "tis_weight_mean", "mu_gap",
        "ratio_mean", "kl")}
    stats.update({
        "loss/pg_loss": sums["loss"] / n_up if n_up else None,
        "loss/grad_norm": sums["grad_norm_sum"] / n_up if n_up else None,
        "loss/updates": n_up,
        "loss/tokens": tok,                 # what the loss/ token means above are over
        "rollout/reward": float(rewards.mean()),
        "rollout/answer_len": answer_tokens / roll.tokens.shape[0],
        "rollout/tokens": int(answer_tokens),
        "rollout/zero_var_groups": float((rewards.view(-1, group_size).std(-1) == 0).float()
                                         .mean()) if group_size > 1 else 1.0,
        "rollout/tau_max": float(temperatures.max()),
        "rollout/tau_min": float(temperatures.min()),
        "perf/rollout_tok_s": answer_tokens / max(t_rollout, 1e-9),
        "perf/update_tok_s": tok / t_update if n_up else None,   # tokens actually updated
    })
    # mean entropy of pi by answer position: where does the policy still explore?
    for lo, hi in zip((0, 4, 16, 64, 256, 1024), (4, 16, 64, 256, 1024, None)):
        m = roll.mask[:, lo:hi].float()
        stats[f"entropy/{lo}-{hi - 1}" if hi else f"entropy/{lo}+"] = (
            float((roll.entropy[:, lo:hi] * m).sum() / m.sum()) if m.sum() > 0 else None)
    return stats
