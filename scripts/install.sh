#!/usr/bin/env bash
# Builds libhatebm and installs it for C/C++ users under a prefix, without
# cargo-c (which, when available, does the same: `cargo cinstall -p hatebm-ffi`).
#
#   scripts/install.sh --prefix /usr/local
#   scripts/install.sh --prefix "$PWD/out/hatebm" --profile dev --features test-hooks
#
# Options:
#   --prefix P       install prefix (required)
#   --libdir D       library directory, relative to the prefix (default: lib)
#   --includedir D   header directory, relative to the prefix (default: include)
#   --profile NAME   cargo profile (default: release; `dev` reuses the debug build)
#   --features LIST  extra cargo features of hatebm-ffi (e.g. test-hooks, for tests only)
#   --destdir D      staging root prepended to every installed path (packagers)
#   --no-cli         do not build and install the `hatebm` command line
#
# Cargo's output (its progress bar on a terminal) goes to stderr as it builds.
#
# Installs:
#   bin/hatebm                                       (the command line, package hatebm-cli)
#   $libdir/libhatebm.so.X.Y.Z (SONAME libhatebm.so.X.Y.Z), libhatebm.so -> it, libhatebm.a
#   $includedir/hatebm.h, hatebm.hpp
#   $libdir/pkgconfig/hatebm.pc                      (Libs carries -Wl,-rpath,$libdir unless
#                                                     it is a system directory, so a
#                                                     program finds the library without
#                                                     LD_LIBRARY_PATH; Libs.private = rustc's
#                                                     native-static-libs)
#   $libdir/cmake/hatebm/hatebmConfig.cmake, hatebmConfigVersion.cmake
#                                                    (targets hatebm::hatebm, hatebm::hatebm_static)
# The CMake files locate the prefix relative to themselves, so a --destdir
# staging tree or a moved prefix still works; the .pc file records the prefix.
# hatebm::hatebm is imported by full path, so CMake puts its directory into the
# build-tree RPATH of every program linking it (see docs/c-abi.md for installed
# programs).
#
# Linux (ELF) only for now: the SONAME is passed as -Wl,-soname.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

prefix="" libdir="lib" includedir="include" profile="release" features="" destdir="" cli=1
die() { echo "install.sh: $*" >&2; exit 1; }
while (($#)); do
    case "$1" in
        --prefix) prefix="${2:?}"; shift 2 ;;
        --prefix=*) prefix="${1#*=}"; shift ;;
        --libdir) libdir="${2:?}"; shift 2 ;;
        --libdir=*) libdir="${1#*=}"; shift ;;
        --includedir) includedir="${2:?}"; shift 2 ;;
        --includedir=*) includedir="${1#*=}"; shift ;;
        --profile) profile="${2:?}"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --features) features="${2:?}"; shift 2 ;;
        --features=*) features="${1#*=}"; shift ;;
        --destdir) destdir="${2:?}"; shift 2 ;;
        --destdir=*) destdir="${1#*=}"; shift ;;
        --no-cli) cli=0; shift ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ -n "$prefix" ]] || die "--prefix is required"
[[ "$prefix" == /* ]] || prefix="$(pwd)/$prefix"
[[ "$libdir" != /* && "$includedir" != /* ]] || die "--libdir/--includedir are relative to --prefix"
[[ "$(uname -s)" == Linux ]] || die "only Linux is supported by this script; use cargo-c elsewhere"

version="$(cargo pkgid -p hatebm-ffi | sed -e 's/.*[#@]//')"
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "unexpected version '$version'"
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}" patch="${BASH_REMATCH[3]}"
# No ABI promise before 1.0: the SONAME carries the full version (as cargo-c's
# version_suffix_components = 3 in ffi/Cargo.toml).
soname="libhatebm.so.$major.$minor.$patch"

target_dir="$(cargo metadata --format-version 1 --no-deps | sed -e 's/.*"target_directory":"\([^"]*\)".*/\1/')"
case "$profile" in
    dev|debug) profile=dev; profile_dir=debug ;;
    *) profile_dir="$profile" ;;
