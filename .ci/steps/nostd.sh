#!/usr/bin/env bash
# Step nostd: builds examples/nostd-cat (its own workspace: no std, no libc,
# static, no start files), checks its stripped size against the budget,
# checks that it is statically linked, and runs it as `cat`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_BUDGET=16384
EX=examples/nostd-cat

header "nostd: build $EX (static, -nostartfiles -nostdlib), size budget $SIZE_BUDGET bytes, behave like cat"

if [[ ! -f "$EX/Cargo.toml" ]]; then
    skip "examples/nostd-cat not present"
fi

ensure_apt binutils || {
    echo "error: binutils (strip, readelf) not available"
    exit 1
}

# The binary must land in $EX/target whatever the caller's environment says.
export CARGO_TARGET_DIR="$AURA_ROOT/$EX/target"

run cargo rustc --release --manifest-path examples/nostd-cat/Cargo.toml -- \
    -C link-arg=-nostartfiles -C link-arg=-nostdlib -C link-arg=-static -C relocation-model=static

bin="$EX/target/release/nostd-cat"
if [[ ! -f "$bin" ]]; then
    # A .cargo/config.toml with build.target puts it under target/<triple>/.
    alt="$(find "$EX/target" -path '*/release/nostd-cat' -type f 2>/dev/null | head -n 1 || true)"
    if [[ -n "$alt" ]]; then
        bin="$alt"
    else
        echo "error: built binary not found at $bin"
        exit 1
    fi
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/aura-nostd.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp "$bin" "$WORK/nostd-cat"
cd "$WORK"

failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

# ---- size -----------------------------------------------------------------
strip nostd-cat
size=$(stat -c %s nostd-cat)
echo "nostd-cat: stripped size $size bytes (budget $SIZE_BUDGET)"
if ((size > SIZE_BUDGET)); then
    fail "stripped binary is $size bytes, over the $SIZE_BUDGET byte budget"
fi

# ---- static linking ---------------------------------------------------------
if command -v file >/dev/null 2>&1; then
    echo "+ file nostd-cat"
    file nostd-cat || true
else
    echo "+ ldd nostd-cat"
    ldd nostd-cat 2>&1 || true # "not a dynamic executable" + exit 1 is the good case
fi
dyn="$(readelf -d nostd-cat 2>&1 || true)"
phdrs="$(readelf -lW nostd-cat 2>&1 || true)"
static_ok=1
if grep -q '(NEEDED)' <<<"$dyn"; then
    fail "dynamically linked: readelf -d shows NEEDED entries:"
    grep '(NEEDED)' <<<"$dyn" || true
    static_ok=0
fi
if grep -qw 'INTERP' <<<"$phdrs"; then
    fail "dynamically linked: readelf -l shows an INTERP program header"
    static_ok=0
fi
if ((static_ok)); then
    echo "static: ok (no NEEDED entries, no INTERP header)"
fi

# ---- behaviour --------------------------------------------------------------
head -c 204800 /dev/urandom >random.bin
printf 'hello from aura\nsecond line, no trailing newline' >small.txt
: >empty.txt

for f in random.bin small.txt empty.txt; do
    rc=0
    timeout 20 ./nostd-cat "$f" >"out.$f" 2>"err.$f" </dev/null || rc=$?
    if ((rc != 0)); then
        fail "./nostd-cat $f exited with $rc; stderr:"
        cat "err.$f"
    elif ! cmp "$f" "out.$f"; then
        fail "./nostd-cat $f: output differs from the input ($(stat -c %s "$f") bytes in, $(stat -c %s "out.$f") out)"
    else
        echo "cat $f: ok ($(stat -c %s "$f") bytes, identical)"
    fi
done

# Error paths: must exit non-zero, cleanly (not by a signal, not by hanging).
check_error_exit() {
    local what="$1"
    shift
    local rc=0
    timeout 20 ./nostd-cat "$@" >/dev/null 2>"err.txt" </dev/null || rc=$?
    if ((rc == 0)); then
        fail "$what: exited 0, expected non-zero"
    elif ((rc == 124)); then
        fail "$what: timed out after 20s"
    elif ((rc > 128)); then
        fail "$what: killed by signal $((rc - 128)) (exit $rc), expected a clean non-zero exit"
    else
        echo "$what: ok (exit $rc)"
    fi
}
check_error_exit "./nostd-cat /nonexistent" /nonexistent
check_error_exit "./nostd-cat (no argument)"

if ((failed)); then
    echo "nostd: FAILED"
    exit 1
fi
echo "nostd: ok"
