//! One facade per service over the shared pool, so that each table's writer shows in the
//! types: a query lives on the facade of the service that runs it, and every write to a
//! table is on its one writer's facade (ARCHITECTURE.md, "One writer per table"):
//! - [`GatewayDb`]: teams, users, API tokens, sessions, login requests, the audit log,
//!   the outbox, and evaluations and runs as submitted (and a cancellation request);
//! - [`OrchestratorDb`]: run claims and the global limits; reads a run's admission;
//! - [`ResultsDb`]: events, runs and evaluations after submission, score aggregates.
//!
//! What every service needs stays on [`Db`] (reached through `Deref`): the pool,
//! readiness, the schema check, and replica and leader leases (each replica writes only
//! its own row).

use crate::Db;

macro_rules! facade {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(Db);

        impl $name {
            pub fn new(db: Db) -> Self {
                Self(db)
            }

            /// The shared pool's own methods, and what leases need.
            pub fn shared(&self) -> &Db {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = Db;

            fn deref(&self) -> &Db {
                &self.0
            }
        }
    };
}

facade!(
    /// The gateway's queries and writes.
    GatewayDb
);
facade!(
    /// The orchestrator's queries and writes.
    OrchestratorDb
);
facade!(
    /// The result-processor's queries and writes.
    ResultsDb
);