esac
artifacts="$target_dir/$profile_dir"

log="$(mktemp "${TMPDIR:-/tmp}/hatebm-install.XXXXXX")"
trap 'rm -f "$log"' EXIT
# Cargo's output is shown as it comes (it takes minutes from a clean tree) and
# kept for the native-static-libs note. Through the pipe cargo would draw no
# progress bar, so ask for it when stderr is a terminal.
if [[ -t 2 ]]; then
    export CARGO_TERM_PROGRESS_WHEN="${CARGO_TERM_PROGRESS_WHEN:-always}"
    export CARGO_TERM_PROGRESS_WIDTH="${CARGO_TERM_PROGRESS_WIDTH:-$(tput cols 2>/dev/null || echo 80)}"
fi
echo "install.sh: building hatebm-ffi $version ($profile profile${features:+, features: $features})" >&2
# `cargo rustc` so that the SONAME link argument applies to this crate's cdylib
# only; `--print native-static-libs` gives the system libraries a static link needs
# (cargo replays the note even when nothing is rebuilt).
cargo rustc -p hatebm-ffi --lib --profile "$profile" ${features:+--features "$features"} \
    --crate-type cdylib,staticlib -- \
    -C "link-arg=-Wl,-soname,$soname" --print native-static-libs 2>&1 | tee "$log" >&2 ||
    die "building hatebm-ffi failed (cargo's output above)"
native_libs="$(sed -n -e 's/.*native-static-libs: //p' "$log" | tail -n 1)"
[[ -n "$native_libs" ]] || die "rustc printed no native-static-libs (cargo's output above)"
if ((cli)); then
    echo "install.sh: building the hatebm command line (hatebm-cli, $profile profile)" >&2
    cargo build -p hatebm-cli --bin hatebm --profile "$profile" ||
        die "building hatebm-cli failed (cargo's output above; --no-cli skips it)"
fi

