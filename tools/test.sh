#!/usr/bin/env bash
# The full test suite, exactly as CI runs it (.ci/run calls this). Needs only a Rust toolchain;
# no GPU. Formatting and lints are part of the suite so they cannot drift.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --all-targets --quiet

echo "== doc tests"
cargo test --doc --quiet
