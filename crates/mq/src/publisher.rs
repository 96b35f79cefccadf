//! Publishing with publisher confirms: a message counts as sent only once the broker
//! has confirmed it (for quorum queues: replicated to a majority).

use airlock_core::TraceContext;
use airlock_core::trace::TRACEPARENT;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};

use crate::{MqError, Result, metrics};

/// A channel in confirm mode.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn new(connection: &Connection) -> Result<Self> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    /// Sends a persistent JSON message and returns the pending confirm; await it (or
    /// many of them together) before treating the message as delivered. `trace` becomes
    /// the message's `traceparent` header.
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        priority: u8,
        trace: Option<&TraceContext>,
    ) -> Result<Pending> {
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_priority(priority);
        if let Some(trace) = trace {
            let mut headers = FieldTable::default();
            headers.insert(
                TRACEPARENT.into(),
                AMQPValue::LongString(LongString::from(trace.to_string())),
            );
            properties = properties.with_headers(headers);
        }
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await?;
        metrics::published(exchange);
        Ok(Pending(confirm))
    }

    /// Serializes and sends `message`, waiting for the confirm.
    pub async fn publish_json<T: serde::Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        message: &T,
        trace: Option<&TraceContext>,
    ) -> Result<()> {
        let payload = serde_json::to_vec(message)?;
        self.send(exchange, routing_key, &payload, 0, trace)
            .await?
            .confirmed()
            .await
    }
}

/// The trace context a delivery carries in its `traceparent` header, if any (and valid).
pub fn trace_context(delivery: &lapin::message::Delivery) -> Option<TraceContext> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(TRACEPARENT)? {
        AMQPValue::LongString(value) => {
            TraceContext::parse(std::str::from_utf8(value.as_bytes()).ok()?).ok()
        }
        AMQPValue::ShortString(value) => TraceContext::parse(value.as_str()).ok(),
        _ => None,
    }
}

/// A published message waiting for the broker's confirm.
pub struct Pending(PublisherConfirm);

impl Pending {
    pub async fn confirmed(self) -> Result<()> {
        match self.0.await? {
            Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
            Confirmation::Nack(_) => Err(MqError::Nacked),
        }
    }
}
