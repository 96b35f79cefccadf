//! The transactional outbox: messages written in the same transaction as the rows they
//! describe, published by the relay, deleted only after the broker confirmed them.

use airlock_core::TraceContext;
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::{GatewayDb, Result};

/// The channel a NOTIFY is sent on whenever outbox rows are inserted.
pub const OUTBOX_CHANNEL: &str = "airlock_outbox";

/// One message waiting to be published.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub exchange: String,
    pub routing_key: String,
    pub priority: i16,
    pub payload: Value,
    /// The trace the message belongs to (its `traceparent` header).
    pub trace: Option<TraceContext>,
}

impl OutboxMessage {
    /// A message not yet stored (its id is assigned on insert).
    pub fn new(exchange: &str, routing_key: &str, priority: i16, payload: Value) -> Self {
        Self {
            id: 0,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            priority,
            payload,
            trace: None,
        }
    }

    /// The same message as part of `trace`.
    pub fn with_trace(self, trace: TraceContext) -> Self {
        Self {
            trace: Some(trace),
            ..self
        }
    }
}

/// Inserts messages inside the caller's transaction, in chunks.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    messages: &[OutboxMessage],
) -> Result<()> {
    for chunk in messages.chunks(5_000) {
        let exchanges: Vec<&str> = chunk.iter().map(|m| m.exchange.as_str()).collect();
        let keys: Vec<&str> = chunk.iter().map(|m| m.routing_key.as_str()).collect();
        let priorities: Vec<i16> = chunk.iter().map(|m| m.priority).collect();
        let payloads: Vec<&Value> = chunk.iter().map(|m| &m.payload).collect();
        let traces: Vec<Option<String>> = chunk
            .iter()
            .map(|m| m.trace.map(|t| t.to_string()))
            .collect();
        sqlx::query(
            "INSERT INTO outbox (exchange, routing_key, priority, payload, traceparent)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int2[], $4::jsonb[], $5::text[])",
        )
        .bind(&exchanges)
        .bind(&keys)
        .bind(&priorities)
        .bind(&payloads)
        .bind(&traces)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

type OutboxRow = (i64, String, String, i16, Value, Option<String>);

/// A batch claimed by one relay; other relays skip it until the transaction ends.
pub struct OutboxBatch {
    tx: Transaction<'static, Postgres>,
    pub messages: Vec<OutboxMessage>,
}

impl OutboxBatch {
    /// Deletes the given (published and confirmed) messages and releases the claim.
    pub async fn complete(mut self, published: &[i64]) -> Result<()> {
        if !published.is_empty() {
            sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
                .bind(published)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

impl GatewayDb {
    /// Claims up to `limit` of the oldest messages (FOR UPDATE SKIP LOCKED).
    pub async fn claim_outbox(&self, limit: i64) -> Result<OutboxBatch> {
        let mut tx = self.pool().begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, exchange, routing_key, priority, payload, traceparent FROM outbox
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let messages = rows
            .into_iter()
            .map(
                |(id, exchange, routing_key, priority, payload, traceparent)| OutboxMessage {
                    id,
                    exchange,
                    routing_key,
                    priority,
                    payload,
                    // A value that does not parse (written by hand) just loses its trace.
                    trace: traceparent.and_then(|t| TraceContext::parse(&t).ok()),
                },
            )
            .collect();
        Ok(OutboxBatch { tx, messages })
    }

    /// How many messages wait and how old the oldest is, in seconds.
    pub async fn outbox_backlog(&self) -> Result<(i64, f64)> {
        let (count, age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM outbox",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((count, age.unwrap_or(0.0)))
    }
}
