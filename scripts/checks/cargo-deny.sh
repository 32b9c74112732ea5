#!/usr/bin/env bash
# cargo deny with the committed deny.toml: licenses, bans and sources, offline (the advisory
# database cannot be fetched on the project's machines). The advisories check runs in CI on
# GitHub (ci.yml, job supply-chain: `cargo deny check`, all of it). Installs cargo-deny once
# (`cargo install --locked`, pinned) when it is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $version"; then
  echo "installing cargo-deny $version (cargo install --locked)" >&2
  cargo install --locked cargo-deny --version "$version" \
    || { echo "cargo-deny $version could not be installed: it is needed for the licenses/bans/sources check" >&2; exit 1; }
fi
[[ -f deny.toml ]] || { echo "deny.toml missing" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo deny --offline --locked check --hide-inclusion-graph licenses bans sources >"$log" 2>&1; then
  cat "$log" >&2
  echo "cargo-deny: FAILED (licenses, bans or sources; deny.toml says what is allowed)" >&2
  exit 1
fi
dups=$(grep -c 'found 2 duplicate\|duplicate entries for crate' "$log" || true)
echo "cargo-deny: $(tail -n1 "$log") (offline; $dups crates in more than one version, warned; advisories: ci.yml job supply-chain)"
