//! Replicas of a service and what they share: names, the global admission rule (team
//! quota and platform limit, decided by PostgreSQL with these rules), and how run reports
//! are partitioned and the partitions spread over result-processor replicas. Pure rules,
//! no I/O.

use std::fmt;

use crate::RunId;

/// The services that run as several replicas with a lease each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaService {
    Orchestrator,
    ResultProcessor,
}

impl ReplicaService {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Orchestrator => "orchestrator",
            Self::ResultProcessor => "result-processor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "orchestrator" => Some(Self::Orchestrator),
            "result-processor" => Some(Self::ResultProcessor),
            _ => None,
        }
    }
}

impl fmt::Display for ReplicaService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of one replica process: a given prefix (a pod's name), else the service and
/// host name, with a random suffix either way, so a restarted process (even in the same
/// pod) is a new replica and never inherits what the old one held.
pub fn replica_id(given: Option<&str>, service: ReplicaService, host: &str, random: u32) -> String {
    match given.map(str::trim).filter(|g| !g.is_empty()) {
        Some(given) => format!("{given}-{random:08x}"),
        None => format!("{service}-{host}-{random:08x}"),
    }
}

/// The limits on runs at once that hold over every orchestrator replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalLimits {
    /// Runs at once per team; `None`: no per-team limit.
    pub per_team: Option<u32>,
    /// Runs at once over all teams; `None`: only the replicas' capacities limit.
    pub platform: Option<u32>,
}

/// Why a run may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TeamQuota { running: u32, limit: u32 },
    PlatformLimit { running: u32, limit: u32 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TeamQuota { running, limit } => {
                write!(f, "team quota reached: {running} of {limit}")
            }
            Self::PlatformLimit { running, limit } => {
                write!(f, "platform limit reached: {running} of {limit} running")
            }
        }
    }
}

impl GlobalLimits {
    /// Whether one more run may start, given the runs the team and the platform hold
    /// (counted under a lock, so the answer stays true until the claim is written).
    pub fn admit(&self, team_running: u32, platform_running: u32) -> Result<(), Refusal> {
        if let Some(limit) = self.platform
            && platform_running >= limit
        {
            return Err(Refusal::PlatformLimit {
                running: platform_running,
                limit,
            });
        }
        if let Some(limit) = self.per_team
            && team_running >= limit
        {
            return Err(Refusal::TeamQuota {
                running: team_running,
                limit,
            });
        }
        Ok(())
    }
}

/// Partitions of the run reports: a run's reports always go to the same one, which one
/// result-processor consumes at a time, so a run's reports are applied in order.
pub const REPORT_PARTITIONS: u16 = 16;

/// The partition of a run's reports.
pub fn report_partition(run_id: RunId) -> u16 {
    let n = u128::from(REPORT_PARTITIONS);
    // The low bits of a v7 uuid are random.
    u16::try_from(run_id.as_uuid().as_u128() % n).unwrap_or(0)
}

/// The replica that should consume `partition` among `replicas` (rendezvous hashing:
/// when a replica joins or leaves, only the partitions it wins or held move).
pub fn partition_owner(partition: u16, replicas: &[String]) -> Option<&str> {
    replicas
        .iter()
        .max_by_key(|id| (fnv1a(id.as_bytes(), partition), id.as_str()))
        .map(String::as_str)
}

/// The partitions `me` should consume when `replicas` (including `me`) are alive.
pub fn partitions_of(me: &str, replicas: &[String]) -> Vec<u16> {
    (0..REPORT_PARTITIONS)
        .filter(|p| partition_owner(*p, replicas) == Some(me))
        .collect()
}

fn fnv1a(bytes: &[u8], salt: u16) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes.iter().chain(salt.to_le_bytes().iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Finalise so that neighbouring salts spread (splitmix64's mixer).
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_under_both_limits_and_names_the_one_reached() {
        let limits = GlobalLimits {
            per_team: Some(4),
            platform: Some(10),
        };
        assert_eq!(limits.admit(3, 9), Ok(()));
        let team = limits.admit(4, 5).expect_err("team quota");
        assert_eq!(team.to_string(), "team quota reached: 4 of 4");
        let platform = limits.admit(0, 10).expect_err("platform limit");
        assert_eq!(
            platform.to_string(),
            "platform limit reached: 10 of 10 running"
        );
        assert_eq!(GlobalLimits::default().admit(1000, 1000), Ok(()));
    }

    #[test]
    fn replica_ids_are_given_or_made_unique_per_process() {
        let service = ReplicaService::Orchestrator;
        assert_eq!(replica_id(Some("pod-1"), service, "h", 1), "pod-1-00000001");
        assert_eq!(
            replica_id(Some(" "), service, "h", 0xab),
            "orchestrator-h-000000ab"
        );
        assert_ne!(
            replica_id(None, service, "h", 1),
            replica_id(None, service, "h", 2)
        );
        assert_eq!(
            ReplicaService::parse("result-processor"),
            Some(ReplicaService::ResultProcessor)
        );
        assert_eq!(ReplicaService::parse("gateway"), None);
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_load_spreads() {
        let replicas: Vec<String> = (0..3).map(|i| format!("rp-{i}")).collect();
        let mut owned: Vec<u16> = Vec::new();
        for me in &replicas {
            let mine = partitions_of(me, &replicas);
            assert!(!mine.is_empty(), "{me} owns no partition");
            owned.extend(mine);
        }
        owned.sort_unstable();
        assert_eq!(owned, (0..REPORT_PARTITIONS).collect::<Vec<_>>());
        assert_eq!(
            partitions_of("alone", &["alone".into()]).len(),
            usize::from(REPORT_PARTITIONS)
        );
        assert_eq!(partition_owner(0, &[]), None);
    }

    #[test]
    fn a_leaving_replica_moves_only_its_own_partitions() {
        let all: Vec<String> = (0..3).map(|i| format!("rp-{i}")).collect();
        let survivors: Vec<String> = all[..2].to_vec();
        for p in 0..REPORT_PARTITIONS {
            let before = partition_owner(p, &all);
            let after = partition_owner(p, &survivors);
            if before != Some("rp-2") {
                assert_eq!(before, after, "partition {p} moved needlessly");
            }
        }
    }

    #[test]
    fn a_runs_partition_is_stable_and_in_range() {
        let run = RunId::new();
        assert_eq!(report_partition(run), report_partition(run));
        assert!(report_partition(run) < REPORT_PARTITIONS);
    }
}
