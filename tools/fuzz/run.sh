#!/bin/sh
# Build and run the decoder fuzz harness for a bounded time (`make fuzz`).
#
#   tools/fuzz/run.sh [SECONDS]        (default 60)
#
# With clang and its libFuzzer runtime: a libFuzzer target under ASan and
# UBSan, corpus kept in build/fuzz/corpus (crashes land in build/fuzz/).
# Otherwise: the harness's own mutation driver built with gcc under ASan and
# UBSan. Python is embedded from the interpreter that made .venv.
set -eu
SECONDS_TO_RUN=${1:-60}
PY=${PY:-.venv/bin/python}
OUT=build/fuzz
mkdir -p "$OUT/corpus" "$OUT/seeds"
PYINC=$($PY -c 'import sysconfig; print(sysconfig.get_path("include"))')
PYLIBDIR=$($PY -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
PYLIB=python$($PY -c 'import sysconfig; print(sysconfig.get_config_var("LDVERSION"))')
$PY tools/fuzz/make_seeds.py "$OUT/seeds"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -Icsrc -I$PYINC -Wall -Wextra -Wno-missing-field-initializers"
LDFLAGS="-L$PYLIBDIR -l$PYLIB -Wl,-rpath,$PYLIBDIR -lm"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# Python frees some memory only at exit (or never): leaks are not the question here.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1
export PYTHONMALLOC=malloc

if command -v clang >/dev/null 2>&1 &&
   echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' |
   clang -x c -fsanitize=fuzzer - -o "$OUT/probe" 2>/dev/null; then
    echo "fuzz: libFuzzer (clang) for ${SECONDS_TO_RUN}s"
    clang $CFLAGS $SAN -fsanitize=fuzzer tools/fuzz/fuzz_decode.c -o "$OUT/fuzz_decode" $LDFLAGS
    cp "$OUT"/seeds/* "$OUT/corpus/"
    "$OUT/fuzz_decode" "$OUT/corpus" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 \
        -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/"
else
    echo "fuzz: no libFuzzer; gcc mutation driver for ${SECONDS_TO_RUN}s"
    gcc $CFLAGS $SAN -DSA_FUZZ_STANDALONE tools/fuzz/fuzz_decode.c -o "$OUT/fuzz_decode" $LDFLAGS
    "$OUT/fuzz_decode" "$SECONDS_TO_RUN" "$OUT"/seeds/*
fi
