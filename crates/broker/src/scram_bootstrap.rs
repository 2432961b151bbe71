//! `--add-scram`: the SCRAM credentials a new cluster starts with (Kafka's `kafka-storage
//! format --add-scram`, whose `UserScramCredentialRecord`s are bootstrap records).
//!
//! ```text
//!  gregor server --add-scram 'SCRAM-SHA-512=[name=broker,password=...]'  (every voter alike)
//!     │ ScramBootstrap::parse: Kafka's ScramParser (mechanism, name, password | salt +
//!     │ saltedpassword, iterations 4096..=16384); a bad SPEC stops the start
//!     ▼
//!  UserScramCredentialRecord (salt, stored and server keys; never the password)
//!     │ ControllerConfig::bootstrap_records: the first active controller of a new metadata
//!     │ log writes them, once, as its first batch (gregor-controller, `bootstrap`)
//!     ▼
//!  report: once this node's image holds records, one line: the credentials are in the log
//!          as given (INFO), or the flag was ignored because the log is older (WARN)
//! ```
//!
//! gregor has no format step (a node formats its data directory at first start), so the
//! credentials travel with the server's flags instead, and the controller, not the format
//! tool, decides that the log is new. Pure parsing and checks; the task at the end only
//! watches the image and logs.

use std::sync::Arc;

use base64::Engine;
use gregor_metadata::records::MAX_STRING_LEN;
use gregor_metadata::{
    MetadataImage, MetadataRecord, ScramCredential, ScramKeys, ScramMechanism,
    UserScramCredentialRecord, SCRAM_MAX_ITERATIONS,
};
use rand::RngCore;
use tokio::sync::watch;
use tracing::{info, warn};

/// Kafka's default when a SPEC gives no `iterations` (`ScramParser`).
pub const DEFAULT_ITERATIONS: i32 = 4096;

/// Bytes of a salt made here (Kafka's `ScramFormatter.secureRandomBytes` makes about 26).
const SALT_LEN: usize = 32;

/// A SPEC that cannot be used, in Kafka's words where Kafka has them. Never quotes a password
/// or a salted password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScramSpecError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, ScramSpecError> {
    Err(ScramSpecError(message.into()))
}

/// One `--add-scram` SPEC, parsed, with the record it becomes. `Debug` hides the secrets.
#[derive(Clone)]
pub struct ScramBootstrap {
    mechanism: ScramMechanism,
    /// The password given, to tell later whether the log's credential is the one given
    /// (`None`: the SPEC gave a salted password, whose record is checked as it is).
    password: Option<String>,
    record: UserScramCredentialRecord,
}

impl std::fmt::Debug for ScramBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramBootstrap")
            .field("name", &self.record.name)
            .field("mechanism", &self.mechanism.mechanism_name())
            .field("iterations", &self.record.iterations)
            .finish_non_exhaustive()
    }
}

/// Whether the metadata log holds a SPEC's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The credential is there, with the password (or salted password) and iterations given.
    AsGiven,
    /// Another credential of that user and mechanism is there.
    Different,
    /// No credential of that user and mechanism.
    Missing,
}

/// Kafka's `ScramParser.parsePerMechanismArgument`: `MECHANISM=[...]`, trimmed.
fn split_mechanism(spec: &str) -> Result<(ScramMechanism, &str), ScramSpecError> {
    let spec = spec.trim();
    let Some((mechanism, config)) = spec.split_once('=') else {
        // Kafka quotes the argument here; it may hold a password, so gregor does not.
        return refuse(
            "Failed to find equals sign in SCRAM argument (expected \
             MECHANISM=[name=...,password=...])",
        );
    };
    let Some(mechanism_type) = ScramMechanism::from_mechanism_name(mechanism) else {
        let shown: String = mechanism.chars().take(64).collect();
        return refuse(format!(
            "The add-scram mechanism {shown} is not supported (SCRAM-SHA-256 or SCRAM-SHA-512)."
        ));
    };
    let Some(config) = config.strip_prefix('[') else {
        return refuse("Expected configuration string to start with [");
    };
    let Some(config) = config.strip_suffix(']') else {
        return refuse("Expected configuration string to end with ]");
    };
    Ok((mechanism_type, config))
}

