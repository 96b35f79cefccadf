//! The outbox relay: publishes messages committed to the `outbox` table, waits for the
//! broker's confirms, and only then deletes them. Woken by LISTEN/NOTIFY on every
//! insert (no polling on the hot path); a slow timer covers notifications missed while
//! the listener reconnects. Several gateway replicas may relay at once: claims use
//! `FOR UPDATE SKIP LOCKED`. A row's trace context becomes its message's
//! `traceparent` header.

use airlock_db::GatewayDb;
use airlock_db::outbox::OUTBOX_CHANNEL;
use airlock_mq::{Backoff, Publisher};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::broker::PublisherSlot;

const BATCH: i64 = 500;
const FALLBACK_WAKE: Duration = Duration::from_secs(5);

pub struct Relay {
    pub db: GatewayDb,
    pub publisher: PublisherSlot,
}

impl Relay {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut listener = None;
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            if listener.is_none() {
                match self.db.listen(OUTBOX_CHANNEL).await {
                    Ok(l) => listener = Some(l),
                    Err(error) => {
                        tracing::warn!(%error, "cannot LISTEN for outbox inserts; relying on the timer")
                    }
                }
            }
            let publisher = self.publisher.borrow().clone();
            let outcome = match publisher {
                Some(publisher) => self.drain(&publisher).await,
                None => Err(RelayError::NoBroker),
            };
            let wait = match outcome {
                Ok(()) => {
                    backoff = Backoff::default();
                    FALLBACK_WAKE
                }
                Err(RelayError::NoBroker) => FALLBACK_WAKE,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "outbox relay paused");
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                changed = self.publisher.changed() => if changed.is_err() { return },
                notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => if notified.is_err() { listener = None },
            }
        }
    }

    /// Publishes until the outbox is empty.
    async fn drain(&self, publisher: &Arc<Publisher>) -> Result<(), RelayError> {
        loop {
            let batch = self.db.claim_outbox(BATCH).await?;
            if batch.messages.is_empty() {
                batch.complete(&[]).await?;
                crate::metrics::outbox_backlog(&self.db).await;
                return Ok(());
            }
            let mut pending = Vec::with_capacity(batch.messages.len());
            for message in &batch.messages {
                let payload =
                    serde_json::to_vec(&message.payload).map_err(airlock_mq::MqError::from)?;
                let priority = u8::try_from(message.priority).unwrap_or(0);
                let confirm = publisher
                    .send(
                        &message.exchange,
                        &message.routing_key,
                        &payload,
                        priority,
                        message.trace.as_ref(),
                    )
                    .await;
                pending.push((message.id, confirm));
            }
            let mut confirmed = Vec::with_capacity(pending.len());
            let mut failure = None;
            for (id, confirm) in pending {
                match confirm {
                    Ok(confirm) => match confirm.confirmed().await {
                        Ok(()) => confirmed.push(id),
                        Err(error) => failure = Some(error),
                    },
                    Err(error) => failure = Some(error),
                }
            }
            let count = confirmed.len();
            batch.complete(&confirmed).await?;
            crate::metrics::outbox_published(count);
            if let Some(error) = failure {
                return Err(error.into());
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("RabbitMQ is not connected")]
    NoBroker,
    #[error(transparent)]
    Db(#[from] airlock_db::DbError),
    #[error(transparent)]
    Mq(#[from] airlock_mq::MqError),
}
