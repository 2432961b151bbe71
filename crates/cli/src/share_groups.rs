//! `gregor share-groups list|describe|reset-offsets|delete|delete-offsets`: the counterpart of
//! `kafka-share-groups.sh` (KIP-932), over `gregor-client`'s share-group admin calls
//! (ListGroups of type `share`, ShareGroupDescribe, DescribeShareGroupOffsets,
//! AlterShareGroupOffsets, DeleteShareGroupOffsets, DeleteGroups). A share group's configs
//! (`share.auto.offset.reset`, ...) go through `gregor configs --group G`.
//!
//! ```text
//! gregor share-groups list
//! gregor share-groups describe --group workers [--members | --offsets | --state]
//! gregor share-groups reset-offsets --group workers --topic orders --to-earliest [--dry-run]
//! gregor share-groups delete-offsets --group workers --topic orders
//! gregor share-groups delete --group workers
//! ```

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use gregor_client::{
    Consumer, ConsumerConfig, OffsetSpec, ShareGroupDescription, ShareGroupMember,
    ShareOffsetsAndLag,
};

use crate::groups::parse_rfc3339_ms;
use crate::output::Table;
use crate::tool::{admin, client_config, ConnectArgs};

/// `gregor share-groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ShareGroupsCommand {
    /// List share groups with their state.
    List(ListArgs),
    /// Show a share group's start offsets per partition (the default), members or state.
    Describe(DescribeArgs),
    /// Move an empty share group's start offsets on a topic.
    ResetOffsets(ResetArgs),
    /// Delete an empty share group.
    Delete(GroupArgs),
    /// Forget an empty share group's state of a topic.
    DeleteOffsets(DeleteOffsetsArgs),
}

/// Flags of `gregor share-groups list`.
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
    /// Share group id.
    #[arg(long)]
    group: String,
}

/// What `describe` shows: the start offsets unless one of the other views is asked for.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct View {
    /// The members and their assignments.
    #[arg(long)]
    members: bool,
    /// The start offset and lag of each share-partition (the default).
    #[arg(long)]
    offsets: bool,
    /// The group's state, epochs and assignor.
    #[arg(long)]
    state: bool,
}

/// Flags of `gregor share-groups describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Share group id.
    #[arg(long)]
    group: String,
    #[command(flatten)]
    view: View,
}

/// Flags of `gregor share-groups reset-offsets`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime"]
)))]
pub struct ResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Share group id (the group must be empty).
    #[arg(long)]
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
    /// Only print the plan (what happens without `--execute`).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Apply the plan; without it the plan is only printed, as `gregor groups reset-offsets`
    /// and kafka-share-groups.sh do.
    #[arg(long)]
    execute: bool,
}

/// Flags of `gregor share-groups delete-offsets`.
#[derive(Debug, clap::Args)]
pub struct DeleteOffsetsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Share group id (the group must be empty).
    #[arg(long)]
    group: String,
    /// Topic whose share-partitions' state is deleted (repeatable).
    #[arg(long, required = true)]
    topic: Vec<String>,
}

