"""train_qwen.py: RLVR with Exploratory Annealed Decoding on a Hugging Face causal LM.

    python train_qwen.py --model Qwen/Qwen2.5-Math-1.5B --train numina.jsonl \\
        --eval math500.jsonl,aime24.jsonl --out runs/qwen-ead          # one GPU
    torchrun --nproc_per_node 8 train_qwen.py ...same flags...          # N GPUs, FSDP2
    python train_qwen.py --model Qwen/Qwen2.5-Math-1.5B --memory-plan   # what fits, then exit

TIS-DAPO (or GRPO) with the EAD schedule (README eq. 1-7), verify.reward as the reward, bf16
weights with fp32 log-softmax and AdamW on fp32 master weights. Defaults are the paper's
Qwen2.5-Math-1.5B settings, except the batch, which fits one GPU. The algorithm is ead.py;
this file is plumbing: flags, data, memory, evaluation, checkpoints, ranks.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import random
import shutil
import signal
import sys
import traceback
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

import ead
import verify

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
PROBLEM_KEYS = ("problem", "question", "prompt")
ANSWER_KEYS = ("answer", "final_answer", "gold", "target")   # else a solution's \boxed{}


class CLIError(Exception):
    """Bad input: main() prints it as one line and exits with status 2."""


# =====================================================================================
# 1. Flags: every hyperparameter, declared once
# =====================================================================================


class _Parser(argparse.ArgumentParser):
    def error(self, message):                                # one line, status 2, in main()
        raise CLIError(message)


def parse_args(argv=None):
    p = _Parser(
        prog="train_qwen.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="RLVR with Exploratory Annealed Decoding: TIS-DAPO (or GRPO) on a causal LM "
                    "with transformers; one GPU, or N with torchrun (FSDP2 or DDP). Defaults "
                    "are the paper's Qwen2.5-Math-1.5B settings (README eq. 1-7), except the "
                    "batch, which fits one GPU. Decodings are named 'ead', 'tau=X' or 'greedy'.")
    g = p.add_argument_group("data and model")
    g.add_argument("--model", help="hub id or local folder (weights + tokenizer)")
    g.add_argument("--train", help="training JSONL (problem/question/prompt + answer/solution)")
    g.add_argument("--eval", help="evaluation JSONL files, comma-separated, same fields")
    g.add_argument("--out", default="runs/ead", help="run folder: metrics.jsonl + checkpoint/")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda")
    g.add_argument("--dtype", default="auto",
                   help="auto (bf16 on cuda, fp32 on cpu), bfloat16 or float32")
    g.add_argument("--grad-checkpointing", default="auto", choices=["auto", "on", "off"],
                   help="activation checkpointing in the update (auto: on with cuda)")
    g = p.add_argument_group("rollouts (README eq. 1-3)")
    g.add_argument("--schedule", default="ead", help="training decoding: ead or tau=X")
    g.add_argument("--tau-max", type=float, default=1.2, help="EAD start temperature")
    g.add_argument("--tau-min", type=float, default=0.1, help="EAD floor (0.8 for 7B models)")
    g.add_argument("--d0", type=float, default=500.0, help="EAD decay at step 0, in tokens")
    g.add_argument("--alpha", type=float, default=100.0, help="EAD growth of d per step, tokens")
    g.add_argument("--d-max", type=float, default=800000.0, help="EAD cap on d, tokens")
    g.add_argument("--c", type=int, default=10, help="EAD: first c tokens at tau = 1")
    g.add_argument("--batch", type=int, default=512, help="answers per step, all ranks (prompts x group)")
    g.add_argument("--group", type=int, default=8, help="answers per prompt (n)")
    g.add_argument("--max-new-tokens", type=int, default=1024, help="answer length cap")
    g.add_argument("--rollout-batch", type=int, default=0,
                   help="answers sampled together per rank (0: all at once); bounds the KV cache")
    g.add_argument("--kv-cache", default="growing", choices=["growing", "static", "dynamic"],
                   help="growing: preallocated, attention over the filled part; static: one "
                        "shape per decode step (for --compile); dynamic: transformers' default")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the decode step, CUDA graphs on cuda (needs --kv-cache static)")
    g = p.add_argument_group("update (README eq. 4-7)")
    g.add_argument("--algo", default="dapo", choices=["dapo", "grpo"],
                   help="dapo: clip 0.2/0.28, no KL; grpo: clip 0.2/0.2 + k3 KL to a frozen reference")
    g.add_argument("--lr", type=float, default=1e-6, help="AdamW learning rate")
    g.add_argument("--minibatches", type=int, default=4, help="optimiser updates per step")
    g.add_argument("--micro-batch", type=int, default=8, help="answers per forward/backward")
    g.add_argument("--logits-chunk", type=int, default=256,
                   help="answer tokens per vocabulary-projection slice in the scorer")
    g.add_argument("--tis-cap", type=float, default=2.0, help="truncated-IS cap C")
    g.add_argument("--no-tis", action="store_true", help="turn truncated IS off")
    g.add_argument("--tis-level", default="token", choices=["token", "sequence"],
                   help="TIS weight per token (released code) or per answer (paper's formula)")
    g.add_argument("--kl-coef", type=float, default=0.001, help="k3 KL coefficient (grpo only)")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max grad norm")
    g.add_argument("--steps", type=int, default=440, help="training steps")
    g.add_argument("--seed", type=int, default=0, help="seed of data order and sampling")
    g = p.add_argument_group("evaluation (README eq. 8)")
    g.add_argument("--eval-only", action="store_true", help="evaluate --model and exit")
    g.add_argument("--eval-every", type=int, default=20, help="evaluate every N steps (0: never)")
    g.add_argument("--eval-n", type=int, default=16, help="samples per evaluation problem")
    g.add_argument("--eval-k", default="1,4,16", help="k values of pass@k and worst@k (<= n)")
    g.add_argument("--eval-schedules", default="ead,tau=0.6,tau=1.0,greedy",
                   help="decodings compared at evaluation: ead, tau=X, greedy")
    g.add_argument("--eval-batch", type=int, default=256, help="answers decoded together in eval")
    g.add_argument("--eval-limit", type=int, default=0, help="use only the first N problems per file")
    g = p.add_argument_group("safety, memory and ranks")
    g.add_argument("--save-every", type=int, default=20, help="checkpoint every N steps")
    g.add_argument("--resume", action="store_true", help="continue from --out/checkpoint")
    g.add_argument("--memory-plan", action="store_true",
                   help="print the memory plan of these settings (needs only --model's config) and exit")
    g.add_argument("--plan-prompt-len", type=int, default=256, help="prompt tokens assumed by the plan")
    g.add_argument("--parallel", default="fsdp", choices=["fsdp", "ddp"],
                   help="under torchrun: FSDP2 shards weights, grads and AdamW; DDP replicates")
    g.add_argument("--dist-timeout", type=float, default=1800,
                   help="seconds a rank waits for the others before giving up")
    return p.parse_args(argv)


def check_args(a):
    """Every foreseeable bad input becomes one clear CLIError; nothing is changed."""
    if not a.model:
        raise CLIError("--model is required (a hub id or a local folder)")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError("--device cuda was requested but no CUDA device is available")
    if a.dtype not in ("auto", "bfloat16", "float32"):
        raise CLIError(f"--dtype {a.dtype!r}: use auto, bfloat16 or float32")
    if not a.memory_plan:
        if not a.eval_only and not a.train:
            raise CLIError("--train is required unless --eval-only or --memory-plan")
        if a.eval_only and not a.eval:
            raise CLIError("--eval-only needs --eval")
    for flag, value, low in (("--batch", a.batch, 1), ("--group", a.group, 2),
                             ("--max-new-tokens", a.max_new_tokens, 1), ("--minibatches", a.minibatches, 1),
                             ("--micro-batch", a.micro_batch, 1), ("--logits-chunk", a.logits_chunk, 1),
                             ("--steps", a.steps, 0), ("--eval-every", a.eval_every, 0),
                             ("--eval-n", a.eval_n, 1), ("--eval-batch", a.eval_batch, 1),
                             ("--eval-limit", a.eval_limit, 0), ("--save-every", a.save_every, 1),
                             ("--rollout-batch", a.rollout_batch, 0)):
        if value < low:
            why = " (advantages compare answers to one prompt)" if flag == "--group" else ""
            raise CLIError(f"{flag} must be >= {low}, got {value}{why}")
    for flag, value in (("--lr", a.lr), ("--tis-cap", a.tis_cap), ("--grad-clip", a.grad_clip),
                        ("--dist-timeout", a.dist_timeout)):
        if not value > 0:
            raise CLIError(f"{flag} must be > 0, got {value}")
    if a.compile and a.kv_cache != "static":
        raise CLIError("--compile needs --kv-cache static: a graph replays one shape")
    if a.kl_coef < 0:
        raise CLIError(f"--kl-coef must be >= 0, got {a.kl_coef}")
    world = int(os.environ.get("WORLD_SIZE", 1))             # torchrun's rank count
    if a.batch % (world * a.group):
        raise CLIError(f"--batch {a.batch} is not divisible by {world} rank(s) x --group {a.group}"
                       f": each rank owns whole groups")
    if a.batch % a.minibatches:
        raise CLIError(f"--batch {a.batch} is not divisible by --minibatches {a.minibatches}")
    ks = a.eval_k.split(",")
    if not all(k.strip().isdigit() and int(k) >= 1 for k in ks):
        raise CLIError(f"--eval-k {a.eval_k!r}: a comma list of positive integers")
    if max(map(int, ks)) > a.eval_n:
        raise CLIError(f"--eval-k {a.eval_k}: k cannot exceed --eval-n {a.eval_n}")
    for flag, names in (("--schedule", [a.schedule]), ("--eval-schedules", a.eval_schedules.split(","))):
        for name in names:
            try:
                ead.decoding(name, 1, **ead_knobs(a))
            except ValueError as e:
                raise CLIError(f"{flag}: {e}") from None
    if a.schedule == "greedy":
        raise CLIError("--schedule greedy: a group of identical answers has no advantage to learn from")
    if a.resume and not find_checkpoint(a.out):
        raise CLIError(f"--resume: no complete checkpoint in {a.out}/checkpoint")
    for path in [a.train] + (a.eval.split(",") if a.eval else []):
        if path is not None and not os.path.isfile(path):
            raise CLIError(f"{path}: no such file")


def ead_knobs(a) -> dict:
    return dict(tau_max=a.tau_max, tau_min=a.tau_min, d0=a.d0, alpha=a.alpha, d_max=a.d_max,
                c=a.c)


# =====================================================================================
# 2. Data and prompts
# =====================================================================================


def load_problems(path: str) -> tuple[list[dict], int]:
    """JSONL -> [{"problem", "answer"}], skipped-line count; "answer" is a list of golds.

    Fields: problem/question/prompt; answer/final_answer/gold/target (a string, a number, or
    a list whose every element counts as gold, like OlympiadBench's final_answer), else the
    last \\boxed{} of a MATH-style solution. A malformed line is an error with file:line.
    """
    problems, skipped = [], 0
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
            problem = next((rec[k] for k in PROBLEM_KEYS if isinstance(rec.get(k), str)), None)
            gold = next((rec[k] for k in ANSWER_KEYS if rec.get(k) not in (None, "", [])), None)
            if gold is None and isinstance(rec.get("solution"), str):
                gold = verify.extract_answer(rec["solution"])
            golds = [str(g).strip() for g in (gold if isinstance(gold, list) else [gold])
                     if isinstance(g, (str, int, float)) and str(g).strip()]
            if not problem or not golds:
                skipped += 1
                continue
            problems.append({"problem": problem, "answer": golds})
    if not problems:
        raise CLIError(f"{path}: no usable problems ({skipped} lines skipped: each needs one of "
                       f"{'/'.join(PROBLEM_KEYS)} and an answer or a solution with \\boxed{{}})")
    return problems, skipped


def prompt_of(tokenizer, problem: str) -> str:
    """The chat template with the paper's system prompt, or a plain template."""
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem}]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return f"{SYSTEM_PROMPT}\n\nQuestion: {problem}\nAnswer: Let's think step by step."


