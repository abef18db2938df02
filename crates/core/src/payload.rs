//! Capturing user payloads (`input`, `output`, metadata) as bounded JSON.
//!
//! Payloads are captured through [`serde::Serialize`] by a serializer that
//! enforces [`SerializationLimits`] *while* it walks the value, so a
//! self-referential `Serialize` impl, a 100 MB string or nesting 10 000 deep
//! costs at most the limits, never a stack overflow or an out-of-memory.
//! Whatever is cut leaves a visible marker (`"…[aiobs: truncated 12345 bytes]"`),
//! and a field whose `Serialize` fails becomes a marker string: the span is never lost.

use serde::ser::{self, Serialize};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt::Display;

/// Bounds applied to every captured payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SerializationLimits {
    /// Longest string kept, in bytes (cut on a character boundary).
    pub max_string_len: usize,
    /// Deepest nesting of arrays and objects kept.
    pub max_depth: usize,
    /// Most array elements kept.
    pub max_array_len: usize,
    /// Most object keys kept.
    pub max_object_keys: usize,
    /// Most bytes (of strings and numbers) kept for one payload in total.
    pub max_total_bytes: usize,
}

impl Default for SerializationLimits {
    fn default() -> Self {
        Self {
            max_string_len: 128 * 1024,
            max_depth: 32,
            max_array_len: 1_000,
            max_object_keys: 500,
            max_total_bytes: 1024 * 1024,
        }
    }
}

impl SerializationLimits {
    /// Sets `max_string_len`.
    pub fn with_max_string_len(mut self, n: usize) -> Self {
        self.max_string_len = n;
        self
    }
    /// Sets `max_depth`.
    pub fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }
    /// Sets `max_array_len`.
    pub fn with_max_array_len(mut self, n: usize) -> Self {
        self.max_array_len = n;
        self
    }
    /// Sets `max_object_keys`.
    pub fn with_max_object_keys(mut self, n: usize) -> Self {
        self.max_object_keys = n;
        self
    }
    /// Sets `max_total_bytes`.
    pub fn with_max_total_bytes(mut self, n: usize) -> Self {
        self.max_total_bytes = n;
        self
    }
}

/// The key under which a cut object records how many keys it lost.
pub const TRUNCATED_KEYS_MARKER: &str = "$aiobs_truncated_keys";

/// The marker every cut in aiobs ends with — payload capture, an exporter
/// fitting a vendor's size limit — so a reader recognises a cut anywhere:
/// `…[aiobs: truncated N bytes]`, or `…[aiobs: truncated N bytes: <why>]`.
/// `removed` counts bytes of the original text (UTF-8).
///
/// ```
/// use aiobs_core::payload::truncation_marker;
///
/// assert_eq!(truncation_marker(12, None), "…[aiobs: truncated 12 bytes]");
/// assert_eq!(
///     truncation_marker(3, Some("over the vendor's limit")),
///     "…[aiobs: truncated 3 bytes: over the vendor's limit]"
/// );
/// ```
pub fn truncation_marker(removed: usize, why: Option<&str>) -> String {
    match why {
        None => format!("…[aiobs: truncated {removed} bytes]"),
        Some(why) => format!("…[aiobs: truncated {removed} bytes: {why}]"),
    }
}

/// Keeps the head of `text` — at most `max_bytes`, cut on a character
/// boundary — followed by [`truncation_marker`]; `text` itself when it fits.
/// The marker comes on top of `max_bytes`.
///
/// ```
/// use aiobs_core::payload::truncate_marked;
///
/// assert_eq!(truncate_marked("short", 10, None), "short");
/// // Cut on a character boundary: `é` is two bytes.
/// assert_eq!(truncate_marked("héllo world", 2, None), "h…[aiobs: truncated 11 bytes]");
/// ```
pub fn truncate_marked<'a>(
    text: &'a str,
    max_bytes: usize,
    why: Option<&str>,
) -> std::borrow::Cow<'a, str> {
    if text.len() <= max_bytes {
        return std::borrow::Cow::Borrowed(text);
    }
    let keep = text.floor_char_boundary(max_bytes);
    let marker = truncation_marker(text.len() - keep, why);
    let mut out = String::with_capacity(keep + marker.len());
    out.push_str(&text[..keep]);
    out.push_str(&marker);
    std::borrow::Cow::Owned(out)
}

/// A captured payload and how much of it was cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// The bounded JSON value.
    pub value: Value,
    /// How many places were cut or replaced by a marker (0: captured whole).
    pub truncations: u32,
}

