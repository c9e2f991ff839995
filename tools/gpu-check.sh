#!/usr/bin/env bash
# Prepares a run of the kernel tests and timings on the GPU machine, which has no Rust toolchain
# and no network: builds the release test binaries and `recur` here, and stages them compressed (xz, or gzip) with
# the kernel sources, tools/ceilings.py, tools/sdpa_bench.py and the runner (tools/gpu_run.py,
# started by tools/gpu-run.sh → run.sh) in the git-ignored .gpu-stage/ (at most 48 MiB, leaving
# room for the working tree within the 64 MiB the device tool carries).
#
#   tools/gpu-check.sh            build and stage, then say how to run it on the GPU machine
#   tools/gpu-check.sh --dry-run  the same, then run the runner here in dry-run mode: it unpacks
#                                 and checks the staged binaries, lists the cuda tests each holds
#                                 and prints every phase and command with its time limit
#   tools/gpu-check.sh --plan     only print the phases and their time limits (no build)
#
# On the GPU machine, one device-tool call from the repository root (8 minutes at most):
#   command: bash .gpu-stage/run.sh     carry: [".gpu-stage"]     timeout_s: 480
# then commit the returned $OUT/gpu-run-<date>.md under docs/gpu-runs/ (docs/gpu-check.md).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
dry_run=0
for arg in "$@"; do
    case $arg in
        --dry-run) dry_run=1 ;;
        --plan) exec python3 tools/gpu_run.py --plan ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

stage=.gpu-stage
max_stage_bytes=$((48 * 1024 * 1024))
# What the device tool runs; it takes at most 2000 characters.
device_command="bash $stage/run.sh"
max_command_chars=2000
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

echo "== building release binaries (cargo test --release --no-run, recur)"
tests=$(cargo test --release --no-run --message-format=json-render-diagnostics | executables test)
recur=$(cargo build --release --bin recur --message-format=json-render-diagnostics | executables bin)

echo "== staging into $stage/"
rm -rf "$stage"
mkdir -p "$stage/tests" "$stage/kernels"
# Debug info is most of a binary's size and useless there; strip it if strip is available.
stage_binary() {
    if command -v strip >/dev/null; then strip --strip-debug -o "$2" "$1"; else cp "$1" "$2"; fi
}
# Only the test binaries the GPU run executes: those holding `::cuda` tests (kernel_test! twins,
# the training-step and resident tests). All of them would not fit in 64 MiB.
# (The listing is captured first: `| grep -q` would close the pipe early, and under pipefail the
# binary's SIGPIPE would drop it at random.)
gpu_test() { [[ $("$1" --list 2>/dev/null) == *'::cuda: test'* ]]; }
while read -r name exe; do
    [[ -n $name ]] && gpu_test "$exe" && stage_binary "$exe" "$stage/tests/$name"
done <<<"$tests"
read -r _ recur_exe <<<"$recur"
stage_binary "$recur_exe" "$stage/recur"
cp kernels/*.cu kernels/*.cuh "$stage/kernels/"
cp tools/gpu_run.py tools/ceilings.py tools/sdpa_bench.py "$stage/"
cp tools/gpu-run.sh "$stage/run.sh"
{
    echo "commit:  $(git rev-parse HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
    echo "staged:  $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
    echo "rustc:   $(rustc --version)"
    echo "tests:   $(ls "$stage/tests" | tr '\n' ' ')"
} >"$stage/manifest.txt"

# Binaries compress about 3x; the runner unpacks them outside the stage. Without this the kernel
# tests alone would not fit the device tool's 64 MiB. xz packs them about 8% smaller than gzip
# (measured on recur: 6.93 MB against 7.51 MB), which the 25 staged test binaries need; gzip is
# the fallback where xz is missing (the runner reads both).
if command -v xz >/dev/null; then
    xz -9 -T1 "$stage/recur" "$stage"/tests/*
else
    gzip -9 -n "$stage/recur" "$stage"/tests/*
fi

mib() { awk "BEGIN { printf \"%.1f\", $1 / 1048576 }"; }
stage_bytes=$(du -sb "$stage" | cut -f1)
printf '   %d test binaries and recur, compressed: %s MiB (at most %s MiB)\n' \
    "$(ls "$stage/tests" | wc -l)" "$(mib "$stage_bytes")" "$(mib "$max_stage_bytes")"
if ((stage_bytes > max_stage_bytes)); then
    echo "$stage is $stage_bytes bytes, over 48 MiB (the device tool carries 64 MiB with the tree)" >&2
    du -b "$stage"/tests/* "$stage"/recur* | sort -n | tail -5 >&2
    exit 1
fi
# The rest of what travels: tracked files and untracked files git does not ignore.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s + 0 }')
total_bytes=$((stage_bytes + tree_bytes))
printf '   with the working tree (%s MiB): %s MiB of the 64 MiB the device tool carries\n' \
    "$(mib "$tree_bytes")" "$(mib "$total_bytes")"
if ((total_bytes > 64 * 1024 * 1024)); then
    echo "the stage and the working tree together are $total_bytes bytes, over 64 MiB" >&2
    exit 1
fi
printf '   device command: "%s" (%d characters, at most %d)\n' \
    "$device_command" "${#device_command}" "$max_command_chars"
if ((${#device_command} > max_command_chars)); then
    echo "the device command is over $max_command_chars characters" >&2
    exit 1
fi

if ((dry_run)); then
    echo "== dry run of the GPU runner, here (nothing runs on a GPU)"
    # The runner unpacks into a temporary folder, so the stage stays as small as measured above.
    OUT=$(mktemp -d) bash "$stage/run.sh" --dry-run
    after_bytes=$(du -sb "$stage" | cut -f1)
    if ((after_bytes != stage_bytes)); then
        echo "the dry run changed $stage ($stage_bytes -> $after_bytes bytes)" >&2
        exit 1
    fi
else
    cat <<EOF
== staged. Run on the GPU machine with one device-tool call from the repository root:
     command: $device_command     carry: ["$stage"]     timeout_s: 480
   then commit the returned gpu-run-<date>.md under docs/gpu-runs/.
EOF
fi
