//! Frames that are ready together, joined into one write of a bounded size.
//!
//! A burst of messages to many streams costs one write per stream, not one per message.
//! The size matters too: a stream whose client stopped reading holds the write it is
//! stuck on for as long as it stays open, and anyone may open streams and send large
//! messages. So a joined write ends once it reaches [`CHUNK_BYTES`] (a single frame may
//! be larger): a stalled stream holds about that much, not a burst's worth.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures::Stream;

/// Where a joined write stops taking more frames.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// `frames` joined as they are ready, each write ending at `max` bytes or more (see the
/// module doc).
pub fn coalesce<S>(frames: S, max: usize) -> Coalesce<S>
where
    S: Stream<Item = Vec<u8>> + Unpin,
{
    Coalesce {
        frames,
        max,
        done: false,
    }
}

pub struct Coalesce<S> {
    frames: S,
    max: usize,
    done: bool,
}

impl<S> Stream for Coalesce<S>
where
    S: Stream<Item = Vec<u8>> + Unpin,
{
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut chunk: Vec<u8> = Vec::new();
        loop {
            match Pin::new(&mut self.frames).poll_next(cx) {
                Poll::Ready(Some(frame)) => {
                    if chunk.is_empty() {
                        chunk = frame;
                    } else {
                        chunk.extend_from_slice(&frame);
                    }
                    if chunk.len() >= self.max {
                        return Poll::Ready(Some(Bytes::from(chunk)));
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready((!chunk.is_empty()).then(|| Bytes::from(chunk)));
                }
                Poll::Pending if chunk.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Bytes::from(chunk))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn frames(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes.iter().map(|&n| vec![b'x'; n]).collect()
    }

    #[tokio::test]
    async fn ready_frames_are_joined_up_to_the_bound() {
        let ready = futures::stream::iter(frames(&[10, 10, 10, 30, 5, 100, 1]));
        let chunks: Vec<usize> = coalesce(ready, 32).map(|c| c.len()).collect().await;
        // 10+10+10 is under 32, the 30 takes it past: one write; then 5 and 100; then 1.
        assert_eq!(chunks, [60, 105, 1]);
    }

    #[tokio::test]
    async fn a_frame_not_ready_yet_is_not_waited_for() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Vec<u8>>();
        let mut joined = coalesce(rx, 1024);
        tx.unbounded_send(vec![b'a'; 3]).unwrap();
        tx.unbounded_send(vec![b'b'; 4]).unwrap();
        assert_eq!(
            joined.next().await.unwrap().len(),
            7,
            "what was ready goes at once"
        );
        tx.unbounded_send(vec![b'c'; 5]).unwrap();
        drop(tx);
        assert_eq!(joined.next().await.unwrap().len(), 5);
        assert!(joined.next().await.is_none());
    }
}
