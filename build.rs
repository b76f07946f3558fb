//! Generates the C header with cbindgen into OUT_DIR (with the hand-written declarations of the
//! variadic functions, `src/capi/commandf.h`, added), compiles their C definitions
//! (`src/capi/commandf.c`), and sets the shared library's soname.
//!
//! The committed `include/brisk.h` is what users build against; a test fails when it differs
//! from the generated one. `BRISK_UPDATE_HEADER=1 cargo build` refreshes the committed copy.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=BRISK_UPDATE_HEADER");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("version");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("version");
    let patch = env::var("CARGO_PKG_VERSION_PATCH").expect("version");
    let version_macros = format!(
        "\n/** The version of this header; compare with brisk_version(), the library's. */\n\
         #define BRISK_VERSION_MAJOR {major}\n#define BRISK_VERSION_MINOR {minor}\n\
         #define BRISK_VERSION_PATCH {patch}\n#define BRISK_VERSION \"{major}.{minor}.{patch}\"\n"
    );

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let generated = out_dir.join("brisk.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .with_after_include(version_macros)
        .generate()
        .expect("cbindgen can generate the header")
        .write_to_file(&generated);
    add_variadic_declarations(&generated, &crate_dir.join("src/capi/commandf.h"));

    // The variadic functions (Rust cannot define them); they include the generated header.
    cc::Build::new()
        .file(crate_dir.join("src/capi/commandf.c"))
        .include(&out_dir)
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .flag("-Werror")
        .compile("brisk_commandf");

    if env::var_os("BRISK_UPDATE_HEADER").is_some() {
        std::fs::copy(&generated, crate_dir.join("include/brisk.h")).expect("include/ is writable");
    }

    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // The ABI line (README, "ABI policy"): every 0.x minor may break the ABI, so while 0.x
        // the soname carries the minor (libbrisk.so.0.1); from 1.0 on, the major alone.
        let soversion = if major == "0" {
            format!("0.{minor}")
        } else {
            major
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbrisk.so.{soversion}");
    }
}

/// Puts the declarations in `extra` at the end of the header's `extern "C"` block.
fn add_variadic_declarations(header: &std::path::Path, extra: &std::path::Path) {
    const END_OF_EXTERN_C: &str = "#ifdef __cplusplus\n}  // extern \"C\"";
    let text = std::fs::read_to_string(header).expect("the header was just written");
    let declarations = std::fs::read_to_string(extra).expect("src/capi/commandf.h exists");
    let at = text
        .rfind(END_OF_EXTERN_C)
        .expect("cbindgen closes the extern \"C\" block");
    let combined = format!(
        "{}{}\n{}",
        &text[..at],
        declarations.trim_start(),
        &text[at..]
    );
    std::fs::write(header, combined).expect("OUT_DIR is writable");
}
