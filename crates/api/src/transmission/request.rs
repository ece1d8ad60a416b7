//! The body of `POST /api/v1/transmissions`, as SparkPost's clients send it. Every field is
//! optional at this level (clients send `null` for what they were not given); the checks that
//! name a missing field are in [`super::content`].

use serde::Deserialize;
use serde_json::{Map, Value};

/// A transmission request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TransmissionRequest {
    /// Sending options.
    pub options: Option<Options>,
    /// Groups the messages for reporting; at most 64 bytes.
    pub campaign_id: Option<String>,
    /// Free text; at most 1024 bytes.
    pub description: Option<String>,
    /// Transmission-level metadata, shown in events as `rcpt_meta`.
    pub metadata: Option<Map<String, Value>>,
    /// Transmission-level substitution data.
    pub substitution_data: Option<Map<String, Value>>,
    /// Envelope sender for every recipient that does not name its own.
    pub return_path: Option<String>,
    /// An array of recipients, or `{"list_id": …}`.
    pub recipients: Option<Value>,
    /// Inline content, a stored template, or raw MIME.
    pub content: Option<Content>,
}

/// `options`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Options {
    /// When to send, `YYYY-MM-DDTHH:MM:SS±HH:MM`.
    pub start_time: Option<String>,
    /// Tracking options, stored with each message; tracking itself is not built yet.
    pub open_tracking: Option<bool>,
    /// See `open_tracking`.
    pub initial_open: Option<bool>,
    /// See `open_tracking`.
    pub click_tracking: Option<bool>,
    /// Transactional mail: a separate expiry and suppression type.
    pub transactional: Option<bool>,
    /// Accepted for compatibility.
    pub sandbox: Option<bool>,
    /// Accepted for compatibility; suppression is not built yet.
    pub skip_suppression: Option<bool>,
    /// The IP pool to send from.
    pub ip_pool: Option<String>,
    /// Accepted for compatibility.
    pub inline_css: Option<bool>,
    /// False sends inline content as written.
    pub perform_substitutions: Option<bool>,
}

/// `content`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Content {
    /// `"a@b"`, `"Name <a@b>"` or `{email, name}`.
    pub from: Option<Value>,
    /// Subject line, templated.
    pub subject: Option<String>,
    /// Plain-text part, templated.
    pub text: Option<String>,
    /// HTML part, templated.
    pub html: Option<String>,
    /// AMP part, templated; only with text or html.
    pub amp_html: Option<String>,
    /// `Reply-To`, templated.
    pub reply_to: Option<String>,
    /// Extra headers, templated.
    pub headers: Option<Map<String, Value>>,
    /// A stored template, used instead of the inline fields.
    pub template_id: Option<String>,
    /// An A/B test of templates: refused, as A/B testing is not built.
    pub ab_test_id: Option<String>,
    /// Use the template's draft.
    pub use_draft_template: Option<bool>,
    /// A whole message as raw MIME, used instead of the inline fields.
    pub email_rfc822: Option<String>,
    /// Attachments: `[{name, type, data}]`, `data` in base64.
    pub attachments: Option<Value>,
    /// Inline images: `[{name, type, data}]`, `name` being the Content-ID.
    pub inline_images: Option<Value>,
}

/// One entry of `recipients`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Recipient {
    /// A string address, or `{email, name?, header_to?}`.
    pub address: Option<Value>,
    /// This recipient's envelope sender.
    pub return_path: Option<String>,
    /// At most 10 tags.
    pub tags: Option<Vec<String>>,
    /// Recipient metadata; wins over the transmission's.
    pub metadata: Option<Map<String, Value>>,
    /// Recipient substitution data; wins over everything.
    pub substitution_data: Option<Map<String, Value>>,
}
