#![no_main]
//! Fuzz target `video_frame`: see fuzz/targets.rs.
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::video_frame(data));
