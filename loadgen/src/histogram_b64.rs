//! A histogram as text: base64 of its HdrHistogram **V2 compressed**
//! (deflate) encoding, the same form as one histogram of an interval log
//! (it starts with `HISTFAAA`). The JSON report carries its histograms this
//! way, so that reports can be merged exactly (`loadgen merge a.json
//! b.json`), and any HdrHistogram library can decode them.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Encodes `h` as base64 V2 compressed.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing a histogram into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes what [`encode`] (or an interval log line) produced.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("bad base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .map_err(|e| format!("bad histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn round_trip_is_exact() {
        let mut h = new_histogram();
        for v in [1u64, 999, 1_000, 123_456, 59_000_000_000] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let text = encode(&h);
        assert!(text.starts_with("HISTFAAA"), "{text}");
        let back = decode(&text).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert!(decode("not base64!").is_err());
    }
}
