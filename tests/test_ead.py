"""ead.py against independent computations: the formula, full forward passes, brute force."""
import copy
import itertools
import math
import re
import statistics
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from transformers import LogitsProcessorList

import ead

V_REAL = 40          # real vocabulary; rows 40..47 of the lm_head are padding
EOS = [3, 5, 7, 11]  # several EOS ids so that rows end at different steps
PAD = 0


# ----------------------------------------------------------------------------- schedule

def test_schedule_matches_formula():
    tau = ead.ead_schedule(300, step=3, tau_max=1.3, tau_min=0.2, d0=50, alpha=10, c=4)
    d = 50 + 10 * 3
    for t in range(300):
        want = 1.0 if t < 4 else max(1 + 1.3 - math.exp(t / d), 0.2)
        assert tau[t].item() == pytest.approx(want, abs=1e-6)
    assert tau.dtype == torch.float32 and tau.shape == (300,)


def test_schedule_defaults_cross_points():
    tau = ead.ead_schedule(4000)
    assert torch.all(tau[:10] == 1.0)
    first_below_1 = int((tau[10:] < 1.0).nonzero()[0]) + 10
    first_floor = int((tau <= 0.1 + 1e-7).nonzero()[0])
    assert first_below_1 == 92          # 500 * ln(1.2) = 91.16
    assert first_floor == 371           # 500 * ln(2.1) = 370.97
    assert tau[100].item() == pytest.approx(0.9795, abs=1e-3)
    tau100 = ead.ead_schedule(4000, step=100)
    assert int((tau100[10:] < 1.0).nonzero()[0]) + 10 == 1915   # 10500 * ln(1.2) = 1914.4
    # d is capped at d_max
    assert torch.equal(ead.ead_schedule(50, step=10**9, d_max=700),
                       ead.ead_schedule(50, step=0, d0=700, alpha=0))


def test_decoding_names():
    assert torch.equal(ead.decoding("ead", 40, 3, d0=20, c=2),
                       ead.ead_schedule(40, 3, d0=20, c=2))
    assert torch.equal(ead.decoding("tau=0.6", 5), torch.full((5,), 0.6))
    assert torch.equal(ead.decoding("greedy", 5), torch.zeros(5))
    for bad in ("hot", "tau=0", "tau=-1", "tau=", "Greedy"):
        with pytest.raises(ValueError, match="unknown decoding"):
            ead.decoding(bad, 5)


def test_schedule_start_is_tau_max_when_c_is_zero():
    assert ead.ead_schedule(3, c=0, tau_max=1.5)[0].item() == pytest.approx(1.5)


@pytest.mark.parametrize("kwargs,name", [
    (dict(tau_min=1.5, tau_max=1.2), "tau_min <= tau_max"), (dict(tau_min=0.0), "tau_min > 0"),
    (dict(d0=0.0), "d0 > 0"), (dict(num_tokens=-1), "num_tokens >= 0"), (dict(step=-2), "step >= 0"),
    (dict(c=-1), "c >= 0"), (dict(alpha=-1.0), "alpha >= 0"), (dict(d_max=0.0), "d_max > 0")])
def test_schedule_rejects_bad_arguments(kwargs, name):
    kwargs.setdefault("num_tokens", 5)
    with pytest.raises(ValueError, match="needs " + re.escape(name)):
        ead.ead_schedule(**kwargs)


# ----------------------------------------------------------------------------- sampler

def left_pad(prompts):
    return ead.left_pad(prompts, PAD)


