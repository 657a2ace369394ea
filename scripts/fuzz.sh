#!/usr/bin/env bash
# Builds and runs ringecho's coverage-guided fuzz targets (engine/fuzz) with
# AFL++ through cargo-afl, on stable Rust. Installs cargo-afl and builds its
# AFL++ idempotently (quick when present), builds the targets, fuzzes each
# one from its committed corpus, and fails if any target found a crash or a
# hang. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly CARGO_AFL_VERSION="0.18.2"
readonly TARGET_DIR="target/afl"
readonly OUT_DIR="$TARGET_DIR/out"
readonly ALL_TARGETS=(frames upgrade)

usage() {
    cat <<'EOF'
Usage: scripts/fuzz.sh [--seconds N | --execs N] [--target NAME]... [--sequential]
                       [--update-corpus] [--build-only]

Fuzzes each target (frames, upgrade; default: both, side by side) from its
committed corpus in engine/fuzz/corpus/NAME and fails on any crash or hang.

  --seconds N      stop each target after N seconds (default 60)
  --execs N        stop each target after N executions instead
  --target NAME    fuzz only NAME (repeatable)
  --sequential     one target after the other (default: in parallel, one
                   core each)
  --update-corpus  afterwards, merge what afl-fuzz found into the committed
                   corpus, minimised with afl-cmin
  --build-only     install the tools and build the targets, then stop
  -h, --help       this help

Results: target/afl/out/NAME/default/{fuzzer_stats,crashes,hangs}.
Long campaigns on a shared machine: flock /tmp/ringecho-measure.lock scripts/fuzz.sh ...
EOF
}

seconds=60
execs=""
targets=()
parallel=1
update_corpus=0
build_only=0
while (($# > 0)); do
    case "$1" in
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --execs) execs="${2:?--execs needs a number}"; shift 2 ;;
        --target) targets+=("${2:?--target needs a name}"); shift 2 ;;
        --sequential) parallel=0; shift ;;
        --update-corpus) update_corpus=1; shift ;;
        --build-only) build_only=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "fuzz.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
