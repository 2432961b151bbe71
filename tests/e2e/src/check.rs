//! Checks shared by the interop tests: what a client's producer says was acknowledged against
//! what a consumer read back.
//!
//! The Python scripts report records as JSON arrays `[partition, offset, key, value]`; values
//! start with `v<7-digit index>|`, the order in which they were produced.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// One record as the client scripts report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key (UTF-8), if any.
    pub key: Option<String>,
    /// Value (UTF-8), if any.
    pub value: Option<String>,
}

/// Reads `doc[field]` as a list of records.
pub fn records(doc: &Value, field: &str) -> Vec<Rec> {
    let list = doc
        .get(field)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no '{field}' list in {doc}"));
    list.iter()
        .map(|r| {
            let a = r.as_array().filter(|a| a.len() == 4);
            let a = a.unwrap_or_else(|| panic!("bad record {r}"));
            Rec {
                partition: a[0].as_i64().unwrap_or_else(|| panic!("partition in {r}")) as i32,
                offset: a[1].as_i64().unwrap_or_else(|| panic!("offset in {r}")),
                key: a[2].as_str().map(str::to_string),
                value: a[3].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// The production index encoded at the start of a value (`v0000042|...` → 42).
pub fn index_of(value: &str) -> u64 {
    value
        .get(1..8)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("value does not start with v<7 digits>|: {value:?}"))
}

/// Asserts that `consumed` (in the order a consumer returned them) is exactly `delivered`
/// (`expected` records, as acknowledged to the producer):
/// - every acknowledged record is read back at the offset it was acknowledged at, with the same
///   key and value, and nothing else is read;
/// - per partition, offsets are read in increasing order, without gaps from 0, and the values
///   keep the order they were produced in;
/// - all records with the same key are in the same partition.
pub fn assert_same_records(expected: usize, delivered: &[Rec], consumed: &[Rec]) {
    assert_eq!(delivered.len(), expected, "delivery reports");
    let mut acked: HashMap<(i32, i64), &Rec> = HashMap::new();
    for r in delivered {
        assert!(r.offset >= 0, "acknowledged without an offset: {r:?}");
        if let Some(prev) = acked.insert((r.partition, r.offset), r) {
            panic!("two records acknowledged at the same offset: {prev:?} and {r:?}");
        }
    }
    let mut by_partition: BTreeMap<i32, Vec<&Rec>> = BTreeMap::new();
    for r in consumed {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (p, recs) in &by_partition {
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {p}: record #{i} read has offset {} (expected contiguous offsets from 0)",
                r.offset
            );
            let acked = acked
                .get(&(r.partition, r.offset))
                .unwrap_or_else(|| panic!("read a record that was never acknowledged: {r:?}"));
            assert_eq!(
                (&r.key, &r.value),
                (&acked.key, &acked.value),
                "partition {p} offset {}: read back differs from what was acknowledged",
                r.offset
            );
        }
        for w in recs.windows(2) {
            let (a, b) = (value_index(w[0]), value_index(w[1]));
            assert!(
                a < b,
                "partition {p}: produce order lost: offset {} has record #{a}, offset {} has #{b}",
                w[0].offset,
                w[1].offset
            );
        }
    }
    assert_eq!(
        consumed.len(),
        delivered.len(),
        "read back {} records, {} were acknowledged",
        consumed.len(),
        delivered.len()
    );
    assert_keys_stick_to_partitions(consumed);
}

fn value_index(r: &Rec) -> u64 {
    index_of(
        r.value
            .as_deref()
            .unwrap_or_else(|| panic!("null value: {r:?}")),
    )
}

/// Asserts that each key appears in one partition only.
pub fn assert_keys_stick_to_partitions(recs: &[Rec]) {
    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    for r in recs {
        if let Some(k) = r.key.as_deref() {
            let p = *partition_of.entry(k).or_insert(r.partition);
            assert_eq!(
                p, r.partition,
                "key {k:?} is in partitions {p} and {}",
                r.partition
            );
        }
    }
}

/// How many distinct partitions the records span.
pub fn partitions_used(recs: &[Rec]) -> usize {
    let mut ps: Vec<i32> = recs.iter().map(|r| r.partition).collect();
    ps.sort_unstable();
    ps.dedup();
    ps.len()
}
