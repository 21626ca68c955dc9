#!/usr/bin/env bash
# A crate outside this repository, made exactly as the book's tutorial says
# ("Your own crate" in book/src/tutorial-custom-signal.md): `cargo new`, the
# example copied to src/main.rs, and the dependency lines read from the
# book's own toml block, so the book and this check cannot drift apart.
#
# It is built twice, depending on pixel-transformer by `path` and by `git`
# (a local clone), and each build trains a tiny model, draws its pictures
# and answers one `predict` request.
#
# usage: scripts/outside-crate.sh [path|git|both]   (default: both)
# env:   OUTSIDE_DIR     where the crates are made (default: a new temporary folder)
#        OUTSIDE_TARGET  their shared target folder (default: target/outside-crate here)
set -euo pipefail

MODE=${1:-both}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BOOK="$REPO/book/src/tutorial-custom-signal.md"
WORK=${OUTSIDE_DIR:-$(mktemp -d)}
export CARGO_TARGET_DIR=${OUTSIDE_TARGET:-$REPO/target/outside-crate}
mkdir -p "$WORK"

# The first ```toml block after the "## Your own crate" heading.
deps=$(awk '/^## Your own crate/ {s=1} s && /^```toml/ {b=1; next} b && /^```/ {exit} b {print}' "$BOOK")
if ! grep -q '^pixel-transformer = ' <<<"$deps"; then
  echo "outside-crate: no pixel-transformer line in the book's toml block:" >&2
  echo "$deps" >&2
  exit 1
fi

check() {  # check <name> <the pixel-transformer dependency line>
  local name=$1 line=$2 dir="$WORK/$1"
  echo "== outside crate ($name): $line"
  rm -rf "$dir"
  (cd "$WORK" && cargo new --quiet --bin "$name")
  cp "$REPO/examples/custom_signal.rs" "$dir/src/main.rs"
  # The book's lines, with its path replaced by this checkout (or its clone).
  sed "s|^pixel-transformer = .*|$line|" <<<"$deps" | grep -v '^\[dependencies\]' >>"$dir/Cargo.toml"
  if grep -q '^\[patch' "$dir/Cargo.toml"; then
    echo "outside-crate: the crate must build without a [patch] section" >&2
    exit 1
  fi
  (
    cd "$dir"
    cargo build --release --quiet
    local bin="$CARGO_TARGET_DIR/release/$name"
    "$bin" train --preset tiny --steps 20 --batch-size 8 --quiet --out runs/audio
    "$bin" sample --out runs/audio | tee sample.log
    test -s runs/audio/samples.png
    head -c 8 runs/audio/samples.png | grep -q PNG
    echo '{"positions": [[-0.5], [0.5]], "values": [[0.2], [-0.4]], "queries": [[0.0]]}' \
      | "$bin" predict --out runs/audio | tee predict.log
    grep -q '"mean"' predict.log
    # The interactive page asks nothing more of the crate: serve it, read
    # /info (plain bash, no HTTP client needed), stop it.
    "$bin" serve --out runs/audio --port 0 >serve.log 2>&1 &
    local server=$! port=""
    for _ in $(seq 300); do
      port=$(grep -o 'http://127.0.0.1:[0-9]*' serve.log | grep -o '[0-9]*$' || true)
      [ -n "$port" ] && break
      sleep 0.1
    done
    if [ -z "$port" ]; then
      kill "$server"; cat serve.log; echo "outside-crate: serve did not start" >&2; exit 1
    fi
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /info HTTP/1.0\r\nHost: x\r\n\r\n' >&3
    cat <&3 | tee info.log
    exec 3<&-
    kill "$server"
    grep -q '"positions":1' info.log
  )
}

if [ "$MODE" = path ] || [ "$MODE" = both ]; then
  check my-signal-path "pixel-transformer = { path = \"$REPO\" }"
fi
if [ "$MODE" = git ] || [ "$MODE" = both ]; then
  # A clone, as users get it; cargo fetches its default branch.
  rm -rf "$WORK/pixel-transformer-clone"
  git clone --quiet "$REPO" "$WORK/pixel-transformer-clone"
  check my-signal-git "pixel-transformer = { git = \"file://$WORK/pixel-transformer-clone\" }"
fi
echo "outside-crate: ok"
