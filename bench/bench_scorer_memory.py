"""Peak memory that one update micro-batch adds: the chunked scorer vs full logits.

    python bench/bench_scorer_memory.py                      # 4 answers x 512 tokens, CPU
    python bench/bench_scorer_memory.py --device cuda --layers 28

A random model of Qwen2.5-1.5B's exact shape (vocabulary 151,936, tied embeddings), cut to
--layers decoder layers, scores --rows answers of --answer tokens after a --prompt-token prompt,
forward and backward, in two ways:
  full    ead.logprobs_of on the projection of every answer position at once: (rows, T, V)
          fp32 logits and log-probs (the plain reading of the scorer)
  chunked ead.token_logprobs: slices of --chunk (row, position) pairs, and one (V, H)
          buffer for the vocabulary matrix's gradient
Each way runs in a fresh process, in the steady state of training: a first small backward
has allocated every weight's gradient buffer (those are counted once per model, not per
micro-batch), and the number is the peak minus what was held just before the measured call
(CUDA: max_memory_allocated; CPU: the kernel's peak resident set, VmHWM, reset first).
With the tied matrix trainable, the input embedding's gradient rows go into the scorer's
one (V, H) buffer too (ead._TiedLookup), so the chunked peak is the scorer's own backward.
--frozen-vocab freezes the (tied) embedding matrix, so that the logits path alone is left.
"""
import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ead  # noqa: E402
from bench_sample import build  # noqa: E402


def rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, from /proc."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def exact_rss():
    """Re-run this process with a fixed glibc mmap threshold (64 KiB), once. By default glibc
    raises the threshold as big blocks are freed and then keeps freed blocks for reuse, so the
    peak resident set counts memory that is no longer live, by an amount that varies from run
    to run; with a fixed threshold every tensor is mapped on its own and unmapped when freed."""
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                         # Linux: VmHWM := VmRSS


def full_logits(model, ids, am, tokens, mask):
    """The unchunked scorer: every (row, position) logit of the answer at once."""
    T = tokens.shape[1]
    full = torch.cat([ids, tokens], 1)
    fam = torch.cat([am, mask.long()], 1)
    out = model(input_ids=full, attention_mask=fam, position_ids=ead.positions_from_mask(fam),
                use_cache=False, logits_to_keep=T + 1)
    return ead.logprobs_of(out.logits[:, :-1], tokens)       # holds (b, T, V) fp32 log-probs


def measure(a) -> dict:
    torch.manual_seed(0)
    model = build("qwen1.5b", a.device, getattr(torch, a.dtype), layers=a.layers).train()
    V = model.config.vocab_size
    ids = torch.randint(0, V, (a.rows, a.prompt), device=a.device)
    tokens = torch.randint(0, V, (a.rows, a.answer), device=a.device)
    am, mask = torch.ones_like(ids), torch.ones_like(tokens, dtype=torch.bool)
    if a.frozen_vocab:
        model.get_output_embeddings().weight.requires_grad_(False)
    score = full_logits if a.variant == "full" else (
        lambda *x: ead.token_logprobs(model, *x[1:], micro_batch=a.rows, chunk_tokens=a.chunk))
    score(model, ids[:1, :4], am[:1, :4], tokens[:1, :4], mask[:1, :4]).sum().backward()
    cuda = a.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        reset_peak()
        before = rss_bytes("VmRSS")
    score(model, ids, am, tokens, mask).sum().backward()   # accumulates into the buffers
    peak = torch.cuda.max_memory_allocated() if cuda else rss_bytes("VmHWM")
    return {"variant": a.variant, "added_peak_gib": round((peak - before) / 2**30, 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=1, help="decoder layers of the real shape")
    p.add_argument("--rows", type=int, default=4, help="answers in the micro-batch")
    p.add_argument("--answer", type=int, default=512, help="answer tokens per row")
    p.add_argument("--prompt", type=int, default=64, help="prompt tokens per row")
    p.add_argument("--chunk", type=int, default=256, help="tokens per vocabulary slice")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default=None, help="weights: default bfloat16 on cuda, float32 on cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--frozen-vocab", action="store_true", help="no gradient for the vocabulary matrix")
    p.add_argument("--variant", choices=["full", "chunked"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_scorer_memory.py: error: --device cuda but no CUDA device is available",
              file=sys.stderr)
        sys.exit(2)                                          # bad input: one line, status 2
    if not a.device.startswith("cuda"):
        exact_rss()
    torch.set_num_threads(a.threads)
    a.dtype = a.dtype or ("bfloat16" if a.device.startswith("cuda") else "float32")
    if a.variant:                                            # the child: one measurement
        print(json.dumps(measure(a)))
        return
    res = {}
    for variant in ("full", "chunked"):                      # each in a fresh process
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--variant", variant],
                             capture_output=True, text=True, check=True)
        res[variant] = json.loads(out.stdout.strip().splitlines()[-1])["added_peak_gib"]
    print(f"qwen1.5b shape, {a.layers} layers, {a.dtype}, {a.device}: {a.rows} answers x "
          f"{a.answer} tokens (+{a.prompt} prompt), forward + backward"
          + (", vocabulary matrix frozen" if a.frozen_vocab else ""))
    print(f"  full logits        {res['full']:6.2f} GiB added")
    print(f"  chunked ({a.chunk:4d} tok) {res['chunked']:6.2f} GiB added")
    print(f"  reduction          {res['full'] / max(res['chunked'], 1e-9):6.1f}x")


if __name__ == "__main__":
    main()
