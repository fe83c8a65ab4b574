#!/usr/bin/env bash
# Runs the runtime's tests (unit, in-process and multi-process) under
# AddressSanitizer. Needs a nightly toolchain (`-Zsanitizer` is unstable);
# where none is installed it says so and exits 0. The run happens in a copy
# of the workspace without `rust-toolchain.toml` (which pins stable), with
# its own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "asan: no nightly toolchain installed; skipped"
    exit 0
fi

copy="${ASAN_DIR:-${TMPDIR:-/tmp}/mc-asan}"
mkdir -p "$copy"
# The copy mirrors the tree: files removed or moved since an earlier run go
# (its build directory stays, for speed).
find "$copy" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
# The sources only (no target directory, no pinned toolchain).
tar --exclude=./target --exclude=./.git --exclude=./rust-toolchain.toml -cf - . \
    | (cd "$copy" && tar -xf -)
rm -f "$copy/rust-toolchain.toml"
cd "$copy"

target="$(rustc +nightly -vV | sed -n 's/^host: //p')"
# mc contains the faults of truncated segments with its own SIGBUS handler,
# which ASan must let it install.
export ASAN_OPTIONS="${ASAN_OPTIONS:-allow_user_segv_handler=1:detect_leaks=0}"
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
cargo +nightly test -p mc --target "$target" --lib --tests "$@"
echo "asan: the runtime's tests passed under AddressSanitizer"
