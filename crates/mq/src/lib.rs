//! RabbitMQ for Airlock: the topology every service declares, connecting with backoff,
//! a publisher that waits for broker confirms, and consumers with manual acks and a
//! bounded prefetch. Messages themselves are defined in `airlock_core::messages`.

mod backoff;
mod publisher;
mod reconnect;
pub mod topology;

pub use backoff::Backoff;
pub use lapin::message::Delivery;
pub use lapin::{Channel, Connection, Consumer};
pub use publisher::{Publisher, trace_context};
pub use reconnect::reconnecting;

use futures_util::StreamExt;
use lapin::ConnectionProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum MqError {
    #[error("RabbitMQ error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the RabbitMQ connection was lost")]
    ConnectionLost,
    #[error("the broker refused message (nack)")]
    Nacked,
    #[error("cannot encode message: {0}")]
    Encode(#[from] serde_json::Error),
}

pub type Result<T, E = MqError> = std::result::Result<T, E>;

/// Opens a connection named after the service (visible in the broker's management UI).
#[tracing::instrument(skip(url))]
pub async fn connect(url: &str, service: &str) -> Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(service.into());
    Ok(Connection::connect(url, properties).await?)
}

/// Resolves when the connection reports an error or closes.
pub async fn closed(connection: &Connection) {
    let mut events = connection.events_listener();
    loop {
        if !connection.status().connected() {
            return;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(error)) => {
                    tracing::warn!(%error, "RabbitMQ connection failed");
                    return;
                }
                Some(_) => {}
                None => return,
            },
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Starts consuming `queue` with manual acks and at most `prefetch` unacknowledged
/// deliveries.
pub async fn consume(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
    tag: &str,
) -> Result<Consumer> {
    let channel = connection.create_channel().await?;
    metrics::consuming(queue);
    consume_on(&channel, queue, prefetch, tag).await
}

/// Like [`consume`], on an existing channel (needed for exclusive queues, which live on
/// the channel's connection).
pub async fn consume_on(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
    tag: &str,
) -> Result<Consumer> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    Ok(channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// Decodes a delivery's JSON body. A body that does not decode can never be processed:
/// it is rejected without requeue, so the broker dead-letters it, and `None` returned.
pub async fn decode<T: DeserializeOwned>(delivery: &Delivery, queue: &str) -> Option<T> {
    match serde_json::from_slice(&delivery.data) {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::error!(queue, %error, "undecodable message sent to the dead-letter queue");
            metrics::dead_lettered(queue);
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: false,
                    ..BasicNackOptions::default()
                })
                .await;
            None
        }
    }
}

/// Acknowledges a delivery, counting it.
pub async fn ack(delivery: &Delivery, queue: &str) -> Result<()> {
    delivery.ack(BasicAckOptions::default()).await?;
    metrics::acked(queue);
    Ok(())
}

/// Returns a delivery to the queue for another try, counting it.
pub async fn requeue(delivery: &Delivery, queue: &str) -> Result<()> {
    delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await?;
    metrics::nacked(queue);
    Ok(())
}

pub mod metrics {
    //! Message counters per queue or exchange, registered in the default registry.

    use prometheus::{IntCounterVec, register_int_counter_vec};
    use std::sync::LazyLock;

    static MESSAGES: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
        register_int_counter_vec!(
            "airlock_messages_total",
            "Messages handled, by queue or exchange and outcome (published, consumed, acked, nacked, dead_lettered).",
            &["queue", "outcome"]
        )
        .ok()
    });

    /// What can happen to a message taken from a queue.
    const CONSUMER_OUTCOMES: [&str; 4] = ["consumed", "acked", "nacked", "dead_lettered"];

    fn count(queue: &str, outcome: &str) {
        if let Some(counter) = MESSAGES.as_ref() {
            counter.with_label_values(&[queue, outcome]).inc();
        }
    }

    /// Makes this process's counters of `queue` exist at zero from the moment it
    /// consumes from it, so a rate over them is defined before the first message.
    pub fn consuming(queue: &str) {
        if let Some(counter) = MESSAGES.as_ref() {
            for outcome in CONSUMER_OUTCOMES {
                counter.with_label_values(&[queue, outcome]);
            }
        }
    }

    pub fn published(exchange: &str) {
        count(exchange, "published");
    }
    pub fn consumed(queue: &str) {
        count(queue, "consumed");
    }
    pub fn acked(queue: &str) {
        count(queue, "acked");
    }
    pub fn nacked(queue: &str) {
        count(queue, "nacked");
    }
    pub fn dead_lettered(queue: &str) {
        count(queue, "dead_lettered");
    }
}
