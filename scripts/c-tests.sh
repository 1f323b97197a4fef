#!/usr/bin/env bash
# The C-ABI checks: builds the Rust library, then builds and runs the C/C++ test
# programs of examples_c/tests (listed in tests.txt) and the example programs of
# examples_c (train_digits, sample_checkpoint, gaussian_mixture; short runs) in
# several stages, and exits non-zero if anything failed.
#
#   scripts/c-tests.sh                 # every stage
#   scripts/c-tests.sh plain asan      # only these stages
#
# Stages:
#   headers   hatebm.h alone as C99/C11/C++17, hatebm.hpp alone as C++17 (-Werror -pedantic)
#   plain     the test programs and the examples, linked to libhatebm.so
#   asan      the same built with -fsanitize=address,undefined (checks the binaries
#             really link ASan; ASAN_OPTIONS=detect_leaks=1)
#   valgrind  the plain programs under valgrind --leak-check=full (definite+indirect
#             leaks fail); the examples with tiny settings (Valgrind is slow)
#   package   scripts/install.sh into a scratch prefix, then: the installed CLI
#             (bin/hatebm --version), SONAME, pkg-config (shared and static link;
#             shared programs run without LD_LIBRARY_PATH through the .pc file's
#             rpath), CMake find_package (shared, static, C++, and a shared
#             consumer run after `cmake --install`),
#             pkg_check_modules, the whole suite under CTest via find_package, and
#             the examples built with plain cc/c++ + pkg-config lines and with
#             examples_c/CMakeLists.txt (find_package and pkg-config), run by CTest
#
# Missing tools (cmake, pkg-config, valgrind) are installed by scripts/ensure-tools.sh.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

