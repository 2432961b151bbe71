//! Cluster features (KIP-584): the ones gregor supports, and the controller's decision on an
//! UpdateFeatures request (Kafka's `FeatureControlManager.updateFeatures`), the request
//! `kafka-features.sh upgrade | downgrade | disable` sends.
//!
//! ```text
//! UpdateFeatures {name → (level, upgrade type)}, validate_only
//!   └─► update_features(image, node, updates) ─► FeatureLevelRecord… (all or none)
//!                                            └─► the first refusal, with Kafka's message
//! ```
//!
//! The image keeps a feature set to level 0 as recorded but not finalized (see
//! [`MetadataImage::feature_recorded`]), so a feature an operator disabled is not finalized
//! again at its default by a later broker registration.

use std::collections::BTreeMap;

use crate::image::MetadataImage;
use crate::records::{FeatureLevelRecord, MetadataRecord};
use crate::records::{
    ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE, GROUP_VERSION_FEATURE, KRAFT_VERSION_FEATURE,
    METADATA_VERSION_FEATURE, METADATA_VERSION_LATEST, METADATA_VERSION_MINIMUM,
    SHARE_VERSION_FEATURE, STREAMS_VERSION_FEATURE, TRANSACTION_VERSION_FEATURE,
};

/// The features gregor supports and their level ranges (Kafka's
/// `BrokerFeatures.supportedFeatures` / `QuorumFeatures`, for the features gregor implements):
/// every node, broker and controller, supports the same ones. ApiVersions advertises them.
pub const SUPPORTED_FEATURES: &[(&str, i16, i16)] = &[
    (ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE, 0, 1),
    (GROUP_VERSION_FEATURE, 0, 1),
    (KRAFT_VERSION_FEATURE, 0, 1),
    (
        METADATA_VERSION_FEATURE,
        METADATA_VERSION_MINIMUM,
        METADATA_VERSION_LATEST,
    ),
    (SHARE_VERSION_FEATURE, 0, 2),
    (STREAMS_VERSION_FEATURE, 0, 1),
    (TRANSACTION_VERSION_FEATURE, 0, 2),
];

/// The supported range of feature `name`, `None` for a feature gregor does not know.
pub fn supported_range(name: &str) -> Option<(i16, i16)> {
    SUPPORTED_FEATURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, min, max)| (min, max))
}

/// How a level may move (Kafka's `FeatureUpdate.UpgradeType`, UpdateFeatures v1's
/// `UpgradeType`; v0's `AllowDowngrade` is a safe downgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    /// 1: the level may only go up (or stay).
    Upgrade,
    /// 2: the level may go down (or stay), losing nothing.
    SafeDowngrade,
    /// 3: the level may go down even if that loses metadata.
    UnsafeDowngrade,
    /// Any other code.
    Unknown,
}

impl UpgradeType {
    /// The type of UpdateFeatures v1+'s `UpgradeType` code.
    pub fn from_code(code: i8) -> UpgradeType {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            _ => UpgradeType::Unknown,
        }
    }

    /// The request's code for this type (0 for [`UpgradeType::Unknown`]).
    pub fn code(self) -> i8 {
        match self {
            UpgradeType::Upgrade => 1,
            UpgradeType::SafeDowngrade => 2,
            UpgradeType::UnsafeDowngrade => 3,
            UpgradeType::Unknown => 0,
        }
    }
}

/// One feature's requested level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureUpdate {
    pub level: i16,
    pub upgrade_type: UpgradeType,
}

