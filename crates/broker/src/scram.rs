//! The server side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677; Kafka's KIP-84),
//! I/O-free: two client messages in, two server messages out.
//!
//! ```text
//!  client-first  n,,n=<user>,r=<client nonce>
//!  server-first  r=<client nonce><server nonce>,s=<salt b64>,i=<iterations>
//!  client-final  c=biws,r=<nonce>,p=<proof b64>   proof = ClientKey XOR HMAC(StoredKey, AuthMessage)
//!  server-final  v=<HMAC(ServerKey, AuthMessage) b64>     when H(ClientKey) = StoredKey
//! ```
//!
//! The broker keeps only the salt, the iteration count, StoredKey and ServerKey (the metadata
//! log's `UserScramCredentialRecord`), never the password.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256, Sha512};

pub use gregor_metadata::{ScramCredential, ScramMechanism};

/// HMAC with the mechanism's hash.
fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC takes keys of any length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
    match m {
        ScramMechanism::Sha256 => mac::<Hmac<Sha256>>(key, data),
        ScramMechanism::Sha512 => mac::<Hmac<Sha512>>(key, data),
    }
}

/// The mechanism's hash.
fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// Why an exchange failed. The message is what the client is told (Kafka's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScramError(pub String);

fn invalid(what: &str) -> ScramError {
    ScramError(format!("Invalid SCRAM message: {what}"))
}

/// One exchange, between the client's first message and its final one.
#[derive(Debug, Clone)]
pub struct ScramExchange {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// The client asked with `tokenauth=true` (KIP-48): the user is a delegation token id.
    token_auth: bool,
}

/// The user a client-first message names (`n=`, with RFC 5802's `=2C` and `=3D` decoded), the
/// message after its GS2 header, the client nonce, and whether it carries Kafka's
/// `tokenauth=true` extension (a delegation token's login).
fn parse_client_first(message: &str) -> Result<(String, &str, &str, bool), ScramError> {
    // gs2-header: "n,," or "y,," (no channel binding), optionally with an authzid.
    let mut parts = message.splitn(3, ',');
    let cbind = parts.next().ok_or_else(|| invalid("empty"))?;
    let authzid = parts.next().ok_or_else(|| invalid("no GS2 header"))?;
    let bare = parts.next().ok_or_else(|| invalid("no GS2 header"))?;
    if cbind != "n" && cbind != "y" {
        return Err(invalid("channel binding is not supported"));
    }
    let mut user = None;
    let mut nonce = None;
    let mut token_auth = false;
    for attr in bare.split(',') {
        if let Some(v) = attr.strip_prefix("n=") {
            user = Some(v);
        } else if let Some(v) = attr.strip_prefix("r=") {
            nonce = Some(v);
        } else if attr.starts_with("m=") {
            return Err(invalid("mandatory extensions are not supported"));
        } else if let Some(v) = attr.strip_prefix("tokenauth=") {
            // Kafka's `ScramExtensions.tokenAuthenticated`.
            token_auth = v.eq_ignore_ascii_case("true");
        }
    }
    let user = user.ok_or_else(|| invalid("no user name"))?;
    let nonce = nonce
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("no client nonce"))?;
    let user = user.replace("=2C", ",").replace("=3D", "=");
    if user.is_empty() {
        return Err(invalid("empty user name"));
    }
    if let Some(z) = authzid.strip_prefix("a=") {
        if z.replace("=2C", ",").replace("=3D", "=") != user {
            return Err(ScramError(
                "Authentication failed: the authorization id must be the user name".into(),
            ));
        }
    }
    Ok((user, bare, nonce, token_auth))
}

impl ScramExchange {
    /// Takes the client's first message; `credential` looks the user up. Returns the exchange
    /// and the server's first message.
    /// A delegation token's login (`tokenauth=true`) is refused: see [`Self::start_with_tokens`].
    pub fn start(
        mechanism: ScramMechanism,
        client_first: &[u8],
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramExchange, Vec<u8>), ScramError> {
        Self::start_with_tokens(mechanism, client_first, |user, token_auth| {
            if token_auth {
                None
            } else {
                credential(user)
            }
        })
    }

