//! Whether the work at hand belongs to a trace the node keeps.
//!
//! The sampler decides once, where a trace enters the node (a request, a call forwarded
//! by another node), and says so in the target of the span it opens there: [`TRACED`] or
//! [`UNTRACED`]. The trace exporter never sees an untraced span, and the room's own spans
//! (`room.command`) are only made under a kept one ([`in_kept_trace`]): a request that is
//! not kept records nothing for the exporter. Room work outside any request is not traced.

/// The target of the span where a kept trace enters the node.
pub const TRACED: &str = "huddle::traced";

/// The target of the span where a trace that is not kept enters the node.
pub const UNTRACED: &str = "huddle::untraced";

/// Whether the current span is part of a kept trace: there is one, and it is not where an
/// unkept trace entered. (Without a trace exporter, and with text logs, no span is
/// recorded at all: then there is none.)
pub fn in_kept_trace() -> bool {
    tracing::Span::current()
        .metadata()
        .is_some_and(|meta| meta.target() != UNTRACED)
}