/// The records that set every feature of `updates` (by name) to its level, or the first
/// refusal's message (Kafka's INVALID_UPDATE_VERSION, "Invalid update version ..."): the
/// updates are taken whole or not at all. `node_id` is the deciding controller's, which Kafka
/// names in a refusal ("Local controller 1 only supports versions 0-2"). A level that does not
/// change is written again, as Kafka does.
pub fn update_features(
    image: &MetadataImage,
    node_id: i32,
    updates: &BTreeMap<String, FeatureUpdate>,
) -> Result<Vec<MetadataRecord>, String> {
    let mut records = Vec::with_capacity(updates.len());
    for (name, update) in updates {
        let refused = |reason: &str| {
            format!(
                "Invalid update version {} for feature {name}. {reason}",
                update.level
            )
        };
        if update.upgrade_type == UpgradeType::Unknown {
            return Err(refused(
                "The controller does not support the given upgrade type.",
            ));
        }
        if update.level < 0 {
            return Err(refused("A feature version cannot be less than 0."));
        }
        // Kafka's `QuorumFeatures.reasonNotSupported`: an unknown feature is supported at
        // level 0 only.
        let (min, max) = supported_range(name).unwrap_or((0, 0));
        if update.level < min || update.level > max {
            return Err(refused(&if max == 0 {
                format!("Local controller {node_id} does not support this feature.")
            } else {
                format!("Local controller {node_id} only supports versions {min}-{max}")
            }));
        }
        let current = image.feature_level(name).unwrap_or(0);
        if update.level < current && update.upgrade_type == UpgradeType::Upgrade {
            return Err(refused(
                "Can't downgrade the version of this feature without setting the upgrade type \
                 to either safe or unsafe downgrade.",
            ));
        }
        if update.level > current && update.upgrade_type != UpgradeType::Upgrade {
            return Err(refused("Can't downgrade to a newer version."));
        }
        // Kafka 4.4 hands kraft.version to the Raft client, which only upgrades it.
        if name == KRAFT_VERSION_FEATURE && update.upgrade_type != UpgradeType::Upgrade {
            return Err(refused("Can't downgrade the version of this feature."));
        }
        // Kafka 4.4's `updateMetadataVersion`: a downgrade that may lose metadata is refused,
        // unsafe or not. Every level below 4.4-IV2 changed the metadata, and gregor writes
        // 4.4-IV2's, so every downgrade is one.
        if name == METADATA_VERSION_FEATURE && update.level < current {
            let why = if update.upgrade_type == UpgradeType::UnsafeDowngrade {
                "Unsafe metadata downgrade is not supported in this version."
            } else {
                "Refusing to perform the requested downgrade because it might delete metadata \
                 information."
            };
            return Err(format!(
                "Unsupported metadata.version downgrade from {current} to {}. {why}",
                update.level
            ));
        }
        records.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: name.clone(),
            feature_level: update.level,
        }));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::delta::MetadataDelta;

    fn image(levels: &[(&str, i16)]) -> MetadataImage {
        let records: Vec<MetadataRecord> = levels
            .iter()
            .map(|(name, level)| {
                MetadataRecord::FeatureLevel(FeatureLevelRecord {
                    name: name.to_string(),
                    feature_level: *level,
                })
            })
            .collect();
        apply(&MetadataImage::empty(), &records)
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(image.clone()));
        for r in records {
            delta.replay(r).expect("replays");
        }
        delta.apply(image.provenance())
    }

    fn updates(list: &[(&str, i16, UpgradeType)]) -> BTreeMap<String, FeatureUpdate> {
        list.iter()
            .map(|&(name, level, upgrade_type)| {
                (
                    name.to_string(),
                    FeatureUpdate {
                        level,
                        upgrade_type,
                    },
                )
            })
            .collect()
    }

    use UpgradeType::*;

    #[test]
    fn kraft_version_is_upgraded_and_never_downgraded() {
        let at0 = MetadataImage::empty();
        let records =
            update_features(&at0, 1, &updates(&[("kraft.version", 1, Upgrade)])).expect("upgrade");
        let at1 = apply(&at0, &records);
        assert_eq!(at1.feature_level("kraft.version"), Some(1));
        // The same level again is an upgrade that changes nothing, as for any feature.
        assert!(update_features(&at1, 1, &updates(&[("kraft.version", 1, Upgrade)])).is_ok());
        for t in [SafeDowngrade, UnsafeDowngrade] {
            assert_eq!(
                update_features(&at1, 1, &updates(&[("kraft.version", 0, t)]))
                    .expect_err("refused"),
                "Invalid update version 0 for feature kraft.version. Can't downgrade the \
                 version of this feature."
            );
        }
        assert_eq!(
            update_features(&at0, 1, &updates(&[("kraft.version", 2, Upgrade)]))
                .expect_err("refused"),
            "Invalid update version 2 for feature kraft.version. Local controller 1 only \
             supports versions 0-1"
        );
    }

    #[test]
    fn levels_move_only_the_way_the_upgrade_type_allows() {
        let at2 = image(&[("share.version", 2)]);
        let refusal =
            |img: &MetadataImage, u| update_features(img, 1, &updates(u)).expect_err("refused");
        assert_eq!(
            refusal(&at2, &[("share.version", 1, Upgrade)]),
            "Invalid update version 1 for feature share.version. Can't downgrade the version of \
             this feature without setting the upgrade type to either safe or unsafe downgrade."
        );
        let at1 = image(&[("share.version", 1)]);
        assert_eq!(
            refusal(&at1, &[("share.version", 2, SafeDowngrade)]),
            "Invalid update version 2 for feature share.version. Can't downgrade to a newer \
             version."
        );
        assert_eq!(
            refusal(&at1, &[("share.version", 3, Upgrade)]),
            "Invalid update version 3 for feature share.version. Local controller 1 only \
             supports versions 0-2"
        );
        assert_eq!(
            refusal(&at1, &[("share.version", -1, SafeDowngrade)]),
            "Invalid update version -1 for feature share.version. A feature version cannot be \
             less than 0."
        );
        assert_eq!(
            refusal(&at1, &[("share.version", 1, Unknown)]),
            "Invalid update version 1 for feature share.version. The controller does not \
             support the given upgrade type."
        );
        // Allowed: up, down with either downgrade type, to 0, and to the same level.
        for (img, level, kind) in [
            (&at1, 2, Upgrade),
            (&at2, 1, SafeDowngrade),
            (&at2, 0, UnsafeDowngrade),
            (&at2, 2, Upgrade),
            (&at2, 2, SafeDowngrade),
        ] {
            let records = update_features(img, 1, &updates(&[("share.version", level, kind)]))
                .expect("allowed");
            let after = apply(img, &records);
            assert_eq!(after.feature_level("share.version").unwrap_or(0), level);
        }
    }

    #[test]
    fn an_unknown_feature_is_refused_and_refuses_the_whole_request() {
        let img = image(&[("share.version", 1)]);
        let u = updates(&[("foo", 1, Upgrade), ("share.version", 2, Upgrade)]);
        assert_eq!(
            update_features(&img, 3, &u).expect_err("refused"),
            "Invalid update version 1 for feature foo. Local controller 3 does not support this \
             feature."
        );
        // Level 0 of a feature gregor does not know asks for nothing it lacks.
        let u = updates(&[("foo", 0, SafeDowngrade)]);
        assert_eq!(update_features(&img, 3, &u).map(|r| r.len()), Ok(1));
    }

    #[test]
    fn the_supported_features_are_kafka_4_4s_sorted_by_name() {
        assert_eq!(
            SUPPORTED_FEATURES,
            &[
                ("eligible.leader.replicas.version", 0, 1),
                ("group.version", 0, 1),
                ("kraft.version", 0, 1),
                ("metadata.version", 7, 33),
                ("share.version", 0, 2),
                ("streams.version", 0, 1),
                ("transaction.version", 0, 2),
            ]
        );
        assert_eq!(supported_range("streams.version"), Some((0, 1)));
        // streams.version (KIP-1071) stops at 1, as Kafka 4.4's `StreamsVersion`.
        let img = image(&[("streams.version", 1)]);
        assert_eq!(
            update_features(&img, 1, &updates(&[("streams.version", 2, Upgrade)]))
                .expect_err("refused"),
            "Invalid update version 2 for feature streams.version. Local controller 1 only \
             supports versions 0-1"
        );
        let records = update_features(&img, 1, &updates(&[("streams.version", 0, SafeDowngrade)]))
            .expect("disabled");
        assert_eq!(apply(&img, &records).feature_level("streams.version"), None);
    }

    /// Kafka 4.4's answers, read off a Kafka 4.4 node at 4.4-IV2 with `kafka-features.sh
    /// --dry-run` (the kafka_peer e2e test compares them live).
    #[test]
    fn metadata_version_goes_up_or_stays_and_never_down() {
        let img = image(&[("metadata.version", 33)]);
        let refusal = |u: &[(&str, i16, UpgradeType)]| {
            update_features(&img, 1, &updates(u)).expect_err("refused")
        };
        assert_eq!(
            update_features(&img, 1, &updates(&[("metadata.version", 33, Upgrade)]))
                .map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(
            refusal(&[("metadata.version", 32, SafeDowngrade)]),
            "Unsupported metadata.version downgrade from 33 to 32. Refusing to perform the \
             requested downgrade because it might delete metadata information."
        );
        assert_eq!(
            refusal(&[("metadata.version", 7, UnsafeDowngrade)]),
            "Unsupported metadata.version downgrade from 33 to 7. Unsafe metadata downgrade is \
             not supported in this version."
        );
        for level in [0, 6, 34] {
            assert_eq!(
                refusal(&[("metadata.version", level, SafeDowngrade.max_for(level))]),
                format!(
                    "Invalid update version {level} for feature metadata.version. Local \
                     controller 1 only supports versions 7-33"
                )
            );
        }
        // A cluster made before gregor knew metadata.version upgrades to it.
        let old = image(&[]);
        let records = update_features(&old, 1, &updates(&[("metadata.version", 33, Upgrade)]))
            .expect("upgrade");
        assert_eq!(
            apply(&old, &records).feature_level("metadata.version"),
            Some(33)
        );
        // The names.
        assert_eq!(crate::metadata_version_name(33), Some("4.4-IV2"));
        assert_eq!(crate::metadata_version_name(7), Some("3.3-IV3"));
        assert_eq!(crate::metadata_version_name(34), None);
        assert_eq!(crate::metadata_version_level("4.4"), Some(33));
        assert_eq!(crate::metadata_version_level("4.0"), Some(25));
        assert_eq!(crate::metadata_version_level("3.7-IV1"), Some(16));
        assert_eq!(crate::metadata_version_level("4.5"), None);
        assert_eq!(crate::metadata_version_level("4"), None);
    }

    impl UpgradeType {
        /// The type `kafka-features.sh` sends for a level: `upgrade` above 33, else `downgrade`.
        fn max_for(self, level: i16) -> UpgradeType {
            if level > 33 {
                Upgrade
            } else {
                self
            }
        }
    }

    #[test]
    fn a_disabled_feature_stays_recorded_but_not_finalized() {
        let img = image(&[("transaction.version", 2), ("transaction.version", 0)]);
        assert_eq!(img.feature_level("transaction.version"), None);
        assert!(img.feature_recorded("transaction.version"));
        assert!(!img.feature_recorded("share.version"));
        assert_eq!(img.finalized_features().count(), 0);
        // And an upgrade from there is from level 0.
        let records = update_features(&img, 1, &updates(&[("transaction.version", 1, Upgrade)]))
            .expect("upgrade");
        assert_eq!(
            apply(&img, &records).feature_level("transaction.version"),
            Some(1)
        );
    }
}