((${#targets[@]} > 0)) || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] \
        || { echo "fuzz.sh: unknown target '$target' (known: ${ALL_TARGETS[*]})" >&2; exit 2; }
done
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seconds must be a number" >&2; exit 2; }
[[ -z "$execs" || "$execs" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --execs must be a number" >&2; exit 2; }

# == tools: cargo-afl, and the AFL++ it builds from its bundled source =========
if [[ "$(cargo afl --version 2>/dev/null)" != *"$CARGO_AFL_VERSION"* ]]; then
    echo "== installing cargo-afl $CARGO_AFL_VERSION"
    cargo install --quiet --locked --force cargo-afl --version "$CARGO_AFL_VERSION"
fi
if cargo afl fuzz -h 2>&1 | grep -q "was not built"; then
    echo "== building AFL++ for cargo-afl (once per toolchain)"
    cargo afl config --build
fi
# afl-cmin runs afl-showmap from AFL_PATH or PATH: make it this AFL++'s, not
# another install's (Debian's afl++ 4.04c lacks options 4.40c passes).
rust_version="$(rustc --version | awk '{ print $2 }')"
afl_bin="$(compgen -G "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs/rustc-$rust_version-*/afl.rs-$CARGO_AFL_VERSION/afl/bin" | head -1)"
[[ -x "$afl_bin/afl-fuzz" ]] || { echo "fuzz.sh: cargo-afl's AFL++ not found" >&2; exit 1; }
export AFL_PATH="$afl_bin" PATH="$afl_bin:$PATH"

# == the targets ================================================================
# Their own target directory: cargo-afl's RUSTFLAGS (coverage instrumentation)
# would otherwise rebuild the workspace's normal artifacts. No LTO: it only
# slows the build (the engine's release profile is tuned for serving).
echo "== building the fuzz targets"
CARGO_TARGET_DIR="$TARGET_DIR" CARGO_PROFILE_RELEASE_LTO=false \
    cargo afl build --quiet --release -p ringecho-fuzz --features afl --bins
((build_only)) && exit 0

# == fuzzing ====================================================================
# AFL_NO_AFFINITY: other processes may hold every core (afl-fuzz would refuse
# to start). AFL_SKIP_CPUFREQ: the governor is not ours to change.
# AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES: core_pattern may pipe to a handler.
# -t 1000: a 1 s per-input timeout, far above the ~50 us an input takes, so
# that a loaded CI machine reports no false hangs.
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_FAST_CAL=1 \
    AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
limit=(-V "$seconds")
budget="$seconds s"
if [[ -n "$execs" ]]; then
    limit=(-E "$execs")
    budget="$execs executions"
fi

run_target() {
    local target="$1"
    rm -rf "${OUT_DIR:?}/$target"
    mkdir -p "$OUT_DIR"
    cargo afl fuzz "${limit[@]}" -t 1000 -i "engine/fuzz/corpus/$target" \
        -o "$OUT_DIR/$target" "$TARGET_DIR/release/fuzz_$target" \
        >"$OUT_DIR/$target.log" 2>&1
}

echo "== fuzzing ${targets[*]} ($budget each)"
pids=()
for target in "${targets[@]}"; do
    if ((parallel)); then
        run_target "$target" &
        pids+=($!)
    else
        run_target "$target" || { tail -20 "$OUT_DIR/$target.log"; exit 1; }
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid" || { echo "fuzz.sh: afl-fuzz failed (see $OUT_DIR/*.log)" >&2; exit 1; }
done

# == results ====================================================================
stat() { awk -v key="$2" '$1 == key { print $3 }' "$OUT_DIR/$1/default/fuzzer_stats"; }
failed=0
for target in "${targets[@]}"; do
    crashes="$(stat "$target" saved_crashes)"
    hangs="$(stat "$target" saved_hangs)"
    printf '%-8s %12s execs in %5s s (%s/s), corpus %s, edges %s/%s (%s), crashes %s, hangs %s\n' \
        "$target" "$(stat "$target" execs_done)" "$(stat "$target" run_time)" \
        "$(stat "$target" execs_per_sec)" "$(stat "$target" corpus_count)" \
        "$(stat "$target" edges_found)" "$(stat "$target" total_edges)" \
        "$(stat "$target" bitmap_cvg)" "$crashes" "$hangs"
    if ((crashes > 0 || hangs > 0)); then
        failed=1
        echo "fuzz.sh: $target failed; inputs in $OUT_DIR/$target/default/{crashes,hangs}:" >&2
        ls "$OUT_DIR/$target/default/crashes" "$OUT_DIR/$target/default/hangs" >&2
        echo "replay one with: $TARGET_DIR/release/fuzz_$target < FILE" >&2
    fi
done
((failed)) && exit 1

if ((update_corpus)); then
    for target in "${targets[@]}"; do
        corpus="engine/fuzz/corpus/$target"
        pool="$OUT_DIR/$target.pool"
        merged="$OUT_DIR/$target.cmin"
        rm -rf "$pool" "$merged"
        mkdir -p "$pool"
        cp "$OUT_DIR/$target/default/queue"/id:* "$pool/"
        [[ -d "$corpus" ]] && cp "$corpus"/* "$pool/"
        # afl-cmin keeps the smallest inputs that together hit every edge
        # that the old corpus and the new queue hit. The bash version: the
        # Python one of AFL++ 4.40c records no edges from these targets.
        "$AFL_PATH/afl-cmin.bash" -i "$pool" -o "$merged" -- "$TARGET_DIR/release/fuzz_$target" \
            >"$OUT_DIR/$target.cmin.log" 2>&1 \
            || { tail -c 2000 "$OUT_DIR/$target.cmin.log"; exit 1; }
        if ! compgen -G "$merged/*" >/dev/null; then
            echo "fuzz.sh: afl-cmin kept nothing of $target; the corpus stays" >&2
            exit 1
        fi
        rm -rf "$corpus"
        mkdir -p "$corpus"
        # Names by content, so that re-runs do not churn the committed files.
        for file in "$merged"/*; do
            cp "$file" "$corpus/$(sha1sum "$file" | cut -c1-16)"
        done
        echo "$target corpus: $(ls "$corpus" | wc -l) inputs"
    done
fi
echo "fuzz: ${#targets[@]} targets, 0 crashes, 0 hangs"
