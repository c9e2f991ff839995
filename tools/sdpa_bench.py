#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention at the models' shapes: the baseline the fused attention
kernel is compared with (goal: at least 1.3x SDPA at L = 97 and 916, head dim 64, bf16).

Non-causal, [B, H, L, d] bf16, every SDPA backend PyTorch offers here (flash, efficient, math,
cudnn), forward and forward+backward, timed with CUDA events after warm-up (median). Prints a
markdown table. Run by the GPU runner; usage: python3 tools/sdpa_bench.py [--runs 30]
"""
import argparse
import sys

# Staged next to this script on the GPU machine, as in tools/: one timing method for both.
from ceilings import timed_ms

# (name, batch, heads, seq, head_dim): TRM Sudoku (81 cells + 16 prefix), ARC (900 + 16), Sotaku.
SHAPES = [
    ("trm_sudoku", 768, 8, 97, 64),
    ("arc", 64, 8, 916, 64),
    ("sotaku", 2048, 4, 81, 32),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as e:
        print(f"sdpa_bench: PyTorch with torch.nn.attention is needed ({e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("sdpa_bench: no CUDA device", file=sys.stderr)
        return 2
    backends = [b for b in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH") if hasattr(SDPBackend, b)]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| shape | B x H x L x d | backend | fwd ms | fwd TFLOP/s | fwd+bwd ms |")
    print("|---|---|---|---|---|---|")
    for name, b, h, l, d in SHAPES:
        q, k, v = (torch.randn(b, h, l, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        grad = torch.randn(b, h, l, d, device="cuda", dtype=torch.bfloat16)
        flops_fwd = 4 * b * h * l * l * d
        for backend in backends:
            try:
                with sdpa_kernel(getattr(SDPBackend, backend)):
                    fwd = timed_ms(torch, lambda: F.scaled_dot_product_attention(q, k, v), 3, args.runs)
                    both = timed_ms(
                        torch,
                        lambda: F.scaled_dot_product_attention(q, k, v).backward(grad),
                        3,
                        args.runs,
                    )
            except RuntimeError as e:
                print(f"| {name} | {b}x{h}x{l}x{d} | {backend} | unavailable: {str(e).splitlines()[0][:60]} | | |")
                continue
            print(f"| {name} | {b}x{h}x{l}x{d} | {backend} | {fwd:.3f} | {flops_fwd / fwd / 1e9:.1f} | {both:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
