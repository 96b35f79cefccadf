//! Host process lookups through /proc: which processes run as a uid, whether a recorded
//! pid is still the same process, and SIGKILL.

use std::collections::HashSet;
use std::fs;

/// One process's identity as far as this runtime cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStatus {
    /// Real, effective, saved and file-system uid.
    pub uids: [u32; 4],
    pub threads: u64,
    pub zombie: bool,
}

/// Parses the text of `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> Option<ProcStatus> {
    let mut uids = None;
    let mut threads = 1;
    let mut zombie = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            let parsed: Vec<u32> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [real, effective, saved, fs] = parsed[..] {
                uids = Some([real, effective, saved, fs]);
            }
        } else if let Some(rest) = line.strip_prefix("Threads:") {
            threads = rest.trim().parse().unwrap_or(1);
        } else if let Some(rest) = line.strip_prefix("State:") {
            zombie = matches!(rest.trim_start().chars().next(), Some('Z' | 'X'));
        }
    }
    Some(ProcStatus {
        uids: uids?,
        threads,
        zombie,
    })
}

/// Every live process (pid, status) on the host.
fn processes() -> Vec<(i32, ProcStatus)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            Some((pid, parse_status(&text)?))
        })
        .collect()
}

/// Pids of the processes (not zombies) any of whose uids is `uid`.
pub(crate) fn pids_of_uid(uid: u32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, status)| !status.zombie && status.uids.contains(&uid))
        .map(|(pid, _)| pid)
        .collect()
}

/// Which uids of a range live processes run as, read from the owners of the
/// `/proc/<pid>` directories: a `stat` each, a tenth of what reading every process's
/// status costs. A process that made itself non-dumpable shows as root there and is
/// missed; that is acceptable because this is only a safety net for uids used outside
/// Airlock's host-wide uid locks, which are what keeps sandboxes apart.
pub(crate) fn uids_in_use(range: std::ops::Range<u32>) -> HashSet<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|entry| {
            let uid = entry.metadata().ok()?.uid();
            // Zombies keep their owner until reaped; they hold nothing.
            let live = || {
                fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|stat| parse_state(&stat))
                    .is_some_and(|state| !matches!(state, 'Z' | 'X'))
            };
            (range.contains(&uid) && live()).then_some(uid)
        })
        .collect()
}

/// [`uids_in_use`], scanned at most once per [`UidScan::FRESH`]: sandboxes are created
/// many times a second, and a scan of every process is a large part of a create. A uid
/// this process has just emptied (its sandbox's cgroup held nothing more) is forgotten
/// at once, so a stale scan never makes a free uid look taken.
#[derive(Debug)]
pub(crate) struct UidScan {
    range: std::ops::Range<u32>,
    last: std::sync::Mutex<Option<(std::time::Instant, HashSet<u32>)>>,
}

impl UidScan {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

    pub(crate) fn new(range: std::ops::Range<u32>) -> Self {
        Self {
            range,
            last: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn in_use(&self, uid: u32) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= Self::FRESH);
        if stale {
            *last = Some((std::time::Instant::now(), uids_in_use(self.range.clone())));
        }
        last.as_ref().is_some_and(|(_, busy)| busy.contains(&uid))
    }

    /// `uid` has no process any more (this process killed and waited for all of them).
    pub(crate) fn forget(&self, uid: u32) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, busy)) = last.as_mut() {
            busy.remove(&uid);
        }
    }
}

/// The state letter (field 3) of a `/proc/<pid>/stat` line.
pub(crate) fn parse_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// How many tasks (threads) run with real uid `uid`; what RLIMIT_NPROC counts.
pub(crate) fn tasks_of_uid(uid: u32) -> u64 {
    processes()
        .into_iter()
        .filter(|(_, status)| status.uids[0] == uid)
        .map(|(_, status)| status.threads)
        .sum()
}

/// The start time (clock ticks after boot) of `pid`, field 22 of `/proc/<pid>/stat`;
/// with the pid it identifies a process across pid reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&text)
}

pub(crate) fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; fields after the last
    // ')' are plain. Field 3 (state) is the first after it, so field 22 is the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` is still running (not a zombie).
pub(crate) fn is_running(pid: u32, start: Option<u64>) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let alive = parse_status(&text).is_some_and(|status| !status.zombie);
    alive && (start.is_none() || start_time(pid) == start)
}

/// Whether `pid` is gone or a zombie.
pub(crate) fn is_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(text) => parse_status(&text).is_none_or(|status| status.zombie),
        Err(_) => true,
    }
}

/// Sends SIGKILL to `pid`; a process that is already gone is not an error.
pub(crate) fn sigkill(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tsleep\nState:\tS (sleeping)\nUid:\t200000\t200000\t200000\t200000\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(ProcStatus {
                uids: [200_000; 4],
                threads: 3,
                zombie: false
            })
        );
        let zombie = "State:\tZ (zombie)\nUid:\t1\t2\t3\t4\n";
        assert_eq!(
            parse_status(zombie).map(|s| (s.uids, s.zombie)),
            Some(([1, 2, 3, 4], true))
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn parses_start_time_despite_odd_command_names() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_state(stat), Some('S'));
        assert_eq!(parse_state("1 (z) Z 0"), Some('Z'));
    }

    #[test]
    fn sees_this_process() {
        let pid = std::process::id();
        let start = start_time(pid);
        assert!(start.is_some());
        assert!(is_running(pid, start));
        assert!(!is_running(pid, start.map(|s| s + 1)));
        assert!(!is_gone(i32::try_from(pid).expect("pid fits")));
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert!(uids_in_use(uid..uid + 1).contains(&uid));
        let scan = UidScan::new(uid..uid + 1);
        assert!(scan.in_use(uid));
        scan.forget(uid);
        assert!(
            !scan.in_use(uid),
            "a forgotten uid is free until the next scan"
        );
        assert!(uids_in_use(u32::MAX - 1..u32::MAX).is_empty());
        assert!(tasks_of_uid(uid) >= 1);
    }
}
