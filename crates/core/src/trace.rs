//! W3C Trace Context: the `traceparent` value that ties together what the services do
//! for one request. The gateway takes it from the request (or starts a trace), stores it
//! with the outbox rows it writes, and every service passes it on as the AMQP header
//! [`TRACEPARENT`] of the messages it publishes about that work.
//!
//! Only what Airlock needs of <https://www.w3.org/TR/trace-context/>: version `00`
//! values are produced; values of later versions are read by their first four fields,
//! as the specification asks.

use std::fmt;
use std::str::FromStr;

/// The HTTP header and AMQP message header carrying the context.
pub const TRACEPARENT: &str = "traceparent";

/// A trace id (16 bytes), the id of the span that passed it on (8 bytes) and the
/// trace flags (bit 0: sampled).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid traceparent: {0}")]
pub struct InvalidTraceparent(&'static str);

impl TraceContext {
    /// A new trace, sampled, with random ids.
    pub fn new_root() -> Self {
        Self {
            trace_id: random_bytes(),
            span_id: random_bytes(),
            flags: 0x01,
        }
    }

    /// A span of the same trace whose parent is this one (what a service passes on
    /// after taking this context in).
    pub fn child(&self) -> Self {
        Self {
            span_id: random_bytes(),
            ..*self
        }
    }

    /// Reads a `traceparent` value.
    pub fn parse(value: &str) -> Result<Self, InvalidTraceparent> {
        let value = value.trim();
        let mut fields = value.split('-');
        let (Some(version), Some(trace_id), Some(span_id), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(InvalidTraceparent("expected version-traceid-spanid-flags"));
        };
        let version: [u8; 1] = hex(version).ok_or(InvalidTraceparent("bad version"))?;
        match version[0] {
            0xff => return Err(InvalidTraceparent("version ff is invalid")),
            // Version 00 has exactly four fields; a later version may append more.
            0x00 if fields.next().is_some() => {
                return Err(InvalidTraceparent("version 00 has four fields"));
            }
            _ => {}
        }
        let trace_id: [u8; 16] = hex(trace_id).ok_or(InvalidTraceparent("bad trace id"))?;
        let span_id: [u8; 8] = hex(span_id).ok_or(InvalidTraceparent("bad parent id"))?;
        let [flags] = hex::<1>(flags).ok_or(InvalidTraceparent("bad trace flags"))?;
        if trace_id == [0; 16] {
            return Err(InvalidTraceparent("the trace id is all zeros"));
        }
        if span_id == [0; 8] {
            return Err(InvalidTraceparent("the parent id is all zeros"));
        }
        Ok(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        to_hex(&self.span_id)
    }

    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

impl FromStr for TraceContext {
    type Err = InvalidTraceparent;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

/// Exactly `N` bytes from `2N` lower-case hex digits (the specification forbids
/// upper case).
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `N` (at most 16) random bytes, never all zeros: the last `N` bytes of a version-4
/// UUID, which are random but for the version's four bits and the variant's two.
fn random_bytes<const N: usize>() -> [u8; N] {
    loop {
        let uuid = uuid::Uuid::new_v4();
        let bytes = uuid.as_bytes();
        let mut out = [0; N];
        out.copy_from_slice(&bytes[16 - N..]);
        if out != [0; N] {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_specification_example() {
        let context = TraceContext::parse(EXAMPLE).expect("valid");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id(), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.to_string(), EXAMPLE);
        assert_eq!(EXAMPLE.parse::<TraceContext>(), Ok(context));
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let parent = TraceContext::parse(EXAMPLE).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.sampled(), parent.sampled());
        assert_eq!(TraceContext::parse(&child.to_string()), Ok(child));
    }

    #[test]
    fn new_traces_differ_and_round_trip() {
        let (a, b) = (TraceContext::new_root(), TraceContext::new_root());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.to_string().len(), 55);
        assert_eq!(TraceContext::parse(&a.to_string()), Ok(a));
    }

    #[test]
    fn rejects_what_the_specification_rejects() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_err(), "{bad:?} is invalid");
        }
    }

    #[test]
    fn reads_a_later_version_by_its_first_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes";
        let context = TraceContext::parse(later).expect("valid");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!context.sampled());
        assert!(context.to_string().starts_with("00-"));
    }
}
