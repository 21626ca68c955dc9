//! The jobs waiting for the model, quick ones first.
//!
//! One thread runs the model (a model need not be `Send`: the CUDA device
//! is not), and each computation already spreads over the cores. Requests
//! that draw samples can take seconds; a mean and std of a whole image take
//! milliseconds. Quick jobs therefore go before slow ones, so a page stays
//! live while samples are drawn; and the queue is bounded, so a flood of
//! requests is refused ("busy") instead of piling up without end.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};

/// Which line a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Answered in milliseconds: means, test signals.
    Quick,
    /// May take seconds: anything that draws samples.
    Slow,
}

/// A bounded two-lane queue.
pub(super) struct Queue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
    capacity: usize,
}

struct State<J> {
    quick: VecDeque<J>,
    slow: VecDeque<J>,
    closed: bool,
}

impl<J> Queue<J> {
    /// An empty queue that holds at most `capacity` jobs.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                quick: VecDeque::new(),
                slow: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    /// Adds a job; gives it back when the queue is full or closed.
    pub fn push(&self, lane: Lane, job: J) -> Result<(), J> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed || state.quick.len() + state.slow.len() >= self.capacity {
            return Err(job);
        }
        match lane {
            Lane::Quick => state.quick.push_back(job),
            Lane::Slow => state.slow.push_back(job),
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, quick ones first; waits for one. `None` once closed.
    pub fn pop(&self) -> Option<J> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.closed {
                return None;
            }
            if let Some(job) = state.quick.pop_front().or_else(|| state.slow.pop_front()) {
                return Some(job);
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the queue: waiting and later `pop`s return `None`, `push`es
    /// fail, and the jobs still queued are dropped.
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        state.quick.clear();
        state.slow.clear();
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_jobs_go_first_and_the_queue_is_bounded() {
        let q = Queue::new(3);
        q.push(Lane::Slow, 1).unwrap();
        q.push(Lane::Quick, 2).unwrap();
        q.push(Lane::Slow, 3).unwrap();
        assert_eq!(q.push(Lane::Quick, 4), Err(4));
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(2), Some(1), Some(3)));
        q.push(Lane::Quick, 5).unwrap();
        q.close();
        assert_eq!(q.pop(), None);
        assert_eq!(q.push(Lane::Quick, 6), Err(6));
    }
}
