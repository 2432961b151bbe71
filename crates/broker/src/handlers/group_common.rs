//! Shared plumbing of the group API handlers: turning a parked core reply into a wire reply.

use std::sync::Arc;

use gregor_group::{Output, Response};
use gregor_protocol::protocol::{Encodable, HeaderVersion};
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// Parks a reply and runs `call` on the core with its request id and the time, then carries
/// out the outputs; if this broker does not coordinate `group_id`, the core is not called and
/// the reply answers COORDINATOR_NOT_AVAILABLE (the client looks the coordinator up again).
pub fn call_core<F>(broker: &Arc<Broker>, group_id: &str, call: F) -> oneshot::Receiver<Response>
where
    F: FnOnce(&mut gregor_group::GroupCoordinator, gregor_group::RequestId, i64) -> Vec<Output>,
{
    let (id, rx) = broker.groups.park();
    if broker.groups.not_coordinator(group_id).is_some() {
        broker.groups.cancel(id);
    } else {
        let now = broker.clock.now_ms();
        broker
            .groups
            .run(&broker.replicas, |core| call(core, id, now));
    }
    rx
}

/// A reply that completes when the core answers `rx`; `to_wire` gets `None` if the coordinator
/// dropped the request (it then answers COORDINATOR_NOT_AVAILABLE).
pub fn pending<R, F>(ctx: RequestContext, rx: oneshot::Receiver<Response>, to_wire: F) -> Reply
where
    R: Encodable + HeaderVersion + Send + 'static,
    F: FnOnce(Option<Response>) -> R + Send + 'static,
{
    Reply::Pending(Box::pin(async move {
        let resp = rx.await.ok();
        encode(&ctx, &to_wire(resp))
    }))
}

/// COORDINATOR_NOT_AVAILABLE, for replies the coordinator could not produce.
pub const NOT_AVAILABLE: i16 = gregor_protocol::error::ErrorCode::COORDINATOR_NOT_AVAILABLE.0;
