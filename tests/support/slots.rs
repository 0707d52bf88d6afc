//! How many whole runs (a sandbox, a load, chaos) a test binary lets go at once.
//!
//! Such runs mostly wait on the sandbox's clock, so several fit on 2 cores; too many at once
//! starve the sandbox's instances and turn timing verdicts not evaluable. A run takes
//! `weight` slots of a fixed number (the microservices sandbox, ~18 processes, weighs more
//! than a queue-worker one) and gives them back when its [`Slot`] drops.

use std::sync::{Condvar, Mutex};

/// A fixed number of slots shared by the threads of one test binary.
pub struct Slots {
    free: Mutex<Option<usize>>,
    returned: Condvar,
    capacity: fn() -> usize,
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
            free: Mutex::new(None),
            returned: Condvar::new(),
            capacity,
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        (self.capacity)().max(1)
    }

    /// Waits until `weight` slots are free and takes them. A weight over the capacity takes
    /// them all (the run goes alone).
    pub fn take(&self, weight: usize) -> Slot<'_> {
        let capacity = self.capacity();
        let weight = weight.clamp(1, capacity);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = free.get_or_insert(capacity);
            if *now >= weight {
                *now -= weight;
                return Slot {
                    slots: self,
                    weight,
                };
            }
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = free.as_mut() {
            *n += self.weight;
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
