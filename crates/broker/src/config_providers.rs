//! Kafka's config providers (KIP-297, KIP-421) for a configuration read from properties: the
//! broker's `server.properties` and `--set` flags, and the tools' `--command-config`. With
//! `config.providers=NAME,...` and `config.providers.NAME.class=CLASS`, a value may hold
//! `${NAME:[PATH:]KEY}` variables, replaced before anything reads the value, so that secrets
//! stay out of the file:
//!
//! - `org.apache.kafka.common.config.provider.FileConfigProvider`: `${file:/etc/s.properties:pw}`,
//!   key `pw` of a properties file;
//! - `org.apache.kafka.common.config.provider.DirectoryConfigProvider`: `${dir:/run/secrets:pw}`,
//!   the whole content of the file `pw` in that directory (Kubernetes' mounted secrets);
//! - `org.apache.kafka.common.config.provider.EnvVarConfigProvider`: `${env:PW}`, an
//!   environment variable.
//!
//! What Kafka's `AbstractConfig` and `ConfigTransformer` do, checked against Kafka 4.4's: a
//! variable no provider answers stays as written; a provider named without a `.class` is not
//! made; any other class is refused ("Could not load config provider class or one of its
//! dependencies"); `config.providers.NAME.param.allowed.paths` (file and directory providers)
//! and `.param.allowlist.pattern` (environment) restrict what they read; a file that cannot be
//! read stops the start. The variables' pattern is Kafka's
//! `\$\{([^}]*?):(([^}]*?):)?([^}]*?)\}`; `PATH` and `KEY` are everything between the colons,
//! so `${a:b:c:d}` is provider `a`, path `b`, key `c:d`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use tracing::warn;

use crate::config::{parse_java_properties, ConfigError};

/// `config.providers`: the providers' names, comma-separated.
pub const CONFIG_PROVIDERS: &str = "config.providers";

const FILE_PROVIDER: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
const DIRECTORY_PROVIDER: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
const ENV_PROVIDER: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";

/// Whether `key` is one provider's own setting (`config.providers.NAME.class`,
/// `.param.*`): read here, no setting of the broker's (the names, `config.providers`, are a
/// broker key, described as Kafka describes it).
pub fn is_provider_setting(key: &str) -> bool {
    key.starts_with("config.providers.")
}

/// One `${provider:path:key}` in a value: where it is and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    start: usize,
    end: usize,
    provider: String,
    path: String,
    key: String,
}

/// The variables in `value`, in order, as Kafka's pattern finds them.
fn variables(value: &str) -> Vec<Variable> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = value[from..].find("${") {
        let start = from + found;
        let body_start = start + 2;
        // `[^}]*` cannot cross a `}`: the body ends at the first one.
        let Some(close) = value[body_start..].find('}') else {
            break;
        };
        let body = &value[body_start..body_start + close];
        match body.split_once(':') {
            Some((provider, rest)) => {
                let (path, key) = rest.split_once(':').unwrap_or(("", rest));
                let end = body_start + close + 1;
                out.push(Variable {
                    start,
                    end,
                    provider: provider.to_string(),
                    path: path.to_string(),
                    key: key.to_string(),
                });
                from = end;
            }
            // No provider here: the search goes on from the next character.
            None => from = start + 1,
        }
    }
    out
}

/// Kafka's `AllowedPaths`: the absolute, existing directories or files a provider may read
/// under (`None`: anywhere).
struct AllowedPaths(Option<Vec<PathBuf>>);

