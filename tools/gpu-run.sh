#!/usr/bin/env bash
# The GPU half of tools/gpu-check.sh. tools/gpu-check.sh copies this file to .gpu-stage/run.sh
# next to the prebuilt binaries; on the GPU machine (no Rust toolchain, no network) one call of
# the device tool runs it from the repository root:
#
#     bash .gpu-stage/run.sh            # carry: [".gpu-stage"], timeout_s: 600
#
# It finds libcuda and libnvrtc, prints `recur info --kernels`, runs every kernel test's `cuda`
# variant and the kernel gate, compute-sanitizer memcheck and racecheck on the kernel tests,
# the benchmarks, and the two ceilings (HBM copy, bf16 GEMM), and writes a markdown report to
# $OUT/gpu-run-<date>.md (logs beside it) to commit under docs/gpu-runs/. The report is written
# as it goes, so a run cut short still brings back what it did.
#
# --dry-run (what tools/gpu-check.sh --dry-run calls, on any machine): checks the staged files,
# lists the tests each binary would run, and prints every command instead of running it.
set -uo pipefail

stage=$(cd "$(dirname "$0")" && pwd)
dry_run=0
case "${1:-}" in
    --dry-run) dry_run=1 ;;
    "") ;;
    *) echo "usage: bash $0 [--dry-run]" >&2; exit 2 ;;
esac

