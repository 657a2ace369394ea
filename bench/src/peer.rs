//! What the peer echo servers share: the `--listen` option, the start-up
//! line the [`harness`](crate::harness) reads, and a clean exit on
//! SIGTERM/SIGINT.
//!
//! Each peer is a binary of this crate shaped like the server a user would
//! otherwise pick (the fastwebsockets example, a tokio-tungstenite echo):
//! one tokio current-thread runtime, one task per connection. Only the
//! accept loop lives here, so the per-connection code in each binary stays
//! exactly the upstream shape.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use loadgen::usage::Failure;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

/// Options of a peer echo server.
#[derive(Debug, Parser)]
#[command(
    after_help = "Exit codes: 0 stopped by SIGTERM or SIGINT, 1 the address cannot be \
                        listened on (or another runtime error), 2 usage error."
)]
pub struct PeerArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

impl PeerArgs {
    /// Parses the command line with `about` as the first line of `--help`
    /// (each peer binary names itself; the struct's doc comment would not).
    /// Usage errors exit 2 with clap's message, like every other binary.
    pub fn parse_with_about(about: &'static str) -> PeerArgs {
        let matches = PeerArgs::command().about(about).get_matches();
        PeerArgs::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }
}

/// Runs `serve_connection` for every accepted TCP connection on a tokio
/// current-thread runtime until SIGTERM or SIGINT, then exits 0; a failure
/// (the address is taken, say) is one line `<name>: error: ...` and exit 1.
/// Prints `<name> listening on http://ADDR` to stderr once bound.
pub fn run<F, Fut>(name: &str, args: &PeerArgs, serve_connection: F) -> ExitCode
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match serve(name, args, serve_connection) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            Failure::runtime(anyhow::Error::new(e).context(format!("listening on {}", args.listen)))
                .exit(name)
        }
    }
}

fn serve<F, Fut>(name: &str, args: &PeerArgs, serve_connection: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!("{name} listening on http://{}", listener.local_addr()?);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_connection(stream));
                    }
                    // Out of fds and the like: keep serving the others.
                    Err(e) => eprintln!("{name}: accept: {e}"),
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        Ok(())
    })
}
