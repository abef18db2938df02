//! Trace and span identifiers, and the W3C `traceparent` header.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier or `traceparent` header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The text is not the expected number of lowercase or uppercase hex digits.
    #[error("expected {expected} hex digits, got {input:?}")]
    BadHex {
        /// How many hex digits the identifier has.
        expected: usize,
        /// The rejected text (cut to 64 characters).
        input: String,
    },
    /// The all-zero identifier is invalid by the W3C Trace Context spec.
    #[error("the all-zero {0} id is invalid")]
    Zero(&'static str),
    /// The `traceparent` header is not `version-traceid-spanid-flags`.
    #[error("malformed traceparent {0:?}: expected `00-<32 hex>-<16 hex>-<2 hex>`")]
    Traceparent(String),
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn parse_hex<const N: usize>(s: &str) -> Result<u128, IdError> {
    if s.len() != N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdError::BadHex {
            expected: N,
            input: clip(s),
        });
    }
    u128::from_str_radix(s, 16).map_err(|_| IdError::BadHex {
        expected: N,
        input: clip(s),
    })
}

/// A 128-bit trace id, shown as 32 lowercase hex digits. Never zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// A 64-bit span id, shown as 16 lowercase hex digits. Never zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl TraceId {
    /// A fresh random trace id.
    pub fn random() -> Self {
        loop {
            let v = fastrand::u128(..);
            if v != 0 {
                return Self(v);
            }
        }
    }
    /// Wraps a raw value; `None` for zero.
    pub fn from_u128(v: u128) -> Option<Self> {
        (v != 0).then_some(Self(v))
    }
    /// The raw value.
    pub fn to_u128(self) -> u128 {
        self.0
    }
    /// The 16 big-endian bytes (as OTLP carries them).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl SpanId {
    /// A fresh random span id.
    pub fn random() -> Self {
        loop {
            let v = fastrand::u64(..);
            if v != 0 {
                return Self(v);
            }
        }
    }
    /// Wraps a raw value; `None` for zero.
    pub fn from_u64(v: u64) -> Option<Self> {
        (v != 0).then_some(Self(v))
    }
    /// The raw value.
    pub fn to_u64(self) -> u64 {
        self.0
    }
    /// The 8 big-endian bytes (as OTLP carries them).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl FromStr for TraceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::from_u128(parse_hex::<32>(s)?).ok_or(IdError::Zero("trace"))
    }
}

impl FromStr for SpanId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // parse_hex::<16> bounds the value to 64 bits.
        Self::from_u64(parse_hex::<16>(s)? as u64).ok_or(IdError::Zero("span"))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

macro_rules! serde_hex {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_hex!(TraceId);
serde_hex!(SpanId);

/// A parsed W3C `traceparent` header (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace the caller is part of.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the span we start.
    pub parent_span_id: SpanId,
    /// Whether the caller sampled this trace (flag bit 0).
    pub sampled: bool,
}

impl TraceParent {
    /// Parses `00-<trace id>-<span id>-<flags>`. Future versions are accepted
    /// as the spec asks (the first four fields are read, the rest ignored).
    pub fn parse(header: &str) -> Result<Self, IdError> {
        let bad = || IdError::Traceparent(clip(header));
        let h = header.trim();
        let mut parts = h.split('-');
        let version = parts.next().ok_or_else(bad)?;
        let trace = parts.next().ok_or_else(bad)?;
        let span = parts.next().ok_or_else(bad)?;
        let flags = parts.next().ok_or_else(bad)?;
        let rest = parts.next();
        if version.len() != 2 || !version.bytes().all(|b| b.is_ascii_hexdigit()) || version == "ff"
        {
            return Err(bad());
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && rest.is_some() {
            return Err(bad());
        }
        if flags.len() != 2 {
            return Err(bad());
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| bad())?;
        Ok(Self {
            trace_id: trace.parse()?,
            parent_span_id: span.parse()?,
            sampled: flags & 1 == 1,
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_span_id,
            u8::from(self.sampled)
        )
    }
}

impl FromStr for TraceParent {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(h).unwrap();
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(tp.sampled);
        assert_eq!(tp.to_string(), h);
        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn traceparent_rejects_malformed() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                TraceParent::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        // A future version may carry more fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_ok()
        );
    }

    #[test]
    fn ids_serde_as_hex() {
        let t = TraceId::from_u128(0xabc).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"00000000000000000000000000000abc\"");
        let back: TraceId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<SpanId>("\"xyz\"").is_err());
    }
}
