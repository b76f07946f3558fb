"""Builds brisk._native, the extension, and links libbrisk into it.

Where libbrisk comes from, first match wins:

1. ``BRISK_LIB_DIR`` (a directory with ``libbrisk.a``; the header from ``BRISK_INCLUDE_DIR`` or
   the repository): linked statically.
2. The repository this directory sits in (``../../Cargo.toml``): ``cargo build --release --lib``
   (in ``$CARGO_TARGET_DIR``, default ``<repo>/target``; offline with ``CARGO_NET_OFFLINE=true``
   once the crates are in cargo's cache), then linked statically. The wheel carries the library:
   nothing else to install.
3. An installed libbrisk (``pkg-config brisk``, e.g. Debian's libbrisk-dev): linked dynamically.

Statically linked, only the extension's init function is exported (``--exclude-libs,ALL``), so
the wheel never clashes with another libbrisk in the process, and debug info is stripped.
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# What libbrisk.a needs from the system (`cargo rustc -- --print native-static-libs`, less -lc);
# the same list as cmake/BriskCargo.cmake's BRISK_STATIC_NATIVE_LIBS.
NATIVE_LIBS = ["gcc_s", "util", "rt", "pthread", "m", "dl"]


def in_repository() -> bool:
    cargo = REPO / "Cargo.toml"
    return (
        cargo.is_file()
        and (REPO / "include" / "brisk.h").is_file()
        and 'name = "brisk"' in cargo.read_text()
    )


def cargo_build() -> Path:
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    cmd = [cargo, "build", "--release", "--lib", "--locked",
           "--manifest-path", str(REPO / "Cargo.toml"), "--target-dir", str(target)]
    print("brisk: " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)
    return target / "release"


def pkg_config(*args: str) -> list:
    out = subprocess.run(["pkg-config", *args, "brisk"], check=True, capture_output=True, text=True)
    return shlex.split(out.stdout)


class BuildExt(build_ext):
    def build_extension(self, ext: Extension) -> None:
        lib_dir = os.environ.get("BRISK_LIB_DIR")
        include = os.environ.get("BRISK_INCLUDE_DIR") or str(REPO / "include")
        if in_repository():
            ext.extra_compile_args.append("-Werror")  # the repository's own builds stay warning-free
            if lib_dir is None:
                lib_dir = str(cargo_build())
        if lib_dir is not None:
            archive = Path(lib_dir) / "libbrisk.a"
            if not archive.is_file():
                raise SystemExit(f"brisk: {archive} not found")
            ext.include_dirs.append(include)
            ext.extra_objects.append(str(archive))
            ext.libraries.extend(NATIVE_LIBS)
            ext.extra_link_args.extend(
                ["-Wl,--exclude-libs,ALL", "-Wl,--gc-sections", "-Wl,--strip-debug"]
            )
            ext.depends.append(str(archive))
        else:
            try:
                cflags, libs = pkg_config("--cflags"), pkg_config("--libs")
            except (OSError, subprocess.CalledProcessError):
                raise SystemExit(
                    "brisk: no libbrisk to build against: build from the brisk repository, set "
                    "BRISK_LIB_DIR to a directory with libbrisk.a, or install libbrisk-dev "
                    "(pkg-config brisk)"
                ) from None
            ext.extra_compile_args.extend(cflags)
            ext.extra_link_args.extend(libs)
        super().build_extension(ext)


setup(
    ext_modules=[
        Extension(
            "brisk._native",
            sources=["src/brisk/_native.c"],
            extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra",
                                "-Wno-missing-field-initializers", "-fvisibility=hidden"],
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
