//! Output helpers shared by the tools: column-aligned tables (plain text, no colour, so scripts
//! can `awk` them) and the kcat-style record format template of `gregor consume`.

use gregor_client::ConsumerRecord;
use std::io::Write;

/// A table printed with columns padded to their widest cell, separated by two spaces.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table; the last column is not padded (no trailing spaces).
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    let pad = widths[i] - c.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// One piece of a parsed format template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
    KeyLen,
    ValueLen,
}

/// A record format template in the style of kcat's `-f`:
/// `%t` topic, `%p` partition, `%o` offset, `%k` key, `%v` value, `%T` timestamp (ms),
/// `%h` headers (`k=v,k=v`), `%K` key length, `%S` value length, `%%` a percent sign;
/// `\n`, `\t`, `\\` escapes. Each record's output is followed by a newline unless the template
/// already ends with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFormat {
    pieces: Vec<Piece>,
    ends_with_newline: bool,
}

impl RecordFormat {
    /// Parses a template; unknown `%x` sequences are an error so typos do not print garbage.
    pub fn parse(template: &str) -> anyhow::Result<Self> {
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut chars = template.chars();
        let flush = |lit: &mut Vec<u8>, pieces: &mut Vec<Piece>| {
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(lit)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let p = match chars.next() {
                        Some('t') => Piece::Topic,
                        Some('p') => Piece::Partition,
                        Some('o') => Piece::Offset,
                        Some('k') => Piece::Key,
                        Some('v') => Piece::Value,
                        Some('T') => Piece::Timestamp,
                        Some('h') => Piece::Headers,
                        Some('K') => Piece::KeyLen,
                        Some('S') => Piece::ValueLen,
                        Some('%') => {
                            lit.push(b'%');
                            continue;
                        }
                        other => anyhow::bail!(
                            "unknown format sequence %{} (use %t %p %o %k %v %T %h %K %S %%)",
                            other.map(String::from).unwrap_or_default()
                        ),
                    };
                    flush(&mut lit, &mut pieces);
                    pieces.push(p);
                }
                '\\' => match chars.next() {
                    Some('n') => lit.push(b'\n'),
                    Some('t') => lit.push(b'\t'),
                    Some('\\') => lit.push(b'\\'),
                    Some(o) => {
                        lit.push(b'\\');
                        let mut b = [0u8; 4];
                        lit.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
                    }
                    None => lit.push(b'\\'),
                },
                c => {
                    let mut b = [0u8; 4];
                    lit.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        let ends_with_newline = lit.last() == Some(&b'\n');
        flush(&mut lit, &mut pieces);
        Ok(RecordFormat {
            pieces,
            ends_with_newline,
        })
    }

    /// Writes one record.
    pub fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        for p in &self.pieces {
            match p {
                Piece::Literal(l) => out.write_all(l)?,
                Piece::Topic => out.write_all(r.topic.as_bytes())?,
                Piece::Partition => write!(out, "{}", r.partition)?,
                Piece::Offset => write!(out, "{}", r.offset)?,
                Piece::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
                Piece::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
                Piece::Timestamp => write!(out, "{}", r.timestamp)?,
                Piece::KeyLen => write!(out, "{}", r.key.as_ref().map_or(-1, |k| k.len() as i64))?,
                Piece::ValueLen => {
                    write!(out, "{}", r.value.as_ref().map_or(-1, |v| v.len() as i64))?
                }
                Piece::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(k.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(v.as_deref().unwrap_or_default())?;
                    }
                }
            }
        }
        if !self.ends_with_newline {
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".to_owned(),
            partition: 2,
            offset: 7,
            timestamp: 99,
            log_append_time: false,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![("a".to_owned(), Some(Bytes::from_static(b"1")))],
        }
    }

    fn render(f: &str) -> String {
        let mut out = Vec::new();
        RecordFormat::parse(f)
            .expect("parse")
            .write(&mut out, &rec())
            .expect("write");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn templates_render() {
        assert_eq!(render("%v"), "v\n");
        assert_eq!(render("%k %v %o %p %t %T"), "k v 7 2 t 99\n");
        assert_eq!(render("%k\\t%v\\n"), "k\tv\n");
        assert_eq!(render("100%% %h %K %S"), "100% a=1 1 1\n");
        assert!(RecordFormat::parse("%x").is_err());
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["TOPIC", "PARTITION"]);
        t.row(vec!["a-long-name".to_owned(), "0".to_owned()]);
        assert_eq!(t.render(), "TOPIC        PARTITION\na-long-name  0\n");
    }
}
