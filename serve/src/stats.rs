//! The figures every worker keeps in shared memory (a block of pool
//! memory, one row of words per worker slot), read by the master for
//! heartbeats and by [`Control::workers`](crate::Control::workers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Words per worker slot.
pub(crate) const ROW: usize = 10;

const PID: usize = 0;
const STATE: usize = 1;
const SERVED: usize = 2;
const PANICS: usize = 3;
const HEARTBEAT: usize = 4;
const STARTED: usize = 5;
const RESTARTS: usize = 6;
const GENERATION: usize = 7;
const BUSY: usize = 8;

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    /// No worker in this slot (not started yet, or waiting to restart).
    Empty,
    /// Started, running its init hook.
    Starting,
    /// Accepting and serving connections.
    Serving,
    /// Finishing its connections before it exits.
    Stopping,
}

impl WorkerState {
    fn code(self) -> u64 {
        match self {
            WorkerState::Empty => 0,
            WorkerState::Starting => 1,
            WorkerState::Serving => 2,
            WorkerState::Stopping => 3,
        }
    }

    fn from_code(c: u64) -> WorkerState {
        match c {
            1 => WorkerState::Starting,
            2 => WorkerState::Serving,
            3 => WorkerState::Stopping,
            _ => WorkerState::Empty,
        }
    }
}

/// A worker slot as the master sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The service.
    pub service: String,
    /// The slot (0 to workers - 1).
    pub slot: usize,
    /// The operating-system pid of the slot's current worker (0: none).
    pub pid: u32,
    /// What it is doing.
    pub state: WorkerState,
    /// Connections served by the current worker.
    pub served: u64,
    /// Handler panics in the current worker.
    pub panics: u64,
    /// Connections the worker is serving now.
    pub busy: u64,
    /// How many times the slot's worker was replaced (crashes, kills,
    /// recycling, restarts).
    pub restarts: u64,
    /// The worker's generation in its slot (1 for the first).
    pub generation: u64,
    /// Milliseconds since the worker's last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Milliseconds since the worker started.
    pub uptime_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// One worker slot's row of words.
#[derive(Clone, Copy)]
pub(crate) struct Row<'a>(&'a [AtomicU64]);

impl<'a> Row<'a> {
    /// Row `slot` of `words` (an empty row past the end).
    pub(crate) fn of(words: &'a [AtomicU64], slot: usize) -> Row<'a> {
        let start = (slot * ROW).min(words.len());
        let end = (start + ROW).min(words.len());
        Row(&words[start..end])
    }

    fn set(self, i: usize, v: u64) {
        if let Some(w) = self.0.get(i) {
            w.store(v, Ordering::Release);
        }
    }

    fn get(self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// A worker starts in the slot.
    pub(crate) fn started(self, pid: u32, generation: u64) {
        let now = now_ms();
        self.set(SERVED, 0);
        self.set(PANICS, 0);
        self.set(BUSY, 0);
        self.set(STARTED, now);
        self.set(HEARTBEAT, now);
        self.set(GENERATION, generation);
        self.set(PID, u64::from(pid));
        self.set(STATE, WorkerState::Starting.code());
    }

    pub(crate) fn state(self, s: WorkerState) {
        self.set(STATE, s.code());
    }

    pub(crate) fn beat(self) {
        self.set(HEARTBEAT, now_ms());
    }

    pub(crate) fn served(self) -> u64 {
        self.0
            .get(SERVED)
            .map_or(0, |w| w.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// A connection starts (`true`) or ends being served.
    pub(crate) fn busy(self, start: bool) {
        if let Some(w) = self.0.get(BUSY) {
            if start {
                w.fetch_add(1, Ordering::AcqRel);
            } else {
                w.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Connections being served now.
    pub(crate) fn busy_now(self) -> u64 {
        self.get(BUSY)
    }

    pub(crate) fn panicked(self) {
        if let Some(w) = self.0.get(PANICS) {
            w.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The master empties the slot (its worker is gone).
    pub(crate) fn emptied(self) {
        self.set(PID, 0);
        self.set(BUSY, 0);
        self.set(STATE, WorkerState::Empty.code());
    }

    pub(crate) fn restarted(self) {
        if let Some(w) = self.0.get(RESTARTS) {
            w.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Milliseconds since the last heartbeat.
    pub(crate) fn heartbeat_age(self) -> u64 {
        now_ms().saturating_sub(self.get(HEARTBEAT))
    }

    pub(crate) fn status(self, service: &str, slot: usize) -> WorkerStatus {
        let state = WorkerState::from_code(self.get(STATE));
        let now = now_ms();
        WorkerStatus {
            service: service.to_owned(),
            slot,
            pid: u32::try_from(self.get(PID)).unwrap_or(0),
            state,
            served: self.get(SERVED),
            panics: self.get(PANICS),
            busy: self.get(BUSY),
            restarts: self.get(RESTARTS),
            generation: self.get(GENERATION),
            heartbeat_age_ms: now.saturating_sub(self.get(HEARTBEAT)),
            uptime_ms: now.saturating_sub(self.get(STARTED)),
        }
    }
}
