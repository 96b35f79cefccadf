//! Who runs next on this replica: waiting runs in priority then first-come order, this
//! replica's capacity, and the global limits as PostgreSQL last answered them. Pure
//! bookkeeping, no I/O; the dispatcher drives it.
//!
//! Global limits (team quota, platform limit) are decided by the claim in PostgreSQL,
//! never here. When a claim is refused, the scheduler remembers the refusal and skips that
//! team (or everyone, for the platform limit) until a claim is released somewhere
//! ([`Scheduler::unblock`]), so it does not ask again for every waiting run.

use airlock_core::replica::Refusal;
use airlock_core::spec::Priority;
use airlock_core::{EvaluationId, RunId, TeamId, TraceContext};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// What the scheduler needs to know of a waiting run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
    pub attempt: u32,
    pub priority: Priority,
    pub submitted_at: DateTime<Utc>,
    /// Not before this time (a retry's backoff).
    pub not_before: Option<DateTime<Utc>>,
    /// When this replica first queued it (kept when a refused claim puts it back).
    pub queued_at: DateTime<Utc>,
    /// The trace the run's work belongs to (carried for the reports about it).
    pub trace: TraceContext,
}

impl Ticket {
    fn due(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }
}

type Key = (Reverse<Priority>, DateTime<Utc>, u64);

/// A run is told why it waits once it has waited this long: most runs of a busy
/// evaluation wait a few milliseconds for a slot, and saying so would cost a report each.
pub const TELL_AFTER: chrono::TimeDelta = chrono::TimeDelta::milliseconds(500);

/// Waiting runs, each with a payload (the delivery to ack later).
pub struct Scheduler<T> {
    /// Runs at once on this replica.
    capacity: usize,
    waiting: BTreeMap<Key, (Ticket, T)>,
    keys: HashMap<RunId, Key>,
    running: HashMap<RunId, Ticket>,
    /// Teams whose last claim was refused for their quota.
    blocked_teams: HashMap<TeamId, Refusal>,
    /// The platform limit refused the last claim.
    blocked_platform: Option<Refusal>,
    arrivals: u64,
}