/// Captures `value` as bounded JSON. Never panics and never fails: what cannot
/// be captured is replaced by a marker string.
pub fn capture<T: Serialize + ?Sized>(value: &T, limits: &SerializationLimits) -> Captured {
    let ctx = Ctx {
        limits: *limits,
        budget: Cell::new(limits.max_total_bytes),
        truncations: Cell::new(0),
    };
    let value = child(&ctx, 0, value);
    Captured {
        value,
        truncations: ctx.truncations.get(),
    }
}

/// Applies the limits to a JSON value already built (re-captures it).
pub fn bound_value(value: &Value, limits: &SerializationLimits) -> Captured {
    capture(value, limits)
}

struct Ctx {
    limits: SerializationLimits,
    budget: Cell<usize>,
    truncations: Cell<u32>,
}

impl Ctx {
    fn cut(&self) {
        self.truncations
            .set(self.truncations.get().saturating_add(1));
    }
    fn marker(&self, what: impl Display) -> Value {
        self.cut();
        Value::String(format!("[aiobs: {what}]"))
    }
    fn spend(&self, n: usize) -> bool {
        let left = self.budget.get();
        if left == 0 {
            return false;
        }
        self.budget.set(left.saturating_sub(n));
        true
    }
}

/// Serializes a nested value at `depth`, turning limits and errors into markers.
fn child<T: Serialize + ?Sized>(ctx: &Ctx, depth: usize, value: &T) -> Value {
    if depth > ctx.limits.max_depth {
        return ctx.marker(format_args!("max depth {} reached", ctx.limits.max_depth));
    }
    if ctx.budget.get() == 0 {
        return ctx.marker("payload budget exhausted");
    }
    match value.serialize(Bounded { ctx, depth }) {
        Ok(v) => v,
        Err(Error(msg)) => ctx.marker(format_args!("serialization failed: {msg}")),
    }
}

/// The serializer's error: a failing `Serialize` impl or an endless sequence.
#[derive(Debug)]
struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        let mut s = msg.to_string();
        s.truncate(s.floor_char_boundary(200));
        Error(s)
    }
}

/// Elements past the kept ones are skipped without serializing them; past this
/// many we give up on the sequence (an endless iterator) and mark it.
const ABANDON_AFTER_SKIPPED: usize = 100_000;

#[derive(Clone, Copy)]
struct Bounded<'a> {
    ctx: &'a Ctx,
    depth: usize,
}

impl<'a> Bounded<'a> {
    fn string(self, s: &str) -> Value {
        let max = self.ctx.limits.max_string_len.min(self.ctx.budget.get());
        if s.len() <= max {
            self.ctx.spend(s.len());
            return Value::String(s.to_owned());
        }
        self.ctx.spend(s.floor_char_boundary(max));
        self.ctx.cut();
        Value::String(truncate_marked(s, max, None).into_owned())
    }
    fn float(self, f: f64) -> Value {
        self.ctx.spend(8);
        match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            // JSON has no NaN or infinity: keep them visible as strings.
            None => Value::String(f.to_string()),
        }
    }
    fn seq(self, hint: Option<usize>) -> SeqSer<'a> {
        SeqSer {
            ctx: self.ctx,
            depth: self.depth,
            items: Vec::with_capacity(hint.unwrap_or(0).min(self.ctx.limits.max_array_len).min(64)),
            skipped: 0,
        }
    }
    fn map(self) -> MapSer<'a> {
        MapSer {
            ctx: self.ctx,
            depth: self.depth,
            map: Map::new(),
            key: None,
            skipped: 0,
        }
    }
}

fn wrap(variant: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(variant.to_owned(), v);
    Value::Object(m)
}

