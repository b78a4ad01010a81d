#!/usr/bin/env bash
# Continuous fuzzing of the native decoders: libFuzzer with AddressSanitizer
# and UndefinedBehaviorSanitizer (clang), one target per native/fuzz/*.cc.
#
#   native/fuzz/run.sh [SECONDS] [TARGET...]   npm run fuzz -- 600 bslz4
#   native/fuzz/run.sh 0                       build, then run the regression inputs only
#   native/fuzz/run.sh --check                 exit 0 when clang can build fuzz targets here
#
# Environment: FUZZ_SECONDS (per target, default 60; the argument wins),
# FUZZ_PARALLEL (targets at a time, default 1), FUZZ_RSS_MB (default 2048),
# CXX (default clang++), BEAMEDGE_DATA (the seed data, default ../shared/data).
# Everything it builds and finds lives in .fuzz/ (git-ignored); the corpus
# there grows from run to run.
set -euo pipefail
cd "$(dirname "$0")/../.."

CXX="${CXX:-clang++}"
OUT=.fuzz
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
CXXFLAGS=(-std=c++17 -O1 -g -ffp-contract=off -fno-omit-frame-pointer -Inative/src -Inative/fuzz)
MAX_LEN=65536

say() { printf 'fuzz: %s\n' "$*"; }

# Can this machine build libFuzzer targets at all? (Debian: clang + libclang-rt-14-dev.)
check_toolchain() {
  if ! command -v "$CXX" >/dev/null 2>&1; then
    say "$CXX not found. Install clang (Debian: apt-get install clang libclang-rt-14-dev) or set CXX."
    return 1
  fi
  mkdir -p "$OUT"
  if ! printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' |
    "$CXX" -x c++ - -fsanitize=fuzzer,address,undefined -o "$OUT/probe" >"$OUT/probe.log" 2>&1; then
    say "$CXX cannot link -fsanitize=fuzzer,address,undefined (Debian: apt-get install libclang-rt-14-dev):"
    sed 's/^/  /' "$OUT/probe.log" | head -5
    return 1
  fi
}

if [ "${1:-}" = "--check" ]; then
  check_toolchain
  exit $?
fi

seconds="${FUZZ_SECONDS:-60}"
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  shift
fi
parallel="${FUZZ_PARALLEL:-1}"
rss_mb="${FUZZ_RSS_MB:-2048}"

all_targets=()
for f in native/fuzz/*.cc; do all_targets+=("$(basename "$f" .cc)"); done
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -f "native/fuzz/$t.cc" ] || { say "no target '$t' (targets: ${all_targets[*]})"; exit 2; }
done
for d in native/fuzz/regressions/*/; do
  [ -d "$d" ] || continue
  [ -f "native/fuzz/$(basename "$d").cc" ] || { say "native/fuzz/regressions/$(basename "$d") names no target"; exit 2; }
done

check_toolchain || exit 2

