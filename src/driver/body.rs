//! Request bodies that cost no memory per request: an upload of any size is a
//! stream of `Bytes` slices of one shared buffer, framed by an optional
//! prefix and suffix (multipart). Memory does not grow with size x concurrency.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Size of each chunk handed to the connection.
const CHUNK: usize = 64 * 1024;

/// A request body.
#[derive(Debug)]
pub enum Body {
    Empty,
    /// Small bodies rendered per request (events).
    Full(Option<Bytes>),
    /// `prefix`, then `len` bytes cycled from `shared`, then `suffix`.
    Generated {
        prefix: Option<Bytes>,
        shared: Bytes,
        offset: usize,
        remaining: u64,
        suffix: Option<Bytes>,
    },
}

impl Body {
    /// A generated body of `len` bytes taken from `shared` starting at `offset`.
    pub fn generated(
        prefix: Option<Bytes>,
        shared: Bytes,
        offset: usize,
        len: u64,
        suffix: Option<Bytes>,
    ) -> Body {
        assert!(
            !shared.is_empty(),
            "the shared body buffer must not be empty"
        );
        let offset = offset % shared.len();
        Body::Generated {
            prefix,
            shared,
            offset,
            remaining: len,
            suffix,
        }
    }

    /// Total number of bytes this body will produce.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Full(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Body::Generated {
                prefix,
                remaining,
                suffix,
                ..
            } => {
                prefix.as_ref().map_or(0, |b| b.len() as u64)
                    + remaining
                    + suffix.as_ref().map_or(0, |b| b.len() as u64)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next piece of the body, `None` at the end (every piece is ready at once).
    pub(crate) fn next_chunk(&mut self) -> Option<Bytes> {
        match self {
            Body::Empty => None,
            Body::Full(b) => b.take(),
            Body::Generated {
                prefix,
                shared,
                offset,
                remaining,
                suffix,
            } => {
                if let Some(p) = prefix.take() {
                    return Some(p);
                }
                if *remaining > 0 {
                    let n = (*remaining).min((shared.len() - *offset).min(CHUNK) as u64) as usize;
                    let chunk = shared.slice(*offset..*offset + n);
                    *offset = (*offset + n) % shared.len();
                    *remaining -= n as u64;
                    return Some(chunk);
                }
                suffix.take()
            }
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            match this.next_chunk() {
                Some(chunk) if chunk.is_empty() => continue,
                Some(chunk) => return Poll::Ready(Some(Ok(Frame::data(chunk)))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn generated_body_has_exact_length_and_shares_the_buffer() {
        let shared = Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<u8>>());
        let body = Body::generated(
            Some(Bytes::from_static(b"<")),
            shared.clone(),
            990,
            2500,
            Some(Bytes::from_static(b">")),
        );
        assert_eq!(body.len(), 2502);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 2502);
        assert_eq!(bytes[0], b'<');
        assert_eq!(bytes[2501], b'>');
        // The payload cycles through the shared buffer from the offset.
        assert_eq!(&bytes[1..11], &shared[990..1000]);
        assert_eq!(&bytes[11..21], &shared[0..10]);
    }

    #[tokio::test]
    async fn empty_and_full_bodies() {
        assert_eq!(Body::Empty.collect().await.unwrap().to_bytes().len(), 0);
        let b = Body::Full(Some(Bytes::from_static(b"{}")));
        assert_eq!(b.size_hint().exact(), Some(2));
        assert_eq!(&b.collect().await.unwrap().to_bytes()[..], b"{}");
    }
}
