//! Kafka's `Uuid.randomUuid()`: a random (version 4) UUID that is neither of Kafka's reserved
//! ids (zero, and one, the metadata topic's) nor one whose text form (URL-safe base64, 22
//! characters) starts with `-`, which Kafka's command-line tools would take for an option
//! (`kafka-metadata-quorum remove-controller --controller-directory-id -Ak29...` fails). Topic,
//! cluster and log directory ids are drawn with it.

use base64::Engine;

/// A random UUID Kafka could have drawn.
pub fn random_uuid() -> uuid::Uuid {
    loop {
        let id = uuid::Uuid::new_v4();
        if acceptable(id) {
            return id;
        }
    }
}

fn acceptable(id: uuid::Uuid) -> bool {
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes());
    id.as_u128() > 1 && !text.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_a_tool_would_take_for_an_option_or_reserved_ones_are_drawn_again() {
        assert!(!acceptable(uuid::Uuid::from_u128(0)));
        assert!(!acceptable(uuid::Uuid::from_u128(1)));
        // 0xf8 in the first byte: base64 `-` (62) in the first six bits.
        assert!(!acceptable(uuid::Uuid::from_bytes([0xf8; 16])));
        assert!(acceptable(uuid::Uuid::from_bytes([0x04; 16])));
        // About one in 64 draws starts with `-`: none of these does.
        for _ in 0..5000 {
            let text =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_uuid().as_bytes());
            assert!(!text.starts_with('-'), "{text}");
        }
    }
}
