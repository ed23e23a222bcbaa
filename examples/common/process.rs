//! What the benchmarks that run the server as a process share: starting it and the console
//! from the release build beside the benchmark, a free port, and reading its memory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A process, stopped when dropped: at the end, or when the benchmark panics.
pub struct Stopped(pub std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> PathBuf {
    // target/release/examples/bench_… -> target/release/anchorfed
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("anchorfed")
}

pub fn anchorfed(dir: &Path, url: &str) -> Command {
    let mut c = Command::new(binary());
    c.env_remove("ANCHORFED_CONFIG")
        .env("DATABASE_URL", url)
        .env("ANCHORFED_DATA_DIR", dir)
        .current_dir(dir);
    c
}

pub fn console(dir: &Path, url: &str, args: &[&str]) -> String {
    let out = anchorfed(dir, url)
        .args(args)
        .output()
        .expect("run anchorfed (build it: cargo build --release)");
    assert!(
        out.status.success(),
        "anchorfed {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
