//! How an operation in flight is named: its kind in the low byte of the
//! SQE's `user_data`, the connection slot above it.

/// What an in-flight operation is, in the low byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// The listener's multishot accept.
    Accept = 1,
    /// A connection's recv (multishot once it is a WebSocket).
    Recv = 2,
    /// A connection's one send in flight.
    Send = 3,
    /// A cancel of another operation.
    Cancel = 4,
    /// The loop's multishot tick timeout.
    Tick = 5,
}

/// The `user_data` of operation `op` on connection slot `key` (0 for the
/// loop's own operations).
pub(super) fn user_data(key: usize, op: Op) -> u64 {
    ((key as u64) << 8) | op as u64
}

/// The slot and operation a completion's `user_data` names; `None` for an
/// operation the loop never submits.
pub(super) fn decode_user_data(user_data: u64) -> (usize, Option<Op>) {
    let op = match user_data & 0xff {
        1 => Some(Op::Accept),
        2 => Some(Op::Recv),
        3 => Some(Op::Send),
        4 => Some(Op::Cancel),
        5 => Some(Op::Tick),
        _ => None,
    };
    ((user_data >> 8) as usize, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_for_every_op_and_large_slots() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Cancel, Op::Tick] {
            for key in [0, 1, 255, 256, 65_535, 1 << 40] {
                assert_eq!(decode_user_data(user_data(key, op)), (key, Some(op)));
            }
        }
        assert_eq!(decode_user_data(7 << 8), (7, None), "an unknown kind");
    }
}
