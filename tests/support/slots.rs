//! How many whole runs (a sandbox, a load, chaos) a test binary lets go at once.
//!
//! Such runs mostly wait on the sandbox's clock, so several fit on 2 cores; too many at once
//! starve the sandbox's instances and turn timing verdicts not evaluable. A run takes
//! `weight` slots of a fixed number (the microservices sandbox, ~18 processes, weighs more
//! than a queue-worker one) and gives them back when its [`Slot`] drops. Runs also start
//! [`STAGGER`] apart: a sandbox's start and its load's first seconds are its busiest, and
//! runs started together would keep their busy seconds (the faults' offsets) together.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The least time between two runs' starts.
pub const STAGGER: Duration = Duration::from_secs(2);

/// A fixed number of slots shared by the threads of one test binary.
pub struct Slots {
    state: Mutex<State>,
    returned: Condvar,
    capacity: fn() -> usize,
}

struct State {
    /// Free slots; `None` until first taken (the capacity is read then).
    free: Option<usize>,
    /// When the last run taking slots may start.
    last_start: Option<Instant>,
}

/// Slots held by one run until dropped.
pub struct Slot<'a> {
    slots: &'a Slots,
    weight: usize,
}

impl Slots {
    /// Slots whose number `capacity` gives when first taken (e.g. from the environment).
    pub const fn new(capacity: fn() -> usize) -> Self {
        Slots {
            state: Mutex::new(State {
                free: None,
                last_start: None,
            }),
            returned: Condvar::new(),
            capacity,
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        (self.capacity)().max(1)
    }

    /// Waits until `weight` slots are free and takes them, then until [`STAGGER`] after the
    /// previous run's start. A weight over the capacity takes them all (the run goes alone).
    pub fn take(&self, weight: usize) -> Slot<'_> {
        let capacity = self.capacity();
        let weight = weight.clamp(1, capacity);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let free = state.free.get_or_insert(capacity);
            if *free >= weight {
                *free -= weight;
                break;
            }
            state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let now = Instant::now();
        let start = state
            .last_start
            .map_or(now, |last| (last + STAGGER).max(now));
        state.last_start = Some(start);
        drop(state);
        std::thread::sleep(start - now);
        Slot {
            slots: self,
            weight,
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(free) = state.free.as_mut() {
            *free += self.weight;
        }
        self.slots.returned.notify_all();
    }
}

/// A count from the environment variable `name`, or `default` when unset or not a
/// positive number.
pub fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(default)
}
