//! A private network of "hosts" made of Linux network namespaces, for tests
//! that need several machines (engines behind a load balancer, load
//! generators on other hosts).
//!
//! [`Lab::create`] builds it with `ip netns` and veth pairs: one namespace
//! per host, each with its own `lo` and one `eth0` holding a private
//! address; the other end of every `eth0` is a port of a bridge that lives
//! in a namespace of its own. Nothing is added to the test process's own
//! namespace (no interface, address or route), and no namespace has a
//! default route or a link out, so no packet can leave the machine. Names
//! carry the test's pid, so parallel runs never collide. Dropping the lab
//! (also when the test fails) deletes every namespace, and with them the
//! veth pairs and the bridge; namespaces left by a test that was killed
//! are deleted by the next one.
//!
//! Needs root (CAP_SYS_ADMIN) and `ip` from iproute2.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Every namespace of every lab starts with this.
const PREFIX: &str = "ringecho-";
/// The prefix length of the private subnet.
const SUBNET_BITS: u8 = 24;

/// Runs `ip ARGS`, failing the test with its output.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `ip ARGS` and its standard output.
fn ip_output(args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip (iproute2)");
    assert!(output.status.success(), "ip {} failed", args.join(" "));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One host of a lab.
#[derive(Debug, Clone)]
pub struct Host {
    /// The name the test gives it (`engine-a`), also its bridge port's name.
    pub label: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the private network.
    pub addr: Ipv4Addr,
}

/// A private network of namespaces, deleted on drop.
pub struct Lab {
    bridge_netns: String,
    hosts: Vec<Host>,
}

impl Lab {
    /// Builds a network with one host per `(label, address)`, all on one
    /// /24. Labels are at most 15 bytes (they name interfaces).
    pub fn create(hosts: &[(&str, Ipv4Addr)]) -> Lab {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "this test builds network namespaces and must run as root"
        );
        remove_stale_labs();
        let own = format!("{PREFIX}{}-", std::process::id());
        let mut lab = Lab {
            bridge_netns: format!("{own}net"),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &lab.bridge_netns]);
        ip(&[
            "-n",
            &lab.bridge_netns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
        ]);
        ip(&["-n", &lab.bridge_netns, "link", "set", "br0", "up"]);
        for (label, addr) in hosts {
            assert!(
                label.len() <= 15,
                "label {label:?} too long for an interface"
            );
            let host = Host {
                label: label.to_string(),
                netns: format!("{own}{label}"),
                addr: *addr,
            };
            ip(&["netns", "add", &host.netns]);
            // Registered at once, so a failure below still deletes it.
            lab.hosts.push(host.clone());
            let n = host.netns.as_str();
            ip(&["-n", n, "link", "set", "lo", "up"]);
            // Created inside the host's namespace, its peer straight in the
            // bridge's: the veth pair never appears in ours.
            ip(&[
                "-n",
                n,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                label,
                "netns",
                &lab.bridge_netns,
            ]);
            let cidr = format!("{addr}/{SUBNET_BITS}");
            ip(&["-n", n, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", n, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &lab.bridge_netns,
                "link",
                "set",
                label,
                "master",
                "br0",
                "up",
            ]);
            let routes = ip_output(&["-n", n, "route", "show"]);
            assert!(
                !routes.contains("default"),
                "{n} has a default route:\n{routes}"
            );
        }
        lab
    }

    /// The host labelled `label`.
    pub fn host(&self, label: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.label == label)
            .unwrap_or_else(|| panic!("no host {label} in the lab"))
    }

    /// Every namespace of the lab, the bridge's first.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.bridge_netns.clone())
            .chain(self.hosts.iter().map(|h| h.netns.clone()))
            .collect()
    }

    /// `ip netns exec NETNS`: the prefix that runs a program on `label`.
    /// `ip` enters the namespace and then `exec`s the program, so the
    /// child's pid is the program's own (signals reach it directly).
    pub fn exec_prefix(&self, label: &str) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.host(label).netns.clone(),
        ]
    }

    /// A command that runs `program` on host `label`.
    pub fn command(&self, label: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let prefix = self.exec_prefix(label);
        let mut command = Command::new(&prefix[0]);
        command.args(&prefix[1..]).arg(program);
        command
    }

    /// Runs `f` on a fresh thread that has entered host `label`'s network
    /// namespace, so the sockets `f` opens are that host's.
    pub fn run_on<T: Send>(&self, label: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = Path::new("/run/netns").join(&self.host(label).netns);
        let netns = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns(2) gets a valid open descriptor of a
                    // network namespace (the file `ip netns add` bind-mounted)
                    // and CLONE_NEWNET, so it only switches the network
                    // namespace of the calling thread: this scoped thread,
                    // which ends right after `f`. No other thread, and no
                    // socket opened before, is affected.
                    let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(
                        rc,
                        0,
                        "setns into {}: {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    );
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Hosts first, then the bridge; deleting a namespace deletes its
        // interfaces, and a veth pair goes with either end.
        for netns in self.namespaces().iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", netns])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes the namespaces of labs whose test process no longer exists
/// (a test killed before its drop ran).
fn remove_stale_labs() {
    for line in ip_output(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The namespaces of labs that exist right now (for checks that a lab was
/// removed).
pub fn lab_namespaces(pid: u32) -> Vec<String> {
    let own = format!("{PREFIX}{pid}-");
    ip_output(&["netns", "list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&own))
        .map(str::to_owned)
        .collect()
}
