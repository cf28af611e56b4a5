//! Code generated from `proto/` at the workspace root.
//!
//! Layout:
//! - [`v1`] — the public API, package `huddle.v1`: `RoomService` (every room action of
//!   docs/protocol.md, section 'Actions', plus the resumable `Subscribe` stream), its
//!   messages, and the tonic client ([`v1::room_service_client`]) and server
//!   ([`v1::room_service_server`]).
//! - [`internal`] — the node-to-node service of a cluster, package `huddle.internal.v1`
//!   (`Node`: room calls forwarded to their owner, and room feeds followed from it).
//! - [`FILE_DESCRIPTOR_SET`] — the encoded descriptors of every file here, for server
//!   reflection.
//! - [`conversions`] — prost types ⇄ `huddle-core` types, in one module (prost types
//!   never reach the core; the core does not know this crate).

pub mod conversions;

/// `huddle.v1`: the public room API (`proto/huddle/v1/rooms.proto`).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("huddle.v1");
}

/// `huddle.internal.v1`: the node-to-node service of a cluster
/// (`proto/huddle/internal/v1/node.proto`). Not a public API.
pub mod internal {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("huddle.internal.v1");
}

/// The `FileDescriptorSet` of `proto/`, encoded: register it with tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/huddle_descriptor.bin"));

/// The full name of the room service, as health checking and reflection know it.
pub const ROOM_SERVICE: &str = "huddle.v1.RoomService";