def encode_prompts(tokenizer, problems: list[str], device):
    seqs = [tokenizer(prompt_of(tokenizer, p), add_special_tokens=False)["input_ids"]
            for p in problems]
    return ead.left_pad(seqs, tokenizer.pad_token_id, device)


def completions(tokenizer, roll: ead.Rollout) -> list[str]:
    return tokenizer.batch_decode([t[m].tolist() for t, m in zip(roll.tokens, roll.mask)],
                                  skip_special_tokens=True)


# =====================================================================================
# 3. The model, its optimiser, its memory
# =====================================================================================


def load_model(path: str, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """(model, tokenizer) of a hub id, a model folder or a checkpoint of this runner; a path
    that names a folder must exist before it is taken for a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1   # not org/name
    if looks_local and not os.path.isdir(os.path.expanduser(path)):
        raise CLIError(f"--model {path}: no such folder (a hub id looks like 'Qwen/Qwen2.5-Math-1.5B')")
    local = os.path.expanduser(path)
    try:
        tok = AutoTokenizer.from_pretrained(local)
        model = (checkpoint_model(local, dtype) if os.path.isfile(os.path.join(local, STATE))
                 else AutoModelForCausalLM.from_pretrained(local, dtype=dtype))
    except (OSError, ValueError) as e:
        raise CLIError(f"--model {path}: cannot load ({str(e).splitlines()[0]})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device), tok


def fused_adamw(params, lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    # one kernel per step and no temporaries the size of a parameter (the plan counts none)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def master_adamw(model, lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """AdamW whose state and weights live in fp32 copies of a bf16 model's parameters.

    An update of ~lr = 1e-6 is far below bf16's resolution (~4e-3 relative) and would round
    away; the fp32 masters keep it. Gradients move into fp32 one tensor at a time just before
    the step and are freed right after it; the bf16 weights are refreshed from the masters.
    For an fp32 model this is plain AdamW.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if all(p.dtype == torch.float32 for p in params):
        return fused_adamw(params, lr, weight_decay)
    masters = [p.detach().float().clone() for p in params]
    opt = fused_adamw(masters, lr, weight_decay)

    def grads_in(optimizer, args, kwargs):
        for p, m in zip(params, masters):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None                                    # never both copies of a tensor

    def weights_out(optimizer, args, kwargs):
        with torch.no_grad():
            for p, m in zip(params, masters):
                p.copy_(m)
                m.grad = None                                # fp32 grads do not outlive the step

    opt.register_step_pre_hook(grads_in)
    opt.register_step_post_hook(weights_out)
    return opt


def enable_checkpointing(model):
    # transformers 5.2x renamed gradient_checkpointing_enable to activation_checkpointing_enable
    fn = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    fn()


def memory_plan(cfg, *, batch: int, prompt_len: int, max_new_tokens: int, micro_batch: int,
                logits_chunk: int, dtype_bytes: int, checkpointing: bool, world: int = 1,
                parallel: str = "single", rollout_batch: int = 0) -> dict:
    """Bytes per rank of every buffer a training step holds, and of each phase's peak.

    P parameters; D bytes per weight (2: bf16 weights with fp32 masters, 4: fp32). Resident:
    the weights, the fp32 masters (bf16 only) and AdamW's two fp32 moments. The rollout adds
    the KV cache and the sampler's (rows, vocabulary) fp32 buffers; the update adds the
    gradients (in the weights' dtype), the activations of one micro-batch, the scorer's
    vocabulary slices and the vocabulary matrix's gradient temporary; the optimiser step
    swaps the bf16 gradients for fp32 ones. FSDP divides what it shards by the rank count,
    and gathers the whole model (in D bytes) for the rollout and two layers at a time for
    the update. Checked against measured CPU peaks by bench/gpu_qwen.py (docs/qwen.md)."""
    H, V, L = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    kv_dim = kv * (getattr(cfg, "head_dim", None) or H // heads)
    inter = getattr(cfg, "intermediate_size", None) or 4 * H
    layer = 2 * H * H + 2 * H * kv_dim + 3 * H * inter + 2 * H + H + 2 * kv_dim   # with biases
    embed = V * H * (1 if getattr(cfg, "tie_word_embeddings", False) else 2)
    P, D = L * layer + embed + H, dtype_bytes
    fsdp = parallel == "fsdp"
    N = world if fsdp else 1                                 # what FSDP divides by
    S = prompt_len + max_new_tokens                          # sequence
    sampled = min(batch // world, rollout_batch or batch)    # answers sampled together per rank
    per_token_layer = (4 * inter + 12 * H) * D               # what one layer saves for backward
    t = {
        "weights": P * (4 if fsdp else D) / N,               # FSDP shards hold fp32 masters
        "fp32 masters": P * 4 if D == 2 and not fsdp else 0,
        "AdamW moments (fp32)": P * 8 / N,
        "gradients, accumulating": P * (4 if fsdp else D) / N,
        "gradients, fp32 at the step": P * 4 / N,
        "KV cache (rollout)": sampled * S * L * 2 * kv_dim * D,
        "sampler buffers (rollout)": sampled * V * 4 * 5,    # logits, log pi, log mu, exp, cdf
        "gathered weights (FSDP rollout)": P * D if fsdp else 0,
        "gathered layers (FSDP update)": (2 * layer + embed) * D if fsdp else 0,
        "activations (update)": micro_batch * S * (L * H * D + per_token_layer if checkpointing
                                                   else L * per_token_layer),
        "scorer vocabulary slices": logits_chunk * V * 4 * 2,
        # the scorer's backward adds every slice's share of the vocabulary matrix's gradient
        # into one (V, H) buffer, alive beside the activations until autograd adds it into
        # .grad; a tied input embedding's share is added into the same buffer
        "vocabulary gradient temporary": V * H * D,
    }
    resident = t["weights"] + t["fp32 masters"] + t["AdamW moments (fp32)"]
    phases = {
        "rollout": resident + t["KV cache (rollout)"] + t["sampler buffers (rollout)"]
                   + t["gathered weights (FSDP rollout)"],
        "update": resident + t["gradients, accumulating"] + t["activations (update)"]
                  + t["scorer vocabulary slices"] + t["vocabulary gradient temporary"]
                  + t["gathered layers (FSDP update)"],
        "optimizer step": resident + t["gradients, fp32 at the step"],
    }
    return {"parameters": P, "terms": t, "phases": phases, "peak": max(phases.values())}


def format_plan(plan: dict, header: str) -> str:
    lines = [header, f"  {plan['parameters'] / 1e9:.3f} B parameters"]
    lines += [f"  {k:34s} {v / 2**30:8.2f} GiB" for k, v in plan["terms"].items() if v]
    lines += [f"  peak of the {k:22s} {v / 2**30:8.2f} GiB" for k, v in plan["phases"].items()]
    lines.append(f"  {'peak':34s} {plan['peak'] / 2**30:8.2f} GiB")
    return "\n".join(lines)


# =====================================================================================
# 4. Ranks: nothing here runs without torchrun
# =====================================================================================


def setup_ranks(a) -> tuple[int, int, str]:
    """(rank, world, device). Under torchrun, one process per GPU (or CPU process, gloo)."""
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise CLIError(f"WORLD_SIZE is set but {', '.join(missing)} is not: launch with "
                       f"torchrun --nproc_per_node N train_qwen.py ...")
    if device.startswith("cuda"):
        device = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                            timeout=datetime.timedelta(seconds=a.dist_timeout))
    return dist.get_rank(), dist.get_world_size(), device


def wrap_ranks(model, a, world: int, device: str):
    """FSDP2: every decoder layer, then the root, sharded (bf16 compute, fp32 shards and
    reductions on GPU); DDP: replicated. A single process gets the model back unchanged."""
    if world == 1:
        return model
    if a.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model, device_ids=[device] if device.startswith("cuda") else None)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mesh = dist.device_mesh.init_device_mesh(device.split(":")[0], (world,))
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
          if device.startswith("cuda") else MixedPrecisionPolicy())
    blocks = next(m for m in model.get_decoder().children() if isinstance(m, torch.nn.ModuleList))
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def inner(model):
    """The transformers model under a DDP wrapper (FSDP2 keeps the class)."""
    return getattr(model, "module", model)


