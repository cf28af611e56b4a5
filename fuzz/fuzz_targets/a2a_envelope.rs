//! `POST /a2a` bodies: the JSON-RPC envelope and `SendMessage`'s action and parameters
//! (body and checks in `huddle_gateway::fuzzing`, shared with the corpus replay test).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huddle_gateway::fuzzing::a2a_envelope(data));