# --- Build: the kernels once (every native/src file without N-API), then one binary per target.
mkdir -p "$OUT/obj" "$OUT/bin" "$OUT/logs"
newest() { ls -t "$@" 2>/dev/null | head -1; }
src_headers=(native/src/*.h)
objs=()
for src in native/src/*.cc; do
  grep -q '#include <napi.h>' "$src" && continue
  obj="$OUT/obj/$(basename "$src" .cc).o"
  objs+=("$obj")
  if [ ! -f "$obj" ] || [ "$(newest "$obj" "$src" "${src_headers[@]}")" != "$obj" ]; then
    say "compiling $src"
    "$CXX" "${CXXFLAGS[@]}" "${SAN[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
done
for t in "${targets[@]}"; do
  bin="$OUT/bin/$t"
  if [ ! -x "$bin" ] || [ "$(newest "$bin" "native/fuzz/$t.cc" native/fuzz/*.h "${objs[@]}")" != "$bin" ]; then
    say "building $t"
    "$CXX" "${CXXFLAGS[@]}" "${SAN[@]}" -fsanitize=fuzzer "native/fuzz/$t.cc" "${objs[@]}" -o "$bin"
  fi
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
unset BEAMEDGE_KERNELS  # each byte_offset target pins its own kernel

# --- Regression inputs: every one must run clean before any fuzzing.
for t in "${targets[@]}"; do
  dir="native/fuzz/regressions/$t"
  [ -d "$dir" ] || continue
  files=("$dir"/*)
  [ -f "${files[0]}" ] || continue
  if ! "$OUT/bin/$t" -rss_limit_mb="$rss_mb" -timeout=10 "${files[@]}" >"$OUT/logs/$t.regressions.log" 2>&1; then
    say "REGRESSION in $t: an input under $dir fails again. Log: $OUT/logs/$t.regressions.log"
    grep -E 'Running:|ERROR|SUMMARY|PROPERTY|runtime error' "$OUT/logs/$t.regressions.log" | tail -8 | sed 's/^/  /'
    exit 1
  fi
  say "$t: ${#files[@]} regression input(s) pass"
done
[ "$seconds" -gt 0 ] || exit 0

# --- Seed corpus from the real detector data (test/fuzz/seeds.ts), regenerated each run.
rm -rf "$OUT/seeds"
if [ -f dist/test/fuzz/seeds.js ] && node dist/test/fuzz/seeds.js "$OUT/seeds" >"$OUT/logs/seeds.log" 2>&1; then
  sed 's/^/fuzz: /' "$OUT/logs/seeds.log"
else
  say "NOTICE: no seed corpus (build dist/ first: npx tsc -p .; log: $OUT/logs/seeds.log); fuzzing from scratch"
fi

# --- Fuzz each target for $seconds, $parallel at a time.
start_marker="$OUT/logs/.start"
touch "$start_marker"
fuzz_one() {
  local t="$1" corpus="$OUT/corpus/$1" crashes="$OUT/crashes/$1" seeds="$OUT/seeds/$1"
  mkdir -p "$corpus" "$crashes" "$seeds"
  local dict=()  # native/fuzz/<target>.dict, else the dictionary of its family (cbf_integrate: cbf.dict)
  if [ -f "native/fuzz/$t.dict" ]; then dict=(-dict="native/fuzz/$t.dict")
  elif [ -f "native/fuzz/${t%%_*}.dict" ]; then dict=(-dict="native/fuzz/${t%%_*}.dict"); fi
  local t0=$SECONDS rc=0
  nice -n 10 "$OUT/bin/$t" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=10 -max_len="$MAX_LEN" \
    -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" "$corpus" "$seeds" >"$OUT/logs/$t.log" 2>&1 || rc=$?
  local runs corp found
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/logs/$t.log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$OUT/logs/$t.log" | tail -1)
  corp=$(grep -o 'corp: [0-9]*' "$OUT/logs/$t.log" | tail -1 | cut -d' ' -f2)
  found=$(find "$crashes" -type f -newer "$start_marker" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  printf '%s %s %s %s %s %s\n' "$t" "$((SECONDS - t0))" "${runs:-?}" "${corp:-?}" "$found" "$rc" >"$OUT/logs/$t.result"
}
say "fuzzing ${#targets[@]} target(s) for ${seconds}s each, $parallel at a time (logs in $OUT/logs)"
for t in "${targets[@]}"; do
  rm -f "$OUT/logs/$t.result"
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait

# --- Summary table; a crash fails the run and says how to keep the input.
failed=0
printf '\n%-20s %8s %14s %10s %8s\n' target seconds executions corpus crashes
for t in "${targets[@]}"; do
  read -r _ secs runs corp found rc <"$OUT/logs/$t.result"
  printf '%-20s %8s %14s %10s %8s\n' "$t" "$secs" "$runs" "$corp" "$found"
  if [ "$found" != 0 ] || [ "$rc" != 0 ]; then failed=1; fi
done
for t in "${targets[@]}"; do
  read -r _ _ _ _ found rc <"$OUT/logs/$t.result"
  [ "$found" != 0 ] || [ "$rc" != 0 ] || continue
  echo
  say "$t FAILED (libFuzzer exit $rc); the report, from $OUT/logs/$t.log:"
  grep -E 'ERROR|SUMMARY|PROPERTY|runtime error|==[0-9]+==' "$OUT/logs/$t.log" | head -12 | sed 's/^/  /'
  find "$OUT/crashes/$t" -type f -newer "$start_marker" | while read -r f; do
    say "  input: $f"
    say "  reproduce: $OUT/bin/$t $f"
    say "  fix the bug, then keep the input: mkdir -p native/fuzz/regressions/$t && cp $f native/fuzz/regressions/$t/<what-it-breaks>"
  done
done
exit "$failed"