/// Kafka's `splitTrimmedConfigStringComponent`: `key=value`, the value without one pair of
/// surrounding double quotes.
fn split_component(component: &str) -> Result<(&str, &str), ScramSpecError> {
    let Some((key, value)) = component.split_once('=') else {
        // Kafka quotes the component; it may be the part of a password after a comma.
        return refuse(
            "No equals sign found in a SCRAM component (components are key=value, separated \
             by commas; a password cannot hold a comma)",
        );
    };
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(unquoted) if value.len() >= 2 => unquoted,
        _ => value,
    };
    Ok((key, value))
}

/// Base64 as Java's basic decoder reads it: the standard alphabet, padding optional.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

/// PBKDF2 of `password` with the mechanism's hash (RFC 5802's `Hi`).
pub(crate) fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    rounds: u32,
) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password.as_bytes(), salt, rounds)
                .to_vec()
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(password.as_bytes(), salt, rounds)
                .to_vec()
        }
    }
}

impl ScramBootstrap {
    /// Parses one SPEC as Kafka's `ScramParser` does, and makes its record: a random salt
    /// unless `salt` is given, 4096 iterations unless `iterations` is. Beyond Kafka: an empty
    /// `name` or `saltedpassword` is refused, as the controller refuses them in
    /// AlterUserScramCredentials (a credential nobody could log in with).
    pub fn parse(spec: &str) -> Result<ScramBootstrap, ScramSpecError> {
        let (mechanism, config) = split_mechanism(spec)?;
        // Kafka keeps the components in a TreeMap: a key given twice keeps its last value.
        let mut components = std::collections::BTreeMap::new();
        for component in config.split(',') {
            let (key, value) = split_component(component)?;
            components.insert(key, value);
        }
        let Some(name) = components.remove("name") else {
            return refuse("You must supply 'name' to add-scram");
        };
        if name.is_empty() {
            return refuse("The 'name' given to add-scram must not be empty");
        }
        if name.len() > MAX_STRING_LEN {
            return refuse(format!(
                "The 'name' given to add-scram is longer than {MAX_STRING_LEN} bytes"
            ));
        }
        let salt = match components.remove("salt") {
            None => None,
            Some(text) => match decode_base64(text) {
                Some(salt) => Some(salt),
                None => return refuse(format!("Failed to decode given salt: {text}")),
            },
        };
        let iterations = match components.remove("iterations") {
            None => DEFAULT_ITERATIONS,
            Some(text) => match text.parse::<i32>() {
                Ok(n) => n,
                Err(_) => return refuse(format!("Failed to parse iterations count: {text}")),
            },
        };
        let password = components.remove("password");
        let salted = components.remove("saltedpassword");
        // Kafka: a password wins over a salted password given beside it.
        let given_salted = match (password, salted) {
            (Some(_), _) => None,
            (None, None) => {
                return refuse("You must supply one of 'password' or 'saltedpassword' to add-scram")
            }
            (None, Some(_)) if salt.is_none() => {
                return refuse("You must supply 'salt' with 'saltedpassword' to add-scram")
            }
            (None, Some(text)) => match decode_base64(text) {
                Some(bytes) if bytes.is_empty() => {
                    return refuse("The 'saltedpassword' given to add-scram must not be empty")
                }
                Some(bytes) => Some(bytes),
                // Kafka quotes it; it is as good as a password, so gregor does not.
                None => return refuse("Failed to decode given saltedPassword"),
            },
        };
        if !components.is_empty() {
            let unknown: Vec<&str> = components.keys().copied().collect();
            return refuse(format!(
                "Unknown SCRAM configurations: {}",
                unknown.join(", ")
            ));
        }
        let mechanism_name = mechanism.mechanism_name();
        if iterations < mechanism.min_iterations() {
            return refuse(format!(
                "The 'iterations' value must be >= {} for add-scram using {mechanism_name}",
                mechanism.min_iterations()
            ));
        }
        if iterations > SCRAM_MAX_ITERATIONS {
            return refuse(format!(
                "The 'iterations' value must be <= {SCRAM_MAX_ITERATIONS} for add-scram using \
                 {mechanism_name}"
            ));
        }
        let salt = salt.unwrap_or_else(|| {
            let mut salt = vec![0u8; SALT_LEN];
            rand::thread_rng().fill_bytes(&mut salt);
            salt
        });
        let salted = match given_salted {
            Some(salted) => salted,
            None => {
                let rounds = u32::try_from(iterations).expect("checked to be at least 4096");
                salted_password(mechanism, password.unwrap_or_default(), &salt, rounds)
            }
        };
        let password = password.map(str::to_string);
        let keys = ScramKeys::derive(mechanism, &salted);
        Ok(ScramBootstrap {
            mechanism,
            password,
            record: UserScramCredentialRecord {
                name: name.to_string(),
                mechanism: mechanism.type_id(),
                salt,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
                iterations,
            },
        })
    }