@contextlib.contextmanager
def gathered(model):
    """FSDP2: all-gather the weights once for a whole rollout, not once per decode step."""
    from torch.distributed.fsdp import FSDPModule
    if not isinstance(model, FSDPModule):
        yield inner(model)                                   # DDP's forward would sync buffers
        return
    model.set_reshard_after_forward(False)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.unshard()
    try:
        yield model
    finally:
        model.set_reshard_after_forward(True)
        model.set_reshard_after_forward(False, recurse=False)   # the root's own default:
        for m in model.modules():                               # the scorer reads its head
            if isinstance(m, FSDPModule):
                m.reshard()


def sample_in_chunks(model, input_ids, attention_mask, temperatures, *, chunk_size: int,
                     pad_token_id: int, **kwargs) -> ead.Rollout:
    """ead.sample over `chunk_size` answers at a time (0: all), so that the KV cache holds
    `chunk_size` sequences, not the whole batch; the chunks' rollouts are padded to one length."""
    parts = []
    answers = torch.arange(len(input_ids), device=input_ids.device)
    for r in answers.split(chunk_size or len(input_ids)):
        temps = temperatures[r] if temperatures.dim() == 2 else temperatures
        parts.append(ead.sample(model, input_ids[r], attention_mask[r], temps,
                                pad_token_id=pad_token_id, **kwargs))
    T = max(p.tokens.shape[1] for p in parts)
    return ead.Rollout(*(torch.cat([F.pad(x, (0, T - x.shape[1]), value=fill) for x in xs])
                         for xs, fill in zip(zip(*parts), (pad_token_id, False, 0.0, 0.0, 0.0))))


