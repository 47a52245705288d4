"""Why the toy's RL collapses above a learning rate: the first RL steps, taken apart.

    python bench/tiny_collapse.py          # about 3 minutes on 2 cores (the warm start cached)

From the cached warm start of `python train_tiny.py` (trained here if missing), a few RL steps
with EAD at several learning rates, then greedy decoding of 512 validation problems, counted
three ways: the first step's operation is the target's (the approach), its written result is
right (the arithmetic), the answer is paid (both). Also with only the positive or only the
negative advantages kept (a probe, not a training recipe), and, without any RL, after adding
Gaussian noise of a given size to every weight. docs/toy.md reads the table.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ead  # noqa: E402
import tiny_lab  # noqa: E402
import train_tiny as tt  # noqa: E402


@torch.no_grad()
def greedy_counts(model, problems, length: int) -> tuple[int, int, int]:
    """(right operation, right arithmetic, paid) of greedy answers, first step."""
    model.eval()
    ids, am = ead.left_pad([tt.prompt_ids(*p) for p in problems], tt.PAD)
    roll = ead.sample(model, ids, am, ead.decoding("greedy", length), eos_token_id=tt.EOS,
                      pad_token_id=tt.PAD)
    op = arith = 0
    for b, (numbers, target) in enumerate(problems):
        text = tt.decode(roll.tokens[b, :int(roll.mask[b].sum())])
        m = tt._STEP.fullmatch(text.split(",")[0])
        op += bool(m) and m[2] == tt.solution_op(numbers, target)
        arith += bool(m) and m[4] is not None and tt.apply(int(m[1]), m[2], int(m[3])) == int(m[4])
    return op, arith, int(tt.rewards_of(roll, problems).sum())


def main():
    p = tiny_lab.Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lrs", type=tiny_lab.number_list(float), default=[3e-4, 1e-3], help="learning rates")
    p.add_argument("--steps", type=tiny_lab.number_list(int), default=[3, 6], help="RL steps before counting")
    p.add_argument("--noise", type=tiny_lab.number_list(float), default=[1e-3, 3e-3, 1e-2],
                   help="weight-noise sizes (std)")
    p.add_argument("--cache", default=os.path.join(".cache", "train_tiny"), help="warm-start cache")
    a = p.parse_args()
    torch.set_num_threads(2)
    c = {**vars(tt.parse_args(["--cache", a.cache])), "cache": a.cache}
    sets = tt.held_out_sets(c["eval_problems"], c["big"], c["small"])
    held_out = frozenset((tuple(n), t) for s in sets.values() for n, t in s)
    warm = torch.load(tt.cached_warm_start(c, held_out))
    problems = sets["val"][:512]
    knobs = tt.ead_knobs(c)

    def fresh():
        model = tt.build_model(c["hidden"], c["layers"], c["heads"])
        model.load_state_dict(warm)
        return model

    print(f"{len(problems)} val problems, greedy; counts of the first step")
    print("| weights | right operation | right arithmetic | paid |\n|---|---|---|---|")
    row = lambda name, m: print(f"| {name} | " + " | ".join(f"{x / len(problems):.3f}"  # noqa: E731
                                                          for x in greedy_counts(m, problems, c["max_new_tokens"])) + " |")
    row("warm start", fresh())
    group_advantages = ead.group_advantages
    seed = tt.run_seeds("val", 1)[0]
    for keep in ("both", "positive", "negative"):
        for lr in a.lrs:
            for steps in a.steps:
                if keep != "both" and (lr, steps) != (max(a.lrs), max(a.steps)):
                    continue
                if keep != "both":   # the probe: one sign of the advantages only
                    ead.group_advantages = lambda r, n, eps=1e-6: group_advantages(r, n, eps).clamp(
                        **({"min": 0.0} if keep == "positive" else {"max": 0.0}))
                model = fresh()
                try:
                    tt.train(model, "ead", seed, tt.training_stream(held_out, c["big"], c["small"]),
                             steps=steps, prompts=c["prompts"], group=c["group"], lr=lr,
                             minibatches=c["minibatches"], max_grad_norm=c["max_grad_norm"],
                             tis_cap=c["tis_cap"], ead_knobs=knobs, length=c["max_new_tokens"],
                             curve={"steps": (), "problems": problems, "n": 2, "batch": 64},
                             log=lambda rec: None, tick=lambda rows: None)
                finally:
                    ead.group_advantages = group_advantages
                row(f"{steps} RL step{'s' * (steps > 1)}, lr {lr:g}" + ("" if keep == "both" else
                                                      f", {keep} advantages only"), model)
    for std in a.noise:
        model = fresh()
        torch.manual_seed(0)
        with torch.no_grad():
            for w in model.parameters():
                w.add_(torch.randn_like(w) * std)
        row(f"no RL, weight noise {std:g}", model)


if __name__ == "__main__":
    main()