impl<T> Scheduler<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            waiting: BTreeMap::new(),
            keys: HashMap::new(),
            running: HashMap::new(),
            blocked_teams: HashMap::new(),
            blocked_platform: None,
            arrivals: 0,
        }
    }

    pub fn is_known(&self, run_id: RunId) -> bool {
        self.keys.contains_key(&run_id) || self.running.contains_key(&run_id)
    }

    pub fn enqueue(&mut self, ticket: Ticket, payload: T) {
        if self.is_known(ticket.run_id) {
            return;
        }
        self.arrivals += 1;
        let key = (Reverse(ticket.priority), ticket.submitted_at, self.arrivals);
        self.keys.insert(ticket.run_id, key);
        self.waiting.insert(key, (ticket, payload));
    }

    /// Takes the first waiting run that may start at `now` and holds a slot for it.
    pub fn next_startable(&mut self, now: DateTime<Utc>) -> Option<(Ticket, T)> {
        if self.running.len() >= self.capacity || self.blocked_platform.is_some() {
            return None;
        }
        let key = self
            .waiting
            .iter()
            .find(|(_, (ticket, _))| {
                ticket.due(now) && !self.blocked_teams.contains_key(&ticket.team_id)
            })
            .map(|(key, _)| *key)?;
        let (ticket, payload) = self.waiting.remove(&key)?;
        self.keys.remove(&ticket.run_id);
        self.running.insert(ticket.run_id, ticket.clone());
        Some((ticket, payload))
    }

    /// Puts a run taken by [`Self::next_startable`] back in its place (its claim was
    /// refused), remembering why.
    pub fn refused(&mut self, ticket: Ticket, payload: T, refusal: Refusal) {
        self.running.remove(&ticket.run_id);
        match refusal {
            Refusal::TeamQuota { .. } => {
                self.blocked_teams.insert(ticket.team_id, refusal);
            }
            Refusal::PlatformLimit { .. } => self.blocked_platform = Some(refusal),
        }
        self.enqueue(ticket, payload);
    }

    /// A claim was released somewhere: refused runs may ask again.
    pub fn unblock(&mut self) {
        self.blocked_teams.clear();
        self.blocked_platform = None;
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked_platform.is_some() || !self.blocked_teams.is_empty()
    }

    /// Counts a run that is already running (adopted from a lost replica) whatever the
    /// capacity: its sandbox exists.
    pub fn adopt(&mut self, ticket: Ticket) {
        if self.is_known(ticket.run_id) {
            return;
        }
        self.running.insert(ticket.run_id, ticket);
    }

    /// Frees the slot of a run that ended (or never started).
    pub fn finished(&mut self, run_id: RunId) {
        self.running.remove(&run_id);
    }

    /// Removes every waiting run of an evaluation.
    pub fn remove_evaluation(&mut self, evaluation_id: EvaluationId) -> Vec<(Ticket, T)> {
        let keys: Vec<Key> = self
            .waiting
            .iter()
            .filter(|(_, (t, _))| t.evaluation_id == evaluation_id)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.waiting.remove(&k))
            .inspect(|(t, _)| {
                self.keys.remove(&t.run_id);
            })
            .collect()
    }

    /// Forgets every waiting run (their deliveries died with a connection).
    pub fn clear_waiting(&mut self) {
        self.waiting.clear();
        self.keys.clear();
    }

    /// Running runs of an evaluation.
    pub fn running_of(&self, evaluation_id: EvaluationId) -> Vec<RunId> {
        self.running
            .values()
            .filter(|t| t.evaluation_id == evaluation_id)
            .map(|t| t.run_id)
            .collect()
    }

    /// The evaluations with a run holding a slot here.
    pub fn running_evaluations(&self) -> Vec<EvaluationId> {
        let mut ids: Vec<EvaluationId> = self.running.values().map(|t| t.evaluation_id).collect();
        ids.sort_unstable_by_key(|id| id.as_uuid());
        ids.dedup();
        ids
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    pub fn free_slots(&self) -> usize {
        self.capacity.saturating_sub(self.running.len())
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// The earliest time a held-back retry becomes due.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.waiting
            .values()
            .filter_map(|(ticket, _)| ticket.not_before.filter(|at| *at > now))
            .min()
    }

    /// When the next waiting run will have waited [`TELL_AFTER`] (and so gets a reason).
    pub fn next_reason_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.waiting
            .values()
            .map(|(ticket, _)| ticket.queued_at + TELL_AFTER)
            .filter(|at| *at > now)
            .min()
    }

    /// Why each waiting run that is due and has waited [`TELL_AFTER`] has not started, in
    /// words a person understands. (A retry held back by its backoff already said why.)
    pub fn waiting_reasons(&self, now: DateTime<Utc>) -> Vec<(&Ticket, String)> {
        let full = self.running.len() >= self.capacity;
        self.waiting
            .values()
            .filter(|(ticket, _)| ticket.due(now) && now - ticket.queued_at >= TELL_AFTER)
            .map(|(ticket, _)| {
                let reason = if let Some(refusal) = self.blocked_platform {
                    refusal.to_string()
                } else if let Some(refusal) = self.blocked_teams.get(&ticket.team_id) {
                    refusal.to_string()
                } else if full {
                    format!(
                        "capacity full: {} of {} running on this orchestrator",
                        self.running.len(),
                        self.capacity
                    )
                } else {
                    "waiting for a slot".to_owned()
                };
                (ticket, reason)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(team: TeamId, priority: Priority, secs: i64) -> Ticket {
        Ticket {
            run_id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            team_id: team,
            attempt: 1,
            priority,
            submitted_at: DateTime::from_timestamp(secs, 0).expect("valid"),
            not_before: None,
            queued_at: DateTime::from_timestamp(secs, 0).expect("valid"),
            trace: TraceContext::new_root(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000, 0).expect("valid")
    }

    #[test]
    fn a_retry_waits_for_its_time() {
        let team = TeamId::new();
        let mut s = Scheduler::new(2);
        let mut retry = ticket(team, Priority::High, 0);
        retry.not_before = Some(now() + chrono::Duration::seconds(5));
        s.enqueue(retry, "retry");
        s.enqueue(ticket(team, Priority::Low, 1), "fresh");
        assert_eq!(
            s.next_due(now()),
            Some(now() + chrono::Duration::seconds(5))
        );
        assert!(
            s.waiting_reasons(now())
                .iter()
                .all(|(t, _)| t.not_before.is_none())
        );
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("fresh"));
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), None);
        let later = now() + chrono::Duration::seconds(5);
        assert_eq!(s.next_startable(later).map(|(_, p)| p), Some("retry"));
    }

    #[test]
    fn priority_then_first_come() {
        let team = TeamId::new();
        let mut s = Scheduler::new(10);
        s.enqueue(ticket(team, Priority::Normal, 1), "normal-early");
        s.enqueue(ticket(team, Priority::Low, 0), "low");
        s.enqueue(ticket(team, Priority::High, 5), "high");
        s.enqueue(ticket(team, Priority::Normal, 2), "normal-late");
        let order: Vec<&str> =
            std::iter::from_fn(|| s.next_startable(now()).map(|(_, p)| p)).collect();
        assert_eq!(order, ["high", "normal-early", "normal-late", "low"]);
    }

    #[test]
    fn capacity_binds_with_a_reason() {
        let team = TeamId::new();
        let mut s = Scheduler::new(1);
        s.enqueue(ticket(team, Priority::Normal, 0), "a");
        s.enqueue(ticket(team, Priority::Normal, 1), "b");
        let (first, _) = s.next_startable(now()).expect("a starts");
        assert!(s.next_startable(now()).is_none());
        assert_eq!(
            s.waiting_reasons(now())[0].1,
            "capacity full: 1 of 1 running on this orchestrator"
        );
        s.finished(first.run_id);
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("b"));
    }

    #[test]
    fn a_run_is_told_why_it_waits_only_once_it_has_waited_a_while() {
        let team = TeamId::new();
        let mut s = Scheduler::new(0);
        let mut t = ticket(team, Priority::Normal, 0);
        t.queued_at = now();
        s.enqueue(t, "a");
        assert!(s.waiting_reasons(now()).is_empty(), "not yet");
        assert_eq!(s.next_reason_due(now()), Some(now() + TELL_AFTER));
        let later = now() + TELL_AFTER;
        assert_eq!(s.waiting_reasons(later).len(), 1);
        assert_eq!(s.next_reason_due(later), None);
    }

    #[test]
    fn a_refused_team_waits_in_place_until_a_release_while_others_go_ahead() {
        let (red, blue) = (TeamId::new(), TeamId::new());
        let mut s = Scheduler::new(10);
        s.enqueue(ticket(red, Priority::High, 0), "red");
        s.enqueue(ticket(blue, Priority::Normal, 1), "blue");
        let (t, p) = s.next_startable(now()).expect("red first");
        assert_eq!(p, "red");
        s.refused(
            t,
            p,
            Refusal::TeamQuota {
                running: 4,
                limit: 4,
            },
        );
        assert_eq!(s.running_count(), 0, "the refused run holds no slot");
        assert_eq!(s.waiting_reasons(now())[0].1, "team quota reached: 4 of 4");
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("blue"));
        assert!(s.next_startable(now()).is_none(), "red stays blocked");
        s.unblock();
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("red"));
    }

    #[test]
    fn the_platform_limit_blocks_everyone() {
        let mut s = Scheduler::new(10);
        s.enqueue(ticket(TeamId::new(), Priority::Normal, 0), 1);
        s.enqueue(ticket(TeamId::new(), Priority::Normal, 1), 2);
        let (t, p) = s.next_startable(now()).expect("first");
        s.refused(
            t,
            p,
            Refusal::PlatformLimit {
                running: 8,
                limit: 8,
            },
        );
        assert!(s.next_startable(now()).is_none());
        assert!(s.is_blocked());
        assert!(
            s.waiting_reasons(now())
                .iter()
                .all(|(_, r)| r == "platform limit reached: 8 of 8 running")
        );
    }

    #[test]
    fn duplicates_are_ignored_and_evaluations_removed() {
        let team = TeamId::new();
        let mut s = Scheduler::new(0);
        let t = ticket(team, Priority::Normal, 0);
        s.enqueue(t.clone(), 1);
        s.enqueue(t.clone(), 2);
        assert_eq!(s.waiting_count(), 1);
        let removed = s.remove_evaluation(t.evaluation_id);
        assert_eq!(removed.len(), 1);
        assert!(!s.is_known(t.run_id));
    }

    #[test]
    fn adopted_runs_hold_slots_whatever_the_capacity() {
        let mut s: Scheduler<()> = Scheduler::new(1);
        let team = TeamId::new();
        s.adopt(ticket(team, Priority::Normal, 0));
        s.adopt(ticket(team, Priority::Normal, 1));
        assert_eq!(s.running_count(), 2);
        assert_eq!(s.free_slots(), 0);
    }
}
