//! Marks the fuzz build, so that the `#[path]`-included wire module leaves out the parts
//! that need the whole `meshproof` crate (its benchmark) also under a plain `cargo check`,
//! which does not pass `--cfg fuzzing` as `cargo fuzz` does.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(meshproof_fuzz)");
    println!("cargo::rustc-cfg=meshproof_fuzz");
}