impl AllowedPaths {
    fn new(value: Option<&str>) -> Result<AllowedPaths, ConfigError> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(AllowedPaths(None));
        };
        let mut paths = Vec::new();
        // As Kafka: the entries are not trimmed, so ", /b" names " /b", which is not absolute.
        for entry in value.split(',') {
            let path = normalize(Path::new(entry));
            if !path.is_absolute() {
                return Err(ConfigError::Provider(format!(
                    "Path {} is not absolute",
                    path.display()
                )));
            }
            if !path.exists() {
                return Err(ConfigError::Provider(format!(
                    "Path {} does not exist",
                    path.display()
                )));
            }
            paths.push(path);
        }
        Ok(AllowedPaths(Some(paths)))
    }

    /// The path a file or directory provider reads for `path`: none for an empty one, nor
    /// (with a warning, as Kafka logs it) for one outside the allowed paths.
    fn readable(&self, path: &str) -> Option<PathBuf> {
        if path.is_empty() {
            return None;
        }
        let found = self.check(path);
        if found.is_none() {
            warn!(
                path,
                "config provider: the path is not allowed to be accessed"
            );
        }
        found
    }

    /// The path to read, or `None` when it is outside every allowed path.
    fn check(&self, path: &str) -> Option<PathBuf> {
        match &self.0 {
            None => Some(PathBuf::from(path)),
            Some(allowed) => {
                let normalized = normalize(Path::new(path));
                allowed
                    .iter()
                    .any(|a| normalized.starts_with(a))
                    .then_some(normalized)
            }
        }
    }
}

/// Java's `Path.normalize`: `.` dropped, `name/..` folded, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    out.iter().collect()
}

/// A configured provider.
enum Provider {
    File(AllowedPaths),
    Directory(AllowedPaths),
    Env(Option<regex::Regex>),
}

impl Provider {
    /// The values of `keys` at `path` (keys it has no value for are left out).
    fn get(
        &self,
        path: &str,
        keys: &BTreeSet<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HashMap<String, String>, ConfigError> {
        let mut data = HashMap::new();
        match self {
            Provider::File(allowed) => {
                let Some(file) = allowed.readable(path) else {
                    return Ok(data);
                };
                let text = std::fs::read(&file).map_err(|e| {
                    warn!(path, error = %e, "config provider: cannot read the file");
                    ConfigError::Provider(format!("Could not read properties from file {path}"))
                })?;
                let props: HashMap<String, String> =
                    parse_java_properties(&String::from_utf8_lossy(&text))
                        .map_err(|e| {
                            ConfigError::Provider(format!(
                                "Could not read properties from file {path}: {e}"
                            ))
                        })?
                        .into_iter()
                        .collect();
                for key in keys {
                    if let Some(v) = props.get(key) {
                        data.insert(key.clone(), v.clone());
                    }
                }
            }
            Provider::Directory(allowed) => {
                let Some(dir) = allowed.readable(path) else {
                    return Ok(data);
                };
                if !dir.is_dir() {
                    warn!(path, "config provider: the path is not a directory");
                    return Ok(data);
                }
                if let Err(e) = std::fs::read_dir(&dir) {
                    warn!(path, error = %e, "config provider: cannot list the directory");
                    return Err(ConfigError::Provider(format!(
                        "Could not list directory {}",
                        dir.display()
                    )));
                }
                for key in keys {
                    // Only the directory's own regular files (a symbolic link to one too).
                    if key.is_empty() || key == "." || key == ".." || key.contains('/') {
                        continue;
                    }
                    let file = dir.join(key);
                    if !file.is_file() {
                        continue;
                    }
                    let content = std::fs::read(&file).map_err(|_| {
                        ConfigError::Provider(format!(
                            "Could not read file {} for property {key}",
                            file.display()
                        ))
                    })?;
                    data.insert(key.clone(), String::from_utf8_lossy(&content).into_owned());
                }
            }
            Provider::Env(allowlist) => {
                if !path.is_empty() {
                    return Err(ConfigError::Provider(format!(
                        "Path is not supported for EnvVarConfigProvider, invalid value '{path}'"
                    )));
                }
                for key in keys {
                    if allowlist.as_ref().is_some_and(|p| !p.is_match(key)) {
                        continue;
                    }
                    if let Some(v) = env(key) {
                        data.insert(key.clone(), v);
                    }
                }
            }
        }
        Ok(data)
    }
}

/// The providers `config.providers` names and configures (`originals`: the last value of
/// each key).
fn providers(originals: &BTreeMap<&str, &str>) -> Result<BTreeMap<String, Provider>, ConfigError> {
    let mut out = BTreeMap::new();
    let Some(names) = originals.get(CONFIG_PROVIDERS).filter(|n| !n.is_empty()) else {
        return Ok(out);
    };
    // As Kafka, the names are not trimmed: `a, b` names `a` and ` b`.
    for name in names.split(',') {
        let class_key = format!("{CONFIG_PROVIDERS}.{name}.class");
        let Some(class) = originals.get(class_key.as_str()) else {
            continue;
        };
        let param = |p: &str| {
            originals
                .get(format!("{CONFIG_PROVIDERS}.{name}.param.{p}").as_str())
                .copied()
        };
        let provider = match *class {
            FILE_PROVIDER => Provider::File(AllowedPaths::new(param("allowed.paths"))?),
            DIRECTORY_PROVIDER => Provider::Directory(AllowedPaths::new(param("allowed.paths"))?),
            ENV_PROVIDER => Provider::Env(match param("allowlist.pattern") {
                None => None,
                // Java's `Matcher.matches`: the whole name.
                Some(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    ConfigError::Invalid {
                        key: format!("{CONFIG_PROVIDERS}.{name}.param.allowlist.pattern"),
                        value: p.to_string(),
                        reason: e.to_string(),
                    }
                })?),
            }),
            other => {
                return Err(ConfigError::Invalid {
                    key: class_key,
                    value: other.to_string(),
                    reason: "Could not load config provider class or one of its dependencies \
                             (gregor has Kafka's FileConfigProvider, DirectoryConfigProvider \
                             and EnvVarConfigProvider)"
                        .to_string(),
                })
            }
        };
        out.insert(name.to_string(), provider);
    }
    Ok(out)
}