impl<'a> ser::Serializer for Bounded<'a> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = SeqSer<'a>;
    type SerializeTuple = SeqSer<'a>;
    type SerializeTupleStruct = SeqSer<'a>;
    type SerializeTupleVariant = Variant<SeqSer<'a>>;
    type SerializeMap = MapSer<'a>;
    type SerializeStruct = MapSer<'a>;
    type SerializeStructVariant = Variant<MapSer<'a>>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        self.ctx.spend(8);
        Ok(Value::Number(v.into()))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        self.ctx.spend(16);
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Number(i.into()),
            Err(_) => match u64::try_from(v) {
                Ok(u) => Value::Number(u.into()),
                Err(_) => Value::String(v.to_string()),
            },
        })
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        self.ctx.spend(8);
        Ok(Value::Number(v.into()))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        self.ctx.spend(16);
        Ok(match u64::try_from(v) {
            Ok(u) => Value::Number(u.into()),
            Err(_) => Value::String(v.to_string()),
        })
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(self.float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(self.float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(self.string(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(self.string(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        use ser::SerializeSeq;
        let mut seq = self.seq(Some(v.len()));
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        Ok(wrap(variant, child(self.ctx, self.depth + 1, value)))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSer<'a>, Error> {
        Ok(self.seq(len))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSer<'a>, Error> {
        Ok(self.seq(Some(len)))
    }
    fn serialize_tuple_struct(self, _n: &'static str, len: usize) -> Result<SeqSer<'a>, Error> {
        Ok(self.seq(Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<SeqSer<'a>>, Error> {
        Ok(Variant {
            name: variant,
            inner: Bounded {
                ctx: self.ctx,
                depth: self.depth + 1,
            }
            .seq(Some(len)),
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapSer<'a>, Error> {
        Ok(self.map())
    }
    fn serialize_struct(self, _n: &'static str, _len: usize) -> Result<MapSer<'a>, Error> {
        Ok(self.map())
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Variant<MapSer<'a>>, Error> {
        Ok(Variant {
            name: variant,
            inner: Bounded {
                ctx: self.ctx,
                depth: self.depth + 1,
            }
            .map(),
        })
    }
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<Value, Error> {
        Ok(self.string(&value.to_string()))
    }
}

struct SeqSer<'a> {
    ctx: &'a Ctx,
    depth: usize,
    items: Vec<Value>,
    skipped: usize,
}

impl SeqSer<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.items.len() >= self.ctx.limits.max_array_len || self.ctx.budget.get() == 0 {
            self.skipped += 1;
            if self.skipped > ABANDON_AFTER_SKIPPED {
                return Err(Error("sequence too long (endless iterator?)".into()));
            }
            return Ok(());
        }
        self.items.push(child(self.ctx, self.depth + 1, value));
        Ok(())
    }
    fn finish(mut self) -> Value {
        if self.skipped > 0 {
            let marker = self
                .ctx
                .marker(format_args!("{} more items truncated", self.skipped));
            self.items.push(marker);
        }
        Value::Array(self.items)
    }
}

impl ser::SerializeSeq for SeqSer<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}
impl ser::SerializeTuple for SeqSer<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}
impl ser::SerializeTupleStruct for SeqSer<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

struct MapSer<'a> {
    ctx: &'a Ctx,
    depth: usize,
    map: Map<String, Value>,
    key: Option<String>,
    skipped: usize,
}

impl MapSer<'_> {
    fn insert<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), Error> {
        if self.map.len() >= self.ctx.limits.max_object_keys || self.ctx.budget.get() == 0 {
            self.skipped += 1;
            if self.skipped > ABANDON_AFTER_SKIPPED {
                return Err(Error("map too large (endless iterator?)".into()));
            }
            return Ok(());
        }
        self.ctx.spend(key.len());
        let v = child(self.ctx, self.depth + 1, value);
        self.map.insert(key, v);
        Ok(())
    }
    fn finish(mut self) -> Value {
        if self.skipped > 0 {
            self.ctx.cut();
            self.map.insert(
                TRUNCATED_KEYS_MARKER.to_owned(),
                Value::from(self.skipped as u64),
            );
        }
        Value::Object(self.map)
    }
}

impl ser::SerializeMap for MapSer<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeySer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.key.take().unwrap_or_default();
        self.insert(key, value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}
impl ser::SerializeStruct for MapSer<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.insert(key.to_owned(), value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

struct Variant<S> {
    name: &'static str,
    inner: S,
}

impl ser::SerializeTupleVariant for Variant<SeqSer<'_>> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.inner.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(wrap(self.name, self.inner.finish()))
    }
}
impl ser::SerializeStructVariant for Variant<MapSer<'_>> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.inner.insert(key.to_owned(), value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(wrap(self.name, self.inner.finish()))
    }
}

/// Map keys become strings; keys JSON cannot express are an error (the entry becomes a marker).
struct KeySer;

