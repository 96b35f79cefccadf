//! Moves lines from the program's stdout and stderr to the writer: lines pass the rate
//! limiter, then a bounded queue. While the queue is over half full the readers pause
//! (the program's writes block: backpressure), but never for longer than [`STALL_LIMIT`]
//! at a time: if the stream has not moved by then, the readers go on draining the pipes
//! and drop what does not fit, counted, until room returns. So a fast program is slowed
//! to the speed of its stream, and a stalled stream never blocks it for good.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use airlock_core::event::{EventBody, LogStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, mpsc, watch};

use crate::limits::RateLimiter;
use crate::lines::{Line, LineSplitter};

/// Bytes read from a pipe at a time.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Most events waiting for the writer.
pub const QUEUE_EVENTS: usize = 16 * 1024;
/// Most bytes (as counted by [`queued_bytes`]) waiting for the writer.
const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Longest a reader pauses for room in the queue before it drops instead.
pub const STALL_LIMIT: Duration = Duration::from_secs(2);

/// Tells readers to stop waiting for more input (set to `true` once).
pub type Stop = watch::Receiver<bool>;

pub fn lock(rate: &Mutex<RateLimiter>) -> MutexGuard<'_, RateLimiter> {
    rate.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Roughly the memory an event takes while queued.
fn queued_bytes(body: &EventBody) -> usize {
    let text = match body {
        EventBody::Log { message, .. } | EventBody::Warning { message, .. } => message.len(),
        EventBody::Progress { message, .. } => message.as_ref().map_or(0, String::len),
        EventBody::Score { name, .. } => name.len(),
        _ => 0,
    };
    64 + text
}

/// The queue between the readers and the writer, bounded by events and by bytes.
pub fn queue(rate: Arc<Mutex<RateLimiter>>) -> (Sink, Source) {
    let (tx, rx) = mpsc::channel(QUEUE_EVENTS);
    let bytes = Arc::new(AtomicUsize::new(0));
    let room = Arc::new(Notify::new());
    (
        Sink {
            tx,
            rate,
            bytes: Arc::clone(&bytes),
            room: Arc::clone(&room),
            stalled: Arc::new(AtomicBool::new(false)),
        },
        Source { rx, bytes, room },
    )
}

/// The readers' end of the queue.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<EventBody>,
    rate: Arc<Mutex<RateLimiter>>,
    bytes: Arc<AtomicUsize>,
    /// Signalled whenever the writer takes an event.
    room: Arc<Notify>,
    /// The last pause ran out: drop instead of pausing until room returns.
    stalled: Arc<AtomicBool>,
}

impl Sink {
    fn has_room(&self) -> bool {
        self.tx.capacity() >= QUEUE_EVENTS / 2
            && self.bytes.load(Ordering::Relaxed) <= QUEUE_BYTES / 2
    }

    /// Waits until the queue is at most half full, for at most [`STALL_LIMIT`]; after a
    /// wait that ran out, returns at once until room has returned.
    pub async fn wait_for_room(&self) {
        let deadline = tokio::time::Instant::now() + STALL_LIMIT;
        loop {
            let notified = self.room.notified();
            if self.has_room() {
                self.stalled.store(false, Ordering::Relaxed);
                return;
            }
            if self.stalled.load(Ordering::Relaxed) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.stalled.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Passes one program line on, or drops and counts it. Never waits.
    pub fn offer(&self, body: EventBody) {
        if !lock(&self.rate).admit(Instant::now()) {
            return;
        }
        let cost = queued_bytes(&body);
        if self.bytes.fetch_add(cost, Ordering::Relaxed) + cost > QUEUE_BYTES {
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            lock(&self.rate).count_overflow(1);
            return;
        }
        if let Err(e) = self.tx.try_send(body) {
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            if let mpsc::error::TrySendError::Full(_) = e {
                lock(&self.rate).count_overflow(1);
            }
        }
    }
}

/// The writer's end of the queue.
pub struct Source {
    rx: mpsc::Receiver<EventBody>,
    bytes: Arc<AtomicUsize>,
    room: Arc<Notify>,
}

impl Source {
    /// The next event; `None` once every [`Sink`] is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<EventBody> {
        let body = self.rx.recv().await?;
        self.bytes.fetch_sub(queued_bytes(&body), Ordering::Relaxed);
        self.room.notify_waiters();
        Some(body)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

pub fn log_body(stream: LogStream, line: Line) -> EventBody {
    EventBody::Log {
        stream,
        message: line.text,
        truncated: line.truncated,
    }
}

/// Reads `reader` to its end (or until `stop`), offering each line as a log event of
/// `stream`.
pub async fn pump_output<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: LogStream,
    max_line_bytes: usize,
    sink: Sink,
    mut stop: Stop,
) {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut buf = vec![0u8; CHUNK_BYTES];
    let offer = |line: Line| sink.offer(log_body(stream, line));
    loop {
        tokio::select! {
            () = sink.wait_for_room() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match read {
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], offer),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("airlock-worker: reading the program's {stream:?}: {e}");
                break;
            }
        }
    }
    if let Some(line) = splitter.finish() {
        offer(line);
    }
}
