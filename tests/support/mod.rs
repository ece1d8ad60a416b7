//! Running the real `sluice` binary for end-to-end tests: a config of the test's own in a fresh
//! data directory, loopback ports, and a client for its API.

#![allow(dead_code)]

pub mod dns;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The API key every test server accepts.
pub const KEY: &str = "test-key";

/// A free loopback port: bound, read and released. Another process could take it in between,
/// which on a test machine's loopback does not happen in practice.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("sluice-e2e-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a temporary directory");
    dir
}

/// A running `sluice serve`.
pub struct Server {
    child: Option<Child>,
    dir: PathBuf,
    config: PathBuf,
    /// The API's base URL, `http://127.0.0.1:PORT/api/v1`.
    pub api: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts a server whose config is the test's `extra` TOML plus a listener, a data
    /// directory and the test key, and waits until its API answers.
    pub async fn start(name: &str, extra: &str) -> Server {
        Server::start_with(name, "", None, extra).await
    }

    /// Starts a server with `api_extra` added to its `[api]` table.
    pub async fn start_with_api(name: &str, api_extra: &str, extra: &str) -> Server {
        Server::start_with(name, api_extra, None, extra).await
    }

    /// Starts a server whose spool lives at `spool` instead of the test's own directory.
    pub async fn start_with_spool(name: &str, spool: &Path, extra: &str) -> Server {
        Server::start_with(name, "", Some(spool), extra).await
    }

    /// Starts a server serving HTTPS with the given PEM certificate and key files.
    pub async fn start_https(name: &str, cert: &Path, key: &Path, extra: &str) -> Server {
        let api = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        );
        Server::start_with(name, &api, None, extra).await
    }

    async fn start_with(name: &str, api_extra: &str, spool: Option<&Path>, extra: &str) -> Server {
        // The test's own HTTP client needs the process-wide crypto provider, as the server does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = temp_dir(name);
        let port = free_port();
        let config = dir.join("sluice.toml");
        let spool = spool.map_or_else(|| dir.join("data"), Path::to_path_buf);
        let text = format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n{api_extra}[spool]\npath = \"{}\"\n[[api_keys]]\nkey = \"{KEY}\"\n{extra}\n",
            spool.display()
        );
        let scheme = if api_extra.contains("tls_cert") {
            "https"
        } else {
            "http"
        };
        std::fs::write(&config, text).expect("writing the test config");
        let mut server = Server {
            child: None,
            dir,
            config,
            api: format!("{scheme}://127.0.0.1:{port}/api/v1"),
            // The test's certificate is self-signed; what is tested is the server, not the PKI.
            client: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .expect("an HTTP client"),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        self.spawn_process();
        self.wait_until_ready().await;
    }

    fn spawn_process(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sluice.log"))
            .expect("opening the server log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env(
                "RUST_LOG",
                "info,sluice_delivery=trace,sluice_queue=debug,sluice_events=debug",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the sluice binary");
        self.child = Some(child);
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .client
                .get(format!("{}/webhooks", self.api))
                .header("Authorization", KEY)
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sluice did not answer within 30 s; log:\n{}", self.log());
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process and kills it after `after`, whether or not it finished starting.
    pub async fn crash_during_startup(&mut self, after: Duration) {
        self.kill();
        self.spawn_process();
        tokio::time::sleep(after).await;
        self.kill();
    }

    /// Starts the process again on the same config and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sluice.log")).unwrap_or_default()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration file the server was started with, for tests that edit and reload it.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Whether the process is still running.
    pub fn child_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// POSTs JSON to an API path and returns the status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// GETs an API path.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// PUTs JSON to an API path.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// DELETEs an API path.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.call_as(KEY, method, path, body).await
    }

    /// Calls an API path with another key than the test key.
    pub async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api))
            .header("Authorization", key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("calling the API");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Message events of the given types from webhook batch elements (`{"msys":{"message_event":…}}`).
pub fn message_events(events: &[Value], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| e.get("msys")?.get("message_event"))
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

/// Config that routes `example.test` to `route_to` and retries and batches webhooks quickly.
pub fn fast_config(route_to: &str) -> String {
    format!(
        "[routes]\n\"example.test\" = \"{route_to}\"\n\
         [queue]\nretry_schedule = [\"1s\"]\nretry_jitter = 0.0\n\
         [webhooks]\nbatch_interval = \"200ms\"\nretry_schedule = [\"1s\"]\n"
    )
}

/// The loopback address of a sink, as a `[routes]` entry value.
pub fn hop(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}