    /// [`Self::start`] where `credential` also gets whether the client asked for a delegation
    /// token's login (`tokenauth=true`, KIP-48): the user is then a token id.
    pub fn start_with_tokens(
        mechanism: ScramMechanism,
        client_first: &[u8],
        credential: impl FnOnce(&str, bool) -> Option<ScramCredential>,
    ) -> Result<(ScramExchange, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| invalid("not UTF-8"))?;
        let (user, bare, client_nonce, token_auth) = parse_client_first(text)?;
        let Some(credential) = credential(&user, token_auth) else {
            // Kafka's ScramSaslServer: the same answer whether the user or the password is wrong.
            return Err(ScramError(format!(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism {}",
                mechanism.mechanism_name()
            )));
        };
        let nonce = format!(
            "{client_nonce}{}",
            Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
        );
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        Ok((
            ScramExchange {
                mechanism,
                user,
                credential,
                client_first_bare: bare.to_string(),
                server_first,
                nonce,
                token_auth,
            },
            reply,
        ))
    }

    /// Whether this is a delegation token's login (`tokenauth=true`).
    pub fn token_auth(&self) -> bool {
        self.token_auth
    }

    /// Takes the client's final message: the user and the server's final message when the
    /// proof holds.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| invalid("not UTF-8"))?;
        let proof_at = text.rfind(",p=").ok_or_else(|| invalid("no proof"))?;
        let without_proof = &text[..proof_at];
        let proof = B64
            .decode(&text[proof_at + 3..])
            .map_err(|_| invalid("proof is not base64"))?;
        let mut nonce = None;
        let mut binding = None;
        for attr in without_proof.split(',') {
            if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = attr.strip_prefix("c=") {
                binding = Some(v);
            }
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(invalid("the nonce does not match the server's"));
        }
        if binding.is_none() {
            return Err(invalid("no channel binding attribute"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let m = self.mechanism;
        let signature = hmac(m, &self.credential.stored_key, auth_message.as_bytes());
        let failed = || {
            ScramError(format!(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism {}",
                m.mechanism_name()
            ))
        };
        if proof.len() != signature.len() {
            return Err(failed());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let computed = hash(m, &client_key);
        let differs = computed.iter().zip(&self.credential.stored_key).fold(
            computed.len() ^ self.credential.stored_key.len(),
            |acc, (a, b)| acc | usize::from(a ^ b),
        );
        if differs != 0 {
            return Err(failed());
        }
        let server_signature = hmac(m, &self.credential.server_key, auth_message.as_bytes());
        Ok((
            self.user,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The salted password, as a client (or the admin tool) computes it.
    pub(crate) fn salted(m: ScramMechanism, password: &str, salt: &[u8], i: u32) -> Vec<u8> {
        match m {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, i).to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, i).to_vec()
            }
        }
    }

    pub(crate) fn credential(m: ScramMechanism, password: &str) -> ScramCredential {
        // PBKDF2's 4096 rounds are slow in a debug build: each (mechanism, password) once.
        static CACHE: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<(i8, String), ScramCredential>>,
        > = std::sync::OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = (m.type_id(), password.to_string());
        if let Some(c) = cache.lock().expect("cache").get(&key) {
            return c.clone();
        }
        let c = derive_credential(m, password);
        cache.lock().expect("cache").insert(key, c.clone());
        c
    }

    fn derive_credential(m: ScramMechanism, password: &str) -> ScramCredential {
        let salt = b"0123456789abcdef".to_vec();
        let keys = gregor_metadata::ScramKeys::derive(m, &salted(m, password, &salt, 4096));
        let (stored_key, server_key) = (keys.stored_key, keys.server_key);
        ScramCredential {
            salt,
            stored_key,
            server_key,
            iterations: 4096,
        }
    }

    /// A client's side of the exchange: (client-final, the server signature it expects).
    pub(crate) fn client_final(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(k))
                .expect("attribute")
                .to_string()
        };
        let salt = B64.decode(attr("s=")).expect("salt");
        let i: u32 = attr("i=").parse().expect("iterations");
        let salted_password = salted(m, password, &salt, i);
        let client_key = hmac(m, &salted_password, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c=biws,r={}", attr("r="));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac(m, &stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_key = hmac(m, &salted_password, b"Server Key");
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            hmac(m, &server_key, auth.as_bytes()),
        )
    }

    /// RFC 7677's example: user "user", password "pencil", its salt and nonces. The server's
    /// nonce is random here, so the check is the keys and the client proof's verification.
    #[test]
    fn rfc_7677_s_keys_and_a_whole_exchange() {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted_password = salted(m, "pencil", &salt, 4096);
        let keys = gregor_metadata::ScramKeys::derive(m, &salted_password);
        let credential = ScramCredential {
            salt,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
            iterations: 4096,
        };
        // RFC 7677 §3: with the server nonce "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", the client's
        // proof is this and the server signature that.
        let (mut x, _) = ScramExchange::start(m, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |_| {
            Some(credential.clone())
        })
        .expect("starts");
        x.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        x.server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                          s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
            .into();
        let (user, server_final) = x
            .finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .expect("the RFC's proof holds");
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
    }

    #[test]
    fn both_mechanisms_authenticate_the_right_password_only() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let cred = credential(m, "alice-secret");
            let first = "n=alice,r=abcdefgh";
            let (x, server_first) =
                ScramExchange::start(m, format!("n,,{first}").as_bytes(), |u| {
                    (u == "alice").then(|| cred.clone())
                })
                .expect("starts");
            let server_first = String::from_utf8(server_first).expect("utf8");
            assert!(server_first.starts_with("r=abcdefgh"), "{server_first}");
            let (good, expected) = client_final(m, "alice-secret", first, &server_first);
            let (user, server_final) = x.clone().finish(good.as_bytes()).expect("authenticates");
            assert_eq!(user, "alice");
            assert_eq!(
                server_final,
                format!("v={}", B64.encode(expected)).into_bytes()
            );
            let (bad, _) = client_final(m, "guess", first, &server_first);
            let e = x
                .clone()
                .finish(bad.as_bytes())
                .expect_err("wrong password");
            assert!(e.0.contains("invalid credentials"), "{e}");
            // A nonce other than the server's is refused.
            let forged = good.replace("r=abcdefgh", "r=abcdefgX");
            assert!(x.finish(forged.as_bytes()).is_err());
        }
    }

    #[test]
    fn malformed_or_unknown_first_messages_are_refused() {
        let m = ScramMechanism::Sha256;
        let cred = credential(m, "p");
        let lookup = |u: &str| (u == "al,=ice").then(|| cred.clone());
        assert!(ScramExchange::start(m, b"n,,n=al=2C=3Dice,r=x", lookup).is_ok());
        for bad in [
            &b""[..],
            b"n,,r=x",
            b"n,,n=al=2C=3Dice",
            b"p=tls-unique,,n=al=2C=3Dice,r=x",
            b"n,,m=ext,n=al=2C=3Dice,r=x",
            b"n,a=bob,n=al=2C=3Dice,r=x",
            b"n,,n=al=2C=3Dice,r=x,tokenauth=true",
            b"n,,n=bob,r=x",
            &[0xff, 0xfe],
        ] {
            assert!(ScramExchange::start(m, bad, lookup).is_err(), "{bad:?}");
        }
    }
}
