//! End-to-end tests of the whole platform live in `tests/`: they start the real
//! gateway, orchestrator and result-processor binaries against a fresh database and
//! RabbitMQ virtual host each, and drive them only through the public API.
