//! Who runs next: waiting runs in priority then first-come order, a global capacity and
//! a per-team limit. Pure bookkeeping, no I/O; the dispatcher drives it.

use airlock_core::spec::Priority;
use airlock_core::{EvaluationId, RunId, TeamId, TraceContext};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Runs at once on this orchestrator.
    pub capacity: usize,
    /// Runs at once per team.
    pub per_team: usize,
}

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
    /// The trace the run's work belongs to (carried for the reports about it).
    pub trace: TraceContext,
}

impl Ticket {
    fn due(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }
}

type Key = (Reverse<Priority>, DateTime<Utc>, u64);

/// Waiting runs, each with a payload (the delivery to ack later).
pub struct Scheduler<T> {
    limits: Limits,
    waiting: BTreeMap<Key, (Ticket, T)>,
    keys: HashMap<RunId, Key>,
    running: HashMap<RunId, Ticket>,
    per_team: HashMap<TeamId, usize>,
    /// Runs the sandbox runtime sees holding a sandbox (a watcher's live pods), counted
    /// together with `running` so capacity covers what really runs.
    sandboxes: HashMap<RunId, TeamId>,
    arrivals: u64,
}

impl<T> Scheduler<T> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            waiting: BTreeMap::new(),
            keys: HashMap::new(),
            running: HashMap::new(),
            per_team: HashMap::new(),
            sandboxes: HashMap::new(),
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

    /// Takes the first waiting run that may start at `now` and counts it as running.
    pub fn next_startable(&mut self, now: DateTime<Utc>) -> Option<(Ticket, T)> {
        if self.running_total() >= self.limits.capacity {
            return None;
        }
        let key = self
            .waiting
            .iter()
            .find(|(_, (ticket, _))| {
                ticket.due(now) && self.team_running(ticket.team_id) < self.limits.per_team
            })
            .map(|(key, _)| *key)?;
        let (ticket, payload) = self.waiting.remove(&key)?;
        self.keys.remove(&ticket.run_id);
        *self.per_team.entry(ticket.team_id).or_default() += 1;
        self.running.insert(ticket.run_id, ticket.clone());
        Some((ticket, payload))
    }

    /// Counts a run that is already running (resumed after a restart) whatever the
    /// limits: its sandbox exists.
    pub fn adopt(&mut self, ticket: Ticket) {
        if self.is_known(ticket.run_id) {
            return;
        }
        *self.per_team.entry(ticket.team_id).or_default() += 1;
        self.running.insert(ticket.run_id, ticket);
    }

    /// Frees the slot of a run that ended.
    pub fn finished(&mut self, run_id: RunId) {
        if let Some(ticket) = self.running.remove(&run_id)
            && let Some(count) = self.per_team.get_mut(&ticket.team_id)
        {
            *count = count.saturating_sub(1);
        }
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

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    fn team_running(&self, team: TeamId) -> usize {
        let others = self
            .sandboxes
            .iter()
            .filter(|(run, t)| **t == team && !self.running.contains_key(run))
            .count();
        self.per_team.get(&team).copied().unwrap_or(0) + others
    }

    /// Running runs: this scheduler's, and any other the runtime sees a sandbox of.
    fn running_total(&self) -> usize {
        let others = self
            .sandboxes
            .keys()
            .filter(|run| !self.running.contains_key(run))
            .count();
        self.running.len() + others
    }

    /// What the runtime sees running now (for runtimes that can tell).
    pub fn observe_sandboxes(&mut self, live: HashMap<RunId, TeamId>) {
        self.sandboxes = live;
    }

    /// The earliest time a held-back retry becomes due.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.waiting
            .values()
            .filter_map(|(ticket, _)| ticket.not_before.filter(|at| *at > now))
            .min()
    }

    /// Why each waiting run that is due has not started, in words a person understands.
    /// (A retry held back by its backoff already said why.)
    pub fn waiting_reasons(&self, now: DateTime<Utc>) -> Vec<(&Ticket, String)> {
        let running = self.running_total();
        let full = running >= self.limits.capacity;
        self.waiting
            .values()
            .filter(|(ticket, _)| ticket.due(now))
            .map(|(ticket, _)| {
                let reason = if full {
                    format!(
                        "capacity full: {} of {} running",
                        running, self.limits.capacity
                    )
                } else {
                    format!(
                        "team quota reached: {} of {}",
                        self.team_running(ticket.team_id),
                        self.limits.per_team
                    )
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
            trace: TraceContext::new_root(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000, 0).expect("valid")
    }

    #[test]
    fn a_retry_waits_for_its_time() {
        let team = TeamId::new();
        let mut s = Scheduler::new(Limits {
            capacity: 2,
            per_team: 2,
        });
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
        let mut s = Scheduler::new(Limits {
            capacity: 10,
            per_team: 10,
        });
        s.enqueue(ticket(team, Priority::Normal, 1), "normal-early");
        s.enqueue(ticket(team, Priority::Low, 0), "low");
        s.enqueue(ticket(team, Priority::High, 5), "high");
        s.enqueue(ticket(team, Priority::Normal, 2), "normal-late");
        let order: Vec<&str> =
            std::iter::from_fn(|| s.next_startable(now()).map(|(_, p)| p)).collect();
        assert_eq!(order, ["high", "normal-early", "normal-late", "low"]);
    }

    #[test]
    fn capacity_and_team_quota_bind_with_reasons() {
        let (a, b) = (TeamId::new(), TeamId::new());
        let mut s = Scheduler::new(Limits {
            capacity: 3,
            per_team: 2,
        });
        for i in 0..3 {
            s.enqueue(ticket(a, Priority::Normal, i), "a");
        }
        s.enqueue(ticket(b, Priority::Normal, 10), "b");
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("a"));
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("a"));
        // Team a is at its quota: b goes ahead of a's third run.
        assert_eq!(s.waiting_reasons(now())[0].1, "team quota reached: 2 of 2");
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), Some("b"));
        assert_eq!(s.next_startable(now()).map(|(_, p)| p), None);
        assert_eq!(
            s.waiting_reasons(now())[0].1,
            "capacity full: 3 of 3 running"
        );
        let first_running = s.running.keys().next().copied().expect("running");
        s.finished(first_running);
        assert_eq!(s.running_count(), 2);
    }

    #[test]
    fn duplicates_are_ignored_and_evaluations_removed() {
        let team = TeamId::new();
        let mut s = Scheduler::new(Limits {
            capacity: 0,
            per_team: 1,
        });
        let t = ticket(team, Priority::Normal, 0);
        s.enqueue(t.clone(), 1);
        s.enqueue(t.clone(), 2);
        assert_eq!(s.waiting_count(), 1);
        let removed = s.remove_evaluation(t.evaluation_id);
        assert_eq!(removed.len(), 1);
        assert!(!s.is_known(t.run_id));
    }

    #[test]
    fn sandboxes_the_runtime_sees_count_against_capacity_and_quota() {
        let red = TeamId::new();
        let blue = TeamId::new();
        let mut s = Scheduler::new(Limits {
            capacity: 3,
            per_team: 2,
        });
        let mine = ticket(red, Priority::Normal, 0);
        s.adopt(mine.clone());
        // The runtime sees this scheduler's run and two it does not run (say orphans).
        s.observe_sandboxes(HashMap::from([
            (mine.run_id, red),
            (RunId::new(), red),
            (RunId::new(), blue),
        ]));
        s.enqueue(ticket(blue, Priority::Normal, 1), "blue");
        assert!(s.next_startable(now()).is_none(), "3 of 3 running");
        let reasons = s.waiting_reasons(now());
        assert_eq!(reasons[0].1, "capacity full: 3 of 3 running");
        s.observe_sandboxes(HashMap::from([(mine.run_id, red), (RunId::new(), red)]));
        s.enqueue(ticket(red, Priority::High, 2), "red");
        let (started, _) = s.next_startable(now()).expect("blue may start");
        assert_eq!(started.team_id, blue, "red is at its quota of 2");
    }
}
