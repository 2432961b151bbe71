//! SCRAM credentials (RFC 5802, KIP-554): the mechanisms Kafka knows and the keys a server
//! keeps for a user.
//!
//! ```text
//!  Admin client: salted_password = Hi(password, salt, iterations)   (PBKDF2-HMAC-H)
//!        │ AlterUserScramCredentials (name, mechanism, iterations, salt, salted_password)
//!        ▼
//!  controller: ScramKeys::derive ─► UserScramCredentialRecord (salt, stored_key, server_key,
//!              client_key = HMAC(salted_password, "Client Key")        iterations)
//!              stored_key = H(client_key)
//!              server_key = HMAC(salted_password, "Server Key")
//! ```
//!
//! The salted password never reaches the metadata log: the log keeps only what a server needs
//! to check a client's proof and prove itself (Kafka's `ScramFormatter`). Pure functions, no
//! I/O.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Kafka's `ScramMechanism`: the type byte of the protocol and of the metadata records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256` (type 1).
    Sha256,
    /// `SCRAM-SHA-512` (type 2).
    Sha512,
}

/// Kafka's `ScramControlManager.MAX_ITERATIONS`, the same for both mechanisms.
pub const SCRAM_MAX_ITERATIONS: i32 = 16384;

impl ScramMechanism {
    /// Every mechanism, by type.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The mechanism of Kafka's type byte (0, Kafka's `UNKNOWN`, and others are `None`).
    pub fn from_type(mechanism: i8) -> Option<ScramMechanism> {
        match mechanism {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// Kafka's type byte.
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a SASL mechanism name.
    pub fn from_mechanism_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.mechanism_name() == name)
    }

    /// The fewest iterations Kafka accepts (its `ScramMechanism.minIterations`: 4096 for both).
    pub fn min_iterations(self) -> i32 {
        4096
    }

    /// The length of the hash, and so of a stored or server key.
    pub fn key_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }
}

/// What a server keeps of a password (RFC 5802 section 3): enough to check a client's proof
/// and to prove itself, not enough to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramKeys([hidden])")
    }
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

impl ScramKeys {
    /// The stored and server keys of a salted password (Kafka's `ScramFormatter.storedKey` /
    /// `serverKey`).
    pub fn derive(mechanism: ScramMechanism, salted_password: &[u8]) -> ScramKeys {
        match mechanism {
            ScramMechanism::Sha256 => {
                let client_key = hmac::<Hmac<Sha256>>(salted_password, b"Client Key");
                ScramKeys {
                    stored_key: Sha256::digest(&client_key).to_vec(),
                    server_key: hmac::<Hmac<Sha256>>(salted_password, b"Server Key"),
                }
            }
            ScramMechanism::Sha512 => {
                let client_key = hmac::<Hmac<Sha512>>(salted_password, b"Client Key");
                ScramKeys {
                    stored_key: Sha512::digest(&client_key).to_vec(),
                    server_key: hmac::<Hmac<Sha512>>(salted_password, b"Server Key"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// RFC 5802's `Hi()` (PBKDF2 with one block), written out here so the test does not lean
    /// on the code it checks.
    fn hi_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut first = salt.to_vec();
        first.extend_from_slice(&1u32.to_be_bytes());
        let mut u = hmac::<Hmac<Sha256>>(password, &first);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = hmac::<Hmac<Sha256>>(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }

    /// RFC 7677's SCRAM-SHA-256 exchange (user "user", password "pencil"): the keys derived
    /// here give exactly the client proof and the server signature of the RFC's example.
    #[test]
    fn rfc7677_example_proof_and_signature() {
        // s=W22ZaJ0SNY7soEsUEjb6gQ==, i=4096
        let salt = hex("5b6d99689d12358eeca04b141236fa81");
        let salted = hi_sha256(b"pencil", &salt, 4096);
        let keys = ScramKeys::derive(ScramMechanism::Sha256, &salted);
        let auth_message = b"n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        // v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=
        assert_eq!(
            hmac::<Hmac<Sha256>>(&keys.server_key, auth_message),
            hex("eabae24d1062db75a9451ff0b6ea7e98c8546549ff741e672d3251b2397de46e")
        );
        // p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ= is ClientKey XOR
        // HMAC(StoredKey, AuthMessage); the server recovers ClientKey from it and checks that
        // H(ClientKey) is the stored key.
        let proof = hex("747cdb65aa56224e2352137e52d7bdcad6a0f738df30782caa69a2cfb0277554");
        let signature = hmac::<Hmac<Sha256>>(&keys.stored_key, auth_message);
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(Sha256::digest(&client_key).to_vec(), keys.stored_key);
        assert_eq!(
            keys.stored_key,
            hex("586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6")
        );
        assert_eq!(
            keys.server_key,
            hex("c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5")
        );
    }

    /// SCRAM-SHA-512 against values computed independently (Python's hashlib and hmac:
    /// PBKDF2-HMAC-SHA-512 of "alice-secret" with salt "gregor-salt", 4096 iterations).
    #[test]
    fn sha512_keys_match_independent_values() {
        let salted = hex(
            "2e1b24f6c0985f44d8576297fdc4888ce1c32c482b810f5290764fd7fb81e820\
             9a039be5c021319eacd4e9eb0d9108137a302fb6dee85f98b94e6b45f713eebf",
        );
        let keys = ScramKeys::derive(ScramMechanism::Sha512, &salted);
        assert_eq!(
            keys.stored_key,
            hex(
                "43bc36867d8b617ac0c427b127c1bdbd41dd3cc4307f9e45c217efd9697b596f\
                 dbbbcef61f6452dd0c8654eeddc4f15f0439df78e29c31bee4f128ba04a7d430"
            )
        );
        assert_eq!(
            keys.server_key,
            hex(
                "8c6ca9ba3748473e4881679e77869267e60b92f21f7835cb12de18a22f19427e\
                 ccab3142c28b5207c37f4daf42cf262cb5f5ed7f299df00eda6986db281e19de"
            )
        );
        assert_eq!(keys.stored_key.len(), ScramMechanism::Sha512.key_len());
        assert_eq!(format!("{keys:?}"), "ScramKeys([hidden])");
    }

    #[test]
    fn mechanisms_are_kafkas() {
        assert_eq!(ScramMechanism::from_type(0), None);
        assert_eq!(ScramMechanism::from_type(3), None);
        for m in ScramMechanism::ALL {
            assert_eq!(ScramMechanism::from_type(m.type_id()), Some(m));
            assert_eq!(
                ScramMechanism::from_mechanism_name(m.mechanism_name()),
                Some(m)
            );
            assert_eq!(m.min_iterations(), 4096);
        }
        assert_eq!(ScramMechanism::Sha256.mechanism_name(), "SCRAM-SHA-256");
        assert_eq!(ScramMechanism::from_mechanism_name("SCRAM-SHA-1"), None);
    }
}
