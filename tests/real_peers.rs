//! Compatibility with SMTP servers this project did not write. Each test starts the peer
//! itself; the test command installs them (see `scripts/test`).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{free_port, temp_dir, Server};

/// A child process killed when the test ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the peer did not listen on port {port}");
}

/// Messages in a maildir's `new/` folder.
fn maildir_messages(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("new"))
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn delivers_to_aiosmtpd() {
    let port = free_port();
    // aiosmtpd creates the maildir's folders only when the directory does not exist yet.
    let maildir = temp_dir("aiosmtpd").join("maildir");
    let child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting aiosmtpd (python3 -m pip install aiosmtpd)");
    let _peer = Peer(child);
    wait_for_port(port);

    let config = format!("[routes]\n\"example.test\" = \"127.0.0.1:{port}\"\n");
    let server = Server::start("aiosmtpd", &config).await;
    let (status, body) = server
        .post("/transmissions", &json!({
            "recipients": [{"address": {"email": "ann@example.test", "name": "Ann Lee"}, "substitution_data": {"first": "Ann"}}],
            "content": {"from": {"email": "shop@sender.test", "name": "Shop"}, "subject": "For {{first}}", "html": "<p>Hi {{first}}</p>", "text": "Hi {{first}}"}
        }))
        .await;
    assert_eq!(status, 200, "{body}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut messages = maildir_messages(&maildir);
    while messages.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        messages = maildir_messages(&maildir);
    }
    assert_eq!(
        messages.len(),
        1,
        "aiosmtpd stored the message; log:\n{}",
        server.log()
    );
    let message = &messages[0];
    assert!(message.contains("Subject: For Ann"), "{message}");
    assert!(
        message.contains("To: \"Ann Lee\" <ann@example.test>"),
        "{message}"
    );
    assert!(
        message.contains("<p>Hi Ann</p>") && message.contains("Hi Ann"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(maildir);
}
