#![no_main]
//! Fuzz target `cifar`: see fuzz/targets.rs.
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::cifar_batch(data));
