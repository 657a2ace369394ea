//! How an operation in flight is named: its kind in the low byte of the
//! SQE's `user_data`, the connection slot above it.

/// What an in-flight operation is, in the low byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Tick = 5,
}

pub(super) fn user_data(key: usize, op: Op) -> u64 {
    ((key as u64) << 8) | op as u64
}

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