all_stages=(headers plain asan valgrind package)
if (($#)); then stages=("$@"); else stages=("${all_stages[@]}"); fi
for s in "${stages[@]}"; do
    [[ " ${all_stages[*]} " == *" $s "* ]] || { echo "c-tests: unknown stage '$s' (${all_stages[*]})" >&2; exit 2; }
done
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }

scripts/ensure-tools.sh c || exit 1

# The panic tests panic on purpose: keep Rust's hook to one line per panic.
export RUST_BACKTRACE=0

target_dir="$(cargo metadata --format-version 1 --no-deps | sed -e 's/.*"target_directory":"\([^"]*\)".*/\1/')"
work="$target_dir/c-tests"
logs="$work/logs"
mkdir -p "$logs"

echo "c-tests: cargo build -p hatebm-ffi --features test-hooks" >&2
cargo build -p hatebm-ffi --lib --features test-hooks || { echo "c-tests: cargo build failed" >&2; exit 1; }
libdir="$target_dir/debug"
make_tests() { make -s --no-print-directory -C examples_c/tests HATEBM_LIBDIR="$libdir" "$@"; }
make_examples() { make -s --no-print-directory -C examples_c HATEBM_LIBDIR="$libdir" "$@"; }
read -r -a tests <<<"$(make_tests list-tests)"
# Scratch files of the test programs (check.h's test_path).
export HATEBM_TEST_TMPDIR="$work/tmp"
rm -rf "$HATEBM_TEST_TMPDIR"
mkdir -p "$HATEBM_TEST_TMPDIR"

passed=0 failed=0 failures=()
# check NAME COMMAND...: runs COMMAND with output to a log; prints the program's
# closing line on success and the whole log on failure.
check() {
    local name="$1"; shift
    local log="$logs/${name//\//_}.log"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        printf 'ok    %-28s %s\n' "$name" "$(grep -E 'passed, [0-9]+ failed|OK$' "$log" | tail -n 1)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL  %s\n' "$name"
        sed -e 's/^/      | /' "$log" | tail -n 60
    fi
}
# (grep without -q reads all of its input: with pipefail, `grep -q` exiting early
# would make nm/readelf die of SIGPIPE and the check fail at random.)
links_asan() { nm "$1" | grep __asan_init >/dev/null; }
# Valgrind's default leak kinds (definite and possible are errors) plus the
# suppression file the package ships for the worker pool's thread-local
# storage: what a harness gets by following docs/c-abi.md.
vg() {
    valgrind -q --error-exitcode=1 --leak-check=full \
        --suppressions="$root/include/hatebm.supp" "$@"
}
# run_examples STAGE BIN_DIR SIZE [RUNNER...]: the three examples in order (the
# checkpoint of train_digits feeds sample_checkpoint). SIZE = normal | tiny.
run_examples() {
    local stage="$1" dir="$2" size="$3"
    shift 3
    local out="$work/examples-$stage"
    rm -rf "$out"
    local train=(6 "$out") gm=()
    if [[ $size == tiny ]]; then
        train=(2 "$out" train.batch_size=16 train.bank_size=64 langevin.steps=3
            "model.energy.dims=[64, 32, 1]" "model.generator.dims=[16, 32, 64]")
        gm=(400 1000)
    fi
    check "$stage/example:train_digits" "$@" "$dir/train_digits" "${train[@]}"
    check "$stage/example:sample_checkpoint" "$@" "$dir/sample_checkpoint" \
        "$out/checkpoint.safetensors" 16 "$out/samples" 5
    check "$stage/example:gaussian_mixture" "$@" "$dir/gaussian_mixture" "${gm[@]}"
}
not_needed() { ! readelf -d "$1" | grep "NEEDED.*libhatebm" >/dev/null; }
# no_ld_path PROGRAM ARGS...: runs PROGRAM with LD_LIBRARY_PATH unset, so only its
# own rpath can find libhatebm.so.
no_ld_path() { env -u LD_LIBRARY_PATH "$@"; }
# cli_version_is BIN VERSION: `BIN --version` runs (no LD_LIBRARY_PATH) and says VERSION.
cli_version_is() {
    local out
    out="$(no_ld_path "$1" --version)" || return 1
    echo "$out"
    [[ "$out" == "hatebm $2" ]]
}
soname_is() { readelf -d "$1" | grep "SONAME.*\[$2\]" >/dev/null; }

if want headers; then
    check headers make_tests header-check
fi

if want plain || want valgrind; then
    check build/plain make_tests MODE=plain build
    check build/plain-examples make_examples MODE=plain
    plain_dir="$(make_tests MODE=plain print-build-dir)"
    plain_ex="$(make_examples MODE=plain print-build-dir)"
fi
if want plain; then
    for t in "${tests[@]}"; do check "plain/$t" "$plain_dir/$t"; done
    run_examples plain "$plain_ex" normal
fi

if want asan; then
    check build/asan make_tests MODE=asan build
    check build/asan-examples make_examples MODE=asan
    asan_dir="$(make_tests MODE=asan print-build-dir)"
    asan_ex="$(make_examples MODE=asan print-build-dir)"
    asan_env=(env ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)
    for t in "${tests[@]}"; do
        check "asan/$t:links-asan" links_asan "$asan_dir/$t"
        check "asan/$t" "${asan_env[@]}" "$asan_dir/$t"
    done
    check "asan/examples:links-asan" links_asan "$asan_ex/train_digits"
    run_examples asan "$asan_ex" normal "${asan_env[@]}"
fi

if want valgrind; then
    for t in "${tests[@]}"; do
        check "valgrind/$t" vg "$plain_dir/$t"
    done
    run_examples valgrind "$plain_ex" tiny vg
fi

if want package; then
    prefix="$work/prefix"
    rm -rf "$prefix" "$work/pkg"
    mkdir -p "$work/pkg"
    # The dev profile reuses the build above; test-hooks so CTest can run the suite.
    check package/install scripts/install.sh --prefix "$prefix" --profile dev --features test-hooks
    pc="$prefix/lib/pkgconfig"
    export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    check package/cli-version cli_version_is "$prefix/bin/hatebm" "$(pkg-config --modversion hatebm)"
    check package/soname soname_is "$prefix/lib/libhatebm.so.$(pkg-config --modversion hatebm)" \
        "libhatebm.so.$(pkg-config --modversion hatebm)"
    src=examples_c/tests/packaging/consumer.c
    # shellcheck disable=SC2046
    check package/pkg-config-shared-build \
        cc -std=c11 -Wall -Wextra -Werror -pedantic "$src" -o "$work/pkg/pc_shared" \
        $(pkg-config --cflags --libs hatebm)
    # The .pc file's rpath is what finds the library: no LD_LIBRARY_PATH.
    check package/pkg-config-shared no_ld_path "$work/pkg/pc_shared"
    # shellcheck disable=SC2046
    check package/pkg-config-static-build \
        cc -std=c11 -Wall -Wextra -Werror -pedantic "$src" -o "$work/pkg/pc_static" \
        $(pkg-config --cflags hatebm) "$(pkg-config --variable=libdir hatebm)/libhatebm.a" \
        $(pkg-config --variable=native_static_libs hatebm)
    check package/pkg-config-static "$work/pkg/pc_static"
    check package/pkg-config-static-no-so not_needed "$work/pkg/pc_static"
    # Valgrind with its default leak settings and the installed suppression file.
    check package/valgrind-default-settings valgrind -q --error-exitcode=1 --leak-check=full \
        --suppressions="$(pkg-config --variable=valgrind_supp hatebm)" "$work/pkg/pc_shared"

    check package/cmake-consumer-configure cmake -S examples_c/tests/packaging -B "$work/pkg/cmake" \
        -DCMAKE_PREFIX_PATH="$prefix"
    check package/cmake-consumer-build cmake --build "$work/pkg/cmake"
    for b in consumer_shared consumer_static consumer_cpp consumer_pkgcfg; do
        check "package/cmake-$b" "$work/pkg/cmake/$b"
    done
    check package/cmake-static-no-so not_needed "$work/pkg/cmake/consumer_static"
    # Installed, a program loses CMake's build-tree RPATH; the target's link
    # option keeps the library's directory.
    check package/cmake-consumer-install cmake --install "$work/pkg/cmake" --prefix "$work/pkg/cmake-installed"
    check package/cmake-installed-consumer_shared no_ld_path "$work/pkg/cmake-installed/bin/consumer_shared"

    check package/ctest-configure cmake -S examples_c/tests -B "$work/pkg/ctest" \
        -DCMAKE_PREFIX_PATH="$prefix"
    check package/ctest-build cmake --build "$work/pkg/ctest"
    check package/ctest ctest --test-dir "$work/pkg/ctest" --output-on-failure

    # The examples as a user builds them: one cc / c++ line with pkg-config ...
    # shellcheck disable=SC2046
    check package/example-cc-train_digits \
        cc -std=c99 -Wall -Wextra -Werror -pedantic examples_c/train_digits.c \
        $(pkg-config --cflags --libs hatebm) -o "$work/pkg/train_digits"
    # shellcheck disable=SC2046
    check package/example-c++-gaussian_mixture \
        c++ -std=c++17 -Wall -Wextra -Werror -pedantic examples_c/gaussian_mixture.cpp \
        $(pkg-config --cflags --libs hatebm) -o "$work/pkg/gaussian_mixture"
    check package/example-run-gaussian_mixture no_ld_path "$work/pkg/gaussian_mixture" 400 1000
    # ... and with examples_c/CMakeLists.txt: find_package (static link) and pkg-config.
    check package/examples-cmake-configure cmake -S examples_c -B "$work/pkg/examples" \
        -DCMAKE_PREFIX_PATH="$prefix" -DHATEBM_STATIC=ON
    check package/examples-cmake-build cmake --build "$work/pkg/examples"
    check package/examples-cmake-static-no-so not_needed "$work/pkg/examples/train_digits"
    check package/examples-ctest ctest --test-dir "$work/pkg/examples" --output-on-failure
    check package/examples-pkgconfig-configure cmake -S examples_c -B "$work/pkg/examples-pc" \
        -DHATEBM_USE_PKG_CONFIG=ON
    check package/examples-pkgconfig-build cmake --build "$work/pkg/examples-pc"
    check package/examples-pkgconfig-ctest ctest --test-dir "$work/pkg/examples-pc" --output-on-failure
fi

echo
if ((failed)); then
    echo "c-tests: failed: ${failures[*]}"
fi
echo "c-tests: $passed passed, $failed failed"
((failed == 0))