def step_seed(seed: int, step: int, rank: int, salt: int = 0) -> int:
    """The sampler is reseeded every step from (seed, step, rank): a resumed run, on any
    number of ranks, draws what an uninterrupted run on as many ranks would have drawn."""
    return ((seed * 1_000_003 + step) * 1_009 + rank) * 2 + salt


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


SUMMED = ("rollout/tokens", "loss/tokens", "perf/rollout_tok_s", "perf/update_tok_s")  # counts
TOKEN_MEANS = ("loss/clip_frac_low", "loss/clip_frac_high", "loss/tis_trunc_frac",  # over
               "loss/tis_weight_mean", "loss/mu_gap", "loss/ratio_mean", "loss/kl")  # loss/tokens
HIGHEST = ("perf/peak_mem_gb",)                                 # the rank nearest its limit


def reduce_stats(stats: dict, world: int, device, weights: dict | None = None) -> dict:
    """One step's stats over all ranks: counts and throughputs summed, peak memory the
    highest, a mean over tokens weighted by each rank's count of them (`weights`: key -> this
    rank's count), any other mean averaged over the ranks that measured it (every rank holds
    as many answers). None where no rank measured a value."""
    if world == 1:
        return stats
    keys, weights = sorted(stats), weights or {}
    w = [0.0 if stats[k] is None else float(weights.get(k, 1.0)) for k in keys]
    sums = torch.tensor([[float(stats[k] or 0) * wk, wk] for k, wk in zip(keys, w)],
                        dtype=torch.float64, device=device)
    highest = torch.tensor([float(stats[k] or 0) for k in HIGHEST if k in stats],
                           dtype=torch.float64, device=device)
    dist.all_reduce(sums)
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    high = dict(zip([k for k in HIGHEST if k in stats], highest.tolist()))
    return {k: None if n == 0 else high[k] if k in high else s if k in SUMMED else s / n
            for k, (s, n) in zip(keys, sums.tolist())}


