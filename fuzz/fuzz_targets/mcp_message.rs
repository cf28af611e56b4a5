//! `POST /mcp` bodies: the transport's look, rmcp's parse, tool arguments into action
//! parameters, room resource URIs (body and checks in `huddle_gateway::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| huddle_gateway::fuzzing::mcp_message(data));
