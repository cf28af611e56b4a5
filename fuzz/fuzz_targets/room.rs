//! `huddle_core::Room` over arbitrary command sequences (the body and its checks live in
//! `huddle_core::fuzzing`, shared with the corpus replay test).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huddle_core::fuzzing::room_commands(data));
