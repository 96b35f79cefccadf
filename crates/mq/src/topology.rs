//! Exchanges and queues. Every service declares the whole topology at connect (the
//! declarations are idempotent), so services can start in any order.
//!
//! ```text
//! airlock.runs     (direct) --run-->   airlock.run-requests          -> every orchestrator (competing)
//! airlock.control  (fanout) ------->   one exclusive queue per orchestrator replica
//!                                 \->  airlock.control.results       -> result-processors (competing)
//! airlock.reports  (direct) --p<N>-->  airlock.run-reports.<N>, N < 16 -> one result-processor at a time
//!                           --run-->   airlock.run-reports           (reports of builds before partitions)
//! airlock.updates  (fanout) ------->   one exclusive queue per gateway replica
//! airlock.dlx      (fanout) ------->   airlock.dead-letters
//! ```
//! Durable queues are quorum queues; a message redelivered more than
//! [`DELIVERY_LIMIT`] times, or rejected as undecodable, goes to the dead-letter queue.
//! A run's reports always go to the same partition ([`report_routing_key`]); each
//! partition queue has a single active consumer, so they are applied in order whichever
//! result-processor replica consumes it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::Result;

pub const RUNS_EXCHANGE: &str = "airlock.runs";
pub const RUN_REQUESTS_QUEUE: &str = "airlock.run-requests";
pub const RUN_ROUTING_KEY: &str = "run";
pub const CONTROL_EXCHANGE: &str = "airlock.control";
/// The metrics label of every orchestrator replica's own control queue.
pub const ORCHESTRATOR_CONTROL_QUEUE: &str = "airlock.control.orchestrator";
pub const RESULTS_CONTROL_QUEUE: &str = "airlock.control.results";
pub const REPORTS_EXCHANGE: &str = "airlock.reports";
pub const RUN_REPORTS_QUEUE: &str = "airlock.run-reports";
pub const UPDATES_EXCHANGE: &str = "airlock.updates";
pub const DEAD_LETTER_EXCHANGE: &str = "airlock.dlx";
pub const DEAD_LETTER_QUEUE: &str = "airlock.dead-letters";

/// The queue of report partition `partition`.
pub fn report_partition_queue(partition: u16) -> String {
    format!("{RUN_REPORTS_QUEUE}.{partition}")
}

/// The routing key of a run's reports: its partition.
pub fn report_routing_key(run_id: airlock_core::RunId) -> String {
    format!("p{}", airlock_core::replica::report_partition(run_id))
}

/// Deliveries of one message before it is dead-lettered as poison.
pub const DELIVERY_LIMIT: i32 = 20;

/// Declares every durable exchange and queue on a fresh channel of `connection`.
pub async fn declare_all(connection: &lapin::Connection) -> Result<()> {
    let channel = connection.create_channel().await?;
    declare(&channel).await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declares every durable exchange and queue.
pub async fn declare(channel: &Channel) -> Result<()> {
    for (name, kind) in [
        (RUNS_EXCHANGE, ExchangeKind::Direct),
        (CONTROL_EXCHANGE, ExchangeKind::Fanout),
        (REPORTS_EXCHANGE, ExchangeKind::Direct),
        (UPDATES_EXCHANGE, ExchangeKind::Fanout),
        (DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(
                name.into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    quorum_queue(channel, DEAD_LETTER_QUEUE, QueueKind::DeadLetters).await?;
    bind(channel, DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, "").await?;
    for (queue, exchange, key) in [
        (RUN_REQUESTS_QUEUE, RUNS_EXCHANGE, RUN_ROUTING_KEY),
        (RESULTS_CONTROL_QUEUE, CONTROL_EXCHANGE, ""),
        (RUN_REPORTS_QUEUE, REPORTS_EXCHANGE, RUN_ROUTING_KEY),
    ] {
        quorum_queue(channel, queue, QueueKind::Work).await?;
        bind(channel, queue, exchange, key).await?;
    }
    for partition in 0..airlock_core::replica::REPORT_PARTITIONS {
        let queue = report_partition_queue(partition);
        quorum_queue(channel, &queue, QueueKind::Partition).await?;
        bind(channel, &queue, REPORTS_EXCHANGE, &format!("p{partition}")).await?;
    }
    Ok(())
}

/// Declares this orchestrator replica's own control queue (cancellations): exclusive,
/// deleted with the connection, bound to the control fan-out. Returns its name.
pub async fn declare_control_queue(connection: &lapin::Connection) -> Result<String> {
    let channel = connection.create_channel().await?;
    let name = exclusive_queue(&channel, CONTROL_EXCHANGE).await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(name)
}

/// Declares this replica's own queue for committed updates: exclusive, deleted with the
/// connection, bound to the updates fan-out. Returns its server-assigned name.
pub async fn declare_updates_queue(connection: &lapin::Connection) -> Result<(Channel, String)> {
    let channel = connection.create_channel().await?;
    let name = exclusive_queue(&channel, UPDATES_EXCHANGE).await?;
    Ok((channel, name))
}

async fn exclusive_queue(channel: &Channel, exchange: &str) -> Result<String> {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let name = queue.name().to_string();
    bind(channel, &name, exchange, "").await?;
    Ok(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueKind {
    DeadLetters,
    /// Dead-letters poison messages.
    Work,
    /// A work queue with one active consumer at a time (a report partition).
    Partition,
}

async fn quorum_queue(channel: &Channel, name: &str, kind: QueueKind) -> Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    if kind == QueueKind::Partition {
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    if kind != QueueKind::DeadLetters {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
        );
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(DELIVERY_LIMIT),
        );
    }
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    Ok(())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}
