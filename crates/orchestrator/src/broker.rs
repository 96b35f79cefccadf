//! The orchestrator's RabbitMQ side: (re)connects with backoff, publishes the confirming
//! publisher for reports, and feeds run requests (competing with the other replicas, at
//! most `prefetch` unacknowledged) and this replica's control messages to the dispatcher.

use airlock_core::TraceContext;
use airlock_core::messages::{Control, RunRequest};
use airlock_mq::{Publisher, topology};
use airlock_service::Readiness;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::dispatcher::{Command, Incoming};

pub struct BrokerTask {
    pub url: String,
    pub prefetch: u16,
    pub readiness: Readiness,
    pub publisher: watch::Sender<Option<Arc<Publisher>>>,
    pub dispatcher: mpsc::Sender<Command>,
}

impl BrokerTask {
    /// `consuming` stops new work (at shutdown) while the connection stays open, so
    /// running attempts can still report their end.
    pub async fn run(self, consuming: CancellationToken, closing: CancellationToken) {
        airlock_mq::reconnecting(&closing, || async {
            let result = self.session(&consuming, &closing).await;
            self.readiness.set("rabbitmq", false);
            self.publisher.send_replace(None);
            let _ = self.dispatcher.send(Command::ConnectionLost).await;
            result
        })
        .await;
    }

    async fn session(
        &self,
        consuming: &CancellationToken,
        closing: &CancellationToken,
    ) -> airlock_mq::Result<()> {
        let connection = airlock_mq::connect(&self.url, "airlock-orchestrator").await?;
        topology::declare_all(&connection).await?;
        self.publisher
            .send_replace(Some(Arc::new(Publisher::new(&connection).await?)));
        // This replica's own control queue: every replica hears every cancellation.
        let control_queue = topology::declare_control_queue(&connection).await?;
        let control_channel = connection.create_channel().await?;
        airlock_mq::metrics::consuming(topology::ORCHESTRATOR_CONTROL_QUEUE);
        let mut control =
            airlock_mq::consume_on(&control_channel, &control_queue, 16, "orchestrator-control")
                .await?;
        // Cancellations sent while this replica was not listening are read from
        // PostgreSQL now that it is.
        let _ = self.dispatcher.send(Command::Reconnected).await;
        let mut requests = if consuming.is_cancelled() {
            None
        } else {
            Some(
                airlock_mq::consume(
                    &connection,
                    topology::RUN_REQUESTS_QUEUE,
                    self.prefetch,
                    "orchestrator",
                )
                .await?,
            )
        };
        self.readiness.set("rabbitmq", true);
        tracing::info!("connected to RabbitMQ");
        loop {
            tokio::select! {
                () = closing.cancelled() => {
                    let _ = connection.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                () = consuming.cancelled(), if requests.is_some() => {
                    // Stop taking new runs; unacknowledged requests return to the queue.
                    requests = None;
                }
                () = airlock_mq::closed(&connection) => return Err(airlock_mq::MqError::ConnectionLost),
                delivery = next(&mut requests) => {
                    let delivery = delivery.ok_or(airlock_mq::MqError::ConnectionLost)??;
                    airlock_mq::metrics::consumed(topology::RUN_REQUESTS_QUEUE);
                    if let Some(RunRequest::V1(request)) = airlock_mq::decode(&delivery, topology::RUN_REQUESTS_QUEUE).await {
                        // This orchestrator's span of the request's trace (a new trace
                        // for a request that carries none).
                        let trace = airlock_mq::trace_context(&delivery)
                            .map_or_else(TraceContext::new_root, |parent| parent.child());
                        tracing::debug!(
                            run_id = %request.run_id,
                            evaluation_id = %request.evaluation_id,
                            attempt = request.attempt,
                            trace_id = %trace.trace_id(),
                            "run request received"
                        );
                        let incoming = Incoming { request, delivery, trace };
                        let _ = self.dispatcher.send(Command::Request(Box::new(incoming))).await;
                    }
                }
                delivery = control.next() => {
                    let delivery = delivery.ok_or(airlock_mq::MqError::ConnectionLost)??;
                    airlock_mq::metrics::consumed(topology::ORCHESTRATOR_CONTROL_QUEUE);
                    if let Some(Control::EvaluationCancelledV1 { evaluation_id, .. }) =
                        airlock_mq::decode(&delivery, topology::ORCHESTRATOR_CONTROL_QUEUE).await
                    {
                        let trace_id = airlock_mq::trace_context(&delivery)
                            .map(|trace| trace.trace_id())
                            .unwrap_or_default();
                        tracing::info!(%evaluation_id, trace_id, "evaluation cancelled");
                        let _ = self.dispatcher.send(Command::Cancel(evaluation_id)).await;
                        airlock_mq::ack(&delivery, topology::ORCHESTRATOR_CONTROL_QUEUE).await?;
                    }
                }
            }
        }
    }
}

async fn next(
    consumer: &mut Option<airlock_mq::Consumer>,
) -> Option<Result<airlock_mq::Delivery, airlock_mq::MqError>> {
    match consumer {
        Some(consumer) => consumer.next().await.map(|d| d.map_err(Into::into)),
        None => std::future::pending().await,
    }
}
