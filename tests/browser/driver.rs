//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! the dashboard's browser tests (`tests/api/dashboard.rs`) and its timing
//! (`examples/dashboard_timing.rs`). Each `Browser` runs its own chromedriver on a free port
//! with a fresh profile and download folder; `close` ends the session and the driver.
//!
//! Missing browser binaries are a failure with the command that installs them, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// Where the binaries are, unless `CHROMIUM` / `CHROMEDRIVER` say otherwise.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
    pub downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} is not installed (looked for {}; set {var} to point elsewhere). The dashboard's \
         browser tests need Debian's Chromium and ChromeDriver: \
         `apt-get install -y chromium chromium-driver` (.ci/run installs them).",
        if var == "CHROMIUM" {
            "Chromium"
        } else {
            "ChromeDriver"
        },
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port for chromedriver: {e}"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a window of `width` ×
    /// `height` pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = binary("CHROMIUM", CHROMIUM);
        let chromedriver = binary("CHROMEDRIVER", CHROMEDRIVER);
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("a profile folder: {e}"));
        let downloads = tempfile::tempdir().unwrap_or_else(|e| panic!("a download folder: {e}"));
        let port = free_port();
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", chromedriver.display()));
        let url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&url).await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--no-first-run",
                    "--disable-extensions", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                }
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver refused a Chromium session: {e}"));
        Browser {
            client,
            driver,
            port,
            downloads,
            _profile: profile,
        }
    }

    /// Runs a script in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until the dashboard has finished its current load (`body[data-state]` is
    /// `ready`) and `also` holds; fails with the page's status line otherwise.
    pub async fn wait_ready(&self, also: &str) {
        let script = format!(
            "return document.body.dataset.state === 'ready' && ({also}) \
             ? 'ok' : (document.body.dataset.state || 'starting') + ': ' + \
             (document.getElementById('status') || {{}}).textContent"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(&script).await;
            if v == "ok" {
                return;
            }
            let s = v.as_str().unwrap_or_default().to_owned();
            assert!(!s.starts_with("error"), "the dashboard failed: {s}");
            assert!(
                Instant::now() < deadline,
                "the dashboard did not finish loading: {s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a file to be downloaded whole and returns its text.
    pub async fn downloaded(&self, name: &str) -> String {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Chromium writes to a `.crdownload` file and renames it when whole.
            if path.exists()
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                return text;
            }
            let present: Vec<_> = std::fs::read_dir(self.downloads.path())
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "{name} was not downloaded; the folder holds {present:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Ends the session (the browser exits) and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.stop_driver();
    }

    /// Asks chromedriver to quit (it ends the browsers it started), then ends it by its
    /// own process id if it is still there. Plain std, so it works from `Drop` after a
    /// failed assertion too.
    fn stop_driver(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            self.stop_driver();
        }
    }
}

async fn wait_for_driver(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer at {url} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An exact decimal string with thousands separators, as the dashboard writes it.
pub fn grouped(decimal: &str) -> String {
    let (sign, rest) = match decimal.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", decimal),
    };
    let (whole, fraction) = match rest.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (rest, None),
    };
    let mut g = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            g.push(',');
        }
        g.push(c);
    }
    match fraction {
        Some(f) => format!("{sign}{g}.{f}"),
        None => format!("{sign}{g}"),
    }
}
