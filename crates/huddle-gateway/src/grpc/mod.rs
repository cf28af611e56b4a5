//! gRPC: the public `huddle.v1.RoomService` (proto/huddle/v1/rooms.proto), gRPC health
//! checking and server reflection, as axum routes that share the main HTTP port (h2c)
//! and can also be served alone on a port of their own (`--grpc-listen`).
//!
//! Layout:
//! - [`routes`] (this file) — the services as an axum router.
//! - [`service`]     — `RoomService` over the [`Router`](huddle_cluster::Router).
//!
//! Conversions between prost and core types are `huddle_proto::conversions`.
//! - [`status`]      — `RoomError` → gRPC `Status` (one exhaustive match), stream ends.

pub mod service;
pub mod status;

use futures::FutureExt;
use huddle_proto::v1::room_service_server::RoomServiceServer;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use service::RoomGrpc;

use crate::AppState;

/// Every gRPC service as axum routes, one per service path (`/huddle.v1.RoomService/*`,
/// `/grpc.health.v1.Health/*`, both reflection versions) and no fallback, so they merge
/// into the HTTP application without taking over its unknown paths.
///
/// Health reports SERVING for the server ("") and for `huddle.v1.RoomService`, until
/// `state.shutdown` fires: then NOT_SERVING, and open watches end.
/// Request messages are limited to the HTTP body limit (`--max-body-bytes`).
pub fn routes(state: &AppState) -> axum::Router {
    let max_message = state.config.max_body_bytes;
    let rooms = RoomServiceServer::new(RoomGrpc::new(state.router.clone(), state.shutdown.clone()))
        .max_decoding_message_size(max_message);

    let (health, health_service) = tonic_health::server::health_reporter();
    // A fresh reporter's lock is free: this completes on the first poll.
    if health
        .set_serving::<RoomServiceServer<RoomGrpc>>()
        .now_or_never()
        .is_none()
    {
        tracing::warn!("could not mark huddle.v1.RoomService as serving");
    }
    // The task lives until the shutdown (or the runtime) ends; routes built outside a
    // runtime keep reporting SERVING.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(report_draining(
            health,
            state.shutdown.clone(),
            state.readiness.clone(),
        ));
    }

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(huddle_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    // grpcurl 1.8 and other older clients speak only v1alpha.
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    Routes::from(axum::Router::new())
        .add_service(rooms)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::from_fn(crate::observe::grpc_layer))
}

/// Once the node shuts down: health reports NOT_SERVING (watchers learn that the node is
/// going), then forgets its statuses, which ends every open `Health/Watch` stream: like
/// `Subscribe`, a watch must not hold the shutdown open.
/// NOT_SERVING from the moment the node drains (with its readiness), or shuts down.
async fn report_draining(
    mut health: HealthReporter,
    shutdown: CancellationToken,
    readiness: crate::ready::Readiness,
) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = readiness.drained() => {}
    }
    let rooms = <RoomServiceServer<RoomGrpc> as NamedService>::NAME;
    for service in ["", rooms] {
        health
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
    for service in ["", rooms] {
        health.clear_service_status(service).await;
    }
}
