# shellcheck shell=bash
# Shared helpers for the CI steps in .ci/steps/*.sh. Source it, don't run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# After sourcing, the shell runs with `set -euo pipefail`, the working
# directory is the repository root ($AURA_ROOT), and these are defined:
#
#   header "text"               print the step's header line
#   run CMD...                  echo `+ CMD...`, then run it
#   skip "why"                  print `skipped: why` and exit 77
#   ensure_component TC NAME... make sure rustup components are installed
#                               (TC = "" for the default toolchain)
#   ensure_nightly_component NAME...
#   ensure_cargo_fuzz           make sure `cargo fuzz` works
#   ensure_apt PKG...           apt-get install the missing packages
#
# Exit code convention (read by .ci/test-all): 0 pass, 77 skipped (only
# together with a `skipped: ...` line), anything else fail.

set -euo pipefail

AURA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export AURA_ROOT
cd "$AURA_ROOT"

# rustup installs to ~/.cargo/bin; a fresh login shell may not have it on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

if [[ "${CI:-}" == "true" ]]; then
    export CARGO_TERM_COLOR=never
    export CARGO_INCREMENTAL=0
fi

# One id per CI run (.ci/test-all exports it); a step run on its own gets its own.
: "${AURA_CI_RUN_ID:=standalone.$$.$(date +%s)}"
export AURA_CI_RUN_ID

SKIP_EXIT=77

header() {
    echo "==> $*"
}

run() {
    echo "+ $*"
    "$@"
}

skip() {
    echo "skipped: $*"
    exit "$SKIP_EXIT"
}

# Host triple of a toolchain ("" = default); empty output if unusable.
_host_triple() {
    local tc="$1"
    if [[ -n "$tc" ]]; then
        rustc "+$tc" -vV 2>/dev/null | sed -n 's/^host: //p'
    else
        rustc -vV 2>/dev/null | sed -n 's/^host: //p'
    fi
}

# ensure_component TOOLCHAIN NAME...
# Installs the rustup components NAME... for TOOLCHAIN ("" = the default one)
# unless they are already installed. Returns non-zero if the toolchain is
# unusable or the install fails (e.g. no network access to the rustup server).
ensure_component() {
    local tc="$1"
    shift
    local tc_args=()
    if [[ -n "$tc" ]]; then
        tc_args=(--toolchain "$tc")
    fi

    if ! command -v rustup >/dev/null 2>&1; then
        echo "ensure_component: rustup not found" >&2
        return 1
    fi
    local host installed
    host="$(_host_triple "$tc")"
    if [[ -z "$host" ]]; then
        echo "ensure_component: toolchain '${tc:-default}' is not usable" >&2
        return 1
    fi
    if ! installed="$(rustup component list "${tc_args[@]}" --installed 2>/dev/null)"; then
        echo "ensure_component: cannot list components of toolchain '${tc:-default}'" >&2
        return 1
    fi

    # Installed components are listed as `name` or `name-<host triple>`.
    local missing=() name
    for name in "$@"; do
        if ! grep -qxF -e "$name" -e "$name-$host" <<<"$installed"; then
            missing+=("$name")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi

    echo "installing rustup component(s) for toolchain ${tc:-default}: ${missing[*]}"
    local t=()
    if command -v timeout >/dev/null 2>&1; then
        t=(timeout 600)
    fi
    if ! "${t[@]}" rustup component add "${tc_args[@]}" "${missing[@]}"; then
        echo "ensure_component: 'rustup component add ${tc_args[*]} ${missing[*]}' failed" >&2
        return 1
    fi
}

# ensure_nightly_component NAME...
ensure_nightly_component() {
    ensure_component nightly "$@"
}

# Makes `cargo fuzz` available, installing cargo-fuzz from crates.io if needed.
ensure_cargo_fuzz() {
    if cargo fuzz --help >/dev/null 2>&1; then
        return 0
    fi
    echo "cargo-fuzz not found: installing it from crates.io"
    if cargo install cargo-fuzz --locked; then
        return 0
    fi
    echo "cargo install cargo-fuzz --locked failed; retrying without --locked" >&2
    if cargo install cargo-fuzz && cargo fuzz --help >/dev/null 2>&1; then
        return 0
    fi
    echo "ensure_cargo_fuzz: could not install cargo-fuzz" >&2
    return 1
}

# ensure_apt PKG...
# Installs the Debian packages whose command (`command -v PKG`) is missing and
# which `dpkg -s PKG` does not report as installed. `apt-get update` runs at
# most once per CI run (marker file under ${TMPDIR:-/tmp}).
ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        if command -v "$pkg" >/dev/null 2>&1; then
            continue
        fi
        if dpkg -s "$pkg" 2>/dev/null | grep -qx 'Status: install ok installed'; then
            continue
        fi
        missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi

    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure_apt: apt-get not available; cannot install: ${missing[*]}" >&2
        return 1
    fi
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "ensure_apt: not root and no passwordless sudo; cannot install: ${missing[*]}" >&2
            return 1
        fi
    fi

    local marker="${TMPDIR:-/tmp}/aura-ci.apt-updated"
    if [[ "$(cat "$marker" 2>/dev/null || true)" != "$AURA_CI_RUN_ID" ]]; then
        echo "+ apt-get update"
        if ! "${sudo[@]}" apt-get update -q; then
            echo "ensure_apt: apt-get update failed" >&2
            return 1
        fi
        printf '%s\n' "$AURA_CI_RUN_ID" >"$marker" || true
    fi
    echo "+ apt-get install -y --no-install-recommends ${missing[*]}"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        echo "ensure_apt: apt-get install ${missing[*]} failed" >&2
        return 1
    fi
}
