//! `ssl.principal.mapping.rules` (KIP-371): how an SSL client's certificate subject becomes
//! its principal name.
//!
//! ```text
//!  TLS handshake ─► client certificate ─► tls::certificate_principal (RFC 2253 subject,
//!      "CN=alice,OU=eng,O=Example") ─► SslPrincipalMapper::name ─► User:<name>
//!                                                   │ no rule matches
//!                                                   ▼
//!                                   authentication fails, the connection is closed
//! ```
//!
//! The value is a comma-separated list of rules, tried in order; the first that matches names
//! the client:
//! - `DEFAULT`: the subject as it is;
//! - `RULE:pattern/replacement/` (optionally `/L` or `/U` at the end for lower or upper case):
//!   when the regular expression matches the whole subject, the subject with every match of
//!   the pattern replaced (Java's `String.replaceAll`, `$1` for a group).
//!
//! The split of the list into rules follows Kafka's `SslPrincipalMapper` exactly (a pattern may
//! hold commas and escaped slashes; empty entries are skipped; anything else that is not a rule
//! is refused with the part that does not parse). Patterns are compiled by the `regex` crate:
//! Java's syntax for what Kafka's docs use (classes, groups, lazy quantifiers, anchors, `(?i)`);
//! backreferences and lookaround, which `regex` lacks, are refused at start. `\w`, `\d`, `\s`
//! and `\b` are Unicode-aware here and ASCII-only in Java, which only matters for subjects with
//! characters outside ASCII. Replacements are expanded as Java's `Matcher` does (`$n` takes as
//! many digits as name a group, `${name}`, `\` escapes), after Kafka's rewrite of references to
//! groups the pattern does not have into literal text.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// The broker key (also per listener as `listener.name.<l>.ssl.principal.mapping.rules`).
pub const SSL_PRINCIPAL_MAPPING_RULES: &str = "ssl.principal.mapping.rules";

/// Kafka's default: the subject as it is.
pub const DEFAULT_RULES: &str = "DEFAULT";

/// A rule list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRules(pub String);

/// No rule matched a subject (Kafka's `NoMatchingRule`): the client is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No rules apply to {subject}, rules {rules}")]
pub struct NoMatchingRule {
    /// The certificate's subject.
    pub subject: String,
    /// The rules, as Kafka prints them.
    pub rules: String,
}

/// The parsed `ssl.principal.mapping.rules` of a listener.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    /// The value as configured: two mappers are the same when their values are.
    source: String,
    rules: Vec<Rule>,
}

impl PartialEq for SslPrincipalMapper {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for SslPrincipalMapper {}

impl Default for SslPrincipalMapper {
    fn default() -> Self {
        SslPrincipalMapper {
            source: DEFAULT_RULES.to_string(),
            rules: vec![Rule::Default],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        /// The pattern as written (for `Display`), compiled for Java's `replaceAll`.
        pattern: Regex,
        /// The same pattern anchored at both ends: Java's `Matcher.matches()`.
        whole: Regex,
        /// The replacement as written, after Kafka's escaping of unknown groups.
        replacement_text: String,
        replacement: Vec<Piece>,
        case: Case,
    },
}

/// A part of an expanded replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(usize),
}

/// Java's `.` (any character but a line terminator), for the rule grammar.
const JAVA_DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";
/// Java's `\s` (ASCII whitespace).
const JAVA_SPACE: &str = r"[ \t\n\x0B\x0C\r]";

/// One rule, as Kafka's grammar reads it: `DEFAULT`, or `RULE:` then the pattern and the
/// replacement (each a run of escaped characters or characters other than `\` and `/`), each
/// closed by `/`, then an optional `L` or `U` and (lazily) anything, or else anything up to the
/// next separator (which the rule parser then refuses).
fn rule_grammar() -> String {
    format!(
        r"(?P<default>DEFAULT)|RULE:(?P<pattern>(?:\\.|[^\\/])*)/(?P<replacement>(?:\\.|[^\\/])*)/(?P<case>[LU]?){JAVA_DOT}*?|(?P<other>{JAVA_DOT}*?)"
    )
}

/// Splits the list: each rule with the spaces around it and the comma after it.
fn splitter() -> &'static Regex {
    static SPLITTER: OnceLock<Regex> = OnceLock::new();
    SPLITTER.get_or_init(|| {
        Regex::new(&format!(
            r"{JAVA_SPACE}*(?P<rule>{}){JAVA_SPACE}*(?:,{JAVA_SPACE}*|$)",
            rule_grammar()
        ))
        .expect("the rule splitter is a valid regular expression")
    })
}

