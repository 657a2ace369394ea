//! The messages a connection has sent and not yet seen echoed, oldest first.
//!
//! A FIFO like `VecDeque`, except that the oldest message is kept inline,
//! inside the connection. With one message in flight (the closed loop of
//! `load_test`, every game preset) the queue then never touches the heap:
//! profiling showed the separate `VecDeque` buffer as a cache miss on
//! every echo, the largest single user-space cost per message at
//! 100 x 20 B.

use std::collections::VecDeque;

use crate::payload::Pending;

/// Outstanding messages of one connection, oldest first.
#[derive(Debug, Default)]
pub struct InFlight {
    oldest: Option<Pending>,
    rest: VecDeque<Pending>,
}

impl InFlight {
    /// An empty queue with room for `capacity` messages before it allocates.
    pub fn with_capacity(capacity: usize) -> InFlight {
        InFlight {
            oldest: None,
            rest: VecDeque::with_capacity(capacity.saturating_sub(1)),
        }
    }

    /// Number of messages outstanding.
    #[inline]
    pub fn len(&self) -> usize {
        self.oldest.is_some() as usize + self.rest.len()
    }

    /// True when nothing is outstanding.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.oldest.is_none()
    }

    /// Adds the newest message.
    #[inline]
    pub fn push_back(&mut self, p: Pending) {
        if self.oldest.is_none() {
            self.oldest = Some(p);
        } else {
            self.rest.push_back(p);
        }
    }

    /// Removes and returns the oldest message.
    #[inline]
    pub fn pop_front(&mut self) -> Option<Pending> {
        let p = self.oldest.take()?;
        self.oldest = self.rest.pop_front();
        Some(p)
    }

    /// Forgets every outstanding message.
    pub fn clear(&mut self) {
        self.oldest = None;
        self.rest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64) -> Pending {
        Pending {
            seq,
            len: 20,
            sent_ns: seq * 10,
            intended_ns: seq * 10,
        }
    }

    #[test]
    fn first_in_first_out() {
        let mut q = InFlight::with_capacity(4);
        assert!(q.is_empty());
        for s in 0..5 {
            q.push_back(p(s));
        }
        assert_eq!(q.len(), 5);
        assert_eq!(q.pop_front().map(|x| x.seq), Some(0));
        q.push_back(p(5));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_front())
            .map(|x| x.seq)
            .collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5]);
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
        q.push_back(p(9));
        q.clear();
        assert_eq!(q.len(), 0);
    }
}
