#![no_main]
//! Fuzz target `npy`: see fuzz/targets.rs.
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::npy_grid(data));
