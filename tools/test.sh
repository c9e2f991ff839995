#!/usr/bin/env bash
# The full test suite, exactly as CI runs it (.ci/run calls this). Needs a Rust toolchain and
# Python 3 with pip; no GPU. Formatting and lints are part of the suite so they cannot drift.
#
# The kernel gate (tests/kernel_gate.rs) compiles every kernel with NVRTC 13.0, which comes from
# pinned PyPI wheels installed once into .ci/venv (git-ignored). They are pinned and installed
# with --no-deps because a newer NVRTC emits PTX that the GPU machine's driver (580, CUDA 13.0)
# cannot load, and pip would otherwise pull mismatched 13.x companions.
set -euo pipefail
cd "$(dirname "$0")/.."

NVRTC_WHEELS=(nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88)
venv=.ci/venv
stamp=$venv/.recur-nvrtc-wheels

nvrtc_lib_dir() {
    local dir
    for dir in "$venv"/lib/python3*/site-packages/nvidia/cu13/lib; do
        [[ -f $dir/libnvrtc.so.13 ]] && { echo "$dir"; return 0; }
    done
    return 1
}

if [[ "$(cat "$stamp" 2>/dev/null)" != "${NVRTC_WHEELS[*]}" ]] || ! nvrtc_lib_dir >/dev/null; then
    echo "== installing NVRTC 13.0 wheels into $venv"
    started=$SECONDS
    pip_flags=(--quiet --disable-pip-version-check --no-deps --no-cache-dir)
    if [[ -x $venv/bin/python ]] || python3 -m venv "$venv" 2>/dev/null; then
        "$venv/bin/python" -m pip install "${pip_flags[@]}" "${NVRTC_WHEELS[@]}"
    else
        # No venv module (Debian without python3-venv): the same wheels into a plain folder
        # laid out like a venv's site-packages, which is all the gate needs.
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install "${pip_flags[@]}" \
            --target "$venv/lib/python3/site-packages" "${NVRTC_WHEELS[@]}"
    fi
    echo "${NVRTC_WHEELS[*]}" >"$stamp"
    echo "   installed in $((SECONDS - started)) s"
fi
RECUR_NVRTC_DIR="$(cd "$(nvrtc_lib_dir)" && pwd)"
export RECUR_NVRTC_DIR
# CI must never skip the kernel gate silently.
export RECUR_REQUIRE_NVRTC=1

echo "== GPU runner: phases, time limits, a fake stage (tools/test_gpu_run.py, seconds)"
python3 tools/test_gpu_run.py

echo "== official-TRM CPU timing script: arguments, recur's JSON, the ratio table (tools/test_torch_trm_step.py, no torch)"
python3 tools/test_torch_trm_step.py

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --all-targets --quiet

echo "== doc tests"
cargo test --doc --quiet
