//! A spool disk that fills up under a running server: new mail is refused with 503 and nothing
//! acknowledged before is lost.
//!
//! The spool goes on a small tmpfs mounted for the test, so mounting needs root (CI runs as
//! root). Without it the test says so and passes vacuously rather than touching a real disk.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};
use support::{free_port, temp_dir, Server};

/// A tmpfs of `size_mb` mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size_mb: u32) -> Option<SmallDisk> {
        let path = temp_dir("small-disk");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&path)
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { path })
    }

    /// Writes zeros to a file on the disk until no space is left.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("creating the filler file");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        // A partial last block may still fit a few bytes; take those too.
        while file.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn message(i: usize) -> Value {
    json!({
        "recipients": [{"address": format!("r{i}@example.test")}],
        "content": {"from": "a@sender.test", "subject": format!("n{i}"), "text": "x".repeat(2000)},
    })
}

#[tokio::test]
async fn a_full_disk_refuses_new_mail_with_503_and_keeps_what_was_acknowledged() {
    let Some(disk) = SmallDisk::mount(48) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    // The route points at a port where nothing listens yet: acknowledged mail stays queued
    // through the failure, and reaches the sink started there after the restart.
    let port = free_port();
    let config = format!(
        "[routes]\n\"example.test\" = \"127.0.0.1:{port}\"\n\
         [queue]\nretry_schedule = [\"1s\"]\nretry_jitter = 0.0\n"
    );
    let mut server = Server::start_with_spool("disk-full", &disk.path.join("spool"), &config).await;

    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let (status, body) = server.post("/transmissions", &message(i)).await;
        assert_eq!(status, 200, "{body}");
        acknowledged.push(format!("n{i}"));
    }

    let filler = disk.fill();
    let mut refused = None;
    for i in 20..2000 {
        let (status, body) = server.post("/transmissions", &message(i)).await;
        match status {
            200 => acknowledged.push(format!("n{i}")),
            503 => {
                refused = Some(body);
                break;
            }
            other => panic!("unexpected status {other}: {body}\nlog:\n{}", server.log()),
        }
    }
    eprintln!(
        "{} messages acknowledged before the first refusal",
        acknowledged.len()
    );
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "no request was refused on a full disk; log:\n{}",
            server.log()
        )
    });
    assert!(
        refused["errors"][0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("nothing was accepted")),
        "{refused}"
    );
    // Refusal holds for later requests too, and the server keeps answering.
    let (status, _) = server.post("/transmissions", &message(9999)).await;
    assert_eq!(status, 503);
    assert!(server.child_alive(), "log:\n{}", server.log());

    // The operator frees space and restarts: everything acknowledged is delivered.
    server.kill();
    std::fs::remove_file(&filler).expect("removing the filler");
    let sink = SmtpSink::start(
        format!("127.0.0.1:{port}").parse().expect("addr"),
        Script::new(),
    )
    .await
    .expect("sink");
    server.restart().await;
    let received = sink
        .wait_for_messages(acknowledged.len(), Duration::from_secs(60))
        .await;
    let subjects: Vec<String> = received.iter().filter_map(|m| subject(&m.data)).collect();
    for wanted in &acknowledged {
        assert!(
            subjects.contains(wanted),
            "acknowledged message {wanted} was lost; got {} of {}\nlog:\n{}",
            subjects.len(),
            acknowledged.len(),
            server.log()
        );
    }
}

fn subject(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(str::to_string)
}
