//! What a completion is for: the operation and the socket entry, packed
//! into the 64-bit `user_data` the kernel hands back.
//!
//! Layout: bits 0-31 the socket entry's index, bits 32-55 its generation
//! (so a completion of a socket that is gone never reaches the entry's
//! next occupant), bits 56-63 the [`Op`].

/// The generation bits kept in `user_data`.
pub const GENERATION_MASK: u32 = 0x00FF_FFFF;
/// The index of operations that belong to no socket.
pub const NO_SOCKET: u32 = u32::MAX;

/// The operations the driver submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `IORING_OP_CONNECT` of a socket.
    Connect = 1,
    /// The multishot recv of a socket.
    Recv = 2,
    /// A send of a socket.
    Send = 3,
    /// The cancel of a closed socket's operations (or of all, at the end).
    Cancel = 4,
    /// The ring timeout.
    Timer = 5,
    /// A move of the ring timeout (completes only when it fails).
    TimerUpdate = 6,
    /// The one-shot poll on the stop signal.
    Stop = 7,
}

/// A packed `user_data` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserData(pub u64);

impl UserData {
    /// `op` on socket entry `index` of generation `generation`.
    pub fn new(op: Op, index: u32, generation: u32) -> UserData {
        UserData(
            (op as u64) << 56 | u64::from(generation & GENERATION_MASK) << 32 | u64::from(index),
        )
    }

    /// The operation.
    pub fn op(self) -> Op {
        match (self.0 >> 56) as u8 {
            1 => Op::Connect,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Timer,
            6 => Op::TimerUpdate,
            7 => Op::Stop,
            other => unreachable!("user_data with unknown op {other}"),
        }
    }

    /// The socket entry's index.
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// The socket entry's generation.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32 & GENERATION_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        for op in [
            Op::Connect,
            Op::Recv,
            Op::Send,
            Op::Cancel,
            Op::Timer,
            Op::TimerUpdate,
            Op::Stop,
        ] {
            let ud = UserData::new(op, 123_456, 0x12_3456);
            assert_eq!(
                (ud.op(), ud.index(), ud.generation()),
                (op, 123_456, 0x12_3456)
            );
        }
        let ud = UserData::new(Op::Cancel, NO_SOCKET, GENERATION_MASK + 5);
        assert_eq!((ud.index(), ud.generation()), (NO_SOCKET, 4));
    }
}
