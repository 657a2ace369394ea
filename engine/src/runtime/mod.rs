//! The backend-neutral runtime: what both backends' workers stand on.
//!
//! - [`shared`]: the state all workers share ([`shared::Shared`]) and the WebSocket
//!   slots under `--max-connections` ([`shared::Admission`]);
//! - [`worker`]: starting and pinning a worker thread ([`worker::WorkerSpec`]);
//! - [`endpoints`]: the HTTP response path (routing, admission, counting);
//! - [`keep_alive`]: the keep-alive and deadline rules of an open
//!   WebSocket, and the sweep period that checks them;
//! - [`listener`]: the `SO_REUSEPORT` listeners and kernel socket buffers;
//! - [`fd_limit`]: the file-descriptor limit, and accepting at it;
//! - [`shutdown`]: the worker-local stop flag and the process's signals;
//! - [`allocator`]: giving the allocator's free pages back when a worker
//!   goes quiet; [`process`]: process-wide settings made once at start.
//!
//! Nothing here knows which backend runs: the backends import this module,
//! never the other way round.

pub mod allocator;
pub mod endpoints;
pub mod fd_limit;
pub mod keep_alive;
pub mod listener;
pub mod process;
pub mod shared;
pub mod shutdown;
pub mod worker;
