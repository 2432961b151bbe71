//! `gregor streams-groups list|describe|delete`: the counterpart of `kafka-streams-groups.sh`
//! (KIP-1071), over `gregor-client`'s streams-group admin calls (ListGroups of type
//! `streams`, StreamsGroupDescribe on the group's coordinator, OffsetFetch and ListOffsets for
//! the lag, DeleteGroups). A streams group's configs (`streams.num.standby.replicas`, ...) go
//! through `gregor configs --group G`.
//!
//! ```text
//! gregor streams-groups list [--state]
//! gregor streams-groups describe --group my-app [--offsets | --members | --state | --topology]
//! gregor streams-groups delete --group my-app
//! ```

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use gregor_client::{
    ClientError, Consumer, ConsumerConfig, CoordinatorNode, OffsetSpec, StreamsGroupDescription,
    StreamsTasks, StreamsTopology, TopicOffsets,
};
use gregor_protocol::error::ErrorCode;

use crate::output::Table;
use crate::tool::{admin, client_config, ConnectArgs};

/// `gregor streams-groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StreamsGroupsCommand {
    /// List streams groups (with --state, their state).
    List(ListArgs),
    /// Show a streams group's committed offsets and lag per input partition (the default),
    /// members and tasks, state or topology.
    Describe(DescribeArgs),
    /// Delete an empty streams group and its committed offsets.
    Delete(GroupArgs),
}

/// Flags of `gregor streams-groups list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Also show each group's state.
    #[arg(long)]
    state: bool,
}

/// Flags of commands on one group.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Streams group id (the application id).
    #[arg(long)]
    group: String,
}

/// What `describe` shows: the offsets unless one of the other views is asked for.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct View {
    /// The committed offset, log end offset and lag of each input partition (the default).
    #[arg(long)]
    offsets: bool,
    /// The members, their processes and their active, standby and warm-up tasks.
    #[arg(long)]
    members: bool,
    /// The group's coordinator, assignor, state and epochs.
    #[arg(long)]
    state: bool,
    /// The subtopologies and their source, repartition and changelog topics.
    #[arg(long)]
    topology: bool,
}

/// Flags of `gregor streams-groups describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Streams group id (the application id).
    #[arg(long)]
    group: String,
    #[command(flatten)]
    view: View,
}

/// Runs a `gregor streams-groups` subcommand.
pub async fn run(cmd: StreamsGroupsCommand) -> anyhow::Result<()> {
    match cmd {
        StreamsGroupsCommand::List(a) => list(a).await,
        StreamsGroupsCommand::Describe(a) => describe(a).await,
        StreamsGroupsCommand::Delete(a) => delete(a).await,
    }
}

