//! ListTransactions (key 66): the transactions this broker coordinates (those of the
//! `__transaction_state` partitions it leads), filtered by state, producer id and (v1) how
//! long they have been running, and (v2, KIP-1152) a regular expression the whole
//! transactional id must match, as Java's `Matcher.matches` does; a pattern that does not
//! compile is INVALID_REGULAR_EXPRESSION. Unknown state names are echoed in
//! `unknown_state_filters` (and match nothing, as in Kafka). As Kafka, only the transactional
//! ids the principal may DESCRIBE are listed.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_transactions_response::TransactionState as TxnStateEntry;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use gregor_txn::TransactionState;

use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListTransactions;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Handles a ListTransactions request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TransactionState::ALL
            .into_iter()
            .find(|s| s.name() == name.as_str())
        {
            Some(s) => states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    let pattern = match req
        .transactional_id_pattern
        .as_ref()
        .filter(|p| ctx.api_version >= 2 && !p.is_empty())
        .map(|p| regex::Regex::new(&format!("^(?:{})$", p.as_str())))
    {
        None => None,
        Some(Ok(re)) => Some(re),
        Some(Err(_)) => {
            return ListTransactionsResponse::default()
                .with_error_code(ErrorCode::INVALID_REGULAR_EXPRESSION.code())
                .with_unknown_state_filters(unknown)
        }
    };
    let all = match broker.txn.list() {
        Ok(all) => all,
        Err(error) => {
            return ListTransactionsResponse::default()
                .with_error_code(error)
                .with_unknown_state_filters(unknown)
        }
    };
    let now = broker.clock.now_ms();
    let duration = if ctx.api_version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let listed = all
        .into_iter()
        .filter(|m| m.state != TransactionState::Dead)
        // As Kafka: state filters of which none is known match nothing.
        .filter(|m| req.state_filters.is_empty() || states.contains(&m.state))
        .filter(|m| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&m.transactional_id))
        })
        .filter(|m| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        // Kafka: only transactions that started more than `duration` ago, by its arithmetic:
        // an id with no transaction started (start -1, Empty) passes every duration.
        .filter(|m| duration < 0 || now - m.txn_start_timestamp_ms > duration)
        .filter(|m| {
            authorizer::authorize(
                broker,
                ctx,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| {
            TxnStateEntry::default()
                .with_transactional_id(TransactionalId(str_bytes(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::test_support::{allow_transactional_id, ctx_of, with_authorizer};

    /// A broker with an authorizer, leading `__transaction_state`.
    fn broker_with_coordinator(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.txn.state_log_num_partitions = 1;
        let b = crate::broker::test_broker(with_authorizer(config));
        b.replicas
            .create_topic(
                crate::txn_coordinator::TRANSACTION_STATE_TOPIC,
                1,
                1,
                Default::default(),
            )
            .expect("create");
        b.txn.sync_leadership().expect("load");
        b
    }

    /// Only the transactional ids the principal may DESCRIBE are listed.
    #[tokio::test]
    async fn only_the_ids_the_principal_may_describe_are_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_coordinator(dir.path());
        for id in ["tx", "other"] {
            assert_eq!(b.txn.init_producer_id(id, 60_000, None).await.0, 0);
        }
        let listed = |user: &str| -> Vec<String> {
            let resp = handle(
                &b,
                &ctx_of(user, KEY, 1),
                ListTransactionsRequest::default(),
            );
            assert_eq!(resp.error_code, 0);
            let mut ids: Vec<String> = resp
                .transaction_states
                .iter()
                .map(|s| s.transactional_id.0.to_string())
                .collect();
            ids.sort();
            ids
        };
        assert!(listed("alice").is_empty());
        allow_transactional_id(&b, "User:alice", AclOperation::Describe, "tx");
        assert_eq!(listed("alice"), vec!["tx"]);
        assert_eq!(listed("admin"), vec!["other", "tx"]);
    }
}
