"""Tokens/s of ead.sample (each KV cache) vs model.generate vs a bare cached-forward loop.

    python bench/bench_sample.py                      # CPU, tiny Qwen2, batch 256
    python bench/bench_sample.py --device cuda --dtype bfloat16 --preset qwen1.5b --batch 64

Every way decodes the same batch for the same number of new tokens (no EOS, so every row
runs to the end); they are timed in turn, `--repeats` rounds, and each keeps its best time. Ratios are the
numbers to quote: they come from one run on one machine.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ead  # noqa: E402

CACHES = ("growing", "static", "dynamic")                  # ead.kv_cache kinds
PRESETS = {  # name: Qwen2Config kwargs
    "tiny": dict(vocab_size=32, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    "qwen1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                     num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                     tie_word_embeddings=True),
    "qwen7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                   num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                   tie_word_embeddings=False),
}


def build(preset, device, dtype, layers=None):
    """A random model of the preset's shape, cut to `layers` decoder layers if given."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(max_position_embeddings=4096, **{**PRESETS[preset],
                                                        **({} if layers is None else {"num_hidden_layers": layers})})
    with torch.device(device):
        return Qwen2ForCausalLM(cfg).to(dtype).eval()


@torch.no_grad()
def bare_loop(model, ids, am, n_new, cache="growing"):
    """The same cached forwards as `sample` (same cache, same mask buffer), with argmax
    instead of sampling and no log-probs: the ceiling of any sampler."""
    B, L = ids.shape
    kv, kw = ead.kv_cache(model, cache, L + n_new), ead._cache_kwarg(model)
    full_mask = torch.nn.functional.pad(am, (0, n_new))
    pos, step = ead.positions_from_mask(am), ids
    for t in range(n_new):
        out = model(input_ids=step, position_ids=pos, use_cache=True, logits_to_keep=1,
                    attention_mask=full_mask if cache == "static" else full_mask[:, :L + t],
                    **{kw: kv})
        step = out.logits[:, -1].argmax(-1, keepdim=True)
        full_mask[:, L + t] = 1
        pos = pos[:, -1:] + 1


def race(runs: dict, device, repeats) -> dict:
    """Best seconds of each callable over `repeats` round-robin rounds (after one warm-up),
    so that a noisy neighbour slows every method alike."""
    for fn in runs.values():
        fn()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            best[name] = min(best[name], timed(fn, device, 1))
    return best


def timed(fn, device, repeats):
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=PRESETS, default="tiny", help="model shape (random weights)")
    p.add_argument("--batch", type=int, default=256, help="rows decoded together")
    p.add_argument("--prompt-len", type=int, default=16, help="prompt tokens per row")
    p.add_argument("--new-tokens", type=int, default=64, help="answer tokens per row")
    p.add_argument("--repeats", type=int, default=5, help="rounds of timings; best is kept")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.preset, a.device, getattr(torch, a.dtype))
    V = model.config.vocab_size
    ids = torch.randint(1, V, (a.batch, a.prompt_len), device=a.device)
    am = torch.ones_like(ids)
    taus = ead.ead_schedule(a.new_tokens, tau_max=1.2, tau_min=0.1, d0=a.new_tokens / 3, c=2)
    g = torch.Generator(device=a.device).manual_seed(0)
    no_eos = V + 1  # an id that is never sampled: every row decodes all new tokens

    runs = {}
    for cache in CACHES:
        runs[f"bare loop, {cache}"] = lambda c=cache: bare_loop(model, ids, am, a.new_tokens, c)
        runs[f"ead.sample, {cache}"] = lambda c=cache: ead.sample(
            model, ids, am, taus, eos_token_id=no_eos, pad_token_id=0, generator=g, cache=c)
    runs["model.generate"] = lambda: model.generate(
        input_ids=ids, attention_mask=am, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
        max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, eos_token_id=no_eos,
        pad_token_id=0, logits_processor=[ead.EADLogitsProcessor(taus, a.prompt_len)])
    tok = a.batch * a.new_tokens
    res = {name: tok / t for name, t in race(runs, a.device, a.repeats).items()}
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU x{a.threads} threads"
    print(f"{a.preset} Qwen2, {a.dtype}, {dev}, batch {a.batch}, prompt {a.prompt_len}, "
          f"{a.new_tokens} new tokens")
    for name, r in res.items():
        print(f"  {name:22s} {r:12,.0f} tokens/s")
    for cache in CACHES:
        s = res[f"ead.sample, {cache}"]
        print(f"  {cache:7s} cache: sample / generate = {s / res['model.generate']:.2f}x, "
              f"sample / bare loop = {s / res[f'bare loop, {cache}']:.2f}x")

if __name__ == "__main__":
    main()
