//! `--socket-receive-buffer` and `--socket-send-buffer` reach the sockets the
//! server accepts, on both backends: the kernel's own view of the server end
//! of a live WebSocket (`ss -tm`, its `skmem` receive and send buffers) shows
//! the requested sizes, doubled as Linux does, while a server without the
//! options keeps the kernel's defaults.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::server::Server;
use common::{backend_tests, ws, Backend};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

/// 48 KiB: the kernel doubles it to 96 KiB, which differs from every default
/// in `net.ipv4.tcp_rmem`/`tcp_wmem` here, so a match cannot be a coincidence.
const RECEIVE: usize = 48 * 1024;
/// 24 KiB, doubled to 48 KiB.
const SEND: usize = 24 * 1024;

/// The kernel's receive and send buffer (`rb`, `tb` of `skmem`) of the server
/// end of the TCP connection `client` -> `server`.
fn server_socket_buffers(server: SocketAddr, client: SocketAddr) -> (usize, usize) {
    let filter = format!(
        "( sport = :{} and dport = :{} )",
        server.port(),
        client.port()
    );
    let output = Command::new("ss")
        .args(["-tmnH", "state", "established", &filter])
        .output()
        .expect("run ss (iproute2; ./scripts/test-all.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "ss failed: {output:?}");
    let field = |name: &str| -> usize {
        let start = text
            .find(&format!(",{name}"))
            .unwrap_or_else(|| panic!("no {name} in ss output:\n{text}"))
            + name.len()
            + 1;
        let digits: String = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("skmem value is a number")
    };
    (field("rb"), field("tb"))
}

/// Opens a WebSocket, checks an echo, and returns the server end's buffers.
async fn buffers_of_a_live_websocket(server: &Server) -> (usize, usize) {
    let mut socket = ws::connect(server.addr()).await;
    ws::assert_echo(&mut socket, Message::Text("sized".into())).await;
    let client = match socket.get_ref() {
        MaybeTlsStream::Plain(stream) => stream.local_addr().expect("client address"),
        _ => unreachable!("plain ws:// connections only"),
    };
    let buffers = server_socket_buffers(server.addr(), client);
    ws::close(socket).await;
    buffers
}

async fn accepted_sockets_get_the_requested_kernel_buffers(backend: Backend) {
    let receive = RECEIVE.to_string();
    let send = SEND.to_string();
    let sized = Server::start(
        backend,
        &[
            "--threads",
            "1",
            "--socket-receive-buffer",
            &receive,
            "--socket-send-buffer",
            &send,
        ],
    )
    .await;
    assert_eq!(
        buffers_of_a_live_websocket(&sized).await,
        (2 * RECEIVE, 2 * SEND),
        "the server end of the connection does not carry the requested buffers"
    );
    let effective = format!(
        "SO_RCVBUF {RECEIVE} B requested, {} B effective",
        2 * RECEIVE
    );
    assert!(
        sized.log().iter().any(|line| line.contains(&effective)),
        "the effective size is not logged: {:?}",
        sized.log()
    );

    let default = Server::start(backend, &["--threads", "1"]).await;
    let (receive_default, _) = buffers_of_a_live_websocket(&default).await;
    assert_ne!(
        receive_default,
        2 * RECEIVE,
        "without the option the kernel default should apply"
    );
}

backend_tests!(accepted_sockets_get_the_requested_kernel_buffers);