    /// The user.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The mechanism.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// `user (MECHANISM)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.record.name, self.mechanism.mechanism_name())
    }

    /// The credential the SPEC makes (what a server checks a login against).
    pub fn credential(&self) -> ScramCredential {
        ScramCredential {
            salt: self.record.salt.clone(),
            stored_key: self.record.stored_key.clone(),
            server_key: self.record.server_key.clone(),
            iterations: self.record.iterations,
        }
    }

    /// The bootstrap record: salt, iterations, stored and server keys.
    pub fn record(&self) -> MetadataRecord {
        MetadataRecord::UserScramCredential(self.record.clone())
    }

    /// Whether `image` holds this credential as given. Another voter's record of the same
    /// SPEC has another random salt: the password is checked against the stored salt and
    /// iterations, as a server checks a login.
    pub fn presence(&self, image: &MetadataImage) -> Presence {
        let Some(stored) = image
            .scram()
            .credential(&self.record.name, self.record.mechanism)
        else {
            return Presence::Missing;
        };
        if stored.iterations != self.record.iterations {
            return Presence::Different;
        }
        let same = match &self.password {
            None => stored.salt == self.record.salt && stored.stored_key == self.record.stored_key,
            Some(password) => {
                // Equal to ours, checked above to be within Kafka's bounds.
                let rounds = u32::try_from(stored.iterations).unwrap_or(1).max(1);
                let salted = salted_password(self.mechanism, password, &stored.salt, rounds);
                ScramKeys::derive(self.mechanism, &salted).stored_key == stored.stored_key
            }
        };
        if same && stored.server_key.len() == self.mechanism.key_len() {
            Presence::AsGiven
        } else {
            Presence::Different
        }
    }
}

/// Refuses two SPECs for the same user and mechanism (Kafka would write both, the last
/// winning, which hides a typo).
pub fn check_distinct(specs: &[ScramBootstrap]) -> Result<(), ScramSpecError> {
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        if !seen.insert((spec.name(), spec.mechanism())) {
            return refuse(format!(
                "the {} credential of {} is given twice",
                spec.mechanism().mechanism_name(),
                spec.name()
            ));
        }
    }
    Ok(())
}

/// Starts [`report`] when `--add-scram` was given.
pub fn spawn_report(
    specs: &[ScramBootstrap],
    images: watch::Receiver<Arc<MetadataImage>>,
) -> Option<tokio::task::JoinHandle<()>> {
    (!specs.is_empty()).then(|| tokio::spawn(report(specs.into(), images)))
}