/// `pairs` (in order, a later pair of a key over an earlier one) with every variable a
/// configured provider answers replaced by its value; unchanged without `config.providers`.
/// `env` reads an environment variable (the process's own: [`process_env`]).
pub fn resolve(
    pairs: Vec<(String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let originals: BTreeMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let providers = providers(&originals)?;
    if providers.is_empty() {
        return Ok(pairs);
    }
    // Every variable of every value, by provider and path (Kafka asks each path once).
    let mut wanted: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (_, value) in &pairs {
        for v in variables(value) {
            if providers.contains_key(&v.provider) {
                wanted
                    .entry((v.provider, v.path))
                    .or_default()
                    .insert(v.key);
            }
        }
    }
    let mut found: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
    for ((name, path), keys) in wanted {
        let data = providers[&name].get(&path, &keys, env)?;
        found.insert((name, path), data);
    }
    Ok(pairs
        .into_iter()
        .map(|(k, value)| {
            let mut out = String::with_capacity(value.len());
            let mut at = 0;
            for v in variables(&value) {
                let replacement = found
                    .get(&(v.provider, v.path))
                    .and_then(|data| data.get(&v.key));
                if let Some(r) = replacement {
                    out.push_str(&value[at..v.start]);
                    out.push_str(r);
                    at = v.end;
                }
            }
            out.push_str(&value[at..]);
            (k, out)
        })
        .collect())
}

/// The process's environment, for [`resolve`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn providers_conf() -> Vec<(String, String)> {
        pairs(&[
            ("config.providers", "file,dir,env"),
            ("config.providers.file.class", FILE_PROVIDER),
            ("config.providers.dir.class", DIRECTORY_PROVIDER),
            ("config.providers.env.class", ENV_PROVIDER),
        ])
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/k".to_string()),
            "PATH" => Some("/bin".to_string()),
            _ => None,
        }
    }

    fn value(resolved: &[(String, String)], key: &str) -> String {
        resolved
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} not in {resolved:?}"))
    }

    /// A directory with `allowed/secrets.properties` and `d/token`, the files of the side by
    /// side run against Kafka 4.4's `AbstractConfig` whose answers the tests below hold.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("allowed")).expect("mkdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(
            dir.path().join("allowed/secrets.properties"),
            "pw = s3cret  \nspaced\\ key=v\\:1\\u0041\\\n   more\nempty=\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("d/token"), "dirsecret\n").expect("write");
        dir
    }

    #[test]
    fn variables_are_found_as_kafkas_pattern_finds_them() {
        let names = |v: &str| -> Vec<(String, String, String)> {
            variables(v)
                .into_iter()
                .map(|v| (v.provider, v.path, v.key))
                .collect()
        };
        let t = |p: &str, a: &str, k: &str| (p.to_string(), a.to_string(), k.to_string());
        assert_eq!(names("x${f:/p:k}y"), vec![t("f", "/p", "k")]);
        assert_eq!(names("${a:b:c:d}"), vec![t("a", "b", "c:d")]);
        assert_eq!(names("${e:K}"), vec![t("e", "", "K")]);
        assert_eq!(names("${a}${b:c}"), vec![t("b", "", "c")]);
        assert_eq!(names("${f:${e:P}:k}"), vec![t("f", "${e", "P")]);
        assert_eq!(names("${:k}${f::k}"), vec![t("", "", "k"), t("f", "", "k")]);
        assert!(names("${f:k").is_empty());
    }

    #[test]
    fn values_are_replaced_as_kafka_4_4_replaces_them() {
        let dir = fixture();
        let d = dir.path().display();
        let mut conf = providers_conf();
        conf.extend(pairs(&[
            ("a", &format!("x${{file:{d}/allowed/secrets.properties:pw}}y")),
            ("b", &format!("${{file:{d}/allowed/secrets.properties:spaced key}}")),
            ("c", &format!("${{file:{d}/allowed/secrets.properties:missing}}")),
            (
                "d",
                &format!("${{dir:{d}/d:token}}|${{dir:{d}/d:nofile}}|${{dir:{d}/nodir:token}}"),
            ),
            (
                "e",
                &format!(
                    "${{env:HOME}}|${{env:NO_SUCH}}|${{nope:k}}|${{file:{d}/allowed/secrets.properties:empty}}|"
                ),
            ),
            ("f", "${a}${b:c:d:e}${:k}${file::pw}"),
        ]));
        let r = resolve(conf, &env).expect("resolved");
        assert_eq!(value(&r, "a"), "xs3cret  y");
        assert_eq!(value(&r, "b"), "v:1Amore");
        assert_eq!(
            value(&r, "c"),
            format!("${{file:{d}/allowed/secrets.properties:missing}}")
        );
        assert_eq!(
            value(&r, "d"),
            format!("dirsecret\n|${{dir:{d}/d:nofile}}|${{dir:{d}/nodir:token}}")
        );
        assert_eq!(value(&r, "e"), "/home/k|${env:NO_SUCH}|${nope:k}||");
        assert_eq!(value(&r, "f"), "${a}${b:c:d:e}${:k}${file::pw}");
        // The providers' own keys go through unchanged.
        assert_eq!(value(&r, "config.providers"), "file,dir,env");
    }

    #[test]
    fn nothing_changes_without_providers() {
        let conf = pairs(&[("a", "${file:/nowhere:pw}"), ("config.providers", "")]);
        assert_eq!(resolve(conf.clone(), &env).expect("resolved"), conf);
        // Named without a class: not made, its variables stay.
        let conf = pairs(&[("config.providers", "noclass"), ("a", "${noclass:k}")]);
        assert_eq!(resolve(conf.clone(), &env).expect("resolved"), conf);
        // Names are not trimmed: ` file ` has no class.
        let mut conf = pairs(&[("config.providers", " file "), ("a", "${env:HOME}")]);
        conf.extend(providers_conf().into_iter().skip(1));
        assert_eq!(
            value(&resolve(conf, &env).expect("resolved"), "a"),
            "${env:HOME}"
        );
    }

    #[test]
    fn bad_providers_and_unreadable_files_are_refused_with_kafkas_words() {
        let dir = fixture();
        let d = dir.path().display().to_string();
        let refused = |extra: &[(&str, &str)]| -> String {
            let mut conf = providers_conf();
            conf.extend(pairs(extra));
            match resolve(conf, &env) {
                Ok(r) => panic!("{extra:?} resolved: {r:?}"),
                Err(e) => e.to_string(),
            }
        };
        let e = refused(&[("g", "${env:/x:HOME}")]);
        assert!(
            e.contains("Path is not supported for EnvVarConfigProvider, invalid value '/x'"),
            "{e}"
        );
        let e = refused(&[("h", &format!("${{file:{d}/nofile.properties:pw}}"))]);
        assert!(
            e.contains(&format!(
                "Could not read properties from file {d}/nofile.properties"
            )),
            "{e}"
        );
        let e = refused(&[(
            "config.providers.file.param.allowed.paths",
            &format!("{d}/allowed, {d}/d"),
        )]);
        assert!(e.contains(&format!("Path  {d}/d is not absolute")), "{e}");
        let e = refused(&[(
            "config.providers.file.param.allowed.paths",
            &format!("{d}/nothere"),
        )]);
        assert!(
            e.contains(&format!("Path {d}/nothere does not exist")),
            "{e}"
        );
        let e = refused(&[
            ("config.providers", "file,bad"),
            ("config.providers.bad.class", "com.example.Nope"),
        ]);
        assert!(
            e.contains("config.providers.bad.class")
                && e.contains("Could not load config provider class or one of its dependencies"),
            "{e}"
        );
        // The file path is the text before the second colon: `${env` here.
        let e = refused(&[("x", "${file:${env:SECRETS}:pw}")]);
        assert!(
            e.contains("Could not read properties from file ${env"),
            "{e}"
        );
    }

    #[test]
    fn allowed_paths_and_the_allowlist_restrict_what_is_read() {
        let dir = fixture();
        let d = dir.path().display().to_string();
        let secret = format!("${{file:{d}/allowed/secrets.properties:pw}}");
        let resolved = |extra: &[(&str, &str)], key: &str| -> String {
            let mut conf = providers_conf();
            conf.extend(pairs(extra));
            value(&resolve(conf, &env).expect("resolved"), key)
        };
        // Outside the allowed paths: the variable stays.
        let only_d = format!("{d}/d");
        assert_eq!(
            resolved(
                &[
                    ("config.providers.file.param.allowed.paths", &only_d),
                    ("a", &secret)
                ],
                "a"
            ),
            secret
        );
        // Inside once normalized.
        let allowed = format!("{d}/allowed");
        let roundabout = format!("${{file:{d}/allowed/../d/../allowed/secrets.properties:pw}}");
        assert_eq!(
            resolved(
                &[
                    ("config.providers.file.param.allowed.paths", &allowed),
                    ("a", &roundabout)
                ],
                "a"
            ),
            "s3cret  "
        );
        // Each provider has its own allowed paths: the directory one reads nothing outside.
        let dir_secret = format!("${{dir:{d}/d:token}}");
        assert_eq!(
            resolved(
                &[
                    ("config.providers.dir.param.allowed.paths", &allowed),
                    ("a", &dir_secret)
                ],
                "a"
            ),
            dir_secret
        );
        assert_eq!(
            resolved(
                &[
                    ("config.providers.env.param.allowlist.pattern", "HO.*"),
                    ("e", "${env:HOME}|${env:PATH}|${env:HOM}")
                ],
                "e"
            ),
            "/home/k|${env:PATH}|${env:HOM}"
        );
    }

    #[test]
    fn directory_keys_name_only_the_directorys_own_files() {
        let dir = fixture();
        let d = dir.path().display().to_string();
        let mut conf = providers_conf();
        let up = format!("${{dir:{d}/d:../allowed/secrets.properties}}|${{dir:{d}:d}}");
        conf.push(("a".to_string(), up.clone()));
        assert_eq!(value(&resolve(conf, &env).expect("resolved"), "a"), up);
    }
}