/// Runs a `gregor share-groups` subcommand.
pub async fn run(cmd: ShareGroupsCommand) -> anyhow::Result<()> {
    match cmd {
        ShareGroupsCommand::List(a) => list(a).await,
        ShareGroupsCommand::Describe(a) => describe(a).await,
        ShareGroupsCommand::ResetOffsets(a) => reset(a).await,
        ShareGroupsCommand::Delete(a) => delete(a).await,
        ShareGroupsCommand::DeleteOffsets(a) => delete_offsets(a).await,
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
    let mut table = Table::new(&["GROUP", "STATE"]);
    for g in admin.list_share_groups().await? {
        table.row(vec![g.group_id, g.state]);
    }
    print!("{}", table.render());
    Ok(())
}

/// The state view: one row, as `kafka-share-groups --describe --state` prints it.
fn state_table(d: &ShareGroupDescription) -> Table {
    let mut table = Table::new(&[
        "GROUP",
        "ASSIGNOR",
        "STATE",
        "GROUP-EPOCH",
        "ASSIGNMENT-EPOCH",
        "#MEMBERS",
    ]);
    table.row(vec![
        d.group_id.clone(),
        d.assignor.clone(),
        d.state.clone(),
        d.group_epoch.to_string(),
        d.assignment_epoch.to_string(),
        d.members.len().to_string(),
    ]);
    table
}

/// A member's assignment as `topic:0,1;other:2`.
fn assignment_text(m: &ShareGroupMember) -> String {
    if m.assignment.is_empty() {
        return "-".to_owned();
    }
    m.assignment
        .iter()
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}:{}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The members view.
fn members_table(d: &ShareGroupDescription) -> Table {
    let mut table = Table::new(&[
        "GROUP",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
        "MEMBER-EPOCH",
        "ASSIGNMENT",
    ]);
    for m in &d.members {
        table.row(vec![
            d.group_id.clone(),
            m.member_id.clone(),
            m.client_host.clone(),
            m.client_id.clone(),
            m.assignment
                .values()
                .map(Vec::len)
                .sum::<usize>()
                .to_string(),
            m.member_epoch.to_string(),
            assignment_text(m),
        ]);
    }
    table
}

/// The offsets view: each share-partition's start offset and the lag the coordinator answers
/// (DescribeShareGroupOffsets v1, KIP-1226: records up to the high watermark not yet
/// delivered for good); `-` where the share-partition is not initialized or the coordinator
/// cannot tell the lag, as `kafka-share-groups.sh`.
fn offsets_table(group: &str, offsets: &ShareOffsetsAndLag) -> Table {
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"]);
    let dash = || "-".to_owned();
    for (t, ps) in offsets {
        for (p, o) in ps {
            table.row(vec![
                group.to_owned(),
                t.clone(),
                p.to_string(),
                o.start_offset.map_or_else(dash, |s| s.to_string()),
                o.lag.map_or_else(dash, |l| l.to_string()),
            ]);
        }
    }
    table
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let desc = admin.describe_share_group(&a.group).await?;
    if a.view.state {
        print!("{}", state_table(&desc).render());
        return Ok(());
    }
    if a.view.members {
        if desc.members.is_empty() {
            println!("Share group '{}' has no active members.", a.group);
        } else {
            print!("{}", members_table(&desc).render());
        }
        return Ok(());
    }
    let offsets = admin
        .describe_share_group_offsets_and_lag(&a.group, None)
        .await?;
    if offsets.is_empty() && desc.state == "Empty" {
        println!("Share group '{}' has no offsets.", a.group);
        return Ok(());
    }
    print!("{}", offsets_table(&a.group, &offsets).render());
    Ok(())
}

/// The reset's target offsets.
fn reset_spec(a: &ResetArgs) -> anyhow::Result<OffsetSpec> {
    Ok(if a.to_earliest {
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
    })
}

async fn reset(a: ResetArgs) -> anyhow::Result<()> {
    let spec = reset_spec(&a)?;
    let mut admin = admin(&a.connect).await?;
    let desc = admin.describe_share_group(&a.group).await?;
    if !matches!(desc.state.as_str(), "Empty" | "Dead") {
        anyhow::bail!(
            "share group '{}' is not empty (state {}): its offsets can only be reset when it \
             has no members",
            a.group,
            desc.state
        );
    }
    let meta = admin.cluster().topic(&a.topic, true).await?;
    let parts: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
    let mut client = offsets_client(&a.connect).await?;
    let plan: BTreeMap<i32, i64> = match spec {
        OffsetSpec::Offset(n) => {
            let lo = client
                .list_offsets(&a.topic, &parts, OffsetSpec::Earliest)
                .await?;
            let hi = client
                .list_offsets(&a.topic, &parts, OffsetSpec::Latest)
                .await?;
            clamp_plan(&parts, n, &lo, &hi)
        }
        spec => client.list_offsets(&a.topic, &parts, spec).await?,
    };
    print!("{}", plan_table(&a.group, &a.topic, &plan).render());
    if !a.execute {
        eprintln!("Dry run: nothing changed (add --execute to apply).");
        return Ok(());
    }
    let mut offsets = BTreeMap::new();
    offsets.insert(a.topic.clone(), plan);
    admin.alter_share_group_offsets(&a.group, &offsets).await?;
    Ok(())
}

/// `--to-offset N` per partition, clamped into each log's [start, end], as Kafka's tools do.
fn clamp_plan(
    parts: &[i32],
    n: i64,
    lo: &BTreeMap<i32, i64>,
    hi: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    parts
        .iter()
        .map(|p| {
            let l = lo.get(p).copied().unwrap_or(0);
            let h = hi.get(p).copied().unwrap_or(l);
            (*p, n.clamp(l, h.max(l)))
        })
        .collect()
}

fn plan_table(group: &str, topic: &str, plan: &BTreeMap<i32, i64>) -> Table {
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "NEW-START-OFFSET"]);
    for (p, o) in plan {
        table.row(vec![
            group.to_owned(),
            topic.to_owned(),
            p.to_string(),
            o.to_string(),
        ]);
    }
    table
}

async fn delete(a: GroupArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    admin.delete_group(&a.group).await?;
    println!(
        "Deletion of requested share groups ('{}') was successful.",
        a.group
    );
    Ok(())
}

