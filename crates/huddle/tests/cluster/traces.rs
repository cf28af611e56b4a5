//! One client request is one trace across the nodes it crosses: a send reaching a node
//! that does not own the room is exported, by both nodes, under the client's trace id —
//! the request span on the node the client reached, the internal call's span on the
//! owner (a child of the forwarding node's span, through the hop's `traceparent`); a
//! call whose client did not sample its trace is traced by neither.

use std::time::Duration;

use huddle_testkit::otlp::{Collector, attribute, hex};
use huddle_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_call_is_one_trace_across_both_nodes() {
    let (addr, collector) = Collector::start().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let cluster = TestCluster::builder().nodes(2).env(&env).start().await;
    // A room owned by node 1, used through node 0.
    let entry = A2a::new(&cluster.node(0).base);
    let mut alice = None;
    for i in 0..40 {
        let a = entry.create_room(&format!("traced-{i}"), "alice").await;
        if cluster.owner(&a.room_id) == 1 {
            alice = Some(a);
            break;
        }
    }
    let alice = alice.expect("one of 40 random rooms is owned by node 1");

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let dropped = "1af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    // First a call whose client did not sample its trace: the hop follows, and neither
    // node exports anything of it. Then the sampled one.
    for (trace, flags) in [(dropped, "00"), (trace_id, "01")] {
        entry
            .act("message.send")
            .token(&alice.token)
            .text("hello")
            .traceparent(format!("00-{trace}-{parent}-{flags}"))
            .send()
            .await
            .ok();
    }

    let within = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans = collector.spans();
        let ours: Vec<_> = spans
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        let request = ours.iter().find(|s| {
            s.name == "request"
                && hex(&s.parent_span_id) == parent
                && attribute(s, "action").as_deref() == Some("message.send")
        });
        let on_owner = ours
            .iter()
            .find(|s| s.name == "node.call" && attribute(s, "node").as_deref() == Some("n1"));
        if let (Some(request), Some(on_owner)) = (request, on_owner) {
            assert_ne!(request.span_id, on_owner.span_id);
            assert_eq!(attribute(on_owner, "command").as_deref(), Some("Send"));
            // The owner's span hangs under a span of the forwarding node, not the client's.
            assert_ne!(hex(&on_owner.parent_span_id), parent);
            assert!(
                ours.iter().any(|s| s.span_id == on_owner.parent_span_id),
                "the owner's span's parent is a span of this trace: {ours:?}"
            );
            // Each node exports spans in the order they end: the unsampled call's would
            // be in by now.
            assert!(
                !spans.iter().any(|s| hex(&s.trace_id) == dropped),
                "a call its client did not sample was traced"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < within,
            "the spans of trace {trace_id} on both nodes were not exported: {ours:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
