//! A server running as a child process of this binary, killed when dropped.
//!
//! The child prints its port as the first line of its stdout. Its stdin is a pipe that the
//! parent never writes to: when the parent dies, however it dies, the pipe closes and the child
//! exits (see [`crate::serve`]), so no server outlives a benchmark.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// A running child server; SIGKILLed on drop.
#[derive(Debug)]
pub struct ChildServer {
    name: &'static str,
    child: Child,
    pub port: u16,
}

impl ChildServer {
    /// Re-executes this binary with `args` and waits for the port line.
    pub fn spawn(name: &'static str, args: &[&OsStr]) -> anyhow::Result<ChildServer> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {name} server"))?;
        // From here on, an early return kills the child.
        let mut server = ChildServer { name, child, port: 0 };
        let stdout = server.child.stdout.take().context("child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).with_context(|| format!("reading the {name} server's port"))?;
        server.port =
            line.trim().parse().with_context(|| format!("the {name} server printed `{}`, not a port", line.trim()))?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().with_context(|| format!("killing the {} server", self.name))?;
        self.child.wait().with_context(|| format!("waiting for the {} server", self.name))?;
        Ok(())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