def token_weights(stats: dict, mask: torch.Tensor) -> dict:
    """What each token mean of a step's stats is over, on this rank: the loss/ means over the
    tokens the update saw (loss/tokens), each entropy/<lo>-<hi> (or <lo>+) over the answer
    tokens at those positions."""
    weights = {k: float(stats.get("loss/tokens") or 0.0) for k in TOKEN_MEANS if k in stats}
    for k in stats:
        if k.startswith("entropy/"):
            lo, _, hi = k.removeprefix("entropy/").rstrip("+").partition("-")
            weights[k] = float(mask[:, int(lo):int(hi) + 1 if hi else None].sum())
    return weights


# =====================================================================================
# 5. Evaluation (README eq. 8): every file, every decoding, split across ranks
# =====================================================================================


@torch.no_grad()
def evaluate(model, tok, eval_sets: dict, a, step: int, seed: int, eos, vocab, device,
             rank: int = 0, world: int = 1, sample_kwargs=None) -> dict:
    """eval/<file>/<decoding>/<metric> for each file, and eval/all/... weighted by problems.

    Rank r decodes problems r, r + world, ...; the per-problem metrics are summed over ranks
    before they are divided by the problem count, so N ranks report exactly what one would.
    """
    model.eval()
    names = a.eval_schedules.split(",")
    ks = [int(k) for k in a.eval_k.split(",")]
    temps = {name: ead.decoding(name, a.max_new_tokens, step, **ead_knobs(a)) for name in names}
    jobs = [(f, i, name) for f, probs in eval_sets.items() for i in range(rank, len(probs), world)
            for name in names for _ in range(1 if name == "greedy" else a.eval_n)]
    gen = torch.Generator(device=device).manual_seed(step_seed(seed, step, rank, 1))
    verdicts = {}                                            # (file, problem, decoding) -> [(ok, pred)]
    bar = tqdm(range(0, len(jobs), a.eval_batch), desc="eval", leave=False, disable=rank > 0)
    for s in bar:
        chunk = jobs[s:s + a.eval_batch]
        ids, am = encode_prompts(tok, [eval_sets[f][i]["problem"] for f, i, _ in chunk], device)
        roll = ead.sample(model, ids, am, torch.stack([temps[n] for _, _, n in chunk]),
                          eos_token_id=eos, pad_token_id=tok.pad_token_id, generator=gen,
                          vocab_size=vocab, **(sample_kwargs or {}))
        for (f, i, name), text in zip(chunk, completions(tok, roll)):
            pred = verify.extract_answer(text)
            ok = pred is not None and verify.is_equiv(pred, eval_sets[f][i]["answer"])
            verdicts.setdefault((f, i, name), []).append((ok, pred))
    sums = {}                                                # key -> [sum over problems, count]
    for (f, i, name), outs in verdicts.items():
        preds, votes = [p for _, p in outs], []              # "1/2" and "0.5" are one vote
        for pred in preds:
            votes.append(None if pred is None else next(
                (votes[j] for j, q in enumerate(preds[:len(votes)])
                 if q is not None and verify.is_equiv(pred, q)), len(votes)))
        per = ead.per_problem_metrics([[o for o, _ in outs]], ks, [votes])
        for metric, vals in per.items():
            for scope in (f, "all"):
                acc = sums.setdefault(f"eval/{scope}/{name}/{metric}", [0.0, 0])
                acc[0] += vals[0]
                acc[1] += 1
    keys = sorted({f"eval/{scope}/{name}/{m}" for scope in [*eval_sets, "all"] for name in names
                   for m in (["acc"] if name == "greedy" else
                             [f"mean@{a.eval_n}", f"maj@{a.eval_n}"]
                             + [f"{w}@{k}" for k in ks for w in ("pass", "worst")])})
    totals = torch.tensor([sums.get(k, [0.0, 0]) for k in keys], dtype=torch.float64,
                          device=device)
    if world > 1:
        dist.all_reduce(totals)
    return {k: s / n for k, (s, n) in zip(keys, totals.tolist()) if n}


