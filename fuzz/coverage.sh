#!/bin/bash
# fuzz/coverage.sh BUILD_DIR PURE_SRC... - line coverage of each parser by
# its committed corpus (`make fuzz-coverage`): every fuzz/fuzz_NAME.c is
# built with clang's source-based coverage, run once over
# fuzz/corpus/fuzz_NAME (libFuzzer -runs=0: each input once, no new
# ones), and llvm-cov reports the lines of src/NAME.c it reached (for
# fuzz_engine, src/engine.c; the targets are named after the file they
# fuzz). One line per target, then the whole table from llvm-cov.
# fuzz_session also links the modules in $FUZZ_SESSION_SRC (the Makefile's).
set -eu
out=$1; shift
mkdir -p "$out"
printf '%-18s %-22s %s\n' target file "lines covered"
for f in fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    src=src/${n#fuzz_}.c
    extra=
    if [ "$n" = fuzz_session ]; then extra=${FUZZ_SESSION_SRC:?set by the Makefile}; fi
    clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer \
        -fprofile-instr-generate -fcoverage-mapping -o "$out/$n" "$f" "$@" $extra -lpcre2-8
    LLVM_PROFILE_FILE="$out/$n.profraw" "$out/$n" -runs=0 "fuzz/corpus/$n" \
        > "$out/$n.log" 2>&1
    llvm-profdata merge -sparse -o "$out/$n.profdata" "$out/$n.profraw"
    llvm-cov report "$out/$n" -instr-profile="$out/$n.profdata" "$@" $extra > "$out/$n.report"
    # columns: file, regions, missed, cover, functions, missed, executed,
    # lines, missed lines, line cover, ...
    awk -v n="$n" -v s="$src" -v b="$(basename "$src")" '$1 == s || $1 == b { printf "%-18s %-22s %s (%d of %d)\n", n, s, $10, $8 - $9, $8 }' \
        "$out/$n.report"
done
