//! Replays the kept corpus of the gateway's fuzz targets (`fuzz/corpus/<target>/`)
//! through the fuzz bodies themselves, so plain `cargo test` (and so CI) runs every
//! input fuzzing kept.

use huddle_core::fuzzing::replay_corpus;
use huddle_gateway::fuzzing;

#[test]
fn a2a_envelope_corpus_is_answered_in_shape() {
    replay_corpus("a2a_envelope", fuzzing::a2a_envelope);
}

#[test]
fn mcp_message_corpus_is_parsed_without_a_crash() {
    replay_corpus("mcp_message", fuzzing::mcp_message);
}

#[test]
fn sse_resume_corpus_resumes_where_the_client_asked() {
    replay_corpus("sse_resume", fuzzing::sse_resume);
}
