-- The W3C trace context (`traceparent`) of the request that wrote an outbox row; the
-- relay publishes it as the message's `traceparent` header. NULL: no trace.
ALTER TABLE outbox ADD COLUMN traceparent text;
