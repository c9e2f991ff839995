#!/usr/bin/env bash
# Prepares a run of the whole suite on the GPU machine, which has no Rust toolchain and no
# network: builds the release test binaries, the benchmarks and `recur` here, and stages them
# with the kernel sources, tools/ceilings.py and the runner (tools/gpu-run.sh → run.sh) in the
# git-ignored .gpu-stage/ (at most 48 MiB, leaving room for the working tree within the 64 MiB
# the device tool carries).
#
#   tools/gpu-check.sh            build and stage, then say how to run it on the GPU machine
#   tools/gpu-check.sh --dry-run  the same, then run the runner here in dry-run mode: it checks
#                                 the staged binaries, lists the cuda tests each holds and
#                                 prints every command the GPU run would execute
#
# On the GPU machine, one device-tool call from the repository root:
#   command: bash .gpu-stage/run.sh     carry: [".gpu-stage"]     timeout_s: 600
# then commit the returned $OUT/gpu-run-<date>.md under docs/gpu-runs/ (docs/gpu-check.md).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
dry_run=0
for arg in "$@"; do
    case $arg in
        --dry-run) dry_run=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

stage=.gpu-stage
max_stage_bytes=$((48 * 1024 * 1024))
if ! git check-ignore -q "$stage"; then
    echo "$stage must be git-ignored (the device tool carries only ignored paths named in carry)" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "python3 is needed to read cargo's JSON output" >&2; exit 1; }

# Reads cargo's --message-format=json on stdin; prints "<staged name> <executable>" for each
# artifact of the wanted kind ("test": test harness binaries, "bench", "bin").
executables() {
    python3 -c '
import json, sys
wanted = sys.argv[1]
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    exe = msg.get("executable")
    if msg.get("reason") != "compiler-artifact" or not exe:
        continue
    kind, name, is_test = msg["target"]["kind"][0], msg["target"]["name"], msg["profile"]["test"]
    if wanted == "test" and is_test and kind != "bench":
        # lib and bin unit tests share the crate name; keep them apart.
        print(f"{kind}-{name}" if kind in ("lib", "bin") else name, exe)
    elif wanted == kind and (kind == "bench" or not is_test):
        print(name, exe)
' "$1"
}

echo "== building release binaries (cargo test --release --no-run, cargo bench --no-run, recur)"
tests=$(cargo test --release --no-run --message-format=json-render-diagnostics | executables test)
benches=$(cargo bench --no-run --message-format=json-render-diagnostics | executables bench)
recur=$(cargo build --release --bin recur --message-format=json-render-diagnostics | executables bin)

echo "== staging into $stage/"
rm -rf "$stage"
mkdir -p "$stage/tests" "$stage/benches" "$stage/kernels"
# Debug info is most of a binary's size and useless there; strip it if strip is available.
stage_binary() {
    if command -v strip >/dev/null; then strip --strip-debug -o "$2" "$1"; else cp "$1" "$2"; fi
}
# Only the test binaries the GPU run executes: those holding kernel_test! `cuda` tests, and the
# kernel gate (run there with the machine's own NVRTC). All of them would not fit in 64 MiB.
# (The listing is captured first: `| grep -q` would close the pipe early, and under pipefail the
# binary's SIGPIPE would drop it at random.)
gpu_test() { [[ $1 == kernel_gate ]] || [[ $("$2" cuda --list 2>/dev/null) == *'::cuda: test'* ]]; }
while read -r name exe; do
    [[ -n $name ]] && gpu_test "$name" "$exe" && stage_binary "$exe" "$stage/tests/$name"
done <<<"$tests"
while read -r name exe; do [[ -n $name ]] && stage_binary "$exe" "$stage/benches/$name"; done <<<"$benches"
read -r _ recur_exe <<<"$recur"
stage_binary "$recur_exe" "$stage/recur"
cp kernels/*.cu kernels/*.cuh "$stage/kernels/"
cp tools/ceilings.py "$stage/ceilings.py"
cp tools/sdpa_bench.py "$stage/sdpa_bench.py"
cp tools/gpu-run.sh "$stage/run.sh"
{
    echo "commit:  $(git rev-parse HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
    echo "staged:  $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
    echo "rustc:   $(rustc --version)"
    echo "tests:   $(ls "$stage/tests" | tr '\n' ' ')"
    echo "benches: $(ls "$stage/benches" | tr '\n' ' ')"
} >"$stage/manifest.txt"

# Binaries compress about 3x; the runner unpacks them first. Without this the kernel tests alone
# would not fit the device tool's 64 MiB.
gzip -9 -n "$stage/recur" "$stage"/tests/* "$stage"/benches/*

stage_bytes=$(du -sb "$stage" | cut -f1)
printf '   %d test binaries, %d benches, recur; %.1f MiB\n' \
    "$(ls "$stage/tests" | wc -l)" "$(ls "$stage/benches" | wc -l)" "$(awk "BEGIN { print $stage_bytes / 1048576 }")"
if ((stage_bytes > max_stage_bytes)); then
    echo "$stage is $stage_bytes bytes, over 48 MiB (the device tool carries 64 MiB with the tree)" >&2
    du -b "$stage"/tests/* "$stage"/benches/* "$stage"/recur* | sort -n | tail -5 >&2
    exit 1
fi

if ((dry_run)); then
    echo "== dry run of the GPU runner, here"
    OUT=$(mktemp -d) bash "$stage/run.sh" --dry-run
else
    cat <<EOF
== staged. Run on the GPU machine with one device-tool call from the repository root:
     command: bash $stage/run.sh     carry: ["$stage"]     timeout_s: 600
   then commit the returned gpu-run-<date>.md under docs/gpu-runs/.
EOF
fi