# =====================================================================================
# 6. Checkpoints: each rank writes its own shards; any number of ranks reads them
# =====================================================================================

STATE = "trainer.json"                 # written last: a checkpoint without it is incomplete


def find_checkpoint(out_dir: str) -> str | None:
    """out_dir/checkpoint, or the previous one if a crash came between save_checkpoint's two
    renames; None if there is no complete checkpoint."""
    for name in ("checkpoint", "checkpoint.old"):
        if os.path.isfile(os.path.join(out_dir, name, STATE)):
            return os.path.join(out_dir, name)
    return None


@contextlib.contextmanager
def one_process_intended():
    """torch.distributed.checkpoint without a process group warns that it assumes one
    process: here that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled, unavailable or "
                                "uninitialized", UserWarning)
        yield


def trainable_names(model) -> list[str]:
    return [n for n, p in inner(model).named_parameters() if p.requires_grad]


def trainer_state(model, opt, fsdp: bool) -> dict:
    """{"params": fp32 weights, "adam": AdamW's state}, by parameter name, as this rank holds
    them: its shards under FSDP (DTensors, never gathered), else whole tensors. The optimizer
    steps the fp32 masters, so they (not a bf16 model's weights) are what is saved."""
    names = trainable_names(model)
    if fsdp:
        from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                             get_optimizer_state_dict)
        msd, osd = get_model_state_dict(model), get_optimizer_state_dict(model, opt)
        return {"params": {n: msd[n] for n in names}, "adam": {n: osd["state"][n] for n in names}}
    masters = opt.param_groups[0]["params"]
    return {"params": dict(zip(names, masters)),
            "adam": {n: opt.state[m] for n, m in zip(names, masters)}}


def save_checkpoint(out_dir, model, tok, opt, state: dict, rank: int, fsdp: bool) -> str:
    """Write out_dir/checkpoint so that a crash at any point leaves the previous one whole:
    every rank writes its shards into checkpoint.tmp (torch.distributed.checkpoint), rank 0
    adds the config, the tokenizer and, last, the trainer state (step, data order and
    position), then renames. The ranks share the file system."""
    import torch.distributed.checkpoint as dcp
    final, tmp, old = (os.path.join(out_dir, n) for n in ("checkpoint", "checkpoint.tmp",
                                                           "checkpoint.old"))
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    if dist.is_initialized():
        dist.barrier()                                      # no rank writes into the old tmp
    with one_process_intended():
        dcp.save(trainer_state(model, opt, fsdp), checkpoint_id=os.path.join(tmp, "dcp"))
    if rank == 0:
        inner(model).config.save_pretrained(tmp)
        inner(model).generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_state(os.path.join(tmp, STATE), state)
        if os.path.exists(final):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    if dist.is_initialized():
        dist.barrier()
    return final


def checkpoint_model(ckpt: str, dtype: torch.dtype):
    """A checkpoint's model in one process, no process group: its config, then its fp32
    weights (the masters), in `dtype`."""
    import torch.distributed.checkpoint as dcp
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(ckpt), dtype=torch.float32)
    model.generation_config = GenerationConfig.from_pretrained(ckpt)
    with torch.no_grad(), one_process_intended():
        dcp.load({"params": dict(model.named_parameters())},
                 checkpoint_id=os.path.join(ckpt, "dcp"))
    return model.to(dtype).eval()


def write_state(path: str, state: dict):
    with open(path, "w") as f:
        json.dump(state, f)


def load_checkpoint(ckpt: str, model, opt, fsdp: bool) -> dict:
    """Load a checkpoint saved on any number of ranks into this rank's model and optimizer
    (torch.distributed.checkpoint reshards); returns the trainer state."""
    import torch.distributed.checkpoint as dcp
    if fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions, get_optimizer_state_dict, set_model_state_dict,
            set_optimizer_state_dict)
        groups = get_optimizer_state_dict(model, opt)["param_groups"]   # creates AdamW's state
        saved = trainer_state(model, opt, fsdp)
        dcp.load(saved, checkpoint_id=os.path.join(ckpt, "dcp"))
        set_model_state_dict(model, saved["params"], options=StateDictOptions(strict=False))
        set_optimizer_state_dict(model, opt, {"state": saved["adam"], "param_groups": groups})
    else:
        masters = opt.param_groups[0]["params"]
        for m in masters:                                  # the state AdamW creates at a step
            opt.state[m] = {"step": torch.zeros((), device=m.device),
                            "exp_avg": torch.zeros_like(m), "exp_avg_sq": torch.zeros_like(m)}
        with torch.no_grad(), one_process_intended():
            dcp.load(trainer_state(model, opt, fsdp), checkpoint_id=os.path.join(ckpt, "dcp"))
            params = [p for p in inner(model).parameters() if p.requires_grad]
            for p, m in zip(params, masters):
                if p is not m:
                    p.copy_(m)                             # bf16 weights from the masters
    with open(os.path.join(ckpt, STATE)) as f:
        return json.load(f)


