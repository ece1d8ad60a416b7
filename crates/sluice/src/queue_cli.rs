//! `sluice queue …`: the operator's view of a running server's queue, through its API.

use clap::{Args, Subcommand};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// Bytes of a path segment sent as they are: RFC 3986's unreserved characters. Everything
/// else, `/`, `?`, `#` and `%` among it, is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where the server is and how to authenticate.
#[derive(Args)]
pub struct Target {
    /// Base URL of the running server.
    #[arg(
        long,
        global = true,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API key with the `queues/manage` grant.
    #[arg(long, global = true, env = "SLUICE_API_KEY", hide_env_values = true)]
    key: Option<String>,
}

/// Which messages an action applies to; give exactly one.
#[derive(Args)]
pub struct Selector {
    /// Messages to this recipient domain.
    #[arg(long)]
    domain: Option<String>,
    /// Messages from this IP pool.
    #[arg(long)]
    pool: Option<String>,
    /// Messages whose latest attempt went to this site: a provider name such as `google`,
    /// as the summary lists it.
    #[arg(long)]
    site: Option<String>,
    /// Messages of this campaign.
    #[arg(long)]
    campaign: Option<String>,
    /// Messages of this transmission.
    #[arg(long)]
    transmission: Option<String>,
}

impl Selector {
    fn body(&self) -> Value {
        json!({"domain": self.domain, "pool": self.pool, "site": self.site, "campaign_id": self.campaign, "transmission_id": self.transmission})
    }
}

/// Queue actions.
#[derive(Subcommand)]
pub enum QueueCommand {
    /// Counts by domain, site and pool, oldest message, next attempt, last reply, suspensions.
    Summary,
    /// Stops sending to a domain or site, or from a pool, until resumed (survives restarts).
    Suspend(Selector),
    /// Lifts a suspension; the messages are due at once.
    Resume(Selector),
    /// Makes waiting messages due now.
    Retry(Selector),
    /// Removes messages, reporting each as a bounce of class 25.
    Cancel(Selector),
    /// One message's state and why it is waiting.
    Show {
        /// The message id.
        id: String,
    },
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The API path of one message; the id is one path segment whatever it contains.
fn message_path(id: &str) -> String {
    format!("/messages/{}", utf8_percent_encode(id, SEGMENT))
}

/// Runs one queue action and prints the server's answer.
pub async fn run(target: Target, command: QueueCommand) -> anyhow::Result<()> {
    let (method, path, body) = match &command {
        QueueCommand::Summary => (reqwest::Method::GET, "/queues".to_string(), None),
        QueueCommand::Suspend(s) => (
            reqwest::Method::POST,
            "/queues/suspend".to_string(),
            Some(s.body()),
        ),
        QueueCommand::Resume(s) => (
            reqwest::Method::POST,
            "/queues/resume".to_string(),
            Some(s.body()),
        ),
        QueueCommand::Retry(s) => (
            reqwest::Method::POST,
            "/queues/retry".to_string(),
            Some(s.body()),
        ),
        QueueCommand::Cancel(s) => (
            reqwest::Method::POST,
            "/queues/cancel".to_string(),
            Some(s.body()),
        ),
        QueueCommand::Show { id } => (reqwest::Method::GET, message_path(id), None),
    };
    let Some(key) = target.key.as_deref() else {
        anyhow::bail!("an API key with the queues/manage grant is needed: --key or SLUICE_API_KEY");
    };
    let url = format!("{}/api/v1{path}", target.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .header("Authorization", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        // reqwest's top-level message hides the cause (refused, bad URL); show the whole chain.
        .map_err(|e| anyhow::anyhow!("calling {url}: {}", error_chain(&e)))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["errors"][0]["description"]
            .as_str()
            .or(answer["errors"][0]["message"].as_str())
            .unwrap_or("no error message");
        anyhow::bail!("server answered {status}: {message}");
    }
    println!("{}", serde_json::to_string_pretty(&answer["results"])?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_is_one_path_segment_whatever_it_holds() {
        assert_eq!(
            message_path("11668787484950529"),
            "/messages/11668787484950529"
        );
        assert_eq!(message_path("a-b.c_d~e"), "/messages/a-b.c_d~e");
        assert_eq!(message_path("../queues"), "/messages/..%2Fqueues");
        assert_eq!(message_path("1?x=2#y"), "/messages/1%3Fx%3D2%23y");
        assert_eq!(message_path("50% off"), "/messages/50%25%20off");
        assert_eq!(message_path("é"), "/messages/%C3%A9");
    }
}