async fn delete_offsets(a: DeleteOffsetsArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let results = admin.delete_share_group_offsets(&a.group, &a.topic).await?;
    let mut table = Table::new(&["TOPIC", "STATUS"]);
    let mut failed = BTreeSet::new();
    for (t, r) in results {
        let status = match r {
            Ok(()) => "Successful".to_owned(),
            Err(e) => {
                failed.insert(t.clone());
                format!("Error: {e}")
            }
        };
        table.row(vec![t, status]);
    }
    print!("{}", table.render());
    anyhow::ensure!(failed.is_empty(), "offsets not deleted for {failed:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ShareGroupsCommand,
    }

    fn parse(args: &[&str]) -> Result<ShareGroupsCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("share-groups").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn arguments_parse_as_kafka_share_groups_takes_them() {
        let Ok(ShareGroupsCommand::Describe(d)) = parse(&["describe", "--group", "g", "--members"])
        else {
            panic!("describe");
        };
        assert_eq!(d.group, "g");
        assert!(d.view.members && !d.view.offsets && !d.view.state);
        assert!(parse(&["describe", "--group", "g", "--members", "--state"]).is_err());
        assert!(parse(&["describe"]).is_err(), "a group is required");

        let Ok(ShareGroupsCommand::ResetOffsets(r)) = parse(&[
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-offset",
            "5",
            "--dry-run",
        ]) else {
            panic!("reset-offsets");
        };
        assert!(r.dry_run);
        assert!(matches!(reset_spec(&r), Ok(OffsetSpec::Offset(5))));
        assert!(
            parse(&["reset-offsets", "--group", "g", "--topic", "t"]).is_err(),
            "a target is required"
        );
        assert!(parse(&[
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest"
        ])
        .is_err());
        assert!(parse(&[
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--dry-run",
            "--execute"
        ])
        .is_err());
        let Ok(ShareGroupsCommand::ResetOffsets(r)) = parse(&[
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-datetime",
            "2024-05-01T00:00:00Z",
        ]) else {
            panic!("reset-offsets");
        };
        assert!(matches!(
            reset_spec(&r),
            Ok(OffsetSpec::Timestamp(1_714_521_600_000))
        ));

        let Ok(ShareGroupsCommand::DeleteOffsets(d)) = parse(&[
            "delete-offsets",
            "--group",
            "g",
            "--topic",
            "a",
            "--topic",
            "b",
        ]) else {
            panic!("delete-offsets");
        };
        assert_eq!(d.topic, vec!["a".to_string(), "b".to_string()]);
        assert!(parse(&["delete-offsets", "--group", "g"]).is_err());
        assert!(matches!(parse(&["list"]), Ok(ShareGroupsCommand::List(_))));
        assert!(matches!(
            parse(&["delete", "--group", "g"]),
            Ok(ShareGroupsCommand::Delete(_))
        ));
    }

    fn description() -> ShareGroupDescription {
        ShareGroupDescription {
            group_id: "g".into(),
            state: "Stable".into(),
            group_epoch: 3,
            assignment_epoch: 3,
            assignor: "simple".into(),
            members: vec![ShareGroupMember {
                member_id: "m1".into(),
                rack_id: None,
                member_epoch: 3,
                client_id: "c1".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topics: vec!["t".into()],
                assignment: BTreeMap::from([("t".to_string(), vec![0, 1])]),
            }],
        }
    }

    #[test]
    fn tables_render_the_group() {
        let state = state_table(&description()).render();
        assert!(state.contains("ASSIGNMENT-EPOCH"), "{state}");
        assert!(state.contains("simple"), "{state}");
        let members = members_table(&description()).render();
        assert!(members.contains("t:0,1"), "{members}");
        assert!(members
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("m1") && l.contains(" 2 ")));
        let offset = |start_offset, lag| gregor_client::SharePartitionOffset { start_offset, lag };
        // The lag is the coordinator's (here less than end - start: some records past the
        // start offset are already acknowledged); none from a coordinator that cannot tell.
        let offsets: ShareOffsetsAndLag = BTreeMap::from([(
            "t".to_string(),
            BTreeMap::from([
                (0, offset(Some(4), Some(3))),
                (1, offset(None, None)),
                (2, offset(Some(7), None)),
            ]),
        )]);
        let rendered = offsets_table("g", &offsets).render();
        let rows: Vec<Vec<&str>> = rendered
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec!["g", "t", "0", "4", "3"],
                vec!["g", "t", "1", "-", "-"],
                vec!["g", "t", "2", "7", "-"]
            ]
        );
    }

    #[test]
    fn a_target_offset_is_clamped_into_each_log() {
        let lo = BTreeMap::from([(0, 5), (1, 0)]);
        let hi = BTreeMap::from([(0, 9), (1, 3)]);
        assert_eq!(
            clamp_plan(&[0, 1], 7, &lo, &hi),
            BTreeMap::from([(0, 7), (1, 3)])
        );
        assert_eq!(
            clamp_plan(&[0, 1], 1, &lo, &hi),
            BTreeMap::from([(0, 5), (1, 1)])
        );
    }
}