def resume_log(path: str, step: int) -> bool:
    """Drop log lines written after the checkpoint (that work is redone); True if the
    checkpoint's own step was already evaluated."""
    if not os.path.exists(path):
        return False
    recs = [json.loads(line) for line in open(path) if line.strip()]
    keep = [r for r in recs if r.get("step", 0) <= step]
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)
    os.replace(path + ".tmp", path)
    return any(r["step"] == step and any(k.startswith("eval/") for k in r) for r in keep)


# =====================================================================================
# 7. The run
# =====================================================================================


def main(argv=None) -> int:
    code = None
    try:
        code = launch(argv)
        return code
    except BaseException as e:
        traceback.clear_frames(e.__traceback__)            # their locals hold the wrapper
        raise
    finally:
        leave_ranks(finished=code in (0, 130))


def launch(argv) -> int:
    """The run of main(): bad input is one line and status 2, a rank that loses the others
    exits with 1."""
    rank, world = int(os.environ.get("RANK", 0)), 1
    try:
        a = parse_args(argv)
        check_args(a)
        if a.memory_plan:
            return print_memory_plan(a)
        rank, world, device = setup_ranks(a)
        dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                 "bfloat16": torch.bfloat16, "float32": torch.float32}[a.dtype]
        fsdp = world > 1 and a.parallel == "fsdp"
        train, skipped = load_problems(a.train) if a.train else ([], 0)
        if a.train and rank == 0:
            print(f"{a.train}: {len(train)} problems, {skipped} lines skipped")
        eval_sets = {}
        for path in a.eval.split(",") if a.eval else []:
            problems, skipped = load_problems(path)
            problems = problems[:a.eval_limit] if a.eval_limit else problems
            name = os.path.splitext(os.path.basename(path))[0]
            if name in eval_sets:
                raise CLIError(f"--eval: two files are named {name!r}")
            eval_sets[name] = problems
            if rank == 0:
                print(f"{path}: {len(problems)} problems used, {skipped} lines skipped")
        # FSDP keeps fp32 shards (the masters) and computes in bf16 through its policy;
        # --resume loads the checkpoint's weights over these
        model, tok = load_model(a.model, torch.float32 if fsdp else dtype, device)
        if rank == 0 and not a.eval_only:
            print_memory_plan(a, model.config)
    except (CLIError, ValueError) as e:
        if rank == 0:
            print(f"train_qwen.py: error: {e}", file=sys.stderr)
        return 2
    try:
        return run(a, model, tok, train, eval_sets, rank, world, device, dtype, fsdp)
    except RuntimeError as e:                                # DistBackendError among them
        if world == 1 or "timed out" not in str(e).lower() and "connection" not in str(e).lower():
            raise
        print(f"train_qwen.py: rank {rank}: lost contact with the other ranks "
              f"({str(e).splitlines()[0]}); exiting", file=sys.stderr)
        return 1


def leave_ranks(finished: bool):
    """The end of a rank, once nothing holds its DDP/FSDP wrapper: wait for the others (no
    collective is then in flight), collect the wrapper's reference cycles, destroy the
    process group, in that order. DDP's C++ reducer owns the group, and a reducer outliving
    destroy_process_group would end the group when it is freed, joining gloo's threads with
    the GIL held, while one of them may need the GIL to free a finished collective that a
    backward started (its saved thread-local state holds a Python object): a deadlock. Freed
    by destroy_process_group, the group lets go of the GIL while its threads finish."""
    if not dist.is_initialized():
        return
    if finished:
        dist.barrier()
    gc.collect()
    dist.destroy_process_group()


def print_memory_plan(a, cfg=None) -> int:
    """The plan of these settings: with --memory-plan from the config alone, else at start."""
    if cfg is None:
        from transformers import AutoConfig
        try:
            cfg = AutoConfig.from_pretrained(a.model)
        except (OSError, ValueError) as e:
            raise CLIError(f"--model {a.model}: cannot read its config "
                           f"({str(e).splitlines()[0]})") from None
    world = int(os.environ.get("WORLD_SIZE", 1))
    cuda = a.device.startswith("cuda") or (a.device == "auto" and torch.cuda.is_available())
    dtype_bytes = 2 if a.dtype == "bfloat16" or (a.dtype == "auto" and cuda) else 4
    ckpt = a.grad_checkpointing == "on" or (a.grad_checkpointing == "auto" and cuda)
    plan = memory_plan(cfg, batch=a.batch, prompt_len=a.plan_prompt_len,
                       max_new_tokens=a.max_new_tokens, micro_batch=a.micro_batch,
                       logits_chunk=a.logits_chunk, dtype_bytes=dtype_bytes,
                       checkpointing=ckpt, world=world, rollout_batch=a.rollout_batch,
                       parallel=a.parallel if world > 1 else "single")
    print(format_plan(plan, f"memory plan per rank: {world} rank(s){' ' + a.parallel if world > 1 else ''}"
                            f", batch {a.batch}, prompt {a.plan_prompt_len} + {a.max_new_tokens} "
                            f"new tokens, rollout batch {a.rollout_batch or 'all'}, micro-batch "
                            f"{a.micro_batch}, {dtype_bytes * 8}-bit "
                            f"weights, checkpointing {'on' if ckpt else 'off'}"))
    return 0


