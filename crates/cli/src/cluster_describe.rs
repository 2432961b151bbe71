//! `gregor cluster describe`: the nodes (id, address, rack, live or fenced), the active
//! controller, and the metadata quorum (leader, epoch, high watermark, each voter's log end
//! offset, lag and last fetch), over DescribeCluster and DescribeQuorum.

use anyhow::Context;
use gregor_client::{Admin, QuorumDescription, QuorumReplica};

use crate::output::Table;
use crate::tool::{client_config, ConnectArgs};

/// Flags of `gregor cluster describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

fn or_dash(v: i64) -> String {
    if v < 0 {
        "-".to_owned()
    } else {
        v.to_string()
    }
}

/// How long ago `at_ms` was, at `now_ms` (as kafka-metadata-quorum prints it; "-" unknown).
fn ago(at_ms: i64, now_ms: i64) -> String {
    if at_ms < 0 {
        "-".to_owned()
    } else {
        format!("{} ms ago", (now_ms - at_ms).max(0))
    }
}

fn quorum_row(
    q: &QuorumDescription,
    r: &QuorumReplica,
    role: &str,
    now_ms: i64,
    with_directories: bool,
) -> Vec<String> {
    let mut row = vec![
        r.node_id.to_string(),
        if r.node_id == q.leader_id {
            "leader".to_owned()
        } else {
            role.to_owned()
        },
        or_dash(r.log_end_offset),
        q.lag(r).map_or_else(|| "-".to_owned(), |l| l.to_string()),
        ago(r.last_fetch_timestamp, now_ms),
    ];
    if with_directories {
        row.push(r.directory_id.clone().unwrap_or_else(|| "-".to_owned()));
    }
    row
}

/// Runs `gregor cluster describe`.
pub async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let bootstrap = &a.connect.bootstrap_server;
    let config = client_config(&a.connect)?;
    let mut admin = Admin::connect(bootstrap, &config)
        .await
        .with_context(|| format!("cannot reach the cluster at {bootstrap}"))?;
    let cluster = admin.describe_cluster(true).await?;
    println!("Cluster: {}", cluster.cluster_id);
    println!(
        "Controller: {}",
        if cluster.controller_id < 0 {
            "none".to_owned()
        } else {
            cluster.controller_id.to_string()
        }
    );
    let mut nodes = Table::new(&["NODE", "ADDRESS", "RACK", "STATE"]);
    for b in &cluster.brokers {
        nodes.row(vec![
            b.node_id.to_string(),
            format!("{}:{}", b.host, b.port),
            b.rack.clone().unwrap_or_else(|| "-".to_owned()),
            if b.fenced { "fenced" } else { "live" }.to_owned(),
        ]);
    }
    println!();
    print!("{}", nodes.render());
    // Only the quorum leader knows every voter's log end offset: ask the controller.
    let controller = cluster
        .brokers
        .iter()
        .find(|b| b.node_id == cluster.controller_id && !b.fenced)
        .map(|b| format!("{}:{}", b.host, b.port));
    let quorum = match controller {
        Some(addr) => match Admin::connect(&addr, &config).await {
            Ok(mut at_controller) => at_controller.describe_quorum().await,
            Err(e) => {
                tracing::debug!(error = %e, "the controller is not reachable: asking {bootstrap}");
                admin.describe_quorum().await
            }
        },
        None => admin.describe_quorum().await,
    };
    match quorum {
        Ok(q) => {
            println!();
            println!(
                "Quorum: leader {}, epoch {}, high watermark {}",
                q.leader_id,
                q.leader_epoch,
                or_dash(q.high_watermark)
            );
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            // The directory ids (KIP-853) when the quorum knows any.
            let with_directories = q
                .voters
                .iter()
                .chain(&q.observers)
                .any(|r| r.directory_id.is_some());
            let mut columns = vec!["NODE", "ROLE", "LOG-END-OFFSET", "LAG", "LAST-FETCH"];
            if with_directories {
                columns.push("DIRECTORY");
            }
            let mut table = Table::new(&columns);
            for v in &q.voters {
                table.row(quorum_row(&q, v, "voter", now_ms, with_directories));
            }
            for o in &q.observers {
                table.row(quorum_row(&q, o, "observer", now_ms, with_directories));
            }
            print!("{}", table.render());
        }
        Err(e) => println!("\nQuorum: unavailable ({e})"),
    }
    Ok(())
}
