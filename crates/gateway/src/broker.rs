//! The gateway's RabbitMQ side, kept alive by one supervisor task: it (re)connects with
//! backoff, declares the topology, hands a confirming publisher to the outbox relay, and
//! consumes this replica's queue of committed updates into the [`Hub`].

use airlock_core::messages::Update;
use airlock_mq::{Publisher, topology};
use airlock_service::Readiness;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// The current publisher, `None` while RabbitMQ is unreachable.
pub type PublisherSlot = watch::Receiver<Option<Arc<Publisher>>>;

pub struct BrokerTask {
    pub url: String,
    pub hub: Hub,
    pub readiness: Readiness,
    pub publisher: watch::Sender<Option<Arc<Publisher>>>,
}

impl BrokerTask {
    pub async fn run(self, shutdown: CancellationToken) {
        airlock_mq::reconnecting(&shutdown, || async {
            let result = self.session(&shutdown).await;
            self.readiness.set("rabbitmq", false);
            self.publisher.send_replace(None);
            result
        })
        .await;
    }

    /// One connection's life; returns Ok only at shutdown.
    async fn session(&self, shutdown: &CancellationToken) -> airlock_mq::Result<()> {
        let connection = airlock_mq::connect(&self.url, "airlock-gateway").await?;
        topology::declare_all(&connection).await?;
        let (channel, queue) = topology::declare_updates_queue(&connection).await?;
        let mut updates = airlock_mq::consume_on(&channel, &queue, 256, "gateway-updates").await?;
        // Counted under one label: the queue's name is the broker's and new each time.
        airlock_mq::metrics::consuming("updates");
        self.publisher
            .send_replace(Some(Arc::new(Publisher::new(&connection).await?)));
        self.readiness.set("rabbitmq", true);
        tracing::info!(queue, "connected to RabbitMQ");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.publisher.send_replace(None);
                    let _ = channel.close(200, "shutting down".into()).await;
                    let _ = connection.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                () = airlock_mq::closed(&connection) => {
                    return Err(airlock_mq::MqError::ConnectionLost);
                }
                delivery = updates.next() => match delivery {
                    Some(Ok(delivery)) => {
                        airlock_mq::metrics::consumed("updates");
                        if let Some(Update::EvaluationUpdatedV1(update)) = airlock_mq::decode(&delivery, "updates").await {
                            self.hub.publish(update);
                            airlock_mq::ack(&delivery, "updates").await?;
                        }
                    }
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(airlock_mq::MqError::ConnectionLost),
                },
            }
        }
    }
}