/// A client error about `group` in words: an unknown group (or one of another type, which
/// StreamsGroupDescribe answers alike) as "streams group 'G' not found", a refused deletion
/// with Kafka's meaning of NON_EMPTY_GROUP; anything else as the client says it.
fn explain(group: &str, e: ClientError) -> anyhow::Error {
    let message = match &e {
        ClientError::Kafka { message, .. } => message.clone().filter(|m| !m.is_empty()),
        _ => None,
    };
    match e.code() {
        Some(ErrorCode::GROUP_ID_NOT_FOUND) => {
            // Kafka's own "Group G not found." says nothing more; "Group G is not a streams
            // group." does.
            let more = message
                .filter(|m| m.trim_end_matches('.') != format!("Group {group} not found"))
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            anyhow::anyhow!("streams group '{group}' not found{more}")
        }
        Some(ErrorCode::NON_EMPTY_GROUP) => anyhow::anyhow!(
            "streams group '{group}' could not be deleted: the group is not empty \
             (NON_EMPTY_GROUP); stop the application's instances first"
        ),
        _ => anyhow::Error::new(e),
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let groups = admin.list_streams_groups().await?;
    let mut table = if a.state {
        Table::new(&["GROUP", "STATE"])
    } else {
        Table::new(&["GROUP"])
    };
    for g in groups {
        if a.state {
            table.row(vec![g.group_id, g.state]);
        } else {
            table.row(vec![g.group_id]);
        }
    }
    print!("{}", table.render());
    Ok(())
}

/// Tasks as `0:[0,1,2]; 1:[0,1,2]`, `-` for none.
fn tasks_text(tasks: &StreamsTasks) -> String {
    if tasks.is_empty() {
        return "-".to_owned();
    }
    tasks
        .iter()
        .map(|(id, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{id}:[{}]", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The members view: one row per member with its current tasks of each kind.
fn members_table(d: &StreamsGroupDescription) -> Table {
    let mut table = Table::new(&[
        "GROUP",
        "MEMBER",
        "PROCESS",
        "CLIENT-ID",
        "MEMBER-EPOCH",
        "ACTIVE",
        "STANDBY",
        "WARMUP",
    ]);
    for m in &d.members {
        table.row(vec![
            d.group_id.clone(),
            m.member_id.clone(),
            m.process_id.clone(),
            m.client_id.clone(),
            m.member_epoch.to_string(),
            tasks_text(&m.assignment.active),
            tasks_text(&m.assignment.standby),
            tasks_text(&m.assignment.warmup),
        ]);
    }
    table
}

/// The state view: one row, the coordinator as `host:port (id)` as kafka-streams-groups.sh
/// prints it.
fn state_table(d: &StreamsGroupDescription, coordinator: &CoordinatorNode) -> Table {
    let mut table = Table::new(&[
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNOR",
        "STATE",
        "GROUP-EPOCH",
        "TARGET-ASSIGNMENT-EPOCH",
        "#MEMBERS",
    ]);
    let id = coordinator
        .node_id
        .map_or_else(|| "-".to_owned(), |id| id.to_string());
    table.row(vec![
        d.group_id.clone(),
        format!("{} ({id})", coordinator.addr),
        d.assignor.clone().unwrap_or_else(|| "-".to_owned()),
        d.state.clone(),
        d.group_epoch.to_string(),
        d.target_assignment_epoch.to_string(),
        d.members.len().to_string(),
    ]);
    table
}

/// The topology view: one row per topic of each subtopology, with its role and partition
/// count (what the application asked for, else what the topic has, else `-`).
fn topology_table(group: &str, t: &StreamsTopology, partitions: &BTreeMap<String, i32>) -> Table {
    let mut table = Table::new(&["GROUP", "SUBTOPOLOGY", "ROLE", "TOPIC", "PARTITIONS"]);
    let count = |name: &str, asked: i32| {
        if asked > 0 {
            asked.to_string()
        } else {
            partitions
                .get(name)
                .map_or_else(|| "-".to_owned(), i32::to_string)
        }
    };
    for s in &t.subtopologies {
        let mut row = |role: &str, name: &str, asked: i32| {
            table.row(vec![
                group.to_owned(),
                s.subtopology_id.clone(),
                role.to_owned(),
                name.to_owned(),
                count(name, asked),
            ]);
        };
        for name in &s.source_topics {
            row("source", name, 0);
        }
        for info in &s.repartition_source_topics {
            row("repartition-source", &info.name, info.partitions);
        }
        for name in &s.repartition_sink_topics {
            row("repartition-sink", name, 0);
        }
        for info in &s.state_changelog_topics {
            row("changelog", &info.name, info.partitions);
        }
    }
    table
}

/// The offsets view: each partition's committed offset, log end offset and lag (`-` where
/// one is not known), sorted by topic and partition.
fn offsets_table(
    group: &str,
    partitions: &BTreeMap<String, BTreeSet<i32>>,
    committed: &TopicOffsets,
    ends: &TopicOffsets,
) -> Table {
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ]);
    let dash = || "-".to_owned();
    for (t, ps) in partitions {
        for &p in ps {
            let cur = committed.get(t).and_then(|c| c.get(&p)).copied();
            let end = ends.get(t).and_then(|e| e.get(&p)).copied();
            let lag = match (cur, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => dash(),
            };
            table.row(vec![
                group.to_owned(),
                t.clone(),
                p.to_string(),
                cur.map_or_else(dash, |c| c.to_string()),
                end.map_or_else(dash, |e| e.to_string()),
                lag,
            ]);
        }
    }
    table
}

/// The partition counts of `topics` that exist (a missing one is left out).
async fn partition_counts(
    admin: &mut gregor_client::Admin,
    topics: &[String],
) -> anyhow::Result<BTreeMap<String, i32>> {
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let md = admin.metadata(Some(topics)).await?;
    Ok(md
        .topics
        .into_iter()
        .filter(|t| t.error.is_none())
        .map(|t| {
            let n = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
            (t.name, n)
        })
        .collect())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let desc = admin
        .describe_streams_group(&a.group)
        .await
        .map_err(|e| explain(&a.group, e))?;
    if a.view.state {
        let coordinator = admin
            .group_coordinator_node(&a.group)
            .await
            .map_err(|e| explain(&a.group, e))?;
        print!("{}", state_table(&desc, &coordinator).render());
        return Ok(());
    }
    if a.view.members {
        if desc.members.is_empty() {
            println!("Streams group '{}' has no active members.", a.group);
        } else {
            print!("{}", members_table(&desc).render());
        }
        return Ok(());
    }
    if a.view.topology {
        let Some(topology) = &desc.topology else {
            println!(
                "Streams group '{}' has no topology yet (state {}).",
                a.group, desc.state
            );
            return Ok(());
        };
        let topics: BTreeSet<String> = topology
            .subtopologies
            .iter()
            .flat_map(|s| {
                s.source_topics
                    .iter()
                    .chain(&s.repartition_sink_topics)
                    .cloned()
                    .chain(s.repartition_source_topics.iter().map(|t| t.name.clone()))
                    .chain(s.state_changelog_topics.iter().map(|t| t.name.clone()))
            })
            .collect();
        let topics: Vec<String> = topics.into_iter().collect();
        let counts = partition_counts(&mut admin, &topics).await?;
        print!("{}", topology_table(&a.group, topology, &counts).render());
        return Ok(());
    }

    // The offsets: every partition of the topics the application reads, and any other
    // partition the group has committed.
    let committed = admin
        .fetch_group_offsets(&a.group, None)
        .await
        .map_err(|e| explain(&a.group, e))?;
    let inputs = desc
        .topology
        .as_ref()
        .map(StreamsTopology::input_topics)
        .unwrap_or_default();
    let counts = partition_counts(&mut admin, &inputs).await?;
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (t, n) in &counts {
        partitions.entry(t.clone()).or_default().extend(0..*n);
    }
    for (t, ps) in &committed {
        partitions.entry(t.clone()).or_default().extend(ps.keys());
    }
    if partitions.is_empty() {
        println!("Streams group '{}' has no offsets.", a.group);
        return Ok(());
    }
    let mut ends = TopicOffsets::new();
    let mut client = Consumer::connect(
        &a.connect.bootstrap_server,
        &client_config(&a.connect)?,
        ConsumerConfig::default(),
    )
    .await
    .with_context(|| format!("cannot reach the cluster at {}", a.connect.bootstrap_server))?;
    for (t, ps) in &partitions {
        let ps: Vec<i32> = ps.iter().copied().collect();
        match client.list_offsets(t, &ps, OffsetSpec::Latest).await {
            Ok(e) => {
                ends.insert(t.clone(), e);
            }
            Err(e) => tracing::warn!(topic = %t, error = %e, "no log end offsets"),
        }
    }
    print!(
        "{}",
        offsets_table(&a.group, &partitions, &committed, &ends).render()
    );
    Ok(())
}

async fn delete(a: GroupArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    admin
        .delete_streams_group(&a.group)
        .await
        .map_err(|e| explain(&a.group, e))?;
    println!(
        "Deletion of requested streams groups ('{}') was successful.",
        a.group
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use gregor_client::{
        StreamsAssignment, StreamsGroupMember, StreamsSubtopology, StreamsTopicInfo,
    };

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: StreamsGroupsCommand,
    }

    fn parse(args: &[&str]) -> Result<StreamsGroupsCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("streams-groups").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    /// A table's rows (header included) cut at the header's column starts, each cell trimmed:
    /// cells may hold spaces (`0:[0]; 1:[0]`).
    fn cells(rendered: &str) -> Vec<Vec<String>> {
        let mut lines = rendered.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let mut starts = vec![0];
        let bytes = header.as_bytes();
        for i in 2..bytes.len() {
            if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
                starts.push(i);
            }
        }
        std::iter::once(header)
            .chain(lines)
            .map(|l| {
                starts
                    .iter()
                    .enumerate()
                    .map(|(k, &s)| {
                        let e = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                        l.get(s.min(l.len())..e).unwrap_or("").trim().to_owned()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn arguments_parse_as_kafka_streams_groups_takes_them() {
        let Ok(StreamsGroupsCommand::Describe(d)) =
            parse(&["describe", "--group", "app", "--members"])
        else {
            panic!("describe --members");
        };
        assert_eq!(d.group, "app");
        assert!(d.view.members && !d.view.offsets && !d.view.state && !d.view.topology);
        let Ok(StreamsGroupsCommand::Describe(d)) = parse(&["describe", "--group", "app"]) else {
            panic!("describe");
        };
        assert!(!d.view.members && !d.view.offsets && !d.view.state && !d.view.topology);
        assert!(parse(&["describe", "--group", "g", "--members", "--state"]).is_err());
        assert!(parse(&["describe", "--group", "g", "--topology", "--offsets"]).is_err());
        assert!(parse(&["describe"]).is_err(), "a group is required");
        assert!(parse(&["delete"]).is_err(), "a group is required");
        let Ok(StreamsGroupsCommand::List(l)) = parse(&["list", "--state"]) else {
            panic!("list --state");
        };
        assert!(l.state);
        assert!(matches!(
            parse(&["list"]),
            Ok(StreamsGroupsCommand::List(ListArgs { state: false, .. }))
        ));
        assert!(matches!(
            parse(&["delete", "--group", "g"]),
            Ok(StreamsGroupsCommand::Delete(_))
        ));
    }

    fn info(name: &str, partitions: i32) -> StreamsTopicInfo {
        StreamsTopicInfo {
            name: name.into(),
            partitions,
            replication_factor: 0,
        }
    }

    fn description() -> StreamsGroupDescription {
        let all = vec![
            ("0".to_string(), vec![0, 1, 2]),
            ("1".to_string(), vec![0, 1, 2]),
        ];
        StreamsGroupDescription {
            group_id: "app".into(),
            state: "Stable".into(),
            group_epoch: 4,
            target_assignment_epoch: 4,
            assignor: Some("sticky".into()),
            topology: Some(StreamsTopology {
                epoch: 0,
                subtopologies: vec![
                    StreamsSubtopology {
                        subtopology_id: "0".into(),
                        source_topics: vec!["words".into()],
                        repartition_sink_topics: vec!["app-counts-repartition".into()],
                        repartition_source_topics: vec![],
                        state_changelog_topics: vec![],
                    },
                    StreamsSubtopology {
                        subtopology_id: "1".into(),
                        source_topics: vec![],
                        repartition_sink_topics: vec![],
                        repartition_source_topics: vec![info("app-counts-repartition", 0)],
                        state_changelog_topics: vec![info("app-counts-changelog", 3)],
                    },
                ],
            }),
            members: vec![StreamsGroupMember {
                member_id: "m1".into(),
                member_epoch: 4,
                instance_id: None,
                rack_id: None,
                client_id: "app-client-StreamThread-1-consumer".into(),
                client_host: "/127.0.0.1".into(),
                topology_epoch: 0,
                process_id: "p1".into(),
                user_endpoint: None,
                assignment: StreamsAssignment {
                    active: all.clone(),
                    standby: vec![],
                    warmup: vec![("1".to_string(), vec![2])],
                },
                target_assignment: StreamsAssignment {
                    active: all,
                    standby: vec![],
                    warmup: vec![],
                },
                is_classic: false,
            }],
        }
    }

    #[test]
    fn members_show_each_kind_of_task() {
        assert_eq!(tasks_text(&vec![]), "-");
        assert_eq!(tasks_text(&vec![("0".into(), vec![])]), "0:[]");
        let rows = cells(&members_table(&description()).render());
        assert_eq!(
            rows,
            vec![
                vec![
                    "GROUP",
                    "MEMBER",
                    "PROCESS",
                    "CLIENT-ID",
                    "MEMBER-EPOCH",
                    "ACTIVE",
                    "STANDBY",
                    "WARMUP"
                ],
                vec![
                    "app",
                    "m1",
                    "p1",
                    "app-client-StreamThread-1-consumer",
                    "4",
                    "0:[0,1,2]; 1:[0,1,2]",
                    "-",
                    "1:[2]"
                ],
            ]
        );
    }

    #[test]
    fn the_state_names_the_coordinator_and_the_epochs() {
        let mut d = description();
        let at = |node_id| CoordinatorNode {
            addr: "127.0.0.1:9092".into(),
            node_id,
        };
        let rendered = state_table(&d, &at(Some(1))).render();
        let row: Vec<&str> = rendered
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        assert_eq!(
            row,
            [
                "app",
                "127.0.0.1:9092",
                "(1)",
                "sticky",
                "Stable",
                "4",
                "4",
                "1"
            ]
        );
        assert!(
            rendered.starts_with("GROUP  COORDINATOR (ID)  "),
            "{rendered}"
        );
        // A v0 answer has no assignor; a coordinator the metadata does not name has no id.
        d.assignor = None;
        d.members.clear();
        d.state = "Empty".into();
        let rendered = state_table(&d, &at(None)).render();
        assert!(
            rendered
                .lines()
                .nth(1)
                .is_some_and(|l| l.split_whitespace().eq([
                    "app",
                    "127.0.0.1:9092",
                    "(-)",
                    "-",
                    "Empty",
                    "4",
                    "4",
                    "0"
                ])),
            "{rendered}"
        );
    }

    #[test]
    fn the_topology_lists_each_subtopologys_topics() {
        let d = description();
        let Some(t) = &d.topology else {
            panic!("a topology");
        };
        let counts = BTreeMap::from([
            ("words".to_string(), 3),
            ("app-counts-repartition".to_string(), 3),
        ]);
        let rows = cells(&topology_table("app", t, &counts).render());
        assert_eq!(
            rows,
            vec![
                vec!["GROUP", "SUBTOPOLOGY", "ROLE", "TOPIC", "PARTITIONS"],
                vec!["app", "0", "source", "words", "3"],
                vec![
                    "app",
                    "0",
                    "repartition-sink",
                    "app-counts-repartition",
                    "3"
                ],
                vec![
                    "app",
                    "1",
                    "repartition-source",
                    "app-counts-repartition",
                    "3"
                ],
                vec!["app", "1", "changelog", "app-counts-changelog", "3"],
            ]
        );
        // An unknown count is a dash.
        let rows = cells(&topology_table("app", t, &BTreeMap::new()).render());
        assert_eq!(rows[1], vec!["app", "0", "source", "words", "-"]);
    }

    #[test]
    fn offsets_show_committed_end_and_lag() {
        let partitions = BTreeMap::from([
            ("app-counts-repartition".to_string(), BTreeSet::from([0])),
            ("words".to_string(), BTreeSet::from([0, 1, 2])),
        ]);
        let committed = TopicOffsets::from([
            ("words".to_string(), BTreeMap::from([(0, 100), (1, 90)])),
            (
                "app-counts-repartition".to_string(),
                BTreeMap::from([(0, 7)]),
            ),
        ]);
        let ends = TopicOffsets::from([(
            "words".to_string(),
            BTreeMap::from([(0, 100), (1, 100), (2, 100)]),
        )]);
        let rendered = offsets_table("app", &partitions, &committed, &ends).render();
        let rows: Vec<Vec<&str>> = rendered
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG"
                ],
                vec!["app", "app-counts-repartition", "0", "7", "-", "-"],
                vec!["app", "words", "0", "100", "100", "0"],
                vec!["app", "words", "1", "90", "100", "10"],
                vec!["app", "words", "2", "-", "100", "-"],
            ]
        );
    }

    #[test]
    fn errors_say_what_went_wrong_with_the_group() {
        let kafka = |code: ErrorCode, message: Option<&str>| ClientError::Kafka {
            code,
            message: message.map(str::to_owned),
            context: "describe streams group app".into(),
        };
        assert_eq!(
            explain(
                "app",
                kafka(ErrorCode::GROUP_ID_NOT_FOUND, Some("Group app not found."))
            )
            .to_string(),
            "streams group 'app' not found"
        );
        assert_eq!(
            explain("app", kafka(ErrorCode::GROUP_ID_NOT_FOUND, None)).to_string(),
            "streams group 'app' not found"
        );
        assert_eq!(
            explain(
                "app",
                kafka(
                    ErrorCode::GROUP_ID_NOT_FOUND,
                    Some("Group app is not a streams group.")
                )
            )
            .to_string(),
            "streams group 'app' not found: Group app is not a streams group."
        );
        assert!(explain("app", kafka(ErrorCode::NON_EMPTY_GROUP, None))
            .to_string()
            .contains("not empty (NON_EMPTY_GROUP)"));
        let other = explain("app", kafka(ErrorCode::GROUP_AUTHORIZATION_FAILED, None)).to_string();
        assert!(other.contains("GROUP_AUTHORIZATION_FAILED"), "{other}");
    }
}