impl ser::Serializer for KeySer {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    fn serialize_bool(self, v: bool) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_f64(self, v: f64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, Error> {
        // Keys are bounded like strings (1 KiB is plenty for a key).
        Ok(v[..v.floor_char_boundary(1024)].to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, Error> {
        Err(Error("byte-string map key".into()))
    }
    fn serialize_none(self) -> Result<String, Error> {
        Ok("null".into())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Ok("null".into())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, Error> {
        Ok(name.into())
    }
    fn serialize_unit_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.into())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        value: &T,
    ) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _value: &T,
    ) -> Result<String, Error> {
        Err(Error("enum map key".into()))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Error("sequence map key".into()))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Error("tuple map key".into()))
    }
    fn serialize_tuple_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error("tuple map key".into()))
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error("enum map key".into()))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error("map map key".into()))
    }
    fn serialize_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(Error("struct map key".into()))
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error("enum map key".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_values_pass_unchanged() {
        let v = json!({"a": [1, 2.5, "x", null, true], "b": {"c": "d"}});
        let c = capture(&v, &SerializationLimits::default());
        assert_eq!(c.value, v);
        assert_eq!(c.truncations, 0);
    }

    #[test]
    fn huge_string_is_cut_visibly() {
        let s = "é".repeat(50_000_000); // 100 MB
        let limits = SerializationLimits::default().with_max_string_len(1001);
        let c = capture(&s, &limits);
        let out = c.value.as_str().unwrap();
        assert!(out.starts_with("éé"));
        assert!(out.len() < 1100, "{}", out.len());
        assert!(
            out.contains("[aiobs: truncated 99999000 bytes]"),
            "{}",
            &out[out.len() - 60..]
        );
        assert_eq!(c.truncations, 1);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut v = json!("leaf");
        for _ in 0..10_000 {
            v = Value::Array(vec![v]);
        }
        let limits = SerializationLimits::default().with_max_depth(8);
        let c = capture(&v, &limits);
        let mut depth = 0;
        let mut cur = &c.value;
        while let Some(inner) = cur.as_array() {
            depth += 1;
            cur = &inner[0];
        }
        assert_eq!(depth, 9);
        assert_eq!(cur, &json!("[aiobs: max depth 8 reached]"));
        // Dropping the 10 000-deep value recursively is serde_json's business; forget it safely.
        std::mem::forget(v);
    }

    /// A `Serialize` impl that refers to itself forever.
    struct Cycle;
    impl Serialize for Cycle {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap;
            let mut m = s.serialize_map(None)?;
            m.serialize_entry("self", self)?;
            m.end()
        }
    }

    #[test]
    fn cycles_terminate() {
        let c = capture(&Cycle, &SerializationLimits::default());
        assert!(c.value.to_string().contains("max depth"));
    }

    struct Endless;
    impl Serialize for Endless {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            loop {
                seq.serialize_element(&1)?;
            }
        }
    }

    #[test]
    fn endless_sequences_terminate() {
        let c = capture(
            &vec![json!(1), serde_json::to_value(1).unwrap()],
            &SerializationLimits::default(),
        );
        assert_eq!(c.value, json!([1, 1]));
        let c = capture(&json!({"x": 1}), &SerializationLimits::default());
        assert_eq!(c.truncations, 0);
        let wrapped = capture(&(1, Endless), &SerializationLimits::default());
        let arr = wrapped.value.as_array().unwrap();
        assert_eq!(arr[0], json!(1));
        assert!(arr[1].as_str().unwrap().contains("endless"));
    }

    #[test]
    fn nan_and_infinity_are_kept_as_strings() {
        let c = capture(
            &[f64::NAN, f64::INFINITY, 1.5],
            &SerializationLimits::default(),
        );
        assert_eq!(c.value, json!(["NaN", "inf", 1.5]));
    }

    struct Failing;
    impl Serialize for Failing {
        fn serialize<S: ser::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("database handle is not serialisable"))
        }
    }

    #[test]
    fn failing_serialize_becomes_marker() {
        let c = capture(&(1, Failing), &SerializationLimits::default());
        assert_eq!(c.value[0], json!(1));
        assert_eq!(
            c.value[1],
            json!("[aiobs: serialization failed: database handle is not serialisable]")
        );
        let top = capture(&Failing, &SerializationLimits::default());
        assert!(top.value.as_str().unwrap().contains("serialization failed"));
    }

    #[test]
    fn wide_values_are_cut_with_counts() {
        let limits = SerializationLimits::default()
            .with_max_array_len(3)
            .with_max_object_keys(2);
        let c = capture(&(0..10).collect::<Vec<_>>(), &limits);
        assert_eq!(c.value, json!([0, 1, 2, "[aiobs: 7 more items truncated]"]));
        let c = capture(&json!({"a": 1, "b": 2, "c": 3, "d": 4}), &limits);
        assert_eq!(c.value[TRUNCATED_KEYS_MARKER], json!(2));
        assert_eq!(c.value.as_object().unwrap().len(), 3);
    }

    #[test]
    fn total_budget_bounds_many_strings() {
        let limits = SerializationLimits::default().with_max_total_bytes(1000);
        let items: Vec<String> = (0..100).map(|_| "x".repeat(100)).collect();
        let c = capture(&items, &limits);
        let text = c.value.to_string();
        assert!(text.len() < 4000, "{}", text.len());
        assert!(text.contains("more items truncated"), "{text}");
    }
}
