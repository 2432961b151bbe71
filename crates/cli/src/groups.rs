//! `gregor groups list|describe|reset-offsets|delete`: the counterpart of
//! `kafka-consumer-groups.sh`, over the group requests of `gregor-client` (ListGroups,
//! DescribeGroups, OffsetFetch, ListOffsets, OffsetCommit, DeleteGroups).

use crate::output::Table;
use crate::tool::{admin, client_config, ConnectArgs};
use anyhow::Context;
use gregor_client::{Consumer, ConsumerConfig, OffsetSpec, TopicOffsets};
use std::collections::{BTreeMap, BTreeSet};

/// `gregor groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups with their state and protocol type.
    List(ListArgs),
    /// Show a group's members and, per partition, committed offset, log end and lag.
    Describe(GroupArgs),
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (the group must be empty).
    Delete(GroupArgs),
}

/// Flags of `gregor groups list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Flags of commands on one group.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Group id.
    group: String,
}

/// Flags of `gregor groups reset-offsets`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime"]
)))]
pub struct ResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Group id.
    group: String,
    /// Topic whose partitions are reset (all its partitions).
    #[arg(long)]
    topic: String,
    /// Reset to the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// Reset to this offset (clamped to the log's range).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// Reset to the first offset at or after this time (RFC 3339, e.g. 2024-05-01T12:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    to_datetime: Option<String>,
    /// Apply the plan; without it the plan is only printed (dry run).
    #[arg(long)]
    execute: bool,
}

/// Runs a `gregor groups` subcommand.
pub async fn run(cmd: GroupsCommand) -> anyhow::Result<()> {
    match cmd {
        GroupsCommand::List(a) => list(a).await,
        GroupsCommand::Describe(a) => describe(a).await,
        GroupsCommand::ResetOffsets(a) => reset(a).await,
        GroupsCommand::Delete(a) => delete(a).await,
    }
}

