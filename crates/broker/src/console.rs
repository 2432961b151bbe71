//! The built-in web console (`http.listener`): `GET /` is one self-contained page
//! (`console.html`, no external assets) that polls `GET /api/overview` every few seconds and
//! shows the brokers, the topics with their partitions' leaders, ISRs and end offsets (and
//! records/s from one poll to the next), and the consumer groups with their lag.
//!
//! The overview is gathered the way a Kafka admin client gathers it, through gregor's own
//! client on this broker's inter-broker listener (with its TLS settings), so every node's
//! console shows the whole cluster: Metadata, ListOffsets to each leader, ListGroups on every
//! broker, DescribeGroups and OffsetFetch at each group's coordinator. It is read-only.
//!
//! ```text
//! browser ─GET /─► console.html ─(every 3 s) GET /api/overview─► overview()
//!                                                     │ gregor-client, inter-broker listener
//!                                                     ▼
//!                         Metadata · ListOffsets · ListGroups · DescribeGroups · OffsetFetch
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use gregor_client::{Admin, ClientConfig, Consumer, ConsumerConfig, OffsetSpec};
use serde_json::{json, Value};

use crate::broker::Broker;

/// The page.
pub const PAGE: &str = include_str!("console.html");

/// The longest an overview may take; a slower cluster gets an error in the page.
const OVERVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Groups described per overview (the rest are listed without their lag).
const MAX_DESCRIBED_GROUPS: usize = 200;

/// The cluster as `/api/overview` answers it (JSON), or an `error` field saying why not.
pub async fn overview(broker: &Broker) -> Value {
    let listener = broker.config.inter_broker_listener_name();
    let (host, port) = broker.advertised_on(&listener).clone();
    let bootstrap = format!("{host}:{port}");
    let client = ClientConfig {
        client_id: format!("gregor-console-{}", broker.config.node_id),
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        security: broker.config.inter_broker_security.clone(),
        ..ClientConfig::default()
    };
    match tokio::time::timeout(OVERVIEW_TIMEOUT, gather(&bootstrap, &client)).await {
        Ok(Ok(mut v)) => {
            v["node_id"] = json!(broker.config.node_id);
            v
        }
        Ok(Err(e)) => json!({ "node_id": broker.config.node_id, "error": e.to_string() }),
        Err(_) => json!({
            "node_id": broker.config.node_id,
            "error": format!("the cluster did not answer within {OVERVIEW_TIMEOUT:?}"),
        }),
    }
}

async fn gather(bootstrap: &str, client: &ClientConfig) -> gregor_client::Result<Value> {
    let mut admin = Admin::connect(bootstrap, client).await?;
    let md = admin.metadata(None).await?;
    let mut offsets = Consumer::connect(bootstrap, client, ConsumerConfig::default()).await?;
    let mut warnings = Vec::new();
    // Every partition's log end offset, from its leader.
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for t in &md.topics {
        let ps: Vec<i32> = t
            .partitions
            .iter()
            .filter(|p| p.leader >= 0)
            .map(|p| p.partition)
            .collect();
        if ps.is_empty() {
            continue;
        }
        match offsets.list_offsets(&t.name, &ps, OffsetSpec::Latest).await {
            Ok(e) => {
                ends.insert(t.name.clone(), e);
            }
            Err(e) => warnings.push(format!("{}: no end offsets: {e}", t.name)),
        }
    }
    let topics: Vec<Value> = md
        .topics
        .iter()
        .map(|t| {
            let partitions: Vec<Value> = t
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "partition": p.partition,
                        "leader": p.leader,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "end_offset": ends.get(&t.name).and_then(|e| e.get(&p.partition)),
                    })
                })
                .collect();
            json!({
                "name": t.name,
                "internal": t.is_internal,
                "error": t.error.map(|e| e.to_string()),
                "partitions": partitions,
            })
        })
        .collect();

    let mut groups = Vec::new();
    match admin.list_groups().await {
        Ok(listed) => {
            for (i, g) in listed.into_iter().enumerate() {
                let mut entry = json!({
                    "group_id": g.group_id,
                    "state": g.state,
                    "protocol_type": g.protocol_type,
                });
                if i < MAX_DESCRIBED_GROUPS {
                    match describe_group(&mut admin, &g.group_id, &ends).await {
                        Ok(detail) => merge(&mut entry, detail),
                        Err(e) => entry["error"] = json!(e.to_string()),
                    }
                }
                groups.push(entry);
            }
        }
        Err(e) => warnings.push(format!("no groups: {e}")),
    }

    let brokers: Vec<Value> = md
        .brokers
        .values()
        .map(|b| json!({ "id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack }))
        .collect();
    Ok(json!({
        "cluster_id": md.cluster_id,
        "controller_id": md.controller_id,
        "brokers": brokers,
        "topics": topics,
        "groups": groups,
        "warnings": warnings,
    }))
}

/// A group's members and, per partition with a committed offset or an owner, its committed
/// offset, the log end and the lag (as `gregor groups describe` shows them).
async fn describe_group(
    admin: &mut Admin,
    group: &str,
    ends: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> gregor_client::Result<Value> {
    let desc = admin.describe_group(group).await?;
    let committed = admin.fetch_group_offsets(group, None).await?;
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &desc.members {
        for (t, ps) in &m.assignment {
            for &p in ps {
                owners.insert((t.clone(), p), m.client_id.clone());
            }
        }
    }
    let mut keys: Vec<(String, i32)> = committed
        .iter()
        .flat_map(|(t, ps)| ps.keys().map(move |p| (t.clone(), *p)))
        .collect();
    keys.extend(owners.keys().cloned());
    keys.sort();
    keys.dedup();
    let mut total_lag = 0i64;
    let partitions: Vec<Value> = keys
        .into_iter()
        .map(|(t, p)| {
            let cur = committed.get(&t).and_then(|c| c.get(&p)).copied();
            let end = ends.get(&t).and_then(|e| e.get(&p)).copied();
            let lag = cur.zip(end).map(|(c, e)| (e - c).max(0));
            total_lag += lag.unwrap_or(0);
            json!({
                "topic": t,
                "partition": p,
                "committed": cur,
                "end_offset": end,
                "lag": lag,
                "owner": owners.get(&(t.clone(), p)),
            })
        })
        .collect();
    Ok(json!({
        "state": desc.state,
        "protocol": desc.protocol,
        "members": desc.members.len(),
        "lag": total_lag,
        "partitions": partitions,
    }))
}

/// Copies `from`'s fields into `into` (both objects).
fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
