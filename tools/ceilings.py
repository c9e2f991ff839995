#!/usr/bin/env python3
"""The two ceilings every kernel is judged against (DESIGN.md, performance method), measured with
PyTorch on the GPU machine: HBM bandwidth (a device-to-device copy much larger than the L2,
counting bytes read and written) and dense bf16 GEMM throughput (torch.matmul, 8192^3).

Timed with CUDA events after warm-up; the median of the timed runs. Prints a markdown table.
Run by tools/gpu-check.sh's runner; usage: python3 tools/ceilings.py [--copy-gib 2] [--gemm-n 8192]
"""
import argparse
import statistics
import sys


def timed_ms(torch, work, warmup, runs):
    for _ in range(warmup):
        work()
    times = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copy-gib", type=float, default=2.0, help="bytes copied per run, GiB")
    parser.add_argument("--gemm-n", type=int, default=8192, help="GEMM size n (n x n x n)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("ceilings: PyTorch is not installed here", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("ceilings: PyTorch sees no GPU", file=sys.stderr)
        return 2

    props = torch.cuda.get_device_properties(0)
    nbytes = int(args.copy_gib * (1 << 30))
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    copy_ms = timed_ms(torch, lambda: dst.copy_(src), warmup=3, runs=args.runs)
    copy_tbs = 2 * nbytes / (copy_ms * 1e-3) / 1e12
    del src, dst

    n = args.gemm_n
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    gemm_ms = timed_ms(torch, lambda: torch.matmul(a, b), warmup=3, runs=max(args.runs // 2, 5))
    gemm_tflops = 2 * n**3 / (gemm_ms * 1e-3) / 1e12

    print(f"device: {props.name}, {props.multi_processor_count} SMs, "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}")
    print()
    print("| ceiling | size | median time | rate |")
    print("| --- | --- | --- | --- |")
    print(f"| HBM copy (D2D, read+write) | {args.copy_gib:g} GiB | {copy_ms:.3f} ms | {copy_tbs:.2f} TB/s |")
    print(f"| bf16 GEMM (torch.matmul) | {n}^3 | {gemm_ms:.3f} ms | {gemm_tflops:.0f} TFLOP/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
