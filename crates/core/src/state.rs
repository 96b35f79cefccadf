//! The run state machine and the evaluation status derived from its runs.
//!
//! ```text
//! queued -> scheduling -> starting -> running -> succeeded | failed | timed_out | cancelled | error
//! ```
//! `scheduling` may repeat with a new reason (capacity, quota). Any non-terminal state may
//! end in `cancelled` or `error`. A terminal state never changes again.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Scheduling,
    Starting,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Error,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid run transition {from} -> {to}")]
pub struct InvalidTransition {
    pub from: RunState,
    pub to: RunState,
}

impl RunState {
    pub const ALL: [RunState; 9] = [
        Self::Queued,
        Self::Scheduling,
        Self::Starting,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Error,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Scheduling => "scheduling",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Cancelled | Self::Error
        )
    }

    /// Position along the happy path; terminal states share the last rank.
    const fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Scheduling => 1,
            Self::Starting => 2,
            Self::Running => 3,
            _ => 4,
        }
    }

    /// Whether `self -> to` is allowed. Staying in `scheduling` is allowed (the reason
    /// changes); otherwise a transition must move forward and never leave a terminal state.
    pub fn can_transition_to(self, to: RunState) -> bool {
        if self.is_terminal() {
            return false;
        }
        if self == Self::Scheduling && to == Self::Scheduling {
            return true;
        }
        to.rank() > self.rank()
    }

    pub fn transition(self, to: RunState) -> Result<RunState, InvalidTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for RunState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// An evaluation's status, derived from its runs' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationStatus {
    /// No run has left the queue yet.
    Queued,
    /// At least one run is past `queued` and not every run is terminal.
    Running,
    /// Every run succeeded.
    Succeeded,
    /// Every run is terminal and at least one failed, timed out or hit an error.
    Failed,
    /// Every run is terminal and at least one was cancelled.
    Cancelled,
}

impl EvaluationStatus {
    pub const ALL: [EvaluationStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Derives the status from how many runs are in each state.
    pub fn derive(counts: &StateCounts) -> Self {
        let total = counts.total();
        let terminal: u64 = RunState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| counts.get(*s))
            .sum();
        if total == 0 || counts.get(RunState::Queued) == total {
            return Self::Queued;
        }
        if terminal < total {
            return Self::Running;
        }
        if counts.get(RunState::Cancelled) > 0 {
            Self::Cancelled
        } else if counts.get(RunState::Succeeded) == total {
            Self::Succeeded
        } else {
            Self::Failed
        }
    }
}

impl fmt::Display for EvaluationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EvaluationStatus {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// How many runs are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    #[serde(default)]
    pub queued: u64,
    #[serde(default)]
    pub scheduling: u64,
    #[serde(default)]
    pub starting: u64,
    #[serde(default)]
    pub running: u64,
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub timed_out: u64,
    #[serde(default)]
    pub cancelled: u64,
    #[serde(default)]
    pub error: u64,
}

impl StateCounts {
    pub fn get(&self, state: RunState) -> u64 {
        *self.slot(state)
    }

    pub fn add(&mut self, state: RunState, n: u64) {
        *self.slot_mut(state) += n;
    }

    pub fn set(&mut self, state: RunState, n: u64) {
        *self.slot_mut(state) = n;
    }

    pub fn total(&self) -> u64 {
        RunState::ALL.iter().map(|s| self.get(*s)).sum()
    }

    fn slot(&self, state: RunState) -> &u64 {
        match state {
            RunState::Queued => &self.queued,
            RunState::Scheduling => &self.scheduling,
            RunState::Starting => &self.starting,
            RunState::Running => &self.running,
            RunState::Succeeded => &self.succeeded,
            RunState::Failed => &self.failed,
            RunState::TimedOut => &self.timed_out,
            RunState::Cancelled => &self.cancelled,
            RunState::Error => &self.error,
        }
    }

    fn slot_mut(&mut self, state: RunState) -> &mut u64 {
        match state {
            RunState::Queued => &mut self.queued,
            RunState::Scheduling => &mut self.scheduling,
            RunState::Starting => &mut self.starting,
            RunState::Running => &mut self.running,
            RunState::Succeeded => &mut self.succeeded,
            RunState::Failed => &mut self.failed,
            RunState::TimedOut => &mut self.timed_out,
            RunState::Cancelled => &mut self.cancelled,
            RunState::Error => &mut self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::*;

    #[test]
    fn happy_path_is_allowed() {
        let mut state = Queued;
        for next in [Scheduling, Scheduling, Starting, Running, Succeeded] {
            state = state.transition(next).expect("allowed");
        }
        assert_eq!(state, Succeeded);
    }

    #[test]
    fn steps_may_be_skipped_forward() {
        assert!(Queued.can_transition_to(Cancelled));
        assert!(Starting.can_transition_to(Failed));
        assert!(Queued.can_transition_to(Error));
    }

    #[test]
    fn backwards_and_out_of_terminal_are_rejected() {
        assert!(!Running.can_transition_to(Starting));
        assert!(!Running.can_transition_to(Running));
        for terminal in [Succeeded, Failed, TimedOut, Cancelled, Error] {
            for to in RunState::ALL {
                assert!(!terminal.can_transition_to(to), "{terminal} -> {to}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).expect("serializes"),
                serde_json::Value::String(state.as_str().into())
            );
        }
    }

    fn counts(pairs: &[(RunState, u64)]) -> StateCounts {
        let mut counts = StateCounts::default();
        for (state, n) in pairs {
            counts.add(*state, *n);
        }
        counts
    }

    #[test]
    fn evaluation_status_is_derived_from_runs() {
        use EvaluationStatus as E;
        assert_eq!(E::derive(&counts(&[(Queued, 3)])), E::Queued);
        assert_eq!(E::derive(&counts(&[(Queued, 2), (Running, 1)])), E::Running);
        assert_eq!(
            E::derive(&counts(&[(Queued, 2), (Succeeded, 1)])),
            E::Running
        );
        assert_eq!(E::derive(&counts(&[(Succeeded, 3)])), E::Succeeded);
        assert_eq!(
            E::derive(&counts(&[(Succeeded, 2), (TimedOut, 1)])),
            E::Failed
        );
        assert_eq!(
            E::derive(&counts(&[(Failed, 1), (Cancelled, 1)])),
            E::Cancelled
        );
    }
}
