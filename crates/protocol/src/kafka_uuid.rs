//! Kafka's text form of a UUID (topic, cluster, directory and producer-snapshot ids): the 16
//! bytes in URL-safe base64 without padding, 22 characters, as Kafka's `Uuid.toString()`
//! prints them and `Uuid.fromString` reads them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// `id` as Kafka prints it.
pub fn to_text(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// A UUID from Kafka's text form; `None` unless `text` is exactly 16 bytes of URL-safe base64
/// without padding.
pub fn parse(text: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    Some(Uuid::from_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        // Kafka's `Uuid.ONE_UUID` and an id with both URL-safe characters.
        let one = Uuid::from_u128(1);
        assert_eq!(to_text(one), "AAAAAAAAAAAAAAAAAAAAAQ");
        let dashed = Uuid::from_bytes([0xfb; 16]);
        assert_eq!(to_text(dashed), "-_v7-_v7-_v7-_v7-_v7-w");
        for id in [Uuid::nil(), one, dashed, Uuid::from_u128(u128::MAX)] {
            assert_eq!(parse(&to_text(id)), Some(id));
        }
        for bad in [
            "",
            "AAAA",
            "AAAAAAAAAAAAAAAAAAAAAQ==",
            "AAAAAAAAAAAAAAAAAAAAA+",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