# gpu-check.sh ships the binaries gzipped to fit the 64 MiB the device tool carries.
for packed in "$stage"/recur.gz "$stage"/tests/*.gz "$stage"/benches/*.gz; do
    [[ -e $packed ]] || continue
    gunzip -f "$packed" && chmod +x "${packed%.gz}"
done

# Time budgets (seconds) inside the device tool's 600 s per command.
TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-560}
TEST_TIMEOUT_S=${TEST_TIMEOUT_S:-240}
SANITIZER_BUDGET_S=${SANITIZER_BUDGET_S:-180}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-90}

out=${OUT:-$stage/out}
mkdir -p "$out"
day=$(date -u +%Y-%m-%d)
report=$out/gpu-run-$day.md
tests_log=$out/tests.log
sanitizer_log=$out/sanitizer.log
bench_log=$out/bench.log
: >"$tests_log"; : >"$sanitizer_log"; : >"$bench_log"
export RECUR_PTX_CACHE=$stage/ptx-cache

note() { printf '%s\n' "$*" >>"$report"; }
remaining() { echo $((TOTAL_BUDGET_S - SECONDS)); }
min() { if (($1 < $2)); then echo "$1"; else echo "$2"; fi; }

# Runs "$@" with a time limit, output appended to log $1; prints nothing in dry-run mode but the
# command. Returns the command's status (124 on timeout).
run_logged() {
    local log=$1 limit=$2
    shift 2
    echo "+ timeout $limit $*" >>"$log"
    if ((dry_run)); then
        echo "would run (limit ${limit}s): $*"
        return 0
    fi
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
}

# --- libraries --------------------------------------------------------------------------------
find_libcuda() {
    # Captured first: `| grep -q` closes the pipe early, and pipefail would then see SIGPIPE.
    if [[ $(ldconfig -p 2>/dev/null) == *'libcuda.so.1 '* ]]; then
        echo "ldconfig cache"
        return 0
    fi
    local dir
    for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 \
        /usr/local/cuda/compat /usr/local/cuda/lib64; do
        if [[ -e $dir/libcuda.so.1 ]]; then
            export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
            echo "$dir"
            return 0
        fi
    done
    return 1
}

find_nvrtc_dir() {
    local candidates=() dir
    [[ -n ${RECUR_NVRTC_DIR:-} ]] && candidates+=("$RECUR_NVRTC_DIR")
    # PyTorch's CUDA 13 wheels put NVRTC in site-packages/nvidia/cu13/lib.
    while IFS= read -r dir; do candidates+=("$dir"); done < <(python3 -c '
import os
try:
    import nvidia
    for p in nvidia.__path__:
        for sub in ("cu13/lib", "cuda_nvrtc/lib"):
            print(os.path.join(p, sub))
except Exception:
    pass' 2>/dev/null)
    candidates+=(/usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
    for dir in "${candidates[@]}"; do
        if [[ -e $dir/libnvrtc.so.13 && -e $dir/libnvrtc-builtins.so.13.0 ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# cuBLASLt, for the GEMM selection rule's tests and `recur bench`'s ours-vs-cuBLASLt rows
# (src/device/cuda/cublaslt.rs); PyTorch's CUDA 13 wheels ship it beside NVRTC.
find_cublaslt_dir() {
    local candidates=() dir
    [[ -n ${RECUR_CUBLASLT_DIR:-} ]] && candidates+=("$RECUR_CUBLASLT_DIR")
    while IFS= read -r dir; do candidates+=("$dir"); done < <(python3 -c '
import os
try:
    import nvidia
    for p in nvidia.__path__:
        for sub in ("cu13/lib", "cublas/lib"):
            print(os.path.join(p, sub))
except Exception:
    pass' 2>/dev/null)
    candidates+=(/usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
    for dir in "${candidates[@]}"; do
        [[ -e $dir/libcublasLt.so.13 ]] && { echo "$dir"; return 0; }
    done
    return 1
}

find_sanitizer() {
    command -v compute-sanitizer 2>/dev/null && return 0
    local path
    for path in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
        [[ -x $path ]] && { echo "$path"; return 0; }
    done
    return 1
}

# --- report header ----------------------------------------------------------------------------
{
    echo "# GPU run $day"
    echo
    echo "Written by tools/gpu-check.sh's runner (.gpu-stage/run.sh)$( ((dry_run)) && echo ', DRY RUN')."
    echo
    echo '```'
    cat "$stage/manifest.txt" 2>/dev/null || echo "(no manifest.txt in $stage)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    else
        echo "nvidia-smi: not found"
    fi
    echo '```'
} >"$report"

note ""
note "## Libraries"
if libcuda=$(find_libcuda); then note "- libcuda: $libcuda"; else note "- libcuda: NOT FOUND (CUDA tests will skip)"; fi
if nvrtc_dir=$(find_nvrtc_dir); then
    export RECUR_NVRTC_DIR=$nvrtc_dir
    note "- NVRTC: $nvrtc_dir"
else
    note "- NVRTC: NOT FOUND (CUDA tests will skip)"
fi
if cublaslt_dir=$(find_cublaslt_dir); then
    export RECUR_CUBLASLT_DIR=$cublaslt_dir
    note "- cuBLASLt: $cublaslt_dir"
else
    note "- cuBLASLt: NOT FOUND (its tests skip; recur bench omits the ours-vs-cuBLASLt rows)"
fi
if sanitizer=$(find_sanitizer); then
    note "- compute-sanitizer: $sanitizer"
else
    note "- compute-sanitizer: not found"
    # A dry run still shows the sanitizer commands a GPU machine would run.
    ((dry_run)) && sanitizer=compute-sanitizer
fi

# --- binaries ---------------------------------------------------------------------------------
shopt -s nullglob
test_bins=("$stage"/tests/*)
bench_bins=("$stage"/benches/*)
recur=$stage/recur
for bin in "${test_bins[@]}" "${bench_bins[@]}" "$recur"; do
    [[ -x $bin ]] || { echo "not an executable: $bin" >&2; exit 1; }
done
# The binaries that hold `cuda` kernel tests (kernel_test! names them <test>::cuda).
cuda_bins=()
for bin in "${test_bins[@]}"; do
    count=$("$bin" cuda --list 2>/dev/null | grep -c '::cuda: test$')
    ((count > 0)) && cuda_bins+=("$bin")
    ((dry_run)) && echo "$(basename "$bin"): $count cuda tests"
done

note ""
note "## recur info --kernels"
note '```'
if ((dry_run)); then
    echo "would run: $recur info --kernels"
else
    timeout 120 "$recur" info --kernels >>"$report" 2>&1
    note "(exit status $?)"
fi
note '```'

# --- tests ------------------------------------------------------------------------------------
note ""
note "## Kernel tests on the GPU (\`<binary> cuda\`) and the kernel gate"
note ""
note "| binary | result | skipped (printed reason) |"
note "| --- | --- | --- |"
run_test_binary() {
    local bin=$1 filter=$2 name
    name=$(basename "$bin")
    local before
    before=$(wc -l <"$tests_log")
    run_logged "$tests_log" "$(min "$TEST_TIMEOUT_S" "$(remaining)")" "$bin" $filter
    local status=$?
    ((dry_run)) && return
    local summary skipped
    summary=$(tail -n +"$((before + 1))" "$tests_log" | grep '^test result:' | tail -1)
    skipped=$(tail -n +"$((before + 1))" "$tests_log" | grep -c 'skipping ')
    [[ $status == 124 ]] && summary="TIMED OUT"
    note "| $name | ${summary:-exit status $status} | $skipped |"
}
# --nocapture, so the reason a test printed when it skipped reaches the log.
for bin in "${cuda_bins[@]}"; do run_test_binary "$bin" "cuda --nocapture"; done
[[ -x $stage/tests/kernel_gate ]] && run_test_binary "$stage/tests/kernel_gate" "--nocapture"
if ((!dry_run)) && grep -q 'skipping ' "$tests_log"; then
    note ""
    note "First skip reason: \`$(grep -m1 -o 'skipping .*' "$tests_log")\`"
fi
failures=$(grep -E '^(test .* FAILED|---- .* stdout ----)' "$tests_log" | head -20)
if [[ -n $failures ]]; then
    note ""
    note "Failures (details in tests.log):"
    note '```'
    note "$failures"
    note '```'
fi

# --- compute-sanitizer ------------------------------------------------------------------------
note ""
note "## compute-sanitizer (exact-size allocations: RECUR_CUDA_ALLOCATOR=exact)"
note ""
if [[ -z ${sanitizer:-} ]]; then
    note "compute-sanitizer not found; skipped."
else
    note "| binary | tool | result |"
    note "| --- | --- | --- |"
    sanitizer_deadline=$((SECONDS + SANITIZER_BUDGET_S))
    for tool in memcheck racecheck; do
        for bin in "${cuda_bins[@]}"; do
            left=$(min $((sanitizer_deadline - SECONDS)) "$(remaining)")
            if ((left < 10)); then
                note "| $(basename "$bin") | $tool | not run (time budget spent) |"
                continue
            fi
            RECUR_CUDA_ALLOCATOR=exact run_logged "$sanitizer_log" "$left" \
                "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 "$bin" cuda --test-threads=1
            status=$?
            ((dry_run)) && continue
            case $status in
                0) result="clean" ;;
                99) result="ERRORS (see sanitizer.log)" ;;
                124) result="timed out after ${left}s" ;;
                *) result="exit status $status (see sanitizer.log)" ;;
            esac
            note "| $(basename "$bin") | $tool | $result |"
        done
    done
fi

# --- benchmarks -------------------------------------------------------------------------------
note ""
note "## Benchmarks"
note ""
bench_deadline=$((SECONDS + BENCH_BUDGET_S))
for bin in "${bench_bins[@]}"; do
    left=$(min $((bench_deadline - SECONDS)) "$(remaining)")
    ((left < 10)) && { note "- $(basename "$bin"): not run (time budget spent)"; continue; }
    run_logged "$bench_log" "$left" "$bin" --bench --warm-up-time 1 --measurement-time 2 --noplot
    ((dry_run)) || note "- $(basename "$bin"): exit status $? (criterion output in bench.log)"
done
if "$recur" bench --help >/dev/null 2>&1; then
    left=$(min $((bench_deadline - SECONDS + 60)) "$(remaining)")
    run_logged "$bench_log" "$left" "$recur" bench --device cuda --batch 64
    if ((!dry_run)); then
        note ""
        note '```'
        sed -n '/^+ timeout .* bench --device cuda/,$p' "$bench_log" | tail -n 60 >>"$report"
        note '```'
    fi
else
    note "- recur bench: no such subcommand in this build"
fi

# --- ceilings ---------------------------------------------------------------------------------
note ""
note "## Ceilings (PyTorch, tools/ceilings.py)"
note ""
if ((dry_run)); then
    echo "would run: python3 $stage/ceilings.py"
else
    timeout "$(min 120 "$(remaining)")" python3 "$stage/ceilings.py" >>"$report" 2>&1 \
        || note "(ceilings.py exit status $?)"
fi

note ""
note "## PyTorch SDPA baseline (tools/sdpa_bench.py)"
note ""
if ((dry_run)); then
    echo "would run: python3 $stage/sdpa_bench.py"
else
    timeout "$(min 120 "$(remaining)")" python3 "$stage/sdpa_bench.py" >>"$report" 2>&1 \
        || note "(sdpa_bench.py exit status $?)"
fi

note ""
note "Logs beside this report: tests.log, sanitizer.log, bench.log. Total runner time: ${SECONDS} s."
if ((dry_run)); then
    echo "dry run: report skeleton at $report"
else
    echo "report: $report"
fi
