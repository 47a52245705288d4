"""train_qwen.memory_plan for the real shapes, without their weights: what fits on which GPU.

    python bench/memory_plan.py                          # docs/qwen.md's three settings
    python bench/memory_plan.py --preset qwen7b --ranks 8 --batch 8192 --max-new-tokens 3072

The plan is an estimate per rank, in GiB, of every buffer a training step holds (see
train_qwen.memory_plan); on CPU it was checked against measured peaks by bench/gpu_qwen.py.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train_qwen  # noqa: E402
from bench_sample import PRESETS  # noqa: E402


# (preset, GPUs, settings): 1.5B at the default batch on 1 GPU and on 8; 7B at the paper's
# step, 1,024 prompts x 16 answers x 3,072 tokens, sampled 64 answers at a time per GPU
DOC_ROWS = [("qwen1.5b", 1, {}), ("qwen1.5b", 8, {}),
               ("qwen7b", 8, dict(batch=16384, max_new_tokens=3072, micro_batch=4,
                                  rollout_batch=64))]


def plan(preset, ranks, a):
    from transformers import Qwen2Config
    return train_qwen.memory_plan(
        Qwen2Config(**PRESETS[preset]), batch=a.batch, prompt_len=a.prompt_len,
        max_new_tokens=a.max_new_tokens, micro_batch=a.micro_batch, logits_chunk=a.logits_chunk,
        dtype_bytes=2, checkpointing=True, world=ranks, rollout_batch=a.rollout_batch,
        parallel="fsdp" if ranks > 1 else "single")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=[k for k in PRESETS if k != "tiny"], default=None,
                   help="one shape (default: docs/qwen.md's three rows)")
    p.add_argument("--ranks", type=int, default=1, help="GPUs (FSDP2 when > 1)")
    p.add_argument("--batch", type=int, default=512, help="answers per step, all ranks")
    p.add_argument("--prompt-len", type=int, default=256, help="prompt tokens")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="answer tokens")
    p.add_argument("--micro-batch", type=int, default=8, help="answers per forward/backward")
    p.add_argument("--logits-chunk", type=int, default=256, help="tokens per vocabulary slice")
    p.add_argument("--rollout-batch", type=int, default=0, help="answers sampled together per GPU (0: all)")
    a = p.parse_args()
    rows = [(a.preset, a.ranks, {})] if a.preset else DOC_ROWS
    for preset, ranks, settings in rows:
        s = argparse.Namespace(**{**vars(a), **settings})
        print(train_qwen.format_plan(plan(preset, ranks, s), (
            f"{preset} on {ranks} GPU(s){' (FSDP2)' if ranks > 1 else ''}: bf16 weights, fp32 "
            f"masters, batch {s.batch} x ({s.prompt_len} + {s.max_new_tokens}) tokens, "
            f"rollout batch {s.rollout_batch or s.batch // ranks} per GPU, micro-batch "
            f"{s.micro_batch}, checkpointing on")))
        print()


if __name__ == "__main__":
    main()