def run(a, model, tok, train, eval_sets, rank, world, device, dtype, fsdp) -> int:
    os.makedirs(a.out, exist_ok=True)
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    clip_high = 0.28 if a.algo == "dapo" else 0.2            # eq. 5: DAPO's clip-higher
    kl_coef = a.kl_coef if a.algo == "grpo" else 0.0         # eq. 7: GRPO's KL term only
    vocab = len(tok) if len(tok) < model.config.vocab_size else None   # padded lm_head rows
    gen_eos = model.generation_config.eos_token_id          # Qwen chat models end on <|im_end|>
    gen_eos = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
    eos = sorted({t for t in [tok.eos_token_id, *gen_eos] if t is not None})
    decode_step = None
    if a.compile:                                            # fixed shapes: one graph, replayed
        decode_step = torch.compile(model, mode="reduce-overhead" if device.startswith("cuda")
                                    else "default", dynamic=False)
    sample_kwargs = dict(cache=a.kv_cache, decode_step=decode_step)
    log_path = os.path.join(a.out, "metrics.jsonl")

    def log(rec):
        if rank == 0:
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def run_eval(step):
        with gathered(model) as m:
            return evaluate(m, tok, eval_sets, a, step, a.seed, eos, vocab, device, rank, world,
                            sample_kwargs)

    if a.eval_only:
        res = run_eval(0)
        log({"step": 0, "eval_only": True, **res})
        if rank == 0:
            print(json.dumps(res, indent=1))
        return 0

    if a.grad_checkpointing == "on" or (a.grad_checkpointing == "auto" and device.startswith("cuda")):
        enable_checkpointing(model)
    ref = None
    if kl_coef:
        ref = load_model(a.model, dtype, device)[0].eval().requires_grad_(False)
    model = wrap_ranks(model, a, world, device)
    if ref is not None and fsdp:
        ref = wrap_ranks(ref, a, world, device)              # sharded too: it only runs forwards
    opt = fused_adamw(model.parameters(), a.lr) if fsdp else master_adamw(inner(model), a.lr)
    step, order, pos, evaluated = 0, list(range(len(train))), 0, False
    random.Random(a.seed).shuffle(order)
    if a.resume:
        st = load_checkpoint(find_checkpoint(a.out), model, opt, fsdp)
        step, order, pos = st["step"], st["order"], st["pos"]
        evaluated = resume_log(log_path, step) if rank == 0 else False
        if rank == 0:
            print(f"resumed at step {step}")
    n_prompts = a.batch // a.group                           # all ranks
    mine = slice(rank * n_prompts // world, (rank + 1) * n_prompts // world)

    def checkpoint():
        save_checkpoint(a.out, model, tok, opt, {"step": step, "order": order, "pos": pos,
                                                 "world": world}, rank, fsdp)

    def sample_fn(policy, *args, **kwargs):
        with gathered(policy) as m:
            return sample_in_chunks(m, *args, chunk_size=a.rollout_batch, **kwargs, **sample_kwargs)

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
    bar = tqdm(total=a.steps, initial=step, desc="RL steps", disable=rank > 0)
    try:
        while step < a.steps and not stop:
            if a.eval_every and eval_sets and step % a.eval_every == 0 and not evaluated:
                log({"step": step, **run_eval(step)})
            evaluated = False
            batch = []
            while len(batch) < n_prompts:                  # epochs reshuffle deterministically
                if pos == len(order):
                    random.Random(a.seed + step).shuffle(order)
                    pos = 0
                batch.append(train[order[pos]])
                pos += 1
            batch = batch[mine]                            # this rank's whole groups
            ids, am = encode_prompts(tok, [p["problem"] for p in batch], device)
            golds = [p["answer"] for p in batch for _ in range(a.group)]

            def reward_fn(roll, golds=golds):
                return torch.tensor([verify.reward(t, g) for t, g in
                                     zip(completions(tok, roll), golds)])

            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            gen = torch.Generator(device=device).manual_seed(step_seed(a.seed, step, rank))
            stats, roll, _ = ead.rl_step(
                model, opt, ids, am, reward_fn,
                ead.decoding(a.schedule, a.max_new_tokens, step, **ead_knobs(a)),
                group_size=a.group, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                generator=gen, vocab_size=vocab, num_minibatches=a.minibatches,
                micro_batch=a.micro_batch, clip_high=clip_high,
                tis_cap=None if a.no_tis else a.tis_cap, kl_coef=kl_coef, ref_model=ref,
                max_grad_norm=a.grad_clip, tis_level=a.tis_level,
                mean_over_ranks=mean_over_ranks if world > 1 else None, sample_fn=sample_fn,
                chunk_tokens=a.logits_chunk)
            weights = token_weights(stats, roll.mask)
            del roll                                       # the KV cache went with the rollout
            stats["perf/peak_mem_gb"] = (torch.cuda.max_memory_allocated() / 2**30
                                         if device.startswith("cuda") else None)
            stats = reduce_stats(stats, world, device, weights)
            step += 1
            log({"step": step, **stats})
            bar.update(1)
            bar.set_postfix(reward=f"{stats['rollout/reward']:.3f}", updates=stats["loss/updates"],
                            rollout_tok_s=f"{stats['perf/rollout_tok_s']:.0f}")
            if step % a.save_every == 0 or step == a.steps or stop:
                checkpoint()
        if stop:
            if rank == 0:
                print(f"interrupted: checkpoint saved at step {step}; --resume continues",
                      file=sys.stderr)
            return 130
        if a.eval_every and eval_sets and step % a.eval_every == 0 and not evaluated:
            log({"step": step, **run_eval(step)})
    finally:
        signal.signal(signal.SIGINT, old_handler)
        bar.close()
    return 0


if __name__ == "__main__":
    code = main()
    if "WORLD_SIZE" in os.environ:
        # a rank ends without the interpreter's shutdown: FSDP2's group outlives
        # destroy_process_group (DTensor's caches keep its device mesh), and the shutdown
        # kills any gloo thread that then asks for the GIL, which aborts the process
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
