"""The real run's shape, measured: a RANDOM model of Qwen2.5-1.5B's exact dimensions (no download).

    python bench/gpu_qwen.py                                    # on a CUDA machine: docs/qwen.md's GPU rows
    python bench/gpu_qwen.py --device cpu --layers 2 --batch 8 --group 4 --prompt-len 32 \\
        --new-tokens 32 --micro-batch 4 --gen-batch 8 --gen-tokens 16 --skip-race   # CPU, cut down

1. the sampling race (unless --skip-race): tokens/s of ead.sample with each KV cache
   (growing, static, dynamic; with --compile also a compiled fixed-shape decode step, CUDA
   graphs on cuda) vs model.generate with EADLogitsProcessor, at one batch and length;
2. training steps of ead.rl_step as train_qwen.py runs them (activation checkpointing, AdamW
   on fp32 masters for bf16 weights, 4 mini-batch updates, random 0/1 rewards so that every
   group has signal): the second step's wall time, tokens/s and peak memory, next to
   train_qwen.memory_plan's figure for the same settings (CUDA: max_memory_allocated; CPU:
   the peak resident set of the process, VmHWM, minus what it held before the model);
3. with --runner-steps N: N steps of train_qwen.py itself on the same random model, a
   character tokenizer and synthetic problems (checkpoints, logs, evaluation included).
A random model rarely emits EOS, so every answer runs to the full length: the worst case.
Prints one JSON line per measurement (and writes them to --out when given).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ead  # noqa: E402
import train_qwen  # noqa: E402
from bench_sample import build, race  # noqa: E402
from bench_scorer_memory import exact_rss, reset_peak, rss_bytes  # noqa: E402


def synthetic_model_dir(model, n_problems: int = 64) -> tuple[str, str]:
    """Save `model` with a character tokenizer and a chat template, plus a JSONL of sums."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(specials + chars + ["<unk>"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token="<unk>")
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                         "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
                         "<|im_start|>assistant\n{% endif %}")
    d = tempfile.mkdtemp(prefix="random-qwen-")
    model.config.eos_token_id, model.config.pad_token_id = vocab["<|im_end|>"], 0
    model.generation_config.eos_token_id = vocab["<|im_end|>"]
    model.save_pretrained(d)
    tok.save_pretrained(d)
    data = os.path.join(d, "sums.jsonl")
    with open(data, "w") as f:
        for i in range(n_problems):
            f.write(json.dumps({"problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)}) + "\n")
    return d, data


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="qwen1.5b", help="qwen1.5b or tiny (random weights)")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default: the preset's)")
    p.add_argument("--device", default="cuda", help="cuda or cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--batch", type=int, default=512, help="answers per step (64 prompts x 8)")
    p.add_argument("--group", type=int, default=8, help="answers per prompt")
    p.add_argument("--gen-batch", type=int, default=64, help="rows in the sample/generate race")
    p.add_argument("--gen-tokens", type=int, default=256, help="new tokens in that race")
    p.add_argument("--prompt-len", type=int, default=128, help="prompt tokens")
    p.add_argument("--new-tokens", type=int, default=1024, help="answer tokens in the step")
    p.add_argument("--micro-batch", type=int, default=8, help="answers per forward/backward")
    p.add_argument("--logits-chunk", type=int, default=256, help="tokens per vocabulary slice")
    p.add_argument("--kv-cache", default="growing", choices=["growing", "static", "dynamic"],
                   help="the rollout's KV cache in the training step")
    p.add_argument("--compile", action="store_true", help="also race a compiled decode step")
    p.add_argument("--repeats", type=int, default=3, help="rounds of the sampling race")
    p.add_argument("--skip-race", action="store_true", help="no sampling race")
    p.add_argument("--skip-step", action="store_true", help="no training step")
    p.add_argument("--runner-steps", type=int, default=0, help="then run train_qwen.py this long")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--out", default=None, help="also write the JSON lines to this file")
    a = p.parse_args()
    error = None
    if a.runner_steps and a.preset == "tiny":
        error = ("--runner-steps needs the qwen1.5b preset (its vocabulary holds the character "
                 "tokenizer)")
    elif a.device.startswith("cuda") and not torch.cuda.is_available():
        error = "no CUDA device here (on a CPU: --device cpu --layers 2, with a small --batch)"
    if error:                                                # bad input: one line, status 2
        print(f"gpu_qwen.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    cuda = a.device.startswith("cuda")
    if not cuda:
        exact_rss()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype or ("bfloat16" if cuda else "float32"))
    base_rss = rss_bytes("VmRSS")                            # the process before any model
    torch.manual_seed(0)
    model = build(a.preset, a.device, dtype, layers=a.layers)
    V = model.config.vocab_size
    dev = torch.cuda.get_device_name() if cuda else "cpu"
    lines = []

    def emit(rec):
        rec = {"device": dev, "preset": a.preset, "layers": model.config.num_hidden_layers,
               "dtype": str(dtype), **rec}
        print(json.dumps(rec), flush=True)
        lines.append(rec)

    never = V + 1                                            # an EOS that is never sampled
    if not a.skip_race:
        ids = torch.randint(1, V, (a.gen_batch, a.prompt_len), device=a.device)
        am = torch.ones_like(ids)
        taus = ead.ead_schedule(a.gen_tokens)
        g = torch.Generator(device=a.device).manual_seed(0)

        def sampler(cache, step=None):
            return lambda: ead.sample(model, ids, am, taus, eos_token_id=never, pad_token_id=0,
                                      generator=g, cache=cache, decode_step=step)

        runs = {"growing": sampler("growing"), "static": sampler("static"),
                "dynamic": sampler("dynamic"),
                "generate": lambda: model.generate(
                    input_ids=ids, attention_mask=am, do_sample=True, temperature=1.0, top_k=0,
                    top_p=1.0, max_new_tokens=a.gen_tokens, min_new_tokens=a.gen_tokens,
                    eos_token_id=never, pad_token_id=0,
                    logits_processor=[ead.EADLogitsProcessor(taus, a.prompt_len)])}
        if a.compile:
            runs["static+compiled"] = sampler("static", torch.compile(
                model, mode="reduce-overhead" if cuda else "default", dynamic=False))
        res = {k: a.gen_batch * a.gen_tokens / t for k, t in race(runs, a.device, a.repeats).items()}
        emit({"what": "sampling race", "batch": a.gen_batch, "new_tokens": a.gen_tokens,
              **{f"{k}_tok_s": round(v) for k, v in res.items()},
              **{f"{k}/generate": round(v / res["generate"], 3) for k, v in res.items()
                 if k != "generate"}})

    if not a.skip_step:
        train_qwen.enable_checkpointing(model)
        opt = train_qwen.master_adamw(model, lr=1e-6)
        P = a.batch // a.group
        ids = torch.randint(1, V, (P, a.prompt_len), device=a.device)
        am = torch.ones_like(ids)
        taus = ead.ead_schedule(a.new_tokens)
        rng = torch.Generator().manual_seed(1)
        g = torch.Generator(device=a.device).manual_seed(0)

        def reward_fn(roll):      # random 0/1 rewards: a group of 4 is flat (skipped) 1 time in 8
            return torch.randint(0, 2, (roll.tokens.shape[0],), generator=rng).float()

        def sample_fn(*args, **kwargs):
            return ead.sample(*args, **kwargs, cache=a.kv_cache)

        for step in range(2):                                # step 2: AdamW's state exists
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            else:
                reset_peak()
            t0 = time.perf_counter()
            stats, roll, _ = ead.rl_step(model, opt, ids, am, reward_fn, taus, group_size=a.group,
                                         eos_token_id=never, pad_token_id=0, generator=g,
                                         num_minibatches=4, micro_batch=a.micro_batch,
                                         chunk_tokens=a.logits_chunk, sample_fn=sample_fn)
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() if cuda else rss_bytes("VmHWM") - base_rss
        plan = train_qwen.memory_plan(
            model.config, batch=a.batch, prompt_len=a.prompt_len, max_new_tokens=a.new_tokens,
            micro_batch=a.micro_batch, logits_chunk=a.logits_chunk,
            dtype_bytes=torch.finfo(dtype).bits // 8, checkpointing=True)
        emit({"what": "training step", "answers": a.batch, "prompts": P,
              "new_tokens": a.new_tokens, "answer_tokens": int(roll.mask.sum()),
              "kv_cache": a.kv_cache, "updates": stats["loss/updates"], "step_s": round(wall, 1),
              "rollout_tok_s": round(stats["perf/rollout_tok_s"]),
              "update_tok_s": round(stats["perf/update_tok_s"]),
              "peak_mem_gib": round(peak / 2**30, 2),
              "plan_peak_gib": round(plan["peak"] / 2**30, 2),
              "plan/measured": round(plan["peak"] / peak, 3),
              **{f"plan_{k.replace(' ', '_')}_gib": round(v / 2**30, 2)
                 for k, v in plan["phases"].items()}})

    if a.runner_steps:
        model_dir, data = synthetic_model_dir(model.float() if not cuda else model)
        out = tempfile.mkdtemp(prefix="runner-")
        t0 = time.perf_counter()
        rc = train_qwen.main(["--model", model_dir, "--train", data, "--eval", data,
                              "--out", out, "--device", a.device, "--batch", str(a.batch),
                              "--group", str(a.group), "--micro-batch", str(a.micro_batch),
                              "--max-new-tokens", str(a.new_tokens), "--steps", str(a.runner_steps),
                              "--eval-every", str(a.runner_steps), "--eval-limit", "16",
                              "--eval-n", "4", "--eval-k", "1,4", "--save-every", str(a.runner_steps)])
        recs = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
        emit({"what": "train_qwen.py run", "rc": rc, "steps": a.runner_steps,
              "wall_s": round(time.perf_counter() - t0, 1), "out": out,
              "records": len(recs), "last": {k: v for k, v in recs[-1].items()
                                              if k.startswith(("perf/", "rollout/", "eval/all"))}})
    if a.out:
        with open(a.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in lines)


if __name__ == "__main__":
    main()
