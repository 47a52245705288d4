"""The GPU check of the real run, on a RANDOM model of Qwen2.5-1.5B's exact shape (no download).

    python bench/gpu_qwen.py                     # on a CUDA machine: the numbers for the README
    python bench/gpu_qwen.py --preset tiny --device cpu --batch 16 --new-tokens 16   # smoke

1. tokens/s of ead.sample vs model.generate (with EADLogitsProcessor) at the same batch and
   length, bf16 weights, fp32 log-softmax;
2. one full training step of ead.rl_step at the target batch (64 prompts x 8 answers x 1,024
   new tokens: 512 answers), with activation checkpointing, AdamW on fp32 master weights, 4 mini-batch updates: its
   wall time, rollout and update tokens/s, and peak GPU memory.
A random model rarely emits EOS, so every answer runs to the full length: the worst case.
Prints one JSON line per measurement (and writes them to --out when given).
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ead  # noqa: E402
import train_qwen  # noqa: E402
from bench_sample import build, race  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="qwen1.5b", help="qwen1.5b or tiny (random weights)")
    p.add_argument("--device", default="cuda", help="cuda or cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--batch", type=int, default=512, help="answers per step (64 prompts x 8)")
    p.add_argument("--group", type=int, default=8, help="answers per prompt")
    p.add_argument("--gen-batch", type=int, default=64, help="rows in the sample/generate race")
    p.add_argument("--gen-tokens", type=int, default=256, help="new tokens in that race")
    p.add_argument("--prompt-len", type=int, default=128, help="prompt tokens")
    p.add_argument("--new-tokens", type=int, default=1024, help="answer tokens in the step")
    p.add_argument("--micro-batch", type=int, default=8, help="answers per forward/backward")
    p.add_argument("--repeats", type=int, default=3, help="rounds of the sampling race")
    p.add_argument("--skip-step", action="store_true", help="only the sampling race")
    p.add_argument("--out", default=None, help="also write the JSON lines to this file")
    a = p.parse_args()
    dtype = getattr(torch, a.dtype or ("bfloat16" if a.device == "cuda" else "float32"))
    torch.manual_seed(0)
    model = build(a.preset, a.device, dtype)
    V = model.config.vocab_size
    dev = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    lines = []

    def emit(rec):
        rec = {"device": dev, "preset": a.preset, "dtype": str(dtype), **rec}
        print(json.dumps(rec), flush=True)
        lines.append(rec)

    # 1. the sampling race
    ids = torch.randint(1, V, (a.gen_batch, a.prompt_len), device=a.device)
    am = torch.ones_like(ids)
    taus = ead.ead_schedule(a.gen_tokens)
    g = torch.Generator(device=a.device).manual_seed(0)
    never = V + 1
    runs = {
        "sample": lambda: ead.sample(model, ids, am, taus, eos_token_id=never, pad_token_id=0,
                                     generator=g),
        "generate": lambda: model.generate(
            input_ids=ids, attention_mask=am, do_sample=True, temperature=1.0, top_k=0,
            top_p=1.0, max_new_tokens=a.gen_tokens, min_new_tokens=a.gen_tokens,
            eos_token_id=never, pad_token_id=0,
            logits_processor=[ead.EADLogitsProcessor(taus, a.prompt_len)]),
    }
    res = {k: a.gen_batch * a.gen_tokens / t for k, t in race(runs, a.device, a.repeats).items()}
    emit({"what": "sampling race", "batch": a.gen_batch, "new_tokens": a.gen_tokens,
          "sample_tok_s": round(res["sample"]), "generate_tok_s": round(res["generate"]),
          "ratio": round(res["sample"] / res["generate"], 3)})
    if a.skip_step:
        return

    # 2. one full training step at the target batch
    train_qwen.enable_checkpointing(model)
    opt = train_qwen.master_adamw(model, lr=1e-6)
    P = a.batch // a.group
    ids = torch.randint(1, V, (P, a.prompt_len), device=a.device)
    am = torch.ones_like(ids)
    taus = ead.ead_schedule(a.new_tokens)
    rng = torch.Generator().manual_seed(1)

    def reward_fn(roll):          # random 0/1 rewards: every group has signal, all rows update
        return torch.randint(0, 2, (roll.tokens.shape[0],), generator=rng).float()

    if a.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    stats, roll, _ = ead.rl_step(model, opt, ids, am, reward_fn, taus, group_size=a.group,
                                 eos_token_id=never, pad_token_id=0, generator=g,
                                 num_minibatches=4, micro_batch=a.micro_batch)
    if a.device == "cuda":
        torch.cuda.synchronize()
    emit({"what": "training step", "answers": a.batch, "prompts": P, "new_tokens": a.new_tokens,
          "answer_tokens": int(roll.mask.sum()), "step_s": round(time.perf_counter() - t0, 1),
          "rollout_tok_s": round(stats["perf/rollout_tok_s"]),
          "update_tok_s": round(stats["perf/update_tok_s"]),
          "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
          if a.device == "cuda" else None})
    if a.out:
        with open(a.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in lines)


if __name__ == "__main__":
    main()