# An rpath to the library directory (in the .pc file's Libs and the CMake
# target's link options), unless that is one the dynamic loader searches anyway.
case "$prefix/$libdir" in
    /lib | /lib64 | /usr/lib | /usr/lib64 | /usr/lib/*-linux-gnu) rpath=0 ;;
    *) rpath=1 ;;
esac
dest="$destdir$prefix"
install -d "$dest/$libdir" "$dest/$includedir" "$dest/$libdir/pkgconfig" "$dest/$libdir/cmake/hatebm"
install -m 0755 "$artifacts/libhatebm.so" "$dest/$libdir/$soname"
ln -sfn "$soname" "$dest/$libdir/libhatebm.so"
install -m 0644 "$artifacts/libhatebm.a" "$dest/$libdir/libhatebm.a"
install -m 0644 include/hatebm.h include/hatebm.hpp "$dest/$includedir/"
# Valgrind suppressions for the worker pool's thread-local storage (see the file).
install -d "$dest/share/hatebm"
install -m 0644 include/hatebm.supp "$dest/share/hatebm/hatebm.supp"
if ((cli)); then
    install -d "$dest/bin"
    install -m 0755 "$artifacts/hatebm" "$dest/bin/hatebm"
fi

cat >"$dest/$libdir/pkgconfig/hatebm.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/$libdir
includedir=\${prefix}/$includedir
# System libraries a static link of libhatebm.a needs (rustc --print native-static-libs):
#   cc app.c \$(pkg-config --cflags hatebm) \\
#      "\$(pkg-config --variable=libdir hatebm)/libhatebm.a" \$(pkg-config --variable=native_static_libs hatebm)
native_static_libs=$native_libs
# Valgrind with default leak settings: valgrind --leak-check=full --suppressions=\$(pkg-config --variable=valgrind_supp hatebm) ./app
valgrind_supp=\${prefix}/share/hatebm/hatebm.supp

Name: hatebm
Description: Hat EBM (energy-based models) training and sampling, C ABI
Version: $version
# The rpath lets a program linked with "pkg-config --libs hatebm" find libhatebm.so
# under a non-system prefix without LD_LIBRARY_PATH.
Libs: -L\${libdir}$( ((rpath)) && printf ' -Wl,-rpath,${libdir}') -lhatebm
Libs.private: $native_libs
Cflags: -I\${includedir}
PC

# Path from <prefix>/<libdir>/cmake/hatebm back up to <prefix>.
up="../.."
IFS=/ read -r -a parts <<<"$libdir"
for p in "${parts[@]}"; do [[ -z "$p" || "$p" == . ]] || up="$up/.."; done
cmake_libs=""
for l in $native_libs; do
    case "$l" in
        -l*) cmake_libs="${cmake_libs:+$cmake_libs;}${l#-l}" ;;
        *) cmake_libs="${cmake_libs:+$cmake_libs;}$l" ;;
    esac
done

cat >"$dest/$libdir/cmake/hatebm/hatebmConfig.cmake" <<CMAKE
# CMake package for libhatebm $version, generated by scripts/install.sh.
#
#   find_package(hatebm $major.$minor CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE hatebm::hatebm)         # shared
#   target_link_libraries(app PRIVATE hatebm::hatebm_static)  # static, with its system libs
#
# The prefix is found relative to this file, so the tree can be relocated.
get_filename_component(_hatebm_prefix "\${CMAKE_CURRENT_LIST_DIR}/$up" ABSOLUTE)

if(NOT TARGET hatebm::hatebm)
  add_library(hatebm::hatebm SHARED IMPORTED)
  set_target_properties(hatebm::hatebm PROPERTIES
    IMPORTED_LOCATION "\${_hatebm_prefix}/$libdir/$soname"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_hatebm_prefix}/$includedir")
$( ((rpath)) && cat <<RPATH
  # CMake's build-tree RPATH already covers this imported library; the link
  # option keeps it in programs that are installed too (as the .pc file's Libs).
  set_property(TARGET hatebm::hatebm APPEND PROPERTY
    INTERFACE_LINK_OPTIONS "LINKER:-rpath,\${_hatebm_prefix}/$libdir")
RPATH
)
endif()

if(NOT TARGET hatebm::hatebm_static)
  add_library(hatebm::hatebm_static STATIC IMPORTED)
  set_target_properties(hatebm::hatebm_static PROPERTIES
    IMPORTED_LOCATION "\${_hatebm_prefix}/$libdir/libhatebm.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "\${_hatebm_prefix}/$includedir"
    INTERFACE_LINK_LIBRARIES "$cmake_libs")
endif()

set(hatebm_VERSION "$version")
set(hatebm_INCLUDE_DIRS "\${_hatebm_prefix}/$includedir")
set(hatebm_LIBRARIES hatebm::hatebm)
unset(_hatebm_prefix)
CMAKE

cat >"$dest/$libdir/cmake/hatebm/hatebmConfigVersion.cmake" <<CMAKE
# Version check for libhatebm $version, generated by scripts/install.sh.
# No compatibility is promised before 1.0: a request matches only the same
# MAJOR.MINOR (with at least the requested patch); from 1.0 on, the same MAJOR.
set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
set(PACKAGE_VERSION_EXACT FALSE)
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  # too old
elseif(NOT PACKAGE_FIND_VERSION_MAJOR EQUAL $major)
  # other major
elseif($major EQUAL 0 AND NOT PACKAGE_FIND_VERSION_MINOR EQUAL $minor)
  # other 0.x series
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
if(CMAKE_SIZEOF_VOID_P AND NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  set(PACKAGE_VERSION "$version (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
CMAKE

echo "install.sh: installed libhatebm $version under $dest" >&2
echo "install.sh:   $libdir/$soname, $libdir/libhatebm.a, $includedir/hatebm.h[pp]," >&2
echo "install.sh:   $libdir/pkgconfig/hatebm.pc, $libdir/cmake/hatebm/" >&2
((cli)) && echo "install.sh:   bin/hatebm" >&2
exit 0
