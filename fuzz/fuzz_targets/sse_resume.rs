//! SSE reconnects: `Last-Event-ID` and `?after=` into a resume point, MCP event ids
//! (body and checks in `huddle_gateway::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huddle_gateway::fuzzing::sse_resume(data));
