//! ListTransactions (key 66): the transactions this broker coordinates (those of the
//! `__transaction_state` partitions it leads), filtered by state, producer id and (v1) how
//! long they have been running, and (v2, KIP-1152) a regular expression the whole
//! transactional id must match, as Java's `Matcher.matches` does; a pattern that does not
//! compile is INVALID_REGULAR_EXPRESSION. Unknown state names are echoed in
//! `unknown_state_filters` (and match nothing, as in Kafka).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_transactions_response::TransactionState as TxnStateEntry;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use gregor_txn::TransactionState;

use super::str_bytes;
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