/// Reads one rule from its start (Java's `lookingAt`).
fn rule_parser() -> &'static Regex {
    static PARSER: OnceLock<Regex> = OnceLock::new();
    PARSER.get_or_init(|| {
        Regex::new(&format!(r"\A(?:{})", rule_grammar()))
            .expect("the rule parser is a valid regular expression")
    })
}

/// Java's `String.trim`: every character up to U+0020 at both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

impl SslPrincipalMapper {
    /// Parses a rule list, refusing what Kafka refuses (and patterns or replacements that could
    /// only fail later, at a client's handshake, on Kafka).
    pub fn parse(rules: &str) -> Result<SslPrincipalMapper, InvalidRules> {
        let trimmed = java_trim(rules);
        let mut parsed = Vec::new();
        for caps in splitter().captures_iter(trimmed) {
            let rule = caps.name("rule").map_or("", |m| m.as_str());
            let Some(m) = rule_parser().captures(rule) else {
                return Err(InvalidRules(format!("Invalid rule: {rule}")));
            };
            let end = m.get(0).map_or(0, |m| m.end());
            if end != rule.len() {
                return Err(InvalidRules(format!(
                    "Invalid rule: `{rule}`, unmatched substring: `{}`",
                    &rule[end..]
                )));
            }
            if m.name("default").is_some() {
                parsed.push(Rule::Default);
            } else if let Some(pattern) = m.name("pattern") {
                let replacement = m.name("replacement").map_or("", |r| r.as_str());
                let case = match m.name("case").map(|c| c.as_str()) {
                    Some("L") => Case::Lower,
                    Some("U") => Case::Upper,
                    _ => Case::Keep,
                };
                parsed.push(Rule::replace(pattern.as_str(), replacement, case)?);
            }
            // Anything else is an empty entry, skipped as Kafka skips it.
        }
        Ok(SslPrincipalMapper {
            source: rules.to_string(),
            rules: parsed,
        })
    }

    /// Whether the list holds no rule at all (every subject would be refused).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether this is the default mapping (the subject as it is).
    pub fn is_default(&self) -> bool {
        matches!(self.rules.as_slice(), [Rule::Default])
    }

    /// The principal name of a certificate whose subject is `subject` (RFC 2253).
    pub fn name(&self, subject: &str) -> Result<String, NoMatchingRule> {
        self.rules
            .iter()
            .find_map(|r| r.apply(subject))
            .ok_or_else(|| NoMatchingRule {
                subject: subject.to_string(),
                rules: self.to_string(),
            })
    }
}

/// As Kafka prints the rules: `[RULE:pattern/replacement/L, DEFAULT]`.
impl fmt::Display for SslPrincipalMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match rule {
                Rule::Default => f.write_str("DEFAULT")?,
                Rule::Replace {
                    pattern,
                    replacement_text,
                    case,
                    ..
                } => {
                    write!(f, "RULE:{}/{replacement_text}", pattern.as_str())?;
                    match case {
                        Case::Lower => f.write_str("/L")?,
                        Case::Upper => f.write_str("/U")?,
                        Case::Keep => {}
                    }
                }
            }
        }
        f.write_str("]")
    }
}

