//! `gregor features describe|upgrade|downgrade|disable`: the counterpart of
//! `kafka-features.sh`, over gregor-client's describe_features (ApiVersions) and
//! update_features (UpdateFeatures). The active controller takes the levels whole or not at
//! all; `--dry-run` has it check them only.
//!
//! ```text
//! gregor features describe
//! gregor features disable --feature share.version          # share groups off
//! gregor features upgrade --feature share.version=2
//! gregor features downgrade --feature transaction.version=1 --dry-run
//! gregor features upgrade --feature metadata.version=4.4     # or =33, =4.4-IV2
//! ```

use anyhow::Context;
use gregor_client::features::UpgradeType;
use gregor_metadata::{metadata_version_level, metadata_version_name, METADATA_VERSION_FEATURE};

use crate::output::Table;
use crate::tool::{admin, ConnectArgs};

/// `gregor features` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FeaturesCommand {
    /// The features the brokers support and the cluster's finalized levels.
    Describe(DescribeArgs),
    /// Raise finalized levels (`--feature NAME=LEVEL`, repeatable).
    Upgrade(ChangeArgs),
    /// Lower finalized levels (`--feature NAME=LEVEL`, repeatable).
    Downgrade(DowngradeArgs),
    /// Set features to level 0 (`--feature NAME`, repeatable).
    Disable(DowngradeArgs),
}

/// Flags of `gregor features describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Flags of `gregor features upgrade`.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// NAME=LEVEL (NAME alone for `disable`), repeatable.
    #[arg(long = "feature", value_name = "NAME=LEVEL", required = true)]
    features: Vec<String>,
    /// Have the controller check the change without making it.
    #[arg(long)]
    dry_run: bool,
}

/// Flags of `gregor features downgrade` and `disable`.
#[derive(Debug, clap::Args)]
pub struct DowngradeArgs {
    #[command(flatten)]
    change: ChangeArgs,
    /// Allow a downgrade that may lose metadata (Kafka's UNSAFE_DOWNGRADE).
    #[arg(long)]
    unsafe_downgrade: bool,
}

/// Runs a `gregor features` subcommand.
pub async fn run(cmd: FeaturesCommand) -> anyhow::Result<()> {
    match cmd {
        FeaturesCommand::Describe(a) => describe(a).await,
        FeaturesCommand::Upgrade(a) => change(a, UpgradeType::Upgrade, Verb::Upgrade).await,
        FeaturesCommand::Downgrade(a) => {
            change(
                a.change,
                downgrade_type(a.unsafe_downgrade),
                Verb::Downgrade,
            )
            .await
        }
        FeaturesCommand::Disable(a) => {
            change(a.change, downgrade_type(a.unsafe_downgrade), Verb::Disable).await
        }
    }
}

fn downgrade_type(unsafe_downgrade: bool) -> UpgradeType {
    if unsafe_downgrade {
        UpgradeType::UnsafeDowngrade
    } else {
        UpgradeType::SafeDowngrade
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Upgrade,
    Downgrade,
    Disable,
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let features = admin.describe_features().await?;
    let mut table = Table::new(&["FEATURE", "SUPPORTED", "FINALIZED", "EPOCH"]);
    for f in features.features {
        table.row(vec![
            f.name.clone(),
            f.supported.map_or("-".to_string(), |(min, max)| {
                if f.name == METADATA_VERSION_FEATURE {
                    let name =
                        |l: i16| metadata_version_name(l).map_or(l.to_string(), String::from);
                    format!("{} to {}", name(min), name(max))
                } else {
                    format!("{min}-{max}")
                }
            }),
            level_text(&f.name, f.finalized.unwrap_or(0)),
            features.epoch.to_string(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// A level as `kafka-features.sh` prints it: `metadata.version` by its name ("4.4-IV2 (33)").
fn level_text(feature: &str, level: i16) -> String {
    match metadata_version_name(level) {
        Some(name) if feature == METADATA_VERSION_FEATURE => format!("{name} ({level})"),
        _ => level.to_string(),
    }
}

/// `NAME=LEVEL` (`NAME` alone, level 0, for `disable`); `metadata.version`'s level may also be
/// a version ("4.4-IV2", or "4.4" for that release's latest).
fn parse(spec: &str, verb: Verb) -> anyhow::Result<(String, i16)> {
    if verb == Verb::Disable {
        anyhow::ensure!(
            !spec.contains('='),
            "disable takes a feature name alone, not {spec:?}"
        );
        return Ok((spec.to_string(), 0));
    }
    let (name, level) = spec
        .split_once('=')
        .with_context(|| format!("--feature takes NAME=LEVEL, not {spec:?}"))?;
    let level: i16 = match level.parse() {
        Ok(level) => level,
        Err(_) if name == METADATA_VERSION_FEATURE => metadata_version_level(level)
            .with_context(|| {
                format!("unknown metadata.version {level:?} (3.3-IV3 to 4.4-IV2, or a release such as 4.4)")
            })?,
        Err(_) => anyhow::bail!("the level of {name} is not a number: {level:?}"),
    };
    Ok((name.to_string(), level))
}

async fn change(a: ChangeArgs, kind: UpgradeType, verb: Verb) -> anyhow::Result<()> {
    let updates = a
        .features
        .iter()
        .map(|spec| {
            let (name, level) = parse(spec, verb)?;
            Ok((name, level, kind))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut admin = admin(&a.connect).await?;
    admin.update_features(&updates, a.dry_run).await?;
    for (name, level, _) in &updates {
        let line = match (verb, a.dry_run) {
            (Verb::Disable, false) => format!("{name} was disabled."),
            (Verb::Disable, true) => format!("{name} can be disabled."),
            (Verb::Upgrade, false) => format!("{name} was upgraded to {level}."),
            (Verb::Upgrade, true) => format!("{name} can be upgraded to {level}."),
            (Verb::Downgrade, false) => format!("{name} was downgraded to {level}."),
            (Verb::Downgrade, true) => format!("{name} can be downgraded to {level}."),
        };
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_parsed_per_verb() {
        assert_eq!(
            parse("share.version=2", Verb::Upgrade).expect("ok"),
            ("share.version".to_string(), 2)
        );
        assert_eq!(
            parse("share.version", Verb::Disable).expect("ok"),
            ("share.version".to_string(), 0)
        );
        assert!(parse("share.version", Verb::Upgrade).is_err());
        assert!(parse("share.version=x", Verb::Downgrade).is_err());
        assert!(parse("share.version=1", Verb::Disable).is_err());
        // metadata.version by number, version or release.
        for spec in ["33", "4.4-IV2", "4.4"] {
            assert_eq!(
                parse(&format!("metadata.version={spec}"), Verb::Upgrade).expect("ok"),
                ("metadata.version".to_string(), 33)
            );
        }
        assert!(parse("metadata.version=9.9", Verb::Upgrade).is_err());
        assert_eq!(level_text("metadata.version", 33), "4.4-IV2 (33)");
        assert_eq!(level_text("metadata.version", 0), "0");
        assert_eq!(level_text("share.version", 2), "2");
    }
}
