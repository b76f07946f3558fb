#!/usr/bin/env bash
# check_install.sh <build-dir> <scratch-dir> <cmake> <cc> <version> [<libdir>]
#
# The `install` CTest test: installs the build tree into <scratch-dir>/prefix with
# `cmake --install`, checks the layout, then builds tests/consumer/main.c against it
#   1. with pkg-config (shared), 2. with pkg-config --static (libbrisk.a + Libs.private, and
#   fully static with -static), 3. with CMake find_package (brisk::brisk, brisk::brisk_static
#   and the C++ consumer),
# runs every binary, and checks that the installed .so is stripped (its debug info installed
# apart) and exports nothing but brisk_* symbols. <libdir> is CMAKE_INSTALL_LIBDIR (lib).
set -euo pipefail

build=$1 scratch=$2 cmake=$3 cc=$4 version=$5 libdir_name=${6:-lib}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
prefix=$scratch/prefix
out=$scratch/out
# The soname's version: 0.<minor> while 0.x, else <major> (README, "ABI policy").
IFS=. read -r v_major v_minor _ <<<"$version"
if [[ $v_major == 0 ]]; then major=0.$v_minor; else major=$v_major; fi

fail() {
  echo "check_install: FAILED: $*" >&2
  exit 1
}
step() { echo "== $*"; }

rm -rf "$scratch"
mkdir -p "$out"

step "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix"

libdir=$prefix/$libdir_name
step "layout"
[[ -f $libdir/libbrisk.so.$version && ! -L $libdir/libbrisk.so.$version ]] ||
  fail "lib/libbrisk.so.$version is missing or not a regular file"
[[ -L $libdir/libbrisk.so.$major ]] || fail "lib/libbrisk.so.$major is not a symlink"
[[ -L $libdir/libbrisk.so ]] || fail "lib/libbrisk.so is not a symlink"
[[ $(readlink -f "$libdir/libbrisk.so") == "$(readlink -f "$libdir/libbrisk.so.$version")" ]] ||
  fail "lib/libbrisk.so does not lead to libbrisk.so.$version"
[[ $(readlink "$libdir/libbrisk.so.$major") == "libbrisk.so.$version" ]] ||
  fail "lib/libbrisk.so.$major should point to libbrisk.so.$version (relative)"
[[ -f $libdir/libbrisk.a ]] || fail "lib/libbrisk.a is missing"
[[ -f $prefix/include/brisk.h ]] || fail "include/brisk.h is missing"
cmp -s "$prefix/include/brisk.h" "$source_dir/include/brisk.h" ||
  fail "the installed brisk.h differs from include/brisk.h"
[[ -f $libdir/pkgconfig/brisk.pc ]] || fail "lib/pkgconfig/brisk.pc is missing"
for f in briskConfig.cmake briskConfigVersion.cmake briskTargets.cmake; do
  [[ -f $libdir/cmake/brisk/$f ]] || fail "lib/cmake/brisk/$f is missing"
done
soname=$(readelf -d "$libdir/libbrisk.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libbrisk.so.$major" ]] || fail "soname is '$soname', expected libbrisk.so.$major"
sections=$(readelf -S "$libdir/libbrisk.so.$version")
if grep -q '\.debug_info' <<<"$sections"; then
  fail "the installed libbrisk.so.$version carries debug info (it should be stripped)"
fi
grep -q '\.gnu_debuglink' <<<"$sections" || fail "libbrisk.so.$version has no .gnu_debuglink"
build_id=$(readelf -n "$libdir/libbrisk.so.$version" | sed -n 's/.*Build ID: //p')
debug_file=$prefix/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug
[[ -f $debug_file ]] || fail "no debug file $debug_file for build id $build_id"
debug_sections=$(readelf -S "$debug_file")
grep -q '\.debug_info' <<<"$debug_sections" || fail "$debug_file holds no debug info"
echo "ok: files, symlinks, soname $soname, stripped ($(stat -c %s "$libdir/libbrisk.so.$version") bytes), debug info in $debug_file"

step "exported symbols"
exported=$(nm -D --defined-only "$libdir/libbrisk.so.$version" | awk '{print $NF}')
count=$(grep -c '^brisk_' <<<"$exported" || true)
others=$(grep -v '^brisk_' <<<"$exported" || true)
[[ -z $others ]] || fail "the .so exports symbols other than brisk_*:"$'\n'"$others"
((count > 20)) || fail "only $count brisk_* symbols exported"
grep -qx brisk_version <<<"$exported" || fail "brisk_version is not exported"
echo "ok: $count symbols, all brisk_*"

