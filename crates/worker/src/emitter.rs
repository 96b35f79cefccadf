//! Numbers events and writes them as JSON lines, applying the output byte budget and
//! reporting dropped lines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_core::event::{EventBody, WorkerEvent};
use chrono::Utc;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::time::MissedTickBehavior;

use crate::limits::{Charge, OutputBudget, RateLimiter};
use crate::pump::{Source, lock};

/// Longest time written events may wait in the buffer while more keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How often dropped lines are reported while dropping.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Writes [`WorkerEvent`]s with `seq` 1, 2, 3, ...
pub struct Emitter<W> {
    out: BufWriter<W>,
    seq: u64,
    budget: OutputBudget,
    last_flush: Instant,
    /// Writing failed (the reader went away); later events are counted but not written.
    broken: bool,
    line: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> Emitter<W> {
    pub fn new(out: W, budget: OutputBudget) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
            seq: 0,
            budget,
            last_flush: Instant::now(),
            broken: false,
            line: Vec::with_capacity(1024),
        }
    }

    /// Writes one event (buffered).
    pub async fn emit(&mut self, body: EventBody) {
        self.seq += 1;
        let event = WorkerEvent {
            seq: self.seq,
            ts: Utc::now(),
            body,
        };
        self.line.clear();
        if let Err(e) = serde_json::to_writer(&mut self.line, &event) {
            eprintln!("airlock-worker: cannot serialize event {}: {e}", self.seq);
            return;
        }
        self.line.push(b'\n');
        if !self.broken
            && let Err(e) = self.out.write_all(&self.line).await
        {
            self.fail(e);
        }
    }

    pub async fn flush(&mut self) {
        self.last_flush = Instant::now();
        if !self.broken
            && let Err(e) = self.out.flush().await
        {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        eprintln!("airlock-worker: cannot write events to stdout: {e}; dropping further events");
        self.broken = true;
    }

    /// Emits a line from the program, subject to the output byte budget.
    pub async fn offer(&mut self, body: EventBody) {
        if let EventBody::Log { message, .. } = &body {
            match self.budget.charge(message.len()) {
                Charge::Emit => {}
                Charge::Drop => return,
                Charge::LimitReached => {
                    let max = self.budget.max();
                    let message =
                        format!("output limit of {max} bytes reached; further output is dropped");
                    self.emit(EventBody::Warning {
                        message,
                        count: None,
                    })
                    .await;
                    return;
                }
            }
        }
        self.emit(body).await;
    }

    /// Emits a warning for lines dropped since the last report, if any: by the rate
    /// limit, and for a full queue (the program outran the stream's reader).
    pub async fn report_rate_drops(&mut self, rate: &Mutex<RateLimiter>) {
        let (limited, overflowed) = {
            let mut rate = lock(rate);
            (rate.take_dropped(), rate.take_overflowed())
        };
        if limited > 0 {
            let message = format!("output rate limit: {limited} lines dropped");
            self.emit(EventBody::Warning {
                message,
                count: Some(limited),
            })
            .await;
        }
        if overflowed > 0 {
            let message = format!(
                "output backlog full: {overflowed} lines dropped (written faster than they could be streamed)"
            );
            self.emit(EventBody::Warning {
                message,
                count: Some(overflowed),
            })
            .await;
        }
    }

    /// Emits the closing warnings (dropped lines), then `last`, and flushes.
    pub async fn finish(&mut self, rate: &Mutex<RateLimiter>, last: EventBody) {
        self.report_rate_drops(rate).await;
        let dropped = self.budget.dropped();
        if dropped > 0 {
            let max = self.budget.max();
            let message = format!("output limit of {max} bytes reached: {dropped} lines dropped");
            self.emit(EventBody::Warning {
                message,
                count: Some(dropped),
            })
            .await;
        }
        self.emit(last).await;
        self.flush().await;
    }

    /// Writes what arrives on `rx` until every sender is gone, flushing when the stream goes
    /// idle and at least every 50 ms, and reporting rate drops once a second.
    pub async fn run(mut self, mut rx: Source, rate: Arc<Mutex<RateLimiter>>) -> Self {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_report = Instant::now();
        loop {
            tokio::select! {
                body = rx.recv() => {
                    let Some(body) = body else { break };
                    self.offer(body).await;
                    if last_report.elapsed() >= REPORT_EVERY {
                        last_report = Instant::now();
                        self.report_rate_drops(&rate).await;
                    }
                    if rx.is_empty() || self.last_flush.elapsed() >= FLUSH_EVERY {
                        self.flush().await;
                    }
                }
                _ = tick.tick() => {
                    if last_report.elapsed() >= REPORT_EVERY {
                        last_report = Instant::now();
                        self.report_rate_drops(&rate).await;
                    }
                    self.flush().await;
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::event::LogStream;

    fn log(message: &str) -> EventBody {
        EventBody::Log {
            stream: LogStream::Stdout,
            message: message.to_owned(),
            truncated: false,
        }
    }

    fn parse(out: &[u8]) -> Vec<WorkerEvent> {
        std::str::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("event line"))
            .collect()
    }

    #[tokio::test]
    async fn numbers_events_and_applies_the_budget() {
        let rate = Mutex::new(RateLimiter::new(0, Instant::now()));
        let mut out = Vec::new();
        let mut emitter = Emitter::new(&mut out, OutputBudget::new(5));
        emitter.offer(log("abc")).await;
        emitter.offer(log("defg")).await; // 7 bytes > 5: limit reached, dropped
        emitter.offer(log("h")).await; // dropped
        emitter
            .offer(EventBody::Score {
                name: "s".into(),
                value: 1.0,
            })
            .await;
        lock(&rate).count_overflow(2);
        emitter
            .finish(
                &rate,
                EventBody::Exit {
                    code: Some(0),
                    signal: None,
                },
            )
            .await;
        drop(emitter);

        let events = parse(&out);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
        let bodies: Vec<EventBody> = events.into_iter().map(|e| e.body).collect();
        assert_eq!(
            bodies,
            vec![
                log("abc"),
                EventBody::Warning {
                    message: "output limit of 5 bytes reached; further output is dropped".into(),
                    count: None,
                },
                EventBody::Score {
                    name: "s".into(),
                    value: 1.0
                },
                EventBody::Warning {
                    message: "output backlog full: 2 lines dropped (written faster than they could be streamed)".into(),
                    count: Some(2),
                },
                EventBody::Warning {
                    message: "output limit of 5 bytes reached: 2 lines dropped".into(),
                    count: Some(2),
                },
                EventBody::Exit {
                    code: Some(0),
                    signal: None
                },
            ]
        );
    }
}
