//! Transaction admin requests: ListTransactions (every broker coordinates the transactional ids
//! of the `__transaction_state` partitions it leads, so every broker is asked) and
//! DescribeTransactions (on the id's coordinator, found with FindCoordinator key type 1).
//!
//! ```text
//! every broker ◄─ ListTransactions ─► merged, sorted by transactional id
//! any broker ─► FindCoordinator(txn id) ─► coordinator ◄─ DescribeTransactions
//! ```

use crate::admin::Admin;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::group::find_coordinator_of;
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// A transactional id as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// The broker coordinating it.
    pub coordinator: i32,
    /// Its current producer id.
    pub producer_id: i64,
    /// Kafka's state name (`Empty`, `Ongoing`, `PrepareCommit`, `CompleteCommit`, ...).
    pub state: String,
}

/// A transactional id as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// Kafka's state name.
    pub state: String,
    /// Producer id and epoch.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The producer's `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// When the open transaction started (-1: none).
    pub start_time_ms: i64,
    /// The partitions in the open transaction.
    pub partitions: Vec<(String, i32)>,
}

impl Admin {
    /// ListTransactions on every broker, merged and sorted by transactional id.
    pub async fn list_transactions(&mut self) -> Result<Vec<TransactionListing>> {
        let md = self.cluster().metadata(Some(&[])).await?;
        let mut out = BTreeMap::new();
        for node in md.brokers.keys() {
            let conn = self.cluster().broker(*node).await?;
            let version = conn.version(ApiKey::ListTransactions)?;
            let resp = conn
                .send_at(
                    &ListTransactionsRequest::default().with_duration_filter(-1),
                    version,
                )
                .await?;
            ClientError::check(resp.error_code, None, || {
                format!("list transactions on broker {node}")
            })?;
            for t in resp.transaction_states {
                let l = TransactionListing {
                    transactional_id: t.transactional_id.0.to_string(),
                    coordinator: *node,
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                };
                out.insert(l.transactional_id.clone(), l);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes one transactional id on its coordinator.
    pub async fn describe_transaction(
        &mut self,
        transactional_id: &str,
    ) -> Result<TransactionDescription> {
        let config = self.cluster().config().clone();
        let conn = self.cluster().control().await?;
        let addr = find_coordinator_of(conn, 1, transactional_id).await?;
        let mut coord = Connection::connect(&addr, &config).await?;
        let version = coord.version(ApiKey::DescribeTransactions)?;
        let resp = coord
            .send_at(
                &DescribeTransactionsRequest::default().with_transactional_ids(vec![
                    TransactionalId(StrBytes::from_string(transactional_id.to_owned())),
                ]),
                version,
            )
            .await?;
        let t =
            resp.transaction_states
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::Protocol {
                    addr: coord.addr().to_owned(),
                    message: format!("DescribeTransactions has no result for {transactional_id}"),
                })?;
        ClientError::check(t.error_code, None, || {
            format!("describe transactional id {transactional_id}")
        })?;
        Ok(TransactionDescription {
            transactional_id: t.transactional_id.0.to_string(),
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .iter()
                .flat_map(|tp| tp.partitions.iter().map(|&p| (tp.topic.0.to_string(), p)))
                .collect(),
        })
    }
}
