#![no_main]
//! Fuzz target `predict`: see fuzz/targets.rs.
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::predict_lines(data));