/// Waits until this node's image holds any record, then says in one line whether the
/// `--add-scram` credentials are in the metadata log as given (INFO) or were ignored (WARN):
/// the log was created before, without them or with others. The bootstrap records, when
/// written, are a log's first batch, so the first image with records already shows them.
pub async fn report(specs: Arc<[ScramBootstrap]>, mut images: watch::Receiver<Arc<MetadataImage>>) {
    let image = loop {
        let image = Arc::clone(&images.borrow_and_update());
        if !image.is_empty() {
            break image;
        }
        if images.changed().await.is_err() {
            return;
        }
    };
    // PBKDF2 with up to 16384 rounds per credential: off the async workers.
    let checked = {
        let specs = Arc::clone(&specs);
        tokio::task::spawn_blocking(move || {
            specs
                .iter()
                .map(|s| (s.label(), s.presence(&image)))
                .collect::<Vec<_>>()
        })
        .await
    };
    let Ok(checked) = checked else {
        return;
    };
    let pick = |p: Presence| {
        checked
            .iter()
            .filter(|(_, presence)| *presence == p)
            .map(|(label, _)| label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (different, missing) = (pick(Presence::Different), pick(Presence::Missing));
    if different.is_empty() && missing.is_empty() {
        info!(
            credentials = %pick(Presence::AsGiven),
            "--add-scram: the metadata log holds these SCRAM credentials as given"
        );
    } else {
        warn!(
            different = %different,
            missing = %missing,
            "--add-scram ignored: this cluster's metadata log was created before, without \
             these credentials or with others (bootstrap credentials are written once, by the \
             first active controller of a new cluster); the log's credentials stay. Change \
             one with kafka-configs.sh --alter --entity-type users --entity-name USER \
             --add-config 'MECHANISM=[password=...]'"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::{MetadataDelta, MetadataProvenance};

    /// Kafka's `ScramParserTest` salt: "1lv4pdnw4fwq7notcxm0yy1k7q" as bytes.
    const TEST_SALT_B64: &str = "MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=";
    const TEST_SALT: &[u8] = b"1lv4pdnw4fwq7notcxm0yy1k7q";
    /// Kafka's `ScramParserTest` salted password.
    const TEST_SALTED_B64: &str = "mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=";

    fn parse(spec: &str) -> ScramBootstrap {
        ScramBootstrap::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn refused(spec: &str) -> String {
        match ScramBootstrap::parse(spec) {
            Ok(s) => panic!("{spec} parsed: {s:?}"),
            Err(e) => e.0,
        }
    }

    fn record(s: &ScramBootstrap) -> UserScramCredentialRecord {
        match s.record() {
            MetadataRecord::UserScramCredential(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn image_with(records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        delta.replay_all(records).expect("replays");
        delta.apply(MetadataProvenance {
            offset: 1,
            epoch: 1,
        })
    }

    /// The examples of Kafka's docs and `ScramParserTest`.
    #[test]
    fn kafkas_examples_parse() {
        let s = parse("SCRAM-SHA-512=[name=scram-admin,password=scram-user-secret]");
        assert_eq!(s.name(), "scram-admin");
        assert_eq!(s.mechanism(), ScramMechanism::Sha512);
        let r = record(&s);
        assert_eq!((r.mechanism, r.iterations), (2, DEFAULT_ITERATIONS));
        assert_eq!(r.salt.len(), SALT_LEN);
        // The keys are those of the password with that salt.
        let salted = salted_password(ScramMechanism::Sha512, "scram-user-secret", &r.salt, 4096);
        assert_eq!(
            ScramKeys::derive(ScramMechanism::Sha512, &salted).stored_key,
            r.stored_key
        );

        let s = parse("SCRAM-SHA-256=[name=bob,password=my pass,iterations=8192]");
        assert_eq!(
            (record(&s).iterations, s.password.as_deref()),
            (8192, Some("my pass"))
        );

        let s = parse(&format!(
            "SCRAM-SHA-512=[name=bob,password=my pass,salt=\"{TEST_SALT_B64}\"]"
        ));
        assert_eq!(record(&s).salt, TEST_SALT);
        let s = parse(&format!(
            "SCRAM-SHA-256=[name=bob,password=my pass,iterations=8192,salt=\"{TEST_SALT_B64}\"]"
        ));
        assert_eq!(
            (record(&s).salt.as_slice(), record(&s).iterations),
            (TEST_SALT, 8192)
        );

        // Kafka's testPerMechanismDataToRecord: salt and salted password as given.
        let s = parse(&format!(
            "SCRAM-SHA-512=[name=alice,salt=\"{TEST_SALT_B64}\",saltedpassword=\"{TEST_SALTED_B64}\"]"
        ));
        let salted = decode_base64(TEST_SALTED_B64).expect("base64");
        let keys = ScramKeys::derive(ScramMechanism::Sha512, &salted);
        let r = record(&s);
        assert_eq!(r.name, "alice");
        assert_eq!(r.salt, TEST_SALT);
        assert_eq!(r.stored_key, keys.stored_key);
        assert_eq!(r.server_key, keys.server_key);
        assert_eq!(r.iterations, 4096);
        assert_eq!(s.password, None);

        // Quotes around a value, spaces around the whole, an empty quoted value elsewhere.
        let s = parse("  SCRAM-SHA-256=[name=\"carol\",password=\"\"\"]  ");
        assert_eq!((s.name(), s.password.as_deref()), ("carol", Some("\"")));
        // A key given twice keeps its last value, as Kafka's TreeMap does.
        assert_eq!(
            parse("SCRAM-SHA-256=[name=a,name=b,password=p]").name(),
            "b"
        );
        // Padding is optional, as for Java's decoder.
        let s = parse("SCRAM-SHA-256=[name=a,password=p,salt=c2FsdA]");
        assert_eq!(record(&s).salt, b"salt");
        // Two parses of one SPEC without a salt get different salts (Kafka's testRandomSalt).
        let spec = "SCRAM-SHA-256=[name=bob,password=my pass]";
        assert_ne!(record(&parse(spec)).salt, record(&parse(spec)).salt);
    }

    /// Kafka's refusals, in Kafka's words (gregor leaves out the parts that may be secret).
    #[test]
    fn bad_specs_are_refused_with_kafkas_reasons() {
        let cases = [
            ("SCRAM-SHA-512", "Failed to find equals sign in SCRAM argument"),
            (
                "SCRAM-SHA-UNSUPPORTED=[name=scram-admin,password=scram-user-secret]",
                "The add-scram mechanism SCRAM-SHA-UNSUPPORTED is not supported",
            ),
            ("PLAIN=[name=a,password=b]", "The add-scram mechanism PLAIN is not supported"),
            (
                "SCRAM-SHA-256=name=scram-admin,password=scram-user-secret",
                "Expected configuration string to start with [",
            ),
            (
                "SCRAM-SHA-256=[name=scram-admin,password=scram-user-secret",
                "Expected configuration string to end with ]",
            ),
            ("SCRAM-SHA-256=[password=mypass]", "You must supply 'name' to add-scram"),
            (
                "SCRAM-SHA-256=[name=bar]",
                "You must supply one of 'password' or 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=bob,password=mypass,unknown=something,unknown2=somethingelse]",
                "Unknown SCRAM configurations: unknown, unknown2",
            ),
            (
                "SCRAM-SHA-256=[name=alice,saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\"]",
                "You must supply 'salt' with 'saltedpassword' to add-scram",
            ),
            ("SCRAM-SHA-256=[name]", "No equals sign found in a SCRAM component"),
            ("SCRAM-SHA-256=[]", "No equals sign found in a SCRAM component"),
            (
                "SCRAM-SHA-256=[name=a,password=p,salt=not base64!]",
                "Failed to decode given salt: not base64!",
            ),
            (
                "SCRAM-SHA-256=[name=a,salt=c2FsdA==,saltedpassword=%%%]",
                "Failed to decode given saltedPassword",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=p,iterations=many]",
                "Failed to parse iterations count: many",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=p,iterations=4095]",
                "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256",
            ),
            (
                "SCRAM-SHA-512=[name=a,password=p,iterations=16385]",
                "The 'iterations' value must be <= 16384 for add-scram using SCRAM-SHA-512",
            ),
            (
                "SCRAM-SHA-512=[name=a,password=p,iterations=99999999999]",
                "Failed to parse iterations count: 99999999999",
            ),
            ("SCRAM-SHA-512=[name=,password=p]", "'name' given to add-scram must not be empty"),
            (
                "SCRAM-SHA-512=[name=a,salt=c2FsdA==,saltedpassword=]",
                "'saltedpassword' given to add-scram must not be empty",
            ),
            ("", "Failed to find equals sign"),
        ];
        for (spec, want) in cases {
            let got = refused(spec);
            assert!(got.contains(want), "{spec}: {got}");
        }
        // The bounds themselves are fine.
        assert_eq!(
            record(&parse("SCRAM-SHA-512=[name=a,password=p,iterations=4096]")).iterations,
            4096
        );
        assert_eq!(
            record(&parse("SCRAM-SHA-256=[name=a,password=p,iterations=16384]")).iterations,
            16384
        );
    }

    /// No refusal quotes a password or a salted password, and neither does `Debug`.
    #[test]
    fn secrets_are_never_quoted() {
        let secret = "s3cr3t-Pa55";
        for spec in [
            format!("SCRAM-SHA-512 [name=a,password={secret}]"),
            format!("SCRAM-SHA-512=name=a,password={secret}"),
            format!("SCRAM-SHA-512=[name=a,password={secret},x]"),
            format!("SCRAM-SHA-512=[name=a,password=a,{secret}]"),
            format!("SCRAM-SHA-512=[name=a,password={secret},iterations=1]"),
            format!("SCRAM-SHA-512=[password={secret}]"),
            format!("SCRAM-SHA-512=[name=a,salt=c2FsdA==,saltedpassword={secret}!]"),
        ] {
            assert!(!refused(&spec).contains(secret), "{spec}");
        }
        let s = parse(&format!("SCRAM-SHA-512=[name=a,password={secret}]"));
        assert!(!format!("{s:?}").contains(secret));
        assert!(!format!("{:?}", s.record()).contains(secret));
    }

    #[test]
    fn the_same_credential_twice_is_refused() {
        let a = parse("SCRAM-SHA-512=[name=alice,password=one]");
        let b = parse("SCRAM-SHA-256=[name=alice,password=two]");
        let c = parse("SCRAM-SHA-512=[name=alice,password=two]");
        assert_eq!(check_distinct(&[a.clone(), b.clone()]), Ok(()));
        let e = check_distinct(&[a, b, c]).expect_err("twice");
        assert!(
            e.0.contains("SCRAM-SHA-512 credential of alice is given twice"),
            "{e}"
        );
    }

    /// The log's credential is recognised as the one given whichever voter's record it is
    /// (each has its own salt), and told apart from another password, other iterations or
    /// none.
    #[test]
    fn presence_checks_the_password_not_the_salt() {
        let spec = "SCRAM-SHA-512=[name=alice,password=alice-secret]";
        let mine = parse(spec);
        let other_voter = parse(spec);
        let image = image_with(&[other_voter.record()]);
        assert_eq!(mine.presence(&image), Presence::AsGiven);
        let other_password = parse("SCRAM-SHA-512=[name=alice,password=other]");
        assert_eq!(other_password.presence(&image), Presence::Different);
        let more_iterations =
            parse("SCRAM-SHA-512=[name=alice,password=alice-secret,iterations=8192]");
        assert_eq!(more_iterations.presence(&image), Presence::Different);
        let other_mechanism = parse("SCRAM-SHA-256=[name=alice,password=alice-secret]");
        assert_eq!(other_mechanism.presence(&image), Presence::Missing);
        assert_eq!(
            parse("SCRAM-SHA-512=[name=bob,password=alice-secret]").presence(&image),
            Presence::Missing
        );

        let salted = format!(
            "SCRAM-SHA-256=[name=carol,salt={TEST_SALT_B64},saltedpassword={TEST_SALTED_B64}]"
        );
        let image = image_with(&[parse(&salted).record()]);
        assert_eq!(parse(&salted).presence(&image), Presence::AsGiven);
        let other_salt =
            format!("SCRAM-SHA-256=[name=carol,salt=c2FsdA==,saltedpassword={TEST_SALTED_B64}]");
        assert_eq!(parse(&other_salt).presence(&image), Presence::Different);
    }
}