def reference_logp(model, prompt, answer, taus):
    """Independent: one unpadded, uncached forward of prompt + answer for a single row."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()   # (T, V)
    logits[:, V_REAL:] = float("-inf")
    y = torch.tensor(answer)[:, None]
    mu = F.log_softmax(logits / taus[:len(answer), None], -1).gather(1, y).squeeze(1)
    pi = F.log_softmax(logits, -1).gather(1, y).squeeze(1)
    return mu, pi


PROMPTS = [[1, 20, 21, 22], [1, 30, 31, 32, 33, 34, 35, 36], [1, 25], [1, 12, 13, 14, 15, 16],
           [1, 17, 18, 19], [1, 23, 24, 26, 27, 28, 29, 30, 31, 32, 33]]


@pytest.mark.parametrize("which", ["tiny_model", "tiny_gpt2"])
def test_sampler_logprobs_match_full_forward(which, request):
    tiny_model = request.getfixturevalue(which)
    ids, am = left_pad(PROMPTS * 3)
    taus = ead.ead_schedule(16, tau_max=1.5, tau_min=0.3, d0=6, alpha=0, c=2)
    g = torch.Generator().manual_seed(1)
    roll = ead.sample(tiny_model, ids, am, taus, eos_token_id=EOS, pad_token_id=PAD,
                      generator=g, vocab_size=V_REAL)
    B, T = roll.tokens.shape
    assert roll.mask.dtype == torch.bool and roll.logp_mu.dtype == torch.float32
    lengths = roll.mask.sum(1)
    assert (lengths < T).any(), "some rows should end early with this seed"
    assert (roll.tokens < V_REAL).all(), "padded vocabulary rows must never be sampled"
    for b, prompt in enumerate(PROMPTS * 3):
        n = int(lengths[b])
        answer = roll.tokens[b, :n].tolist()
        # the mask is a prefix, it ends at the first EOS, and pad follows it
        assert roll.mask[b, :n].all() and not roll.mask[b, n:].any()
        if n < T:
            assert answer[-1] in EOS and all(a not in EOS for a in answer[:-1])
            assert (roll.tokens[b, n:] == PAD).all()
        mu, pi = reference_logp(tiny_model, prompt, answer, taus)
        torch.testing.assert_close(roll.logp_mu[b, :n], mu, atol=1e-4, rtol=0)
        torch.testing.assert_close(roll.logp_pi[b, :n], pi, atol=1e-4, rtol=0)
        assert (roll.logp_mu[b, n:] == 0).all()


def test_sampler_stops_when_every_row_ended(tiny_model):
    ids, am = left_pad(PROMPTS)
    roll = ead.sample(tiny_model, ids, am, torch.full((400,), 1.0), eos_token_id=EOS,
                      pad_token_id=PAD, generator=torch.Generator().manual_seed(0),
                      vocab_size=V_REAL)
    assert roll.tokens.shape[1] < 400
    assert roll.tokens.shape[1] == int(roll.mask.sum(1).max())


def test_sampler_is_deterministic_given_generator(tiny_model):
    ids, am = left_pad(PROMPTS)
    taus = torch.full((10,), 1.1)
    kw = dict(eos_token_id=3, pad_token_id=PAD, vocab_size=V_REAL)
    a = ead.sample(tiny_model, ids, am, taus, generator=torch.Generator().manual_seed(5), **kw)
    b = ead.sample(tiny_model, ids, am, taus, generator=torch.Generator().manual_seed(5), **kw)
    c = ead.sample(tiny_model, ids, am, taus, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logp_mu, b.logp_mu)
    assert not torch.equal(a.tokens, c.tokens)


def chi2_critical(df, z=3.09):
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("tau", [0.7, 1.6])
def test_first_token_frequencies_follow_softmax_over_tau(tiny_model, tau):
    n = 6000
    ids, am = left_pad([[1, 20, 21]] * n)
    roll = ead.sample(tiny_model, ids, am, torch.full((1,), tau), eos_token_id=EOS,
                      pad_token_id=PAD, generator=torch.Generator().manual_seed(2),
                      vocab_size=V_REAL)
    with torch.no_grad():
        logits = tiny_model(torch.tensor([[1, 20, 21]])).logits[0, -1, :V_REAL]
    p = F.softmax(logits / tau, -1).double()
    counts = torch.bincount(roll.tokens[:, 0], minlength=V_REAL).double()[:V_REAL]
    expected = p * n
    big = expected >= 5                                  # merge rare bins into one
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp_ = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp_ > 0
    stat = float(((obs[keep] - exp_[keep]) ** 2 / exp_[keep]).sum())
    assert stat < chi2_critical(int(keep.sum()) - 1), stat
    # and the test has power: the same counts are rejected against the T = 1 distribution
    if tau != 1.0:
        p1 = F.softmax(logits, -1).double() * n
        stat1 = float(((counts - p1) ** 2 / p1.clamp(min=1e-9)).sum())
        assert stat1 > chi2_critical(V_REAL - 1)


def test_logits_processor_in_generate_matches_reference(tiny_model):
    ids, am = left_pad(PROMPTS)
    taus = ead.ead_schedule(12, tau_max=1.4, tau_min=0.4, d0=5, alpha=0, c=1)
    proc = ead.EADLogitsProcessor(taus, prompt_length=ids.shape[1], vocab_size=V_REAL)
    torch.manual_seed(3)
    out = tiny_model.generate(input_ids=ids, attention_mask=am, do_sample=True,
                              temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=12,
                              logits_processor=LogitsProcessorList([proc]),
                              eos_token_id=EOS, pad_token_id=PAD, output_scores=True,
                              return_dict_in_generate=True)
    gen = out.sequences[:, ids.shape[1]:]
    scores = torch.stack(out.scores, 1)                       # (B, T, V) = logits / tau_t
    lp_gen = F.log_softmax(scores.float(), -1).gather(-1, gen[..., None]).squeeze(-1)
    # the sampler's log mu for the same tokens: teacher-force them through the scorer
    mask = torch.ones_like(gen, dtype=torch.bool)
    for b in range(len(PROMPTS)):
        hit = [i for i, t in enumerate(gen[b].tolist()) if t in EOS]
        if hit:
            mask[b, hit[0] + 1:] = False
    lp_scorer = ead.token_logprobs(tiny_model, ids, am, gen, mask, temperatures=taus,
                                   vocab_size=V_REAL)
    for b, prompt in enumerate(PROMPTS):
        n = int(mask[b].sum())
        mu, _ = reference_logp(tiny_model, prompt, gen[b, :n].tolist(), taus)
        torch.testing.assert_close(lp_gen[b, :n], mu, atol=1e-4, rtol=0)
        torch.testing.assert_close(lp_scorer[b, :n], mu, atol=1e-4, rtol=0)


def test_scorer_matches_sampler_at_temperature_one(tiny_model):
    ids, am = left_pad(PROMPTS * 2)
    roll = ead.sample(tiny_model, ids, am, ead.ead_schedule(14, d0=8, c=3), eos_token_id=EOS,
                      pad_token_id=PAD, generator=torch.Generator().manual_seed(4),
                      vocab_size=V_REAL)
    logp, ent = ead.token_logprobs(tiny_model, ids, am, roll.tokens, roll.mask, micro_batch=5,
                                   vocab_size=V_REAL, with_entropy=True)
    torch.testing.assert_close(logp, roll.logp_pi, atol=1e-4, rtol=0)
    torch.testing.assert_close(ent.where(roll.mask, 0), roll.entropy, atol=1e-4, rtol=0)


def test_logprobs_of_by_hand():
    """The plain scorer written out: z_y / tau_t - log sum_v exp(z_v / tau_t) over the real
    vocabulary, in fp32 from bf16 logits; (T,) and (B, T) temperatures agree, None is tau = 1."""
    logits = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(0)).bfloat16()
    tokens = torch.tensor([[0, 4, 2], [3, 1, 4]])
    taus = torch.tensor([1.0, 0.5, 2.0])
    got = ead.logprobs_of(logits, tokens, taus, vocab_size=5)
    assert got.dtype == torch.float32
    for b, t in itertools.product(range(2), range(3)):
        z = [float(x) / float(taus[t]) for x in logits[b, t, :5]]
        want = z[tokens[b, t]] - math.log(sum(math.exp(v) for v in z))
        assert float(got[b, t]) == pytest.approx(want, abs=1e-6)
    torch.testing.assert_close(ead.logprobs_of(logits, tokens, taus.expand(2, 3), 5), got)
    torch.testing.assert_close(ead.logprobs_of(logits, tokens, None, 5),
                               ead.logprobs_of(logits, tokens, torch.ones(3), 5))


# ----------------------------------------------------------------------------- update

def test_group_advantages():
    r = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1])
    adv = ead.group_advantages(r, 4)
    for g in range(3):
        grp = r[4 * g:4 * g + 4].tolist()
        sd = statistics.stdev(grp)
        for i in range(4):
            want = 0.0 if sd == 0 else (grp[i] - statistics.mean(grp)) / (sd + 1e-6)
            assert adv[4 * g + i].item() == pytest.approx(want, abs=1e-6)
    assert (ead.group_advantages(torch.full((8,), 0.7), 4) == 0).all()
    with pytest.raises(ValueError):
        ead.group_advantages(r, 5)


def test_group_advantages_pin_eps_and_the_unbiased_std():
    """eps = 0.5 is large enough to see: (R - mean) / (std + eps) with the n - 1 std."""
    r = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1])
    adv = ead.group_advantages(r, 4, eps=0.5)
    # group 1: mean 1/4, std sqrt(0.75 / 3) = 1/2; group 2: mean 1/2, std sqrt(1 / 3)
    a2 = 0.5 / (3 ** -0.5 + 0.5)
    want = [0.75, -0.25, -0.25, -0.25, a2, a2, -a2, -a2, 0, 0, 0, 0]
    torch.testing.assert_close(adv, torch.tensor(want), atol=1e-6, rtol=0)


def reference_loss(logp, logp_old, logp_mu, adv, mask, clip_low, clip_high, tis_cap,
                   dual_clip=None, kl_coef=0.0, logp_ref=None, tis_level="token"):
    """Hand-written, token by token, straight from the README's eq. 5-7; with policy_loss's
    stats as token means, and how often the dual clip binds ("dual")."""
    total, count, n = 0.0, 0, Counter()
    B, T = logp.shape
    for b in range(B):
        A = float(adv[b])
        seq_log_w = sum(float(logp_old[b, t] - logp_mu[b, t]) for t in range(T) if mask[b, t])
        for t in range(T):
            if not mask[b, t]:
                continue
            count += 1
            r = torch.exp(logp[b, t] - logp_old[b, t])
            clipped = min(max(r, torch.tensor(1 - clip_low)), torch.tensor(1 + clip_high))
            l = max(-A * r, -A * clipped)
            n["clip_frac_low"] += bool(-A * clipped > -A * r and r < 1)
            n["clip_frac_high"] += bool(-A * clipped > -A * r and r > 1)
            if dual_clip is not None and A < 0:
                n["dual"] += bool(l > -A * dual_clip)
                l = min(l, torch.tensor(-A * dual_clip))
            w = 1.0
            raw_w = math.exp(seq_log_w if tis_level == "sequence" else
                             float(logp_old[b, t] - logp_mu[b, t]))
            if tis_cap is not None:
                w = min(raw_w, tis_cap)
                n["tis_trunc_frac"] += raw_w > tis_cap
            term = w * l
            n["tis_weight_mean"] += w
            n["ratio_mean"] += float(r.detach())
            if kl_coef:
                d = logp_ref[b, t] - logp[b, t]
                n["kl"] += float((torch.exp(d) - d - 1).detach())
                term = term + kl_coef * (torch.exp(d) - d - 1)
            total = total + term
    return total / count, Counter({k: v / count for k, v in n.items()})


@pytest.mark.parametrize("tis_cap,dual_clip,kl_coef,tis_level", [
    (2.0, None, 0.0, "token"), (None, None, 0.0, "token"), (1.3, 1.5, 0.0, "token"),
    (2.0, None, 0.1, "token"), (2.0, None, 0.0, "sequence"), (1e9, None, 0.0, "sequence")])
def test_policy_loss_matches_reference_in_value_and_gradient(tis_cap, dual_clip, kl_coef,
                                                             tis_level):
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    logp_old = -torch.rand(B, T, generator=g) * 3
    logp_mu = logp_old + torch.randn(B, T, generator=g) * (0.8 if tis_level == "token" else 0.5)
    logp_ref = logp_old + torch.randn(B, T, generator=g) * 0.2
    base = logp_old + torch.randn(B, T, generator=g) * 0.5    # ratios both inside and outside
    adv = torch.randn(B, generator=g)
    mask = torch.rand(B, T, generator=g) > 0.25
    x1 = base.clone().requires_grad_()
    x2 = base.clone().requires_grad_()
    loss, stats = ead.policy_loss(x1, logp_old, logp_mu, adv, mask, clip_low=0.2,
                                  clip_high=0.28, tis_cap=tis_cap, dual_clip=dual_clip,
                                  kl_coef=kl_coef, logp_ref=logp_ref, tis_level=tis_level)
    ref, counts = reference_loss(x2, logp_old, logp_mu, adv, mask, 0.2, 0.28, tis_cap,
                                 dual_clip, kl_coef, logp_ref, tis_level)
    assert loss.detach().item() == pytest.approx(ref.detach().item(), abs=1e-6)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-5)
    # every knob of this case is engaged: some tokens clipped on each side, some weights
    # truncated, the dual clip binding, the KL term present
    assert counts["clip_frac_low"] > 0 and counts["clip_frac_high"] > 0
    assert (counts["tis_trunc_frac"] > 0) == (tis_cap is not None and tis_cap < 1e9)
    assert (counts["dual"] > 0) == (dual_clip is not None)
    assert (counts["kl"] > 0) == (kl_coef > 0)
    for key in ("clip_frac_low", "clip_frac_high", "tis_trunc_frac", "tis_weight_mean",
                "ratio_mean", "kl"):
        assert stats[key] == pytest.approx(counts[key], abs=1e-6), key
    assert stats["mu_gap"] == pytest.approx(
        float((logp_old - logp_mu).abs()[mask].mean()), abs=1e-6)
    assert stats["tokens"] == float(mask.sum())


def test_tis_weight_is_one_on_policy_and_capped():
    B, T = 3, 4
    logp = -torch.rand(B, T)
    adv = torch.tensor([1.0, -0.5, 2.0])
    mask = torch.ones(B, T, dtype=torch.bool)
    on, st_on = ead.policy_loss(logp, logp, logp, adv, mask, tis_cap=2.0)
    off, _ = ead.policy_loss(logp, logp, logp, adv, mask, tis_cap=None)
    assert on.item() == pytest.approx(off.item()) and st_on["tis_weight_mean"] == 1.0
    assert st_on["tis_trunc_frac"] == 0.0
    far, st_far = ead.policy_loss(logp, logp, logp - 5.0, adv, mask, tis_cap=2.0)
    assert far.item() == pytest.approx(2.0 * off.item())    # exp(5) is capped at 2
    assert st_far["tis_trunc_frac"] == 1.0 and st_far["tis_weight_mean"] == 2.0


def test_policy_loss_no_nan_for_equal_rewards():
    rewards = torch.ones(8)
    adv = ead.group_advantages(rewards, 4)
    logp = (-torch.rand(8, 5)).requires_grad_()
    loss, _ = ead.policy_loss(logp, logp.detach(), logp.detach() - 0.3, adv,
                              torch.ones(8, 5, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logp.grad).all()


def test_normaliser_sums_micro_batches():
    g = torch.Generator().manual_seed(1)
    logp = -torch.rand(6, 5, generator=g)
    old = logp + 0.1 * torch.randn(6, 5, generator=g)
    adv = torch.randn(6, generator=g)
    mask = torch.rand(6, 5, generator=g) > 0.3
    whole, _ = ead.policy_loss(logp, old, old, adv, mask)
    n = float(mask.sum())
    parts = sum(ead.policy_loss(logp[i:i + 2], old[i:i + 2], old[i:i + 2], adv[i:i + 2],
                                mask[i:i + 2], normaliser=n)[0] for i in range(0, 6, 2))
    assert parts.item() == pytest.approx(whole.item(), abs=1e-6)


def test_clip_grad_norm_is_the_global_norm_and_clips():
    """(3, 0) and (0, 4) are one vector of norm 5: at max_norm 1 they become (0.6, 0) and
    (0, 0.8); above the norm nothing changes; bf16 gradients are measured in fp32."""
    def params(*grads, dtype=torch.float32):
        ps = [torch.nn.Parameter(torch.zeros(len(gr), dtype=dtype)) for gr in grads]
        for p, gr in zip(ps, grads):
            p.grad = torch.tensor(gr, dtype=dtype)
        return ps

    ps = params([3.0, 0.0], [0.0, 4.0])
    assert ead.clip_grad_norm(ps, 1.0) == pytest.approx(5.0, abs=1e-6)
    torch.testing.assert_close(ps[0].grad, torch.tensor([0.6, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(ps[1].grad, torch.tensor([0.0, 0.8]), atol=1e-6, rtol=0)
    ps = params([3.0, 0.0], [0.0, 4.0])
    assert ead.clip_grad_norm(ps, 10.0) == pytest.approx(5.0, abs=1e-6)
    assert ps[0].grad.tolist() == [3.0, 0.0] and ps[1].grad.tolist() == [0.0, 4.0]
    ps = params([1.0] * 600, [1.0] * 400, dtype=torch.bfloat16)    # in bf16: 31.625
    assert ead.clip_grad_norm(ps, 1e9) == pytest.approx(1000 ** 0.5, abs=1e-5)


# ----------------------------------------------------------------------------- metrics

@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_pass_and_worst_at_k_equal_brute_force(n):
    for c in range(n + 1):
        items = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(items, k))
            assert ead.pass_at_k(n, c, k) == pytest.approx(
                sum(any(s) for s in subsets) / len(subsets))
            assert ead.worst_at_k(n, c, k) == pytest.approx(
                sum(all(s) for s in subsets) / len(subsets))
    with pytest.raises(ValueError, match="n=4 k=5 n_correct=2"):   # the caller's count, not n - c
        ead.pass_at_k(4, 2, 5)
    with pytest.raises(ValueError, match="n=4 k=2 n_correct=5"):
        ead.pass_at_k(4, 5, 2)


def test_maj_at_k():
    assert ead.maj_at_k(["3", "4", "3", None], [True, False, True, False]) == 1.0
    assert ead.maj_at_k(["4", "3", "4", "3"], [False, True, False, True]) == 0.0  # tie: first
    assert ead.maj_at_k([None, None], [False, False]) == 0.0


# ----------------------------------------------------------------------------- RL step

def test_rl_step_raises_reward_of_a_target_token(tiny_model):
    """End to end: rewarding token 9 anywhere in the answer must make token 9 more likely."""
    model = copy.deepcopy(tiny_model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids, am = left_pad(PROMPTS[:4])
    taus = ead.ead_schedule(6, tau_max=1.5, tau_min=0.5, d0=4, c=1)

    def reward_fn(roll):
        return ((roll.tokens == 9) & roll.mask).any(1).float()

    g = torch.Generator().manual_seed(0)
    before, after = [], []
    for step in range(25):
        stats, roll, rewards = ead.rl_step(model, opt, ids, am, reward_fn, taus, group_size=8,
                                           eos_token_id=EOS, pad_token_id=PAD, generator=g,
                                           vocab_size=V_REAL, num_minibatches=2, micro_batch=8)
        (before if step < 3 else after).append(stats["rollout/reward"])
        if stats["loss/updates"]:
            assert math.isfinite(stats["loss/grad_norm"]) and stats["perf/update_tok_s"] > 0
        else:                                   # no signal: nothing measured, nothing made up
            assert stats["loss/grad_norm"] is None and stats["perf/update_tok_s"] is None
    assert stats["loss/updates"] <= 2 and not model.training
    assert sum(after[-5:]) / 5 > sum(before) / 3 + 0.2, (before, after[-5:])


@pytest.mark.parametrize("case", ["clipped", "grpo"])
def test_rl_step_gradient_equals_one_full_batch_loss(tiny_model, case):
    """Micro-batching, skipped A = 0 rows, the mini-batch token mean and one-position vocabulary
    slices change nothing: one SGD step of rl_step is lr times the gradient of policy_loss over
    the whole batch at once, scaled by max_grad_norm / (its global L2 norm) when that is below
    1 ("clipped": max_grad_norm is a quarter of the norm); with GRPO's KL term to a reference
    model, the A = 0 answers move too ("grpo")."""
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    ref_model, loss_kw = None, {}
    if case == "grpo":
        ref_model, loss_kw = copy.deepcopy(tiny_model), dict(kl_coef=0.5)
        g = torch.Generator().manual_seed(11)
        with torch.no_grad():
            for p in ref_model.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    ids, am = left_pad(PROMPTS[:4])
    ids4, am4 = ids.repeat_interleave(4, 0), am.repeat_interleave(4, 0)
    taus = ead.ead_schedule(8, tau_max=1.5, tau_min=0.5, d0=5, c=1)

    def reward_fn(roll):
        r = ((roll.tokens % 3 == 0) & roll.mask).sum(1).float()
        r[4:8] = 1.0                                          # one flat group: rows skipped
        return r

    kw = dict(eos_token_id=EOS, pad_token_id=PAD, vocab_size=V_REAL)
    # reference: the same rollout, one loss over all 16 answers, one backward
    ref = ead.sample(b, ids4, am4, taus, generator=torch.Generator().manual_seed(3), **kw)
    logp = ead.token_logprobs(b, ids4, am4, ref.tokens, ref.mask, micro_batch=16,
                              vocab_size=V_REAL)
    with torch.no_grad():
        logp_ref = None if ref_model is None else ead.token_logprobs(
            ref_model, ids4, am4, ref.tokens, ref.mask, vocab_size=V_REAL)
    loss, _ = ead.policy_loss(logp, logp.detach(), ref.logp_mu,
                              ead.group_advantages(reward_fn(ref), 4), ref.mask,
                              logp_ref=logp_ref, **loss_kw)
    loss.backward()
    norm = float(torch.cat([p.grad.flatten() for p in b.parameters()]).norm())
    max_grad_norm = norm / 4 if case == "clipped" else 1e9
    stats, roll, rewards = ead.rl_step(a, torch.optim.SGD(a.parameters(), lr=1.0), ids, am,
                                       reward_fn, taus, group_size=4,
                                       generator=torch.Generator().manual_seed(3),
                                       num_minibatches=1, micro_batch=3, chunk_tokens=2,
                                       max_grad_norm=max_grad_norm, ref_model=ref_model, **kw,
                                       **loss_kw)
    assert torch.equal(ref.tokens, roll.tokens)
    assert 0 < (ead.group_advantages(rewards, 4) == 0).sum() < 16   # some rows have A = 0
    assert stats["loss/grad_norm"] == pytest.approx(norm, rel=1e-5)  # before clipping
    scale = min(1.0, max_grad_norm / norm)
    for (name, pa), pb, p0 in zip(a.named_parameters(), b.parameters(), tiny_model.parameters()):
        torch.testing.assert_close(p0 - pa, scale * pb.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_update_normalises_by_the_global_token_count(tiny_model):
    """Data parallel on one process: a mean_over_ranks that says the other rank holds three
    times these tokens (the mean over 2 ranks is twice this rank's count) halves this rank's
    gradient: the loss is its token sum over the global mean count, not its own."""
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    ids, am = left_pad(PROMPTS[:4])
    ids4, am4 = ids.repeat_interleave(4, 0), am.repeat_interleave(4, 0)
    roll = ead.sample(b, ids4, am4, ead.ead_schedule(8, tau_max=1.5, tau_min=0.5, d0=5, c=1),
                      eos_token_id=EOS, pad_token_id=PAD, vocab_size=V_REAL,
                      generator=torch.Generator().manual_seed(5))
    adv = ead.group_advantages(((roll.tokens % 3 == 0) & roll.mask).sum(1).float(), 4)
    assert (adv != 0).any()
    with torch.no_grad():
        old = ead.token_logprobs(b, ids4, am4, roll.tokens, roll.mask, vocab_size=V_REAL)
    sums = ead.update(a, torch.optim.SGD(a.parameters(), lr=1.0), ids4, am4, roll, adv, old,
                      active=adv != 0, num_minibatches=1, micro_batch=3, max_grad_norm=1e9,
                      vocab_size=V_REAL, mean_over_ranks=lambda count: 2 * count)
    assert sums["updates"] == 1
    logp = ead.token_logprobs(b, ids4, am4, roll.tokens, roll.mask, vocab_size=V_REAL)
    ead.policy_loss(logp, old, roll.logp_mu, adv, roll.mask)[0].backward()  # this rank's mean
    for (name, pa), pb, p0 in zip(a.named_parameters(), b.parameters(), tiny_model.parameters()):
        torch.testing.assert_close(p0 - pa, 0.5 * pb.grad, atol=1e-6, rtol=1e-4, msg=name)


# ----------------------------------------------------------------------------- more parity

def test_greedy_and_per_row_temperatures_match_full_forward(tiny_gpt2):
    """(B, T) temperatures: each row its own schedule, greedy rows (tau = 0) an exact argmax."""
    prompts = PROMPTS * 2
    ids, am = left_pad(prompts)
    T = 10
    rows = [ead.decoding("greedy", T), ead.decoding("tau=0.7", T),
            ead.ead_schedule(T, tau_max=1.5, tau_min=0.3, d0=4, c=1)] * 4
    temps = torch.stack(rows)                                       # (12, T)
    roll = ead.sample(tiny_gpt2, ids, am, temps, eos_token_id=EOS, pad_token_id=PAD,
                      generator=torch.Generator().manual_seed(7), vocab_size=V_REAL)
    for b, prompt in enumerate(prompts):
        n = int(roll.mask[b].sum())
        answer = roll.tokens[b, :n].tolist()
        with torch.no_grad():
            logits = tiny_gpt2(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1:-1]
        logits[:, V_REAL:] = float("-inf")
        pi = F.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None]).squeeze(1)
        torch.testing.assert_close(roll.logp_pi[b, :n], pi, atol=1e-4, rtol=0)
        if b % 3 == 0:                                              # greedy: argmax, mu = 1
            assert answer == logits.argmax(-1).tolist()
            assert (roll.logp_mu[b, :n] == 0).all()
        else:
            mu, _ = reference_logp(tiny_gpt2, prompt, answer, temps[b])
            torch.testing.assert_close(roll.logp_mu[b, :n], mu, atol=1e-4, rtol=0)


class TiedLogits(torch.nn.Module):
    """A stand-in model whose next-token logits always tie between tokens 3 and 7."""

    def __init__(self):
        from transformers import Qwen2Config
        super().__init__()
        self.config = Qwen2Config(vocab_size=10, hidden_size=8, intermediate_size=8,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=1)

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=True,
                logits_to_keep=1, cache=None):
        from types import SimpleNamespace
        logits = torch.zeros(input_ids.shape[0], 1, 10)
        logits[..., 3] = logits[..., 7] = 2.0
        return SimpleNamespace(logits=logits)


def test_greedy_is_exact_on_ties():
    ids, am = left_pad([[1, 2], [4]])
    roll = ead.sample(TiedLogits(), ids, am, ead.decoding("greedy", 5), eos_token_id=9,
                      pad_token_id=PAD, cache="dynamic")
    assert (roll.tokens == 3).all()                       # the first of the tied maxima
    assert (roll.logp_mu == 0).all()
    p3 = math.exp(2) / (2 * math.exp(2) + 8)
    torch.testing.assert_close(roll.logp_pi, torch.full((2, 5), math.log(p3)))


@pytest.mark.parametrize("which", ["tiny_model", "tiny_gpt2"])
def test_every_kv_cache_samples_the_same(which, request):
    """The growing and static caches against transformers' DynamicCache: same draws, also
    when `decode_step` runs the decode steps."""
    model = request.getfixturevalue(which)
    ids, am = left_pad(PROMPTS * 2)
    temps = ead.ead_schedule(14, tau_max=1.5, tau_min=0.3, d0=5, c=1)
    kw = dict(eos_token_id=EOS, pad_token_id=PAD, vocab_size=V_REAL)
    steps = []

    def decode_step(**inputs):                            # stands in for torch.compile(model)
        steps.append(inputs["input_ids"].shape)
        return model(**inputs)

    rolls = [ead.sample(model, ids, am, temps, generator=torch.Generator().manual_seed(8),
                        cache=cache, decode_step=step, **kw)
             for cache, step in (("dynamic", None), ("growing", None), ("static", None),
                                 ("static", decode_step))]
    assert steps == [(len(ids), 1)] * (rolls[0].tokens.shape[1] - 1)   # every decode step
    for roll in rolls[1:]:
        assert torch.equal(roll.tokens, rolls[0].tokens) and torch.equal(roll.mask, rolls[0].mask)
        for x, y in zip(roll[2:], rolls[0][2:]):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown KV cache"):
        ead.kv_cache(model, "paged", 8)


def with_head(model, kind):
    """A copy of the model with its lm_head as it is, with a bias, or tied to the input
    embedding (one matrix that gets a gradient from both ends, as in Qwen2.5-1.5B)."""
    model = copy.deepcopy(model)
    if kind == "bias":
        head = torch.nn.Linear(32, 48)
        with torch.no_grad():
            head.weight.copy_(model.lm_head.weight)
            head.bias.copy_(torch.randn(48, generator=torch.Generator().manual_seed(2)))
        model.lm_head = head
    elif kind.startswith("tied"):
        model.lm_head.weight = model.get_input_embeddings().weight
        if kind == "tied-pad":                               # nn.Embedding skips PAD's row
            model.get_input_embeddings().padding_idx = PAD
    return model


@pytest.mark.parametrize("chunk_tokens,head", [(1, "plain"), (7, "bias"), (7, "tied"),
                                               (7, "tied-pad"), (10_000, "plain")])
def test_chunked_scorer_equals_full_logits_in_value_and_gradient(tiny_model, chunk_tokens, head):
    """The scorer never holds (rows, T, V) logits; it must give what the plain logprobs_of
    gives on a full forward, gradients too (one (V, H) buffer summed over slices)."""
    a = with_head(tiny_model, head)
    b = copy.deepcopy(a)
    ids, am = left_pad(PROMPTS)
    roll = ead.sample(a, ids, am, torch.full((9,), 1.3), eos_token_id=EOS, pad_token_id=PAD,
                      generator=torch.Generator().manual_seed(9), vocab_size=V_REAL)
    temps = ead.ead_schedule(roll.tokens.shape[1], tau_max=1.4, tau_min=0.5, d0=3, c=1)
    weights = torch.randn(roll.tokens.shape, generator=torch.Generator().manual_seed(1))
    logp, ent = ead.token_logprobs(a, ids, am, roll.tokens, roll.mask, micro_batch=4,
                                   temperatures=temps, vocab_size=V_REAL, with_entropy=True,
                                   chunk_tokens=chunk_tokens)
    (logp * weights).sum().backward()
    # reference: every logit of the batch at once
    full_ids, full_am = torch.cat([ids, roll.tokens], 1), torch.cat([am, roll.mask.long()], 1)
    logits = b(input_ids=full_ids, attention_mask=full_am,
               position_ids=ead.positions_from_mask(full_am)).logits[:, ids.shape[1] - 1:-1]
    ref = ead.logprobs_of(logits, roll.tokens, temps, V_REAL).where(roll.mask, 0)
    (ref * weights).sum().backward()
    torch.testing.assert_close(logp, ref, atol=1e-5, rtol=0)
    lp = F.log_softmax(logits[..., :V_REAL].detach() / temps[:, None], -1)     # (B, T, V_REAL)
    ref_ent = -(lp.exp() * lp).sum(-1)
    torch.testing.assert_close(ent.where(roll.mask, 0), ref_ent.where(roll.mask, 0),
                               atol=1e-5, rtol=0)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4, msg=name)


def gradients_sent(root, param) -> list:
    """The gradients for `param` that the backward of `root` will hand to autograd, each its
    own tensor for autograd to add up: collected by hooks on the nodes with an edge into
    param's AccumulateGrad, as they run."""
    seen, todo, sent = set(), [root], []
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        into = [j for j, (nxt, _) in enumerate(node.next_functions)
                if getattr(nxt, "variable", None) is param]
        if into:
            node.register_hook(lambda grads_in, grads_out, into=into: sent.extend(
                grads_in[j] for j in into if grads_in[j] is not None))
        todo += [nxt for nxt, _ in node.next_functions]
    return sent


@pytest.mark.parametrize("micro_batch", [16, 4])
def test_a_tied_vocabulary_gets_one_gradient_equal_to_nn_embeddings(tiny_model, micro_batch,
                                                                    monkeypatch):
    """A tied vocabulary matrix is both the head and the input embedding. Scoring one forward
    (micro_batch 16 >= 9 rows, as `update` does), the scorer's (V, H) buffer takes the
    embedding's rows too, so autograd gets ONE gradient for the matrix, not the head's plus
    nn.Embedding's own dense one held together at the end of the backward; with several
    forwards (micro_batch 4), or without grad, nn.Embedding's lookup stays. Either way the
    gradient is the one nn.Embedding gives, to the last bit (fp32 CPU): the toy's runs do not
    move. A hook already on the embedding (here: scaling) still sees the lookup's output, and
    a negative padding_idx means what it means to nn.Embedding."""
    a = with_head(tiny_model, "tied")
    a.get_input_embeddings().padding_idx = PAD - 48          # row PAD, counted from the end
    a.get_input_embeddings().register_forward_hook(lambda m, args, out: out * 1.5)
    b = copy.deepcopy(a)

    class OwnEmbedding(torch.nn.Embedding):                  # a forward of its own: the
        def forward(self, x):                                # scorer leaves it to nn.Embedding
            return super().forward(x)
    b.get_input_embeddings().__class__ = OwnEmbedding
    lookups, apply = [], ead._TiedLookup.apply
    monkeypatch.setattr(ead._TiedLookup, "apply", lambda *x: lookups.append(1) or apply(*x))
    ids, am = left_pad([p[:2] + [PAD] + p[2:] for p in PROMPTS])   # PAD as a real token too
    roll = ead.sample(a, ids, am, torch.full((9,), 1.3), eos_token_id=EOS, pad_token_id=PAD,
                      generator=torch.Generator().manual_seed(9), vocab_size=V_REAL)
    assert ((ids == PAD) & (am == 0)).any() and ((ids == PAD) & (am == 1)).any()
    weights = torch.randn(roll.tokens.shape, generator=torch.Generator().manual_seed(1))
    sent, logps = [], []
    for model in (a, b):
        logp = ead.token_logprobs(model, ids, am, roll.tokens, roll.mask, micro_batch=micro_batch,
                                  temperatures=torch.linspace(0.6, 1.4, roll.tokens.shape[1]),
                                  vocab_size=V_REAL)
        sent.append(gradients_sent(logp.grad_fn, model.lm_head.weight))
        (logp * weights).sum().backward()
        sent[-1] = [tuple(g.shape) for g in sent[-1]]        # filled by the backward
        logps.append(logp)
    forwards = -(-len(PROMPTS) // micro_batch)
    assert lookups == ([1] if forwards == 1 else [])
    assert sent == [[(48, 32)] if forwards == 1 else [(48, 32)] * 2 * forwards,
                    [(48, 32)] * 2 * forwards]
    assert torch.equal(logps[0], logps[1])
    assert a.lm_head.weight is a.get_input_embeddings().weight
    assert a.lm_head.weight.grad[PAD].abs().sum() > 0         # the head's share of PAD's row
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa.grad, pb.grad), name
    with torch.no_grad():                                    # no graph: nn.Embedding's lookup
        ead.token_logprobs(a, ids, am, roll.tokens, roll.mask, micro_batch=16, vocab_size=V_REAL)
    assert lookups == ([1] if forwards == 1 else [])


def test_the_scorer_leaves_no_hook_behind_when_the_forward_fails(tiny_model):
    """token_logprobs hooks the body and the embedding for one call: a forward that raises
    (a token id past the vocabulary) must not leave them on the model."""
    a = with_head(tiny_model, "tied")
    ids, am = left_pad(PROMPTS)
    tokens = torch.full((len(PROMPTS), 3), 10_000)
    with pytest.raises(IndexError):
        ead.token_logprobs(a, ids, am, tokens, torch.ones_like(tokens, dtype=torch.bool),
                           micro_batch=16)
    assert not a.get_input_embeddings()._forward_hooks and not a.get_decoder()._forward_hooks


def test_tis_weight_is_a_constant_even_when_its_inputs_carry_grad():
    """w_t (eq. 6) is detached: no gradient reaches log mu, and log pi_old only gets the
    ratio's share, minus that of log pi, whatever the truncation."""
    g = torch.Generator().manual_seed(2)
    base = -torch.rand(4, 6, generator=g)
    for tis_level in ("token", "sequence"):
        logp = base.clone().requires_grad_()
        logp_old = (base + 0.1 * torch.randn(4, 6, generator=g)).requires_grad_()
        logp_mu = (base + 0.5 * torch.randn(4, 6, generator=g)).requires_grad_()
        loss, _ = ead.policy_loss(logp, logp_old, logp_mu, torch.randn(4, generator=g),
                                  torch.ones(4, 6, dtype=torch.bool), tis_level=tis_level)
        loss.backward()
        assert logp_mu.grad is None or (logp_mu.grad == 0).all()
        torch.testing.assert_close(logp_old.grad, -logp.grad)


def test_rl_step_with_two_minibatches_equals_two_sequential_sgd_steps(tiny_model):
    """Mini-batch 2's gradient is taken at the weights after step 1 and starts from zero:
    nothing carries over from mini-batch 1 (its pi_old is still the sampling policy)."""
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    ids, am = left_pad(PROMPTS[:4])
    temps = ead.ead_schedule(8, tau_max=1.5, tau_min=0.5, d0=5, c=1)

    def reward_fn(roll):
        return ((roll.tokens % 3 == 0) & roll.mask).sum(1).float()

    kw = dict(eos_token_id=EOS, pad_token_id=PAD, vocab_size=V_REAL)
    stats, roll, rewards = ead.rl_step(a, torch.optim.SGD(a.parameters(), lr=0.5), ids, am,
                                       reward_fn, temps, group_size=4, num_minibatches=2,
                                       micro_batch=3, max_grad_norm=1e9,
                                       generator=torch.Generator().manual_seed(3), **kw)
    assert stats["loss/updates"] == 2
    assert stats["loss/tokens"] == float(roll.mask.sum())     # each answer token once, 1 epoch
    N = roll.tokens.shape[0]
    ids4, am4 = ids.repeat_interleave(4, 0), am.repeat_interleave(4, 0)
    adv = ead.group_advantages(rewards, 4)
    with torch.no_grad():
        old = ead.token_logprobs(b, ids4, am4, roll.tokens, roll.mask, vocab_size=V_REAL)
    for half in (slice(0, N // 2), slice(N // 2, N)):          # two plain SGD steps
        logp = ead.token_logprobs(b, ids4[half], am4[half], roll.tokens[half], roll.mask[half],
                                  micro_batch=64, vocab_size=V_REAL)
        loss, _ = ead.policy_loss(logp, old[half], roll.logp_mu[half], adv[half],
                                  roll.mask[half])
        grads = torch.autograd.grad(loss, list(b.parameters()), allow_unused=True)
        with torch.no_grad():
            for p, gr in zip(b.parameters(), grads):
                if gr is not None:
                    p -= 0.5 * gr
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-5, rtol=1e-4, msg=name)


def test_per_problem_metrics_against_direct_counts():
    correct = [[True, False, True, False], [False] * 4, [True] * 4]
    votes = [["a", "b", "a", "c"], [None, "x", "x", "y"], ["k", "k", "j", "j"]]
    m = ead.per_problem_metrics(correct, [1, 2, 4, 8], votes)
    assert m["mean@4"] == [0.5, 0.0, 1.0]
    assert m["pass@1"] == [0.5, 0.0, 1.0] and m["worst@4"] == [0.0, 0.0, 1.0]
    assert m["pass@2"] == pytest.approx([1 - 1 / 6, 0.0, 1.0])     # 1 - C(2,2)/C(4,2)
    assert m["worst@2"] == pytest.approx([1 / 6, 0.0, 1.0])
    assert m["maj@4"] == [1.0, 0.0, 1.0] and "pass@8" not in m
    assert ead.per_problem_metrics([[True], [False]]) == {"acc": [1.0, 0.0]}
