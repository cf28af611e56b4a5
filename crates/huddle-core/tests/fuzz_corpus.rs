//! Replays the kept corpus of the `room` fuzz target (`fuzz/corpus/room/`) through the
//! fuzz body itself, so plain `cargo test` (and so CI) runs every input fuzzing kept.

#[test]
fn room_corpus_replays_without_breaking_a_rule() {
    huddle_core::fuzzing::replay_corpus("room", huddle_core::fuzzing::room_commands);
}
