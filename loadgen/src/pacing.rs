//! What the pacing drivers ([`crate::closed`], [`crate::open`]) need to
//! queue a message on a connection: the payload template, the sizes, the
//! end of the load, the worker's random source and its send counter.

use rand::rngs::StdRng;
use rand::Rng;

use crate::config::SizeRange;
use crate::payload::Template;

/// What the drivers need to queue a message.
#[derive(Debug)]
pub struct SendCtx<'a> {
    /// The worker's payload template (its kind: text or binary).
    pub tmpl: &'a Template,
    /// The worker's CSPRNG (mask keys, random sizes).
    pub rng: &'a mut StdRng,
    /// Payload sizes.
    pub size: SizeRange,
    /// No message is sent at or after this time (ns since run start).
    pub end_ns: u64,
    /// Counts the messages queued.
    pub sent: &'a mut u64,
}

impl SendCtx<'_> {
    /// The size of the next message.
    #[inline]
    pub fn pick_size(&mut self) -> usize {
        if self.size.is_fixed() {
            self.size.min
        } else {
            self.rng.gen_range(self.size.min..=self.size.max)
        }
    }
}
