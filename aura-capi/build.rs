//! Builds the C half of the library (the variadic `aura_log_emit`, which stable Rust cannot
//! define) and gives the shared library its soname and export list.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src/log_shim.c");
    println!("cargo:rerun-if-changed=aura.map");
    println!("cargo:rerun-if-changed=include/aura.h");
    cc::Build::new()
        .file(dir.join("src/log_shim.c"))
        .include(dir.join("include"))
        .flag_if_supported("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        .compile("aura_log_shim");
    // Only the shared library gets a soname and the version script (exports: aura_* only).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libaura.so.0");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        dir.join("aura.map").display()
    );
}
