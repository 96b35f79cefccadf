//! A replica's lease and the singleton roles, shared by every service that runs as
//! several replicas.
//!
//! [`ReplicaLease`] registers the process in `replicas` and renews its lease every third
//! of its length. It also keeps a local deadline: past it (the renewal did not get
//! through in time, or another replica already found this one lost) the replica must not
//! act on anything it owned, because survivors may have taken it over. The owner decides
//! what to do then ([`ReplicaLease::lost`]): the orchestrator exits.
//!
//! [`LeaderLease`] holds a named role (`leader_leases`) for at most one replica at a
//! time; another takes it within one lease length of the holder's death.

use airlock_core::replica::{ReplicaService, replica_id};
use airlock_db::{Db, ReplicaInfo};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The exit code of a replica that lost its lease (EX_TEMPFAIL).
pub const EXIT_LEASE_LOST: i32 = 75;

/// Settings of a service that runs as several replicas.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaConfig {
    /// This replica's name (e.g. the pod's name); default: service, host and a random
    /// suffix, new at every start.
    #[arg(long, env = "AIRLOCK_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Seconds a replica's lease (and a singleton role's) lasts without renewal; a dead
    /// replica's work is taken over this long after its last heartbeat.
    #[arg(long, env = "AIRLOCK_REPLICA_LEASE_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(3..=300))]
    pub replica_lease_secs: u64,
}

impl ReplicaConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.replica_lease_secs)
    }

    /// The id this process goes by.
    pub fn id(&self, service: ReplicaService) -> String {
        let random = u32::try_from(uuid::Uuid::new_v4().as_u128() & 0xffff_ffff).unwrap_or(0);
        replica_id(self.replica_id.as_deref(), service, &host_name(), random)
    }
}

/// This machine's host name (a pod's name on Kubernetes).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This replica's registration and lease.
#[derive(Clone)]
pub struct ReplicaLease {
    db: Db,
    info: Arc<ReplicaInfo>,
    length: Duration,
    /// Until when the lease is known to hold (local clock).
    valid_until: Arc<Mutex<Instant>>,
    lost: CancellationToken,
    partitions: watch::Sender<Vec<u16>>,
}

impl ReplicaLease {
    /// Registers the replica; fails when PostgreSQL cannot be written (a replica that
    /// cannot hold a lease must not start work).
    pub async fn register(db: Db, info: ReplicaInfo, length: Duration) -> airlock_db::Result<Self> {
        let started = Instant::now();
        db.register_replica(&info, length).await?;
        tracing::info!(replica = %info.id, service = %info.service, lease_secs = length.as_secs(), "replica registered");
        Ok(Self {
            db,
            info: Arc::new(info),
            length,
            valid_until: Arc::new(Mutex::new(started + length)),
            lost: CancellationToken::new(),
            partitions: watch::Sender::new(Vec::new()),
        })
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn info(&self) -> &ReplicaInfo {
        &self.info
    }

    pub fn length(&self) -> Duration {
        self.length
    }

    /// Whether this replica still holds its lease (by its own clock, conservatively).
    pub fn is_held(&self) -> bool {
        !self.lost.is_cancelled() && Instant::now() < *self.deadline()
    }

    /// Cancelled once the lease is lost.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// What the replica reports with its heartbeat (a result-processor's partitions).
    pub fn set_partitions(&self, partitions: Vec<u16>) {
        self.partitions.send_replace(partitions);
    }

    pub fn partitions(&self) -> Vec<u16> {
        self.partitions.borrow().clone()
    }

    /// Waits until the lease is lost, then ends the process with `code`: a replica that
    /// lost its lease must not touch what it held, since survivors may have taken it
    /// over; its supervisor starts a new replica, which registers afresh.
    pub async fn exit_when_lost(self, code: i32) {
        self.lost.cancelled().await;
        tracing::error!(replica = %self.info.id, "exiting: this replica lost its lease");
        std::process::exit(code);
    }

    fn deadline(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Renews the lease until `stop`, then withdraws the replica. Cancels [`Self::lost`]
    /// when the lease cannot be kept.
    pub async fn run(self, stop: CancellationToken) {
        let every = self.length / 3;
        loop {
            let deadline = *self.deadline();
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(every) => {}
                () = tokio::time::sleep_until(deadline) => {
                    tracing::error!(replica = %self.info.id, "lease expired before it could be renewed: this replica's work may be taken over");
                    self.lost.cancel();
                    return;
                }
            }
            let asked = Instant::now();
            let partitions = self.partitions.borrow().clone();
            match self
                .db
                .renew_replica(&self.info.id, self.length, &partitions)
                .await
            {
                Ok(true) => *self.deadline() = asked + self.length,
                Ok(false) => {
                    tracing::error!(replica = %self.info.id, "lease lost: another replica found this one dead and took over its work");
                    self.lost.cancel();
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, replica = %self.info.id, "cannot renew the lease; retrying")
                }
            }
        }
        if let Err(error) = self.db.withdraw_replica(&self.info.id).await {
            tracing::warn!(%error, replica = %self.info.id, "cannot withdraw the replica");
        } else {
            tracing::info!(replica = %self.info.id, "replica withdrawn");
        }
    }
}

/// A singleton role held through a leader lease.
pub struct LeaderLease {
    pub db: Db,
    pub role: &'static str,
    pub holder: String,
    pub length: Duration,
}

impl LeaderLease {
    /// Tries to take or keep the role every third of the lease until `stop`; the watch
    /// says whether this replica holds it. A holder that cannot renew in time lets go
    /// by its own clock before anyone else may take the role.
    pub fn spawn(self, stop: CancellationToken) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let every = self.length / 3;
            let mut held_until: Option<Instant> = None;
            loop {
                let asked = Instant::now();
                let held = match self
                    .db
                    .hold_leader_lease(self.role, &self.holder, self.length)
                    .await
                {
                    Ok(held) => held,
                    Err(error) => {
                        tracing::warn!(%error, role = self.role, "cannot renew the leader lease");
                        held_until.is_some_and(|until| Instant::now() + every < until)
                    }
                };
                if held {
                    held_until = Some(asked + self.length);
                } else {
                    held_until = None;
                }
                if *tx.borrow() != held {
                    tracing::info!(role = self.role, replica = %self.holder, held, "leader role changed");
                    tx.send_replace(held);
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
            tx.send_replace(false);
        });
        rx
    }
}
