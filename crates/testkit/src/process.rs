//! The real `chatgate` binary as a child process, for the tests that are about processes
//! (kill -9, SIGTERM, restarts, file limits, a browser talking to the real server).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::gateway::TOKEN;
use crate::http::Api;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test's own servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `chatgate serve` on 127.0.0.1:`port` with the test API token; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Serve {
    pub child: Child,
    pub api: Api,
    pub port: u16,
}

impl Serve {
    /// Starts `binary` (the calling test's `env!("CARGO_BIN_EXE_chatgate")`) as `serve` with `config`
    /// and `data`, plus `extra` arguments, under `prefix` (e.g. `["prlimit", "--nofile=1024:1024"]`),
    /// and waits until `/healthz` answers.
    pub async fn start(binary: &str, config: &Path, data: &Path, port: u16, extra: &[&str], prefix: &[&str]) -> Serve {
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("CHATGATE_API_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", prefix.first().unwrap_or(&binary)));
        let serve = Serve { child, api: Api::new(format!("http://127.0.0.1:{port}")), port };
        serve.api.wait_healthy().await;
        serve
    }

    /// SIGKILL, then reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}
