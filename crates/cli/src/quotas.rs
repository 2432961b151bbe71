//! `gregor quotas describe|alter`: client quotas (the counterpart of `kafka-configs.sh
//! --entity-type clients|users|ips`), over the Admin client (DescribeClientQuotas,
//! AlterClientQuotas). Quotas are kept in the cluster's metadata log and enforced by every
//! broker on its own traffic; an address's `connection_creation_rate` on the connections it
//! opens (KIP-612).
//!
//! ```text
//! gregor quotas describe                                   # every quota
//! gregor quotas describe --client-id loader                # the quotas of client id loader
//! gregor quotas alter --client-id loader --set producer_byte_rate=1048576
//! gregor quotas alter --client-id-default --set consumer_byte_rate=10485760
//! gregor quotas alter --client-id loader --delete producer_byte_rate
//! gregor quotas alter --ip 10.0.0.7 --set connection_creation_rate=20
//! gregor quotas describe --ip-default
//! ```

use anyhow::Context;
use gregor_client::quotas::{entity_display, ENTITY_CLIENT_ID, ENTITY_IP, ENTITY_USER};
use gregor_client::{QuotaEntity, QuotaFilter, QuotaMatch, QuotaOp};

use crate::output::Table;
use crate::tool::{admin, ChangeArgs, ConnectArgs};

/// `gregor quotas` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QuotasCommand {
    /// Show client quotas: every one, or those of the entity given.
    Describe(DescribeArgs),
    /// Set or delete quotas of a client id, a user, or their defaults.
    Alter(AlterArgs),
}

/// The client id part of an entity.
#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
pub struct ClientPart {
    /// A client id (`client.id`).
    #[arg(long)]
    client_id: Option<String>,
    /// The default of every client id (Kafka's `--entity-default`).
    #[arg(long)]
    client_id_default: bool,
}

/// The user part of an entity (the principal: `ANONYMOUS` until clients authenticate).
#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
pub struct UserPart {
    /// A user (principal name).
    #[arg(long)]
    user: Option<String>,
    /// The default of every user.
    #[arg(long)]
    user_default: bool,
}

/// A client address, whose only quota is `connection_creation_rate` (it goes with no user or
/// client id).
#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
pub struct IpPart {
    /// A client address (an IP address as written).
    #[arg(long, conflicts_with_all = ["user", "user_default", "client_id", "client_id_default"])]
    ip: Option<String>,
    /// The default of every address.
    #[arg(long, conflicts_with_all = ["user", "user_default", "client_id", "client_id_default"])]
    ip_default: bool,
}

/// Flags of `gregor quotas describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    client: ClientPart,
    #[command(flatten)]
    user: UserPart,
    #[command(flatten)]
    ip: IpPart,
}

/// Flags of `gregor quotas alter`.
#[derive(Debug, clap::Args)]
pub struct AlterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    client: ClientPart,
    #[command(flatten)]
    user: UserPart,
    #[command(flatten)]
    ip: IpPart,
    /// The keys: producer_byte_rate, consumer_byte_rate (bytes per second),
    /// request_percentage; of an address, connection_creation_rate (connections per second).
    #[command(flatten)]
    change: ChangeArgs,
}

/// Runs a `gregor quotas` subcommand.
pub async fn run(cmd: QuotasCommand) -> anyhow::Result<()> {
    match cmd {
        QuotasCommand::Describe(args) => describe(args).await,
        QuotasCommand::Alter(args) => alter(args).await,
    }
}

/// `Some(Some(name))`, `Some(None)` for the default, `None` when the part is not given.
fn part(name: &Option<String>, default: bool) -> Option<Option<String>> {
    match (name, default) {
        (Some(n), _) => Some(Some(n.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    }
}

fn entity(user: &UserPart, client: &ClientPart, ip: &IpPart) -> QuotaEntity {
    let mut e = Vec::new();
    if let Some(n) = part(&ip.ip, ip.ip_default) {
        e.push((ENTITY_IP.to_string(), n));
    }
    if let Some(n) = part(&user.user, user.user_default) {
        e.push((ENTITY_USER.to_string(), n));
    }
    if let Some(n) = part(&client.client_id, client.client_id_default) {
        e.push((ENTITY_CLIENT_ID.to_string(), n));
    }
    e
}

fn matcher(p: Option<Option<String>>) -> Option<QuotaMatch> {
    p.map(|n| n.map_or(QuotaMatch::Default, QuotaMatch::Exact))
}

/// A quota value as Kafka's tools print it: whole numbers without a fraction.
fn value_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let user = part(&args.user.user, args.user.user_default);
    let client = part(&args.client.client_id, args.client.client_id_default);
    let ip = part(&args.ip.ip, args.ip.ip_default);
    // An entity given: exactly that entity, as `kafka-configs --describe --entity-name` shows.
    let strict = user.is_some() || client.is_some() || ip.is_some();
    let filter = QuotaFilter {
        user: matcher(user),
        client_id: matcher(client),
        ip: matcher(ip),
        strict,
    };
    let mut admin = admin(&args.connect).await?;
    let entries = admin.describe_client_quotas(&filter).await?;
    if entries.is_empty() {
        println!(
            "no client quotas set{}",
            if strict { " on that entity" } else { "" }
        );
        return Ok(());
    }
    let mut table = Table::new(&["ENTITY", "QUOTA", "VALUE"]);
    for e in entries {
        for (k, v) in e.values {
            table.row(vec![entity_display(&e.entity), k, value_text(v)]);
        }
    }
    print!("{}", table.render());
    Ok(())
}

async fn alter(args: AlterArgs) -> anyhow::Result<()> {
    let entity = entity(&args.user, &args.client, &args.ip);
    if entity.is_empty() {
        anyhow::bail!(
            "which entity? give --client-id C or --client-id-default, and/or --user U or \
             --user-default; or --ip A or --ip-default"
        );
    }
    let ops = args.change.ops(
        |k, v| {
            let value: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("{k}: {v:?} is not a number"))?;
            Ok(QuotaOp::Set(k, value))
        },
        QuotaOp::Remove,
    )?;
    let mut admin = admin(&args.connect).await?;
    admin
        .alter_client_quotas(&entity, &ops, args.change.validate_only)
        .await?;
    args.change
        .report(ops.len(), "quota", &entity_display(&entity));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_kafkas_tools() {
        assert_eq!(value_text(1_048_576.0), "1048576");
        assert_eq!(value_text(12.5), "12.5");
    }
}
