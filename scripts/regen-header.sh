#!/usr/bin/env bash
# Regenerates include/hatebm.h from ffi/src with the pinned cbindgen.
#
#   scripts/regen-header.sh           # rewrite include/hatebm.h (only if it changed)
#   scripts/regen-header.sh --check   # CI drift check: regenerate to a temp file and
#                                     # diff against the committed header; exit 1 on drift
#
# The pinned cbindgen version lives in scripts/ensure-tools.sh, which this
# script calls (it installs cbindgen on a fresh machine, idempotently).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

scripts/ensure-tools.sh cbindgen
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

header=include/hatebm.h
tmp="$(mktemp "${TMPDIR:-/tmp}/hatebm.h.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

cbindgen --quiet --config ffi/cbindgen.toml --crate hatebm-ffi --output "$tmp" ffi

if ((check)); then
    if ! diff -u --label "$header (committed)" --label "$header (generated)" "$header" "$tmp"; then
        echo >&2
        echo "regen-header: $header is out of date with ffi/src." >&2
        echo "regen-header: run scripts/regen-header.sh and commit the result." >&2
        exit 1
    fi
    echo "regen-header: $header is up to date"
else
    if cmp -s "$tmp" "$header"; then
        echo "regen-header: $header unchanged"
    else
        cp "$tmp" "$header"
        echo "regen-header: wrote $header"
    fi
fi
