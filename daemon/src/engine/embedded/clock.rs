//! The one source of "now" for the runtime: the system clock, or a virtual clock that only
//! moves when an administrator (or a test) moves it, so every timer behaviour can be shown
//! and tested without waiting.

use std::sync::Mutex;

use chrono::{DateTime, FixedOffset, Utc};
use statflow_workflows::calendar::shanghai;

pub enum Clock {
    System,
    Virtual(Mutex<DateTime<FixedOffset>>),
}

impl Clock {
    pub fn now(&self) -> DateTime<FixedOffset> {
        match self {
            Clock::System => Utc::now().with_timezone(&shanghai()),
            Clock::Virtual(now) => *now.lock().expect("not poisoned"),
        }
    }

    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual(_))
    }

    /// Moves a virtual clock; time never goes backwards.
    pub fn set(&self, to: DateTime<FixedOffset>) {
        if let Clock::Virtual(now) = self {
            let mut now = now.lock().expect("not poisoned");
            if to > *now {
                *now = to;
            }
        }
    }
}
