#![no_main]
//! Fuzz target `image_file`: see fuzz/targets.rs.
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::image_file(data));
