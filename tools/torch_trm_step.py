#!/usr/bin/env python3
"""Times the official TRM code's CPU training step and prints the ratio against `recur bench step`.

The official model, loss head and puzzle-embedding optimizer are imported from a checkout of
SamsungSAILMontreal/TinyRecursiveModels that you point this script at (--trm-repo); none of its code
is copied here. The config is the paper's TRM-Att Sudoku model (recur's `trm-att-sudoku` preset) in
fp32: hidden 512, 8 heads, expansion 4, H_cycles 3, L_cycles 6, L_layers 2, puzzle_emb_ndim 512,
puzzle_emb_len 16, RoPE, halt_max_steps 16, seq_len 81, vocab 11, one puzzle identifier.

One official step is what pretrain.py's train_batch does for one batch, in eager mode on the CPU:
`carry, loss, ... = ACTLossHead(model)(carry=carry, batch=batch, return_keys=[])` (one ACT segment),
`((1 / batch) * loss).backward()`, then the sparse puzzle-embedding SignSGD step and the AdamATan2
step, each followed by zero_grad. The official AdamATan2 (`adam-atan2` package) is a CUDA kernel;
here the pure-PyTorch `adam-atan2-pytorch` AdamAtan2 with a = b = 1 stands in (the same update
rule), or torch.optim.AdamW (same number of passes over the parameters) when that package is
missing; the output says which. "fwd+bwd" is the time until backward returns; "step" adds both
optimizers. Median over --steps timed steps after --warmup untimed ones.

    /work/torchenv/bin/python tools/torch_trm_step.py --trm-repo ../trm-official --batch 8 32

Then, unless --no-recur, it runs `recur bench step --preset trm-att-sudoku --batch B --device cpu
--set forward_dtype=float32 --warmup W --steps S --threads T --json` (and RAYON_NUM_THREADS=T) and
prints official step / recur step (> 1: recur is faster). docs/cpu-speed.md has the setup and the
measured numbers. Only the standard library is needed to import this file (torch is imported when
the official code is timed), so tools/test_torch_trm_step.py runs without torch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# The official files this script imports; a checkout without them is refused up front.
OFFICIAL_FILES = [
    "models/recursive_reasoning/trm.py",
    "models/losses.py",
    "models/layers.py",
    "models/sparse_embedding.py",
    "models/common.py",
]

# The official config/arch/trm.yaml with the Sudoku data's sizes, in fp32 (recur's trm-att-sudoku
# preset with --set forward_dtype=float32). batch_size is filled in per run.
MODEL_CONFIG = dict(
    seq_len=81,
    vocab_size=11,
    num_puzzle_identifiers=1,
    puzzle_emb_ndim=512,
    puzzle_emb_len=16,
    H_cycles=3,
    L_cycles=6,
    H_layers=0,
    L_layers=2,
    hidden_size=512,
    expansion=4,
    num_heads=8,
    pos_encodings="rope",
    halt_max_steps=16,
    halt_exploration_prob=0.1,
    forward_dtype="float32",
    mlp_t=False,
    no_ACT_continue=True,
    causal=False,  # pretrain.py passes it; the config ignores it
)
LOSS_TYPE = "stablemax_cross_entropy"  # config/arch/trm.yaml

# The README's Sudoku run: lr 1e-4, weight decay 1.0 for both optimizers, betas (0.9, 0.95).
# The lr is what the warmup schedule would set; its value does not change the cost.
LR = 1e-4
PUZZLE_EMB_LR = 1e-4
WEIGHT_DECAY = 1.0
PUZZLE_EMB_WEIGHT_DECAY = 1.0
BETAS = (0.9, 0.95)

TORCH_PIP = "pip install torch pydantic einops adam-atan2-pytorch"
RECUR_BUILD = "cargo build --release"


class ToolError(Exception):
    """A user-facing error: printed as one message, exit status 2."""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trm-repo", required=True, help="checkout of SamsungSAILMontreal/TinyRecursiveModels")
    p.add_argument("--batch", type=int, nargs="+", default=[8], help="batch sizes (default 8)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads and RAYON_NUM_THREADS")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recur", default="target/release/recur", help="the recur binary")
    p.add_argument("--no-recur", action="store_true", help="time the official code only")
    p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = p.parse_args(argv)
    for name in ("threads", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    if any(b < 1 for b in args.batch):
        p.error("--batch sizes must be at least 1")
    return args


def check_trm_repo(path):
    """Returns the checkout's absolute path, or raises ToolError naming what is missing."""
    if not os.path.isdir(path):
        raise ToolError(
            f"--trm-repo {path}: no such directory; clone the official code first "
            "(docs/cpu-speed.md: git clone ... TinyRecursiveModels && git checkout e7b6871)"
        )
    missing = [f for f in OFFICIAL_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise ToolError(
            f"--trm-repo {path} is not a TinyRecursiveModels checkout: missing {', '.join(missing)}"
        )
    return os.path.abspath(path)


def check_recur(binary):
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise ToolError(f"recur binary {binary} not found: run `{RECUR_BUILD}` (or pass --recur PATH, or --no-recur)")
    return binary


def busy_cpu_s():
    """Seconds of CPU time all processes have used (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    t = os.times()
    return t.user + t.system


def other_cores(busy0, own0, busy1, own1, wall):
    """Mean number of cores that other processes kept busy over wall seconds (None if unknown)."""
    if busy0 is None or busy1 is None or wall <= 0:
        return None
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall)


def git_commit(path):
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ToolError(f"PyTorch is not importable ({e}); install the CPU build: {TORCH_PIP}") from e
    return torch


def import_official(repo):
    """The official classes, imported from the checkout (its root goes first on sys.path, as
    pretrain.py runs from there)."""
    if repo not in sys.path:
        sys.path.insert(0, repo)
    try:
        from models.losses import ACTLossHead
        from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1
        from models.sparse_embedding import CastedSparseEmbeddingSignSGD_Distributed
    except ImportError as e:
        raise ToolError(f"importing the official model from {repo} failed ({e}); its imports need: {TORCH_PIP}") from e
    return TinyRecursiveReasoningModel_ACTV1, ACTLossHead, CastedSparseEmbeddingSignSGD_Distributed


def adam_atan2(torch, params):
    """The main optimizer and its name: AdamAtan2 from adam-atan2-pytorch with a = b = 1 (the
    official package's rule), else AdamW as a stand-in of the same cost."""
    try:
        from adam_atan2_pytorch import AdamAtan2
    except ImportError:
        return (
            torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS, foreach=False),
            "torch.optim.AdamW (stand-in: adam-atan2-pytorch not installed)",
        )
    return (
        AdamAtan2(params, lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS, a=1.0, b=1.0),
        "adam_atan2_pytorch.AdamAtan2(a=1, b=1)",
    )


def time_official(repo, batch, threads, warmup, steps, seed):
    """Median seconds of the official fwd+bwd and of the whole step at one batch size."""
    torch = import_torch()
    torch.set_num_threads(threads)
    model_cls, loss_head_cls, sign_sgd_cls = import_official(repo)
    torch.manual_seed(seed)

    with torch.device("cpu"):
        model = loss_head_cls(model_cls(dict(MODEL_CONFIG, batch_size=batch)), loss_type=LOSS_TYPE)
    model.train()
    # pretrain.py's optimizers: SignSGD on the puzzle-embedding buffers, AdamATan2 on the parameters.
    sign_sgd = sign_sgd_cls(model.model.puzzle_emb.buffers(), lr=PUZZLE_EMB_LR, weight_decay=PUZZLE_EMB_WEIGHT_DECAY, world_size=1)
    adam, adam_name = adam_atan2(torch, model.parameters())
    n_params = sum(p.numel() for p in model.parameters())

    # A valid Sudoku-shaped batch: inputs 1..10 (1 = blank), labels 2..10, the one puzzle id 0.
    gen = torch.Generator().manual_seed(seed)
    data = {
        "inputs": torch.randint(1, 11, (batch, MODEL_CONFIG["seq_len"]), generator=gen, dtype=torch.int32),
        "labels": torch.randint(2, 11, (batch, MODEL_CONFIG["seq_len"]), generator=gen, dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(batch, dtype=torch.int32),
    }
    carry = model.initial_carry(data)

    fwd_bwd, whole = [], []
    for i in range(warmup + steps):
        if i == warmup:
            start = (busy_cpu_s(), own_cpu_s(), time.perf_counter())
        t0 = time.perf_counter()
        carry, loss, _metrics, _, _ = model(carry=carry, batch=data, return_keys=[])
        ((1 / batch) * loss).backward()
        t1 = time.perf_counter()
        for opt in (sign_sgd, adam):
            opt.step()
            opt.zero_grad()
        t2 = time.perf_counter()
        if i >= warmup:
            fwd_bwd.append(t1 - t0)
            whole.append(t2 - t0)
        if not torch.isfinite(loss):
            raise ToolError(f"official step {i} at batch {batch}: loss is {loss.item()}")
    others = other_cores(start[0], start[1], busy_cpu_s(), own_cpu_s(), time.perf_counter() - start[2])
    return {
        "batch": batch,
        "fwd_bwd_s": statistics.median(fwd_bwd),
        "step_s": statistics.median(whole),
        "fwd_bwd_samples_s": fwd_bwd,
        "step_samples_s": whole,
        "optimizer": adam_name,
        "parameters": n_params,
        "torch": torch.__version__,
        # Cores other processes used while the timed steps ran: near 0 on a quiet machine.
        "other_cores": None if others is None else round(others, 2),
    }


def recur_command(binary, batch, threads, warmup, steps):
    return [
        binary, "bench", "step", "--preset", "trm-att-sudoku", "--batch", str(batch), "--device", "cpu",
        "--set", "forward_dtype=float32", "--warmup", str(warmup), "--steps", str(steps),
        "--threads", str(threads), "--json",
    ]


def parse_recur_json(text, batch):
    """`recur bench step --json`'s median_s (and the rest of its object). Accepts one object, or
    one per line, or a list, picking the one for this batch."""
    text = text.strip()
    candidates = []
    try:
        candidates = [json.loads(text)]
    except ValueError:
        for line in text.splitlines():
            line = line.strip()
            if line.startswith(("{", "[")):
                try:
                    candidates.append(json.loads(line))
                except ValueError:
                    pass
    objects = []
    for c in candidates:
        objects.extend(c if isinstance(c, list) else [c])
    objects = [o for o in objects if isinstance(o, dict) and "median_s" in o]
    matching = [o for o in objects if o.get("batch", batch) == batch]
    if not matching:
        raise ToolError(f"recur bench step printed no JSON object with median_s for batch {batch}: {text[:300]!r}")
    result = matching[-1]
    median = result["median_s"]
    if not isinstance(median, (int, float)) or isinstance(median, bool) or median <= 0:
        raise ToolError(f"recur bench step: median_s is {median!r}, not a positive number")
    return result


def run_recur(binary, batch, threads, warmup, steps, runner=subprocess.run):
    cmd = recur_command(binary, batch, threads, warmup, steps)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    try:
        out = runner(cmd, capture_output=True, text=True, env=env)
    except OSError as e:
        raise ToolError(f"running {binary} failed ({e}); build it with `{RECUR_BUILD}`") from e
    if out.returncode != 0:
        raise ToolError(
            f"`{' '.join(cmd)}` exited {out.returncode}: {(out.stderr or out.stdout).strip()[-500:]}"
        )
    result = parse_recur_json(out.stdout, batch)
    if result.get("threads", threads) != threads:
        raise ToolError(f"recur bench step ran on {result['threads']} threads, not {threads}")
    return result


def combine(official, recur):
    """One row per batch: official times, recur's median, official step / recur step."""
    rows = []
    for o in official:
        r = recur.get(o["batch"]) if recur else None
        recur_s = r["median_s"] if r else None
        rows.append({
            "batch": o["batch"],
            "official_fwd_bwd_s": o["fwd_bwd_s"],
            "official_step_s": o["step_s"],
            "recur_step_s": recur_s,
            "ratio": o["step_s"] / recur_s if recur_s else None,
            "other_cores": o.get("other_cores"),
        })
    return rows


def format_table(rows):
    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    lines = [
        "| batch | official fwd+bwd s | official step s | recur step s | official/recur | other load (cores) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {num(r['official_fwd_bwd_s'], '.3f')} | {num(r['official_step_s'], '.3f')} "
            f"| {num(r['recur_step_s'], '.3f')} | {num(r['ratio'], '.2f')} | {num(r.get('other_cores'), '.2f')} |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        repo = check_trm_repo(args.trm_repo)
        if not args.no_recur:
            check_recur(args.recur)  # before minutes of official timing, not after
        import_torch()
        load_before = os.getloadavg()
        if load_before[0] > (os.cpu_count() or 1) - args.threads + 0.5:
            print(
                f"torch_trm_step: warning: load average {load_before[0]:.1f} on {os.cpu_count()} CPUs; "
                "other processes will slow both sides' timings",
                file=sys.stderr,
            )
        official = []
        for b in args.batch:
            print(f"official TRM step, batch {b} ...", file=sys.stderr, flush=True)
            official.append(time_official(repo, b, args.threads, args.warmup, args.steps, args.seed))
        recur = {}
        if not args.no_recur:
            for b in args.batch:
                print(f"recur bench step, batch {b} ...", file=sys.stderr, flush=True)
                recur[b] = run_recur(args.recur, b, args.threads, args.warmup, args.steps)
    except ToolError as e:
        print(f"torch_trm_step: {e}", file=sys.stderr)
        return 2

    rows = combine(official, recur)
    meta = {
        "official_commit": git_commit(repo),
        "torch": official[0]["torch"],
        "threads": args.threads,
        "warmup": args.warmup,
        "steps": args.steps,
        "optimizer": official[0]["optimizer"],
        "parameters": official[0]["parameters"],
        "load_avg_1m_before": round(load_before[0], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps({**meta, "rows": rows, "official": official, "recur": recur}, indent=2))
    else:
        print(
            f"official TRM @ {meta['official_commit'] or 'unknown commit'}, torch {meta['torch']}, "
            f"{args.threads} threads, fp32, {meta['parameters']:,} parameters, optimizer {meta['optimizer']}; "
            f"median of {args.steps} steps after {args.warmup} warm-up; load average "
            f"{meta['load_avg_1m_before']} before, {meta['load_avg_1m_after']} after\n"
        )
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