impl Rule {
    fn replace(pattern: &str, replacement: &str, case: Case) -> Result<Rule, InvalidRules> {
        let invalid = |reason: String| {
            InvalidRules(format!(
                "Invalid rule: `RULE:{pattern}/{replacement}/`: {reason}"
            ))
        };
        let compiled = Regex::new(pattern).map_err(|e| {
            invalid(format!(
                "the pattern is not a regular expression gregor can use (Java's syntax without \
                 backreferences or lookaround): {}",
                one_line(&e.to_string())
            ))
        })?;
        let whole = Regex::new(&format!(r"\A(?:{pattern})\z"))
            .map_err(|e| invalid(one_line(&e.to_string())))?;
        let groups = compiled.captures_len().saturating_sub(1);
        let names: Vec<(usize, String)> = compiled
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        let escaped = escape_literal_back_references(replacement, groups)
            .ok_or_else(|| invalid("a group reference is too large".to_string()))?;
        let pieces = parse_replacement(&escaped, groups, &names).map_err(invalid)?;
        Ok(Rule::Replace {
            pattern: compiled,
            whole,
            replacement_text: replacement.to_string(),
            replacement: pieces,
            case,
        })
    }

    fn apply(&self, subject: &str) -> Option<String> {
        match self {
            Rule::Default => Some(subject.to_string()),
            Rule::Replace {
                pattern,
                whole,
                replacement,
                case,
                ..
            } => {
                if !whole.is_match(subject) {
                    return None;
                }
                let replaced = replace_all(pattern, subject, replacement);
                Some(match case {
                    Case::Keep => replaced,
                    Case::Lower => replaced.to_lowercase(),
                    Case::Upper => replaced.to_uppercase(),
                })
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Kafka's rewrite of a replacement before use: a `$n` naming a group the pattern does not
/// have is shortened digit by digit (`$12` with one group is `$1` then `2`) and, if still too
/// large, made literal text (`\$n`). Kafka inserts the escapes at the offsets of the original
/// text into the text already rewritten; that is kept, so two such references give what
/// Kafka gives. `None`: a reference beyond Java's `int` (Kafka throws there).
fn escape_literal_back_references(unescaped: &str, groups: usize) -> Option<String> {
    if groups == 0 {
        return Some(unescaped.to_string());
    }
    let original: Vec<char> = unescaped.chars().collect();
    let mut value = original.clone();
    let mut i = 0;
    while i < original.len() {
        if original[i] != '$' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < original.len() && original[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            i += 1;
            continue;
        }
        i = end;
        if original[start] == '0' {
            continue;
        }
        let digits: String = original[start..end].iter().collect();
        let mut index: usize = digits.parse::<i32>().ok()?.try_into().ok()?;
        while index > groups && index >= 10 {
            index /= 10;
        }
        if index > groups {
            // Before the `$`, at the original text's offset (Kafka's `groupStart - 1`).
            let at = (start - 1).min(value.len());
            value.insert(at, '\\');
        }
    }
    Some(value.into_iter().collect())
}

/// Java's `Matcher` replacement syntax, checked against the pattern's groups.
fn parse_replacement(
    text: &str,
    groups: usize,
    names: &[(usize, String)],
) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let push = |pieces: &mut Vec<Piece>, literal: &mut String, group: usize| {
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(literal)));
        }
        pieces.push(Piece::Group(group));
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let Some(c) = chars.get(i + 1) else {
                    return Err(
                        "the replacement ends with `\\` (character to be escaped is \
                                missing)"
                            .to_string(),
                    );
                };
                literal.push(*c);
                i += 2;
            }
            '$' => {
                i += 1;
                match chars.get(i) {
                    None => {
                        return Err(
                            "the replacement ends with `$` (group index is missing)".to_string()
                        )
                    }
                    Some('{') => {
                        let close = chars[i..]
                            .iter()
                            .position(|c| *c == '}')
                            .ok_or("a named group reference is missing its `}`")?;
                        let name: String = chars[i + 1..i + close].iter().collect();
                        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                            && name.chars().all(|c| c.is_ascii_alphanumeric());
                        if !valid {
                            return Err(format!("`${{{name}}}` is not a group name"));
                        }
                        let group = names
                            .iter()
                            .find(|(_, n)| *n == name)
                            .map(|(g, _)| *g)
                            .ok_or_else(|| format!("the pattern has no group named {name}"))?;
                        push(&mut pieces, &mut literal, group);
                        i += close + 1;
                    }
                    Some(c) => {
                        let Some(first) = c.to_digit(10) else {
                            return Err(format!("`${c}` is an illegal group reference"));
                        };
                        let mut group = first as usize;
                        if group > groups {
                            return Err(format!(
                                "the replacement refers to group {group}, but the pattern has \
                                 {groups}"
                            ));
                        }
                        i += 1;
                        // Java takes further digits while they still name a group.
                        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                            let next = group * 10 + d as usize;
                            if next > groups {
                                break;
                            }
                            group = next;
                            i += 1;
                        }
                        push(&mut pieces, &mut literal, group);
                    }
                }
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Java's `String.replaceAll`: every match, left to right; after an empty match the search
/// goes on one character later.
fn replace_all(pattern: &Regex, text: &str, replacement: &[Piece]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut at = 0;
    while at <= text.len() {
        let Some(caps) = pattern.captures_at(text, at) else {
            break;
        };
        let Some(m) = caps.get(0) else {
            break;
        };
        out.push_str(&text[last..m.start()]);
        for piece in replacement {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                // A group that took no part in the match adds nothing.
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |g| g.as_str())),
            }
        }
        last = m.end();
        at = if m.is_empty() {
            match text[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(rules: &str) -> SslPrincipalMapper {
        SslPrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"))
    }

    /// Kafka's `SslPrincipalMapperTest.testValidRules`.
    #[test]
    fn kafka_s_valid_rules_parse() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            mapper(rules);
        }
    }

    /// Kafka's `testInvalidRules`.
    #[test]
    fn kafka_s_invalid_rules_are_refused() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            assert!(
                SslPrincipalMapper::parse(rules).is_err(),
                "{rules} should be refused"
            );
        }
        let e = SslPrincipalMapper::parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U")
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "Invalid rule: `RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U`, unmatched substring: `/U`"
        );
    }

    /// Kafka's `testSslPrincipalMapper`.
    #[test]
    fn kafka_s_mappings() {
        let m = mapper(
            &[
                "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
                "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
                "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
                "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
                "DEFAULT",
            ]
            .join(", "),
        );
        let name = |dn: &str| m.name(dn).expect("a rule matches");
        assert_eq!(name("CN=Duke,OU=ServiceUsers,O=Org,C=US"), "duke");
        assert_eq!(
            name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US"),
            "duke@sme"
        );
        assert_eq!(name("cn=duke,ou=sme,dc=mycp,dc=com"), "DUKE@SME");
        assert_eq!(name("cN=duke,OU=JavaSoft,O=Sun Microsystems"), "DUKE");
        assert_eq!(
            name("OU=JavaSoft,O=Sun Microsystems,C=US"),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
    }

    /// Kafka's `testRulesSplitting`: how a list is cut into rules, printed as Kafka prints it.
    #[test]
    fn kafka_s_rule_splitting() {
        for (expected, rules) in [
            ("[]", ""),
            ("[DEFAULT]", "DEFAULT"),
            ("[RULE:/]", "RULE://"),
            ("[RULE:/.*]", "RULE:/.*/"),
            ("[RULE:/.*/L]", "RULE:/.*/L"),
            ("[RULE:/, DEFAULT]", "RULE://,DEFAULT"),
            ("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  "),
            (
                "[RULE:   /     , DEFAULT]",
                "  RULE:   /     / ,  DEFAULT  ",
            ),
            (
                "[RULE:  /     /U, DEFAULT]",
                "  RULE:  /     /U   ,DEFAULT  ",
            ),
            (
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
            ),
            // Empty entries are skipped.
            ("[]", ",   , , ,      , , ,   "),
            ("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,"),
            (
                "[RULE: /   , DEFAULT]",
                ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
            ),
            (
                "[RULE:   /  /U, DEFAULT]",
                "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,",
            ),
            // Escapes.
            (r"[RULE:\/\\\(\)\n\t/\/\/]", r"RULE:\/\\\(\)\n\t/\/\//"),
            (
                r"[RULE:\**\/+/*/L, RULE:\/*\**/**]",
                r"RULE:\**\/+/*/L,RULE:\/*\**/**/",
            ),
            // Rules that look like lists of rules.
            (
                r"[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]",
                r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT",
            ),
        ] {
            assert_eq!(mapper(rules).to_string(), expected, "{rules:?}");
        }
    }

    /// Kafka's `testCommaWithWhitespace`: an escaped comma inside a CN.
    #[test]
    fn an_escaped_comma_in_a_common_name() {
        let m = mapper(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT");
        assert_eq!(
            m.name(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz")
                .expect("maps"),
            r"Tkac\, Adam"
        );
    }

    /// The examples of Kafka's security docs.
    #[test]
    fn kafka_s_documented_examples() {
        let m = mapper("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT");
        assert_eq!(
            m.name("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .expect("maps"),
            "serviceuser"
        );
        assert_eq!(
            m.name("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .expect("maps"),
            "adminuser@admin"
        );
        let upper = mapper("RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/U");
        assert_eq!(
            upper
                .name("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .expect("maps"),
            "ADMINUSER@ADMIN"
        );
    }

    #[test]
    fn no_matching_rule_is_an_error_naming_the_subject_and_the_rules() {
        let m = mapper("RULE:^CN=([^,]+),OU=eng,O=Example$/$1/");
        assert_eq!(m.name("CN=alice,OU=eng,O=Example").expect("maps"), "alice");
        let e = m.name("CN=mallory,OU=ops,O=Example").expect_err("no rule");
        assert_eq!(
            e.to_string(),
            "No rules apply to CN=mallory,OU=ops,O=Example, rules \
             [RULE:^CN=([^,]+),OU=eng,O=Example$/$1]"
        );
        assert!(mapper("").name("CN=a").is_err());
        assert!(mapper("").is_empty());
        assert!(mapper(" DEFAULT ").is_default());
        assert!(SslPrincipalMapper::default().is_default());
    }

    /// `matches()` is whole-subject matching with backtracking into alternatives, and the
    /// replacement is `replaceAll`, so a pattern matching the empty string adds at the end.
    #[test]
    fn java_match_and_replace_semantics() {
        // Leftmost-first would stop at "a"; Java's matches() tries the longer alternative, so
        // the rule applies; replaceAll then finds "a" first and keeps "b", as Java does.
        assert_eq!(mapper("RULE:a|ab/x/").name("ab").expect("maps"), "xb");
        assert!(mapper("RULE:a|ab/x/").name("abc").is_err());
        // replaceAll of `(.*)` replaces the whole text and then the empty end.
        assert_eq!(
            mapper("RULE:(.*)/<$1>/").name("abc").expect("maps"),
            "<abc><>"
        );
        // `$12` with one group is group 1 then `2`; `$3` with one group is literal.
        assert_eq!(mapper("RULE:(a)/$12/").name("a").expect("maps"), "a2");
        assert_eq!(mapper("RULE:(a)/$3-$1/").name("a").expect("maps"), "$3-a");
        // Escapes and named groups.
        assert_eq!(
            mapper(r"RULE:CN=(?P<user>\w+)/\$${user}/")
                .name("CN=bob")
                .expect("maps"),
            "$bob"
        );
        // A group that took no part adds nothing.
        assert_eq!(mapper("RULE:(x)?b/[$1]/").name("b").expect("maps"), "[]");
    }

    #[test]
    fn patterns_and_replacements_that_cannot_work_are_refused_at_parse() {
        for (rules, says) in [
            (r"RULE:(a)\1/$1/", "backreferences"),
            ("RULE:(?=a)a/$1/", "regular expression"),
            ("RULE:([a-/$1/", "regular expression"),
            ("RULE:a/$1/", "group 1, but the pattern has 0"),
            ("RULE:(a)/$x/", "illegal group reference"),
            ("RULE:(a)/${nope}/", "no group named nope"),
            ("RULE:(a)/x$/", "group index is missing"),
        ] {
            let e = SslPrincipalMapper::parse(rules).expect_err(rules);
            assert!(e.to_string().contains(says), "{rules}: {e}");
        }
    }

    proptest::proptest! {
        /// Any text parses or is refused, and a parsed list maps any subject or says why not.
        #[test]
        fn any_rule_text_parses_or_is_refused(rules in ".{0,40}", dn in ".{0,40}") {
            if let Ok(m) = SslPrincipalMapper::parse(&rules) {
                let _ = m.name(&dn);
                let _ = m.to_string();
            }
        }
    }
}