export PKG_CONFIG_PATH=$libdir/pkgconfig
step "pkg-config"
[[ $(pkg-config --modversion brisk) == "$version" ]] ||
  fail "pkg-config --modversion brisk is '$(pkg-config --modversion brisk)', expected $version"
# shellcheck disable=SC2046 # word splitting of pkg-config's output is intended
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror "$here/main.c" -o "$out/consumer_pc" \
  $(pkg-config --cflags --libs brisk)
# (Outputs are captured before grep: with pipefail, `cmd | grep -q` fails at random when grep
# exits early and cmd gets SIGPIPE.)
dynamic=$(readelf -d "$out/consumer_pc")
grep -q "NEEDED.*\[libbrisk.so.$major\]" <<<"$dynamic" ||
  fail "consumer_pc does not need libbrisk.so.$major"
LD_LIBRARY_PATH=$libdir "$out/consumer_pc"
# And that it really ran the installed library, not some other one.
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$out/consumer_pc")
grep -q "libbrisk.so.$major => $libdir/" <<<"$resolved" ||
  fail "consumer_pc did not resolve libbrisk.so.$major in $libdir:"$'\n'"$resolved"

step "pkg-config --static"
private_libs=$(pkg-config --static --libs brisk | sed 's/ *-L[^ ]*//g; s/ *-lbrisk\b//')
# shellcheck disable=SC2046,SC2086
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror "$here/main.c" -o "$out/consumer_pc_static" \
  $(pkg-config --cflags brisk) "$(pkg-config --variable=libdir brisk)/libbrisk.a" $private_libs
dynamic=$(readelf -d "$out/consumer_pc_static")
if grep -q 'NEEDED.*libbrisk' <<<"$dynamic"; then
  fail "consumer_pc_static needs a shared libbrisk"
fi
"$out/consumer_pc_static"

step "pkg-config --static with -static (a fully static program)"
# What a user types: the flags pkg-config prints, nothing else. (glibc warns that getaddrinfo
# in a static program needs the shared NSS modules at run time; that is a warning.)
# shellcheck disable=SC2046
"$cc" -static -std=c11 -Wall -Wextra -Wpedantic -Werror "$here/main.c" -o "$out/consumer_full_static" \
  $(pkg-config --cflags brisk) $(pkg-config --static --libs brisk) 2>"$out/static-link.log" || {
  cat "$out/static-link.log" >&2
  fail "cc -static with pkg-config --static --libs brisk did not link"
}
dynamic=$(readelf -d "$out/consumer_full_static" 2>&1 || true)
if grep -q 'NEEDED' <<<"$dynamic"; then
  fail "consumer_full_static needs shared libraries:"$'\n'"$dynamic"
fi
"$out/consumer_full_static"

step "CMake find_package"
"$cmake" -S "$here" -B "$out/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DBRISK_EXPECTED_VERSION="$version" -DCMAKE_C_FLAGS="-Wall -Wextra -Wpedantic -Werror"
"$cmake" --build "$out/cmake"
LD_LIBRARY_PATH=$libdir "$out/cmake/consumer"
"$out/cmake/consumer_static"
if [[ -x $out/cmake/consumer_cxx ]]; then
  LD_LIBRARY_PATH=$libdir "$out/cmake/consumer_cxx"
fi

step "relocated prefix"
cp -a "$prefix" "$scratch/moved"
moved_cflags=$(PKG_CONFIG_PATH=$scratch/moved/$libdir_name/pkgconfig pkg-config --cflags brisk)
[[ $moved_cflags == *"$scratch/moved/"* ]] || fail "brisk.pc is not relocatable: $moved_cflags"
"$cmake" -S "$here" -B "$out/cmake-moved" -DCMAKE_PREFIX_PATH="$scratch/moved" \
  -DCMAKE_C_COMPILER="$cc" -DBRISK_EXPECTED_VERSION="$version" >/dev/null
"$cmake" --build "$out/cmake-moved" --target consumer >/dev/null
LD_LIBRARY_PATH=$scratch/moved/$libdir_name "$out/cmake-moved/consumer"

rm -rf "$scratch"
echo "install check passed"