async fn offsets_client(c: &ConnectArgs) -> anyhow::Result<Consumer> {
    Consumer::connect(
        &c.bootstrap_server,
        &client_config(c)?,
        ConsumerConfig::default(),
    )
    .await
    .with_context(|| format!("cannot reach the cluster at {}", c.bootstrap_server))
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
    for g in admin.list_groups().await? {
        table.row(vec![g.group_id, g.state, g.protocol_type]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn describe(a: GroupArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let desc = admin.describe_group(&a.group).await?;
    let committed = admin.fetch_group_offsets(&a.group, None).await?;
    // Every partition that has a committed offset or an owner.
    let mut owners: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in desc.members.iter().enumerate() {
        for (t, ps) in &m.assignment {
            for &p in ps {
                owners.insert((t.clone(), p), i);
            }
        }
    }
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (t, ps) in &committed {
        partitions.entry(t.clone()).or_default().extend(ps.keys());
    }
    for (t, p) in owners.keys() {
        partitions.entry(t.clone()).or_default().insert(*p);
    }
    println!(
        "Group: {}\tState: {}\tProtocolType: {}\tProtocol: {}\tMembers: {}",
        desc.group_id,
        desc.state,
        desc.protocol_type,
        desc.protocol,
        desc.members.len()
    );
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    if !partitions.is_empty() {
        let mut offsets = offsets_client(&a.connect).await?;
        for (t, ps) in &partitions {
            let ps: Vec<i32> = ps.iter().copied().collect();
            match offsets.list_offsets(t, &ps, OffsetSpec::Latest).await {
                Ok(e) => {
                    ends.insert(t.clone(), e);
                }
                Err(e) => tracing::warn!(topic = %t, error = %e, "no log end offsets"),
            }
        }
    }
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "CLIENT-ID",
        "HOST",
    ]);
    let dash = || "-".to_owned();
    for (t, ps) in &partitions {
        for &p in ps {
            let cur = committed.get(t).and_then(|c| c.get(&p)).copied();
            let end = ends.get(t).and_then(|e| e.get(&p)).copied();
            let lag = match (cur, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => dash(),
            };
            let owner = owners.get(&(t.clone(), p)).map(|&i| &desc.members[i]);
            table.row(vec![
                t.clone(),
                p.to_string(),
                cur.map_or_else(dash, |c| c.to_string()),
                end.map_or_else(dash, |e| e.to_string()),
                lag,
                owner.map_or_else(dash, |m| m.member_id.clone()),
                owner.map_or_else(dash, |m| m.client_id.clone()),
                owner.map_or_else(dash, |m| m.client_host.clone()),
            ]);
        }
    }
    print!("{}", table.render());
    Ok(())
}

async fn reset(a: ResetArgs) -> anyhow::Result<()> {
    let spec = if a.to_earliest {
        OffsetSpec::Earliest
    } else if a.to_latest {
        OffsetSpec::Latest
    } else if let Some(n) = a.to_offset {
        anyhow::ensure!(n >= 0, "--to-offset must not be negative");
        OffsetSpec::Offset(n)
    } else if let Some(d) = &a.to_datetime {
        OffsetSpec::Timestamp(parse_rfc3339_ms(d)?)
    } else {
        anyhow::bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime");
    };
    let mut admin = admin(&a.connect).await?;
    let desc = admin.describe_group(&a.group).await?;
    if !matches!(desc.state.as_str(), "Empty" | "Dead") {
        anyhow::bail!(
            "assignments can only be reset if the group '{}' is inactive, but the current state is {}",
            a.group,
            desc.state
        );
    }
    let meta = admin.cluster().topic(&a.topic, true).await?;
    let parts: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
    let mut offsets = offsets_client(&a.connect).await?;
    let plan: BTreeMap<i32, i64> = match spec {
        OffsetSpec::Offset(n) => {
            // Like Kafka: an offset outside the log is clamped to its range.
            let lo = offsets
                .list_offsets(&a.topic, &parts, OffsetSpec::Earliest)
                .await?;
            let hi = offsets
                .list_offsets(&a.topic, &parts, OffsetSpec::Latest)
                .await?;
            parts
                .iter()
                .map(|p| {
                    let l = lo.get(p).copied().unwrap_or(0);
                    let h = hi.get(p).copied().unwrap_or(l);
                    (*p, n.clamp(l, h.max(l)))
                })
                .collect()
        }
        spec => offsets.list_offsets(&a.topic, &parts, spec).await?,
    };
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    for (p, o) in &plan {
        table.row(vec![
            a.group.clone(),
            a.topic.clone(),
            p.to_string(),
            o.to_string(),
        ]);
    }
    print!("{}", table.render());
    if a.execute {
        let mut commit = TopicOffsets::new();
        commit.insert(a.topic.clone(), plan);
        admin.commit_group_offsets(&a.group, &commit).await?;
    } else {
        eprintln!("Dry run: nothing changed; add --execute to reset the offsets.");
    }
    Ok(())
}

async fn delete(a: GroupArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    admin.delete_group(&a.group).await?;
    println!("Deleted group {}.", a.group);
    Ok(())
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `...T12:00:00.250+02:00`) into
/// milliseconds since the Unix epoch.
pub fn parse_rfc3339_ms(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("invalid RFC 3339 date-time {s:?} (e.g. 2024-05-01T12:00:00Z)");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let t = s.get(r).ok_or_else(bad)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Ok(secs * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z").expect("epoch"), 0);
        assert_eq!(
            parse_rfc3339_ms("2023-11-14T22:13:20Z").expect("utc"),
            1_700_000_000_000
        );
        assert_eq!(
            parse_rfc3339_ms("2023-11-15T00:13:20.5+02:00").expect("offset"),
            1_700_000_000_500
        );
        assert_eq!(
            parse_rfc3339_ms("2000-03-01T00:00:00.123-00:30").expect("neg"),
            951_870_600_123
        );
        for bad in [
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20+0200",
            "yyyy-11-14T22:13:20Z",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }
}
