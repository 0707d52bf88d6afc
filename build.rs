//! Finds `moto_server` for the test suites that run against it (see `tests/support/moto.rs`).
//!
//! Without it on `PATH`, the `no_moto` cfg marks those suites ignored (shown, with the
//! reason, in the test summary), unless `SHAKEDOWN_REQUIRE_MOTO` is set (CI): then they run
//! and fail. The crate's own code never reads the cfg.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_moto)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=SHAKEDOWN_REQUIRE_MOTO");
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    match dirs
        .iter()
        .map(|dir| dir.join("moto_server"))
        .find(|exe| exe.is_file())
    {
        // Removing it reruns this script.
        Some(exe) => println!("cargo::rerun-if-changed={}", exe.display()),
        None => {
            // Installing it (a new file in a PATH directory) reruns this script.
            // Only absolute directories: `.` would be the package itself, build output too.
            for dir in dirs.iter().filter(|d| d.is_absolute() && d.is_dir()) {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
            let required = std::env::var_os("SHAKEDOWN_REQUIRE_MOTO")
                .is_some_and(|v| !v.is_empty() && v != "0");
            if !required {
                println!("cargo::rustc-cfg=no_moto");
            }
        }
    }
}
