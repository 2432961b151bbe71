//! UpdateFeatures (key 57): finalizes cluster feature levels (KIP-584; `kafka-features.sh
//! upgrade | downgrade | disable`, `gregor features`), e.g. `share.version=0` to turn share
//! groups off or `transaction.version=1` to go back to transactions version 1.
//!
//! The active controller checks every update (a feature gregor supports, a level in its
//! range, the direction the upgrade type allows) and writes the levels to the metadata log
//! together or not at all (`gregor_metadata::features`); the reply waits (a few seconds at
//! most) until this node has applied them. As in Kafka:
//! - a refusal is the whole request's: INVALID_UPDATE_VERSION with "The update failed for all
//!   features since the following feature had an error: ..." and no per-feature results;
//! - on success v0 and v1 list every feature with NONE (its message "NONE", as Kafka's),
//!   v2 lists none (KIP-1021);
//! - v0's `AllowDowngrade` is a safe downgrade; `ValidateOnly` (v1+) checks and writes nothing.
//!
//! The principal needs ALTER on the cluster (Kafka's `ControllerApis.handleUpdateFeatures`);
//! without it the answer is CLUSTER_AUTHORIZATION_FAILED.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, UpgradeType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::update_features_response::UpdatableFeatureResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};

use super::admin_common::{wait_for_image, CLUSTER_AUTHORIZATION_FAILED_MESSAGE};
use super::create_topics::controller_failure;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::UpdateFeatures;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// The prefix of a refusal's message (Kafka's `QuorumController.updateFeatures`).
const FAILED_FOR_ALL: &str =
    "The update failed for all features since the following feature had an error: ";

/// Handles an UpdateFeatures request; the reply is ready once the controller has answered and
/// the new levels are applied here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: UpdateFeaturesRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = update_features(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// The updates by feature name (a name given twice: its last update, as Kafka's map keeps),
/// as the controller takes them.
fn updates(
    version: i16,
    req: &UpdateFeaturesRequest,
) -> BTreeMap<String, proto::FeatureLevelUpdate> {
    req.feature_updates
        .iter()
        .map(|u| {
            let upgrade_type = if version == 0 {
                if u.allow_downgrade {
                    UpgradeType::SafeDowngrade
                } else {
                    UpgradeType::Upgrade
                }
            } else {
                UpgradeType::from_code(u.upgrade_type)
            };
            let name = u.feature.to_string();
            let update = proto::FeatureLevelUpdate {
                name: name.clone(),
                level: u.max_version_level,
                upgrade_type: upgrade_type.code(),
            };
            (name, update)
        })
        .collect()
}

async fn update_features(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let failed = |code: ErrorCode, message: String| {
        UpdateFeaturesResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !authorizer::authorize_cluster(node, ctx, AclOperation::Alter) {
        return failed(
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            CLUSTER_AUTHORIZATION_FAILED_MESSAGE.to_string(),
        );
    }
    let version = ctx.api_version;
    let updates = updates(version, &req);
    let request = ControllerRequest::UpdateFeatures(proto::UpdateFeaturesRequest {
        updates: updates.values().cloned().collect(),
        validate_only: version >= 1 && req.validate_only,
    });
    match node.controller().call(request).await {
        Ok(ControllerResponse::UpdateFeatures(r)) if r.error_code == 0 => {}
        Ok(ControllerResponse::UpdateFeatures(r)) => {
            return failed(
                ErrorCode(r.error_code),
                format!("{FAILED_FOR_ALL}{}", r.error_message.unwrap_or_default()),
            )
        }
        Ok(other) => {
            let (code, message) = controller_failure(&other);
            return failed(code, message);
        }
        Err(e) => return failed(ErrorCode::REQUEST_TIMED_OUT, e.to_string()),
    }
    if !(version >= 1 && req.validate_only) {
        wait_for_image(node, |image| {
            updates
                .values()
                .all(|u| image.feature_level(&u.name).unwrap_or(0) == u.level)
        })
        .await;
    }
    let results = if version <= 1 {
        req.feature_updates
            .iter()
            .map(|u| {
                UpdatableFeatureResult::default()
                    .with_feature(u.feature.clone())
                    .with_error_code(0)
                    // Kafka's `Errors.NONE.message()`, the error's name.
                    .with_error_message(Some(str_bytes("NONE")))
            })
            .collect()
    } else {
        Vec::new()
    };
    UpdateFeaturesResponse::default()
        .with_error_code(0)
        .with_error_message(None)
        .with_results(results)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::update_features_request::FeatureUpdateKey;

    use super::*;

    fn key(name: &str, level: i16) -> FeatureUpdateKey {
        FeatureUpdateKey::default()
            .with_feature(str_bytes(name))
            .with_max_version_level(level)
    }

    /// With an authorizer: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED and nothing
    /// changes; allowed, the level is set and v1 lists the feature with NONE.
    #[tokio::test]
    async fn feature_updates_need_alter_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        use crate::handlers::admin_common::test_cluster;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        let req =
            UpdateFeaturesRequest::default()
                .with_feature_updates(vec![key("share.version", 1).with_upgrade_type(2)]);
        let alice = ctx_of("alice", KEY, 1);
        let resp = update_features(&*b, &alice, req.clone()).await;
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert!(resp.results.is_empty());
        assert_eq!(b.replicas.image().feature_level("share.version"), Some(2));
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        let resp = update_features(&*b, &alice, req).await;
        assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
        assert_eq!(resp.error_message, None);
        let results: Vec<_> = resp
            .results
            .iter()
            .map(|r| (r.feature.to_string(), r.error_code, r.error_message.clone()))
            .collect();
        assert_eq!(
            results,
            vec![("share.version".to_string(), 0, Some(str_bytes("NONE")))]
        );
        assert_eq!(b.replicas.image().feature_level("share.version"), Some(1));
        // A refusal is the whole request's, with Kafka's prefix, and changes nothing.
        let resp = update_features(
            &*b,
            &alice,
            UpdateFeaturesRequest::default().with_feature_updates(vec![key("nope", 1)]),
        )
        .await;
        assert_eq!(resp.error_code, ErrorCode::INVALID_UPDATE_VERSION.code());
        assert!(resp
            .error_message
            .as_deref()
            .is_some_and(|m| m.starts_with(FAILED_FOR_ALL)));
        assert!(resp.results.is_empty());
    }

    #[test]
    fn v0_allow_downgrade_is_a_safe_downgrade_and_v1_takes_the_code() {
        let req = UpdateFeaturesRequest::default().with_feature_updates(vec![
            key("share.version", 1).with_allow_downgrade(true),
            key("transaction.version", 2).with_upgrade_type(3),
        ]);
        let v0 = updates(0, &req);
        assert_eq!(v0["share.version"].upgrade_type, 2);
        assert_eq!(v0["transaction.version"].upgrade_type, 1);
        let v1 = updates(1, &req);
        assert_eq!(v1["share.version"].upgrade_type, 1, "the default type");
        assert_eq!(v1["transaction.version"].upgrade_type, 3);
        let odd =
            UpdateFeaturesRequest::default()
                .with_feature_updates(vec![key("share.version", 1).with_upgrade_type(9)]);
        assert_eq!(updates(2, &odd)["share.version"].upgrade_type, 0);
    }
}
