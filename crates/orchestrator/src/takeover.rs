//! Taking over from replicas that are gone. Every replica sweeps every third of the lease:
//! it marks orchestrators whose lease expired as lost (once, whoever is first), then moves
//! claims of lost or stopped replicas to itself, a bounded batch at a time (`FOR UPDATE
//! SKIP LOCKED`, so survivors share the work and each claim has one taker), and acts:
//! - a runtime whose sandboxes outlive their orchestrator (Kubernetes): the dispatcher
//!   adopts the attempt and follows its pod from the first log line (events read twice
//!   are absorbed downstream by (run, attempt, worker seq));
//! - a runtime whose sandboxes died with it (local): the attempt is retried, or ends as
//!   `error` after its last attempt, with the reason; then the claim is released.

use airlock_core::messages::RunRequested;
use airlock_core::replica::ReplicaService;
use airlock_core::{RunState, TraceContext};
use airlock_db::{AdoptedClaim, OrchestratorDb};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::Command;
use crate::execute::ExecutionEnv;
use crate::retry::retry_or_fail;

pub struct Takeover {
    pub env: Arc<ExecutionEnv>,
    pub commands: mpsc::Sender<Command>,
    /// Claims moved per lost replica per sweep.
    pub batch: u32,
    /// Shutdown: no new sweep, no more waiting for PostgreSQL.
    pub stop: CancellationToken,
}

impl Takeover {
    pub async fn run(self) {
        let every = self.env.lease.length() / 3;
        loop {
            self.sweep().await;
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn sweep(&self) {
        let db = &self.env.db;
        match db.mark_lost_replicas(ReplicaService::Orchestrator).await {
            Ok(lost) => {
                for replica in lost {
                    tracing::warn!(%replica, "orchestrator replica lost: its lease expired; taking over its runs");
                    crate::metrics::replica_lost();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot look for lost replicas"),
        }
        let gone = match db.lost_replicas_holding_claims().await {
            Ok(gone) => gone,
            Err(error) => {
                tracing::warn!(%error, "cannot look for claims to take over");
                return;
            }
        };
        for replica in gone {
            if !self.env.lease.is_held() {
                return;
            }
            let claims = match db
                .adopt_claims(&replica, self.env.lease.id(), self.batch)
                .await
            {
                Ok(claims) => claims,
                Err(error) => {
                    tracing::warn!(%error, %replica, "cannot take over claims");
                    continue;
                }
            };
            for claim in claims {
                self.take_over(&replica, claim).await;
            }
        }
    }

    async fn take_over(&self, from: &str, claim: AdoptedClaim) {
        let Some((request, state)) = self.read_run(&claim).await else {
            return;
        };
        let live = matches!(state, Some((state, attempt, _)) if !state.is_terminal() && attempt <= claim.attempt);
        let Some(mut request) = request.filter(|_| live) else {
            tracing::info!(run_id = %claim.run_id, attempt = claim.attempt, %from, "the adopted attempt has ended; releasing its claim");
            self.release(&claim).await;
            return;
        };
        request.attempt = claim.attempt;
        tracing::info!(run_id = %claim.run_id, evaluation_id = %request.evaluation_id, attempt = claim.attempt, %from, "taking over a run from a lost orchestrator");
        if self.env.runtime.survives_restart() {
            if self
                .commands
                .send(Command::Adopt(Box::new(request)))
                .await
                .is_err()
            {
                self.release(&claim).await;
            }
            return;
        }
        let cause = format!("the orchestrator running it ({from}) was lost");
        let trace = TraceContext::new_root();
        retry_or_fail(&self.env.sink, self.env.retry, &request, trace, cause).await;
        self.release(&claim).await;
    }

    /// The adopted run's request and state, read again until PostgreSQL answers (the
    /// claim is this replica's now; a replica that cannot reach PostgreSQL loses its
    /// lease, and the claim moves on to another). `None` once the lease is lost.
    async fn read_run(
        &self,
        claim: &AdoptedClaim,
    ) -> Option<(Option<RunRequested>, Option<(RunState, u32, bool)>)> {
        let db: &OrchestratorDb = &self.env.db;
        let mut backoff = airlock_mq::Backoff::default();
        while self.env.lease.is_held() {
            match (
                db.run_request(claim.run_id).await,
                db.run_admission(claim.run_id).await,
            ) {
                (Ok(request), Ok(state)) => return Some((request, state)),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, run_id = %claim.run_id, "cannot read an adopted run; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
        None
    }

    async fn release(&self, claim: &AdoptedClaim) {
        self.env.release_claim(claim.run_id, claim.attempt).await;
    }
}
