//! `POST /api/v1/transmissions`: validate the request, generate one message per recipient,
//! and answer only once every accepted message is durable in the spool.

pub(crate) mod address;
mod attachment;
pub(crate) mod content;
pub(crate) mod generate;
pub mod record;
pub(crate) mod request;
pub(crate) mod rfc822;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sluice_core::clock::{now_ms, parse_rfc3339_ms};
use sluice_core::event::MessageFacts;
use sluice_core::{Event, EventKind, MessageId};
use sluice_queue::{NewMessage, QueuedMessage};
use sluice_template::Context;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::generation::{self, Generated};
use crate::state::AppState;
use crate::templates;
use crate::templates::store::TemplateOptions;
use address::Address;
use generate::{builtins, Addressing, Compiled, Prepared};
use request::{Options, Recipient, TransmissionRequest};
use rfc822::RawContent;

/// Longest a scheduled send may wait, as SparkPost allows: three days.
const MAX_SCHEDULE_AHEAD_MS: u64 = 3 * 24 * 3600 * 1000;
/// Size limits from the contract, in bytes.
const MAX_METADATA: usize = 10 * 1024;
const MAX_SUBSTITUTION_DATA: usize = 100 * 1024;
pub(crate) const MAX_CONTENT: usize = 20 * 1000 * 1000;

/// Query parameters of the create call.
#[derive(Debug, Default, Deserialize)]
pub struct CreateQuery {
    /// Caps the length of `rcpt_to_errors` in the answer.
    num_rcpt_errors: Option<usize>,
}

/// What holds for every message of one transmission.
struct Transmission {
    id: String,
    campaign_id: String,
    description: String,
    metadata: Map<String, Value>,
    substitution_data: Map<String, Value>,
    return_path: Option<String>,
    options: Options,
    pool: String,
    due_ms: u64,
    scheduled: bool,
    content: Compiled,
    /// The stored template's id and version, when the content came from one.
    template: Option<(String, String)>,
    /// Whether that version is the template's draft.
    use_draft: bool,
    /// The From address when it holds no substitutions: without a `return_path`, it is the
    /// envelope sender, which the built-ins show.
    fixed_from: Option<String>,
}

/// Creates a transmission.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CreateQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("transmissions/modify")?;
    state.store.check()?;
    let request: TransmissionRequest = parse_body(&body)?;
    let recipients = recipients(&request, state.config.max_recipients)?;
    let transmission = prepare(&state, request)?;
    let (transmission, outcomes) = generate_each(&state, transmission, recipients).await?;
    let Outcomes {
        accepted,
        errors,
        failures,
    } = outcomes;
    let failed_generation = failures.len();
    if !failures.is_empty() {
        state.log.append(failures)?;
    }
    answer(
        &state,
        &transmission,
        accepted,
        errors,
        failed_generation,
        query.num_rcpt_errors,
    )
    .await
}

/// Transmissions with more recipients than this are generated on the blocking thread pool, so
/// that a large one does not hold a runtime worker, and every request queued behind it, for as
/// long as its rendering and signing take.
const GENERATE_INLINE_MAX: usize = 8;

/// What generation made of each recipient.
struct Outcomes {
    /// Messages ready to spool.
    accepted: Vec<NewMessage>,
    /// `rcpt_to_errors` entries, in recipient order.
    errors: Vec<Value>,
    /// `generation_failure` events to log.
    failures: Vec<Event>,
}

/// Generates every recipient's message, off the runtime's workers when there are many.
async fn generate_each(
    state: &AppState,
    transmission: Transmission,
    recipients: Vec<Recipient>,
) -> Result<(Transmission, Outcomes), ApiError> {
    if recipients.len() <= GENERATE_INLINE_MAX {
        let outcomes = generate_all(state, &transmission, &recipients)?;
        return Ok((transmission, outcomes));
    }
    let state = state.clone();
    let job = move || {
        generate_all(&state, &transmission, &recipients).map(|outcomes| (transmission, outcomes))
    };
    tokio::task::spawn_blocking(job).await.map_err(|error| {
        tracing::error!(%error, "message generation stopped");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "",
            "message generation stopped unexpectedly; nothing was accepted",
        )
    })?
}

/// Generates each recipient's message in turn; a transmission whose messages grow past the
/// memory limit is refused whole.
fn generate_all(
    state: &AppState,
    transmission: &Transmission,
    recipients: &[Recipient],
) -> Result<Outcomes, ApiError> {
    let mut outcomes = Outcomes {
        accepted: Vec::with_capacity(recipients.len()),
        errors: Vec::new(),
        failures: Vec::new(),
    };
    let mut held = 0;
    let started = std::time::Instant::now();
    for recipient in recipients {
        check_time(started, state.config.max_generation_time)?;
        match generate(state, transmission, recipient) {
            Ok(message) => {
                held += message.body.len();
                check_held(held, state.config.max_transmission_bytes)?;
                outcomes.accepted.push(message);
            }
            Err(Rejected::Invalid(error)) => outcomes.errors.push(error.into_object()),
            Err(Rejected::Generation(event, error)) => {
                outcomes.failures.push(*event);
                outcomes.errors.push(error.into_object());
            }
        }
    }
    Ok(outcomes)
}

/// Refuses a transmission whose generated messages, all held until they are spooled together,
/// have grown past `limit` bytes. Nothing has been spooled or logged yet, so nothing changes.
fn check_held(held: usize, limit: usize) -> Result<(), ApiError> {
    if held <= limit {
        return Ok(());
    }
    Err(ApiError::too_large(format!(
        "the transmission's messages come to more than {limit} bytes, the most one transmission \
         may generate ([api] max_transmission_bytes); send its recipients in smaller transmissions"
    )))
}

/// Refuses a transmission that has been generating for longer than `limit`. Nothing has been
/// spooled or logged yet, so nothing changes.
fn check_time(started: std::time::Instant, limit: std::time::Duration) -> Result<(), ApiError> {
    if started.elapsed() <= limit {
        return Ok(());
    }
    let limit = limit.as_secs_f64();
    Err(ApiError::too_large(format!(
        "generating the transmission's messages took longer than {limit}s, the most one \
         transmission may take ([api] max_generation_time); send its recipients in smaller \
         transmissions or simplify the template"
    )))
}

/// Parses a JSON request body; a type error names the field it is in.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("request body is not valid JSON: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

fn recipients(request: &TransmissionRequest, max: usize) -> Result<Vec<Recipient>, ApiError> {
    let list = match &request.recipients {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Object(map)) if map.contains_key("list_id") => {
            return Err(ApiError::invalid("recipients.list_id: stored recipient lists are not supported; send an array of recipients"));
        }
        Some(Value::Array(_)) | Some(Value::Null) | None => {
            return Err(ApiError::missing(
                "recipients: at least one recipient is required",
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "recipients must be an array of recipient objects",
            ));
        }
    };
    if list.len() > max {
        return Err(ApiError::too_large(format!(
            "recipients: at most {max} recipients per transmission"
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::from_value(value.clone())
                .map_err(|e| ApiError::invalid(format!("recipients[{i}]: {e}")))
        })
        .collect()
}

/// Checks the transmission-level fields and compiles the content.
fn prepare(state: &AppState, request: TransmissionRequest) -> Result<Transmission, ApiError> {
    let mut options = request.options.unwrap_or_default();
    let content = request
        .content
        .ok_or_else(|| ApiError::missing("content object or template_id required"))?;
    let campaign_id = request.campaign_id.unwrap_or_default();
    check_len("campaign_id", campaign_id.len(), 64)?;
    check_len(
        "description",
        request.description.as_deref().map_or(0, str::len),
        1024,
    )?;
    let metadata = request.metadata.unwrap_or_default();
    check_len("metadata", json_len(&metadata), MAX_METADATA)?;
    let substitution_data = request.substitution_data.unwrap_or_default();
    check_len(
        "substitution_data",
        json_len(&substitution_data),
        MAX_SUBSTITUTION_DATA,
    )?;
    let pool = options
        .ip_pool
        .as_deref()
        .unwrap_or("default")
        .to_ascii_lowercase();
    if !state.pools.contains(&pool) {
        return Err(ApiError::invalid(format!(
            "options.ip_pool: no IP pool named {pool:?}"
        )));
    }
    let (due_ms, scheduled) = start_time(options.start_time.as_deref())?;
    if let Some(return_path) = &request.return_path {
        address::check_email(return_path)
            .map_err(|e| ApiError::invalid(format!("return_path: {e}")))?;
    }
    if content.ab_test_id.is_some() {
        return Err(ApiError::invalid(
            "content.ab_test_id: A/B tests are not supported; name a template with template_id",
        ));
    }
    let use_draft = content.use_draft_template.unwrap_or(false);
    let (compiled, template) = match content.template_id.clone() {
        Some(template_id) => {
            content::alone("template_id", &content)?;
            let stored = templates::render::for_transmission(state, &template_id, use_draft)?;
            apply_template_options(&mut options, &stored.options);
            let headers = content::custom_headers(content.headers)?;
            let compiled = stored.content.with_headers(headers)?;
            (compiled, Some((template_id, stored.version)))
        }
        None => (compile_content(content, &options)?, None),
    };
    let id = state.ids.next().to_string();
    Ok(Transmission {
        id,
        campaign_id,
        description: request.description.unwrap_or_default(),
        metadata,
        substitution_data,
        return_path: request.return_path,
        options,
        pool,
        due_ms,
        scheduled,
        fixed_from: match &compiled {
            Compiled::Inline(prepared) => prepared.fixed_from().map(str::to_string),
            Compiled::Raw(_) => None,
        },
        content: compiled,
        use_draft: use_draft && template.is_some(),
        template,
    })
}

/// Compiles inline content, or a raw message when `email_rfc822` is given.
pub(crate) fn compile_content(
    content: request::Content,
    options: &Options,
) -> Result<Compiled, ApiError> {
    if let Some(raw) = &content.email_rfc822 {
        content::alone("email_rfc822", &content)?;
        return Ok(Compiled::Raw(RawContent::compile(raw)?));
    }
    let inline = content::inline_content(content)?;
    let substitute = options.perform_substitutions.unwrap_or(true);
    Ok(Compiled::Inline(Box::new(Prepared::compile(
        inline, substitute,
    )?)))
}

/// A stored template's options apply where the transmission does not set its own.
fn apply_template_options(options: &mut Options, template: &TemplateOptions) {
    options.open_tracking = options.open_tracking.or(template.open_tracking);
    options.click_tracking = options.click_tracking.or(template.click_tracking);
    options.transactional = options.transactional.or(template.transactional);
}

pub(crate) fn check_len(field: &str, len: usize, max: usize) -> Result<(), ApiError> {
    over_limit(field, len, max).map_or(Ok(()), |why| Err(ApiError::invalid(why)))
}

/// Why `len` bytes of `field` are too many, if they are.
fn over_limit(field: &str, len: usize, max: usize) -> Option<String> {
    (len > max).then(|| format!("{field}: {len} bytes is over the limit of {max} bytes"))
}

fn json_len(map: &Map<String, Value>) -> usize {
    serde_json::to_vec(map).map_or(0, |v| v.len())
}

fn start_time(text: Option<&str>) -> Result<(u64, bool), ApiError> {
    let now = now_ms();
    let Some(text) = text.filter(|t| !t.is_empty() && *t != "now") else {
        return Ok((now, false));
    };
    let at = parse_rfc3339_ms(text).ok_or_else(|| {
        ApiError::invalid(format!(
            "options.start_time: {text:?} is not YYYY-MM-DDTHH:MM:SS±HH:MM"
        ))
    })?;
    if at > now + MAX_SCHEDULE_AHEAD_MS {
        return Err(ApiError::invalid(
            "options.start_time: cannot be more than 3 days ahead",
        ));
    }
    Ok((at.max(now), at > now))
}

enum Rejected {
    /// The recipient entry itself is wrong.
    Invalid(ApiError),
    /// Rendering failed: reported as a `generation_failure` event too.
    Generation(Box<Event>, ApiError),
}

/// Renders and builds one recipient's message.
fn generate(
    state: &AppState,
    t: &Transmission,
    recipient: &Recipient,
) -> Result<NewMessage, Rejected> {
    let invalid = |d: String| Rejected::Invalid(ApiError::missing(d));
    let address =
        Address::from_json(recipient.address.as_ref().unwrap_or(&Value::Null)).map_err(invalid)?;
    let tags = recipient.tags.clone().unwrap_or_default();
    if tags.len() > 10 {
        return Err(Rejected::Invalid(ApiError::invalid(format!(
            "{}: at most 10 tags",
            address.email
        ))));
    }
    let limits = [
        ("metadata", recipient.metadata.as_ref(), MAX_METADATA),
        (
            "substitution_data",
            recipient.substitution_data.as_ref(),
            MAX_SUBSTITUTION_DATA,
        ),
    ];
    for (field, value, max) in limits {
        if let Some(why) = over_limit(field, value.map_or(0, json_len), max) {
            let error = ApiError::invalid(format!("{}: {why}", address.email));
            return Err(Rejected::Invalid(error));
        }
    }
    if let Some(return_path) = &recipient.return_path {
        address::check_email(return_path).map_err(|e| {
            Rejected::Invalid(ApiError::invalid(format!(
                "{}: return_path: {e}",
                address.email
            )))
        })?;
    }
    let id = state.ids.message_id();
    let facts = facts(t, recipient, &address, id, tags);
    let return_path = recipient.return_path.clone().or(t.return_path.clone());
    let envelope_sender = return_path.as_ref().or(t.fixed_from.as_ref());
    let addressing = Addressing {
        message_id: &id.to_string(),
        to: address.shown_in_to(),
    };
    let Generated {
        from_email,
        subject,
        body,
    } = {
        let builtins = builtins(
            &address.email,
            address.name.as_deref(),
            envelope_sender.map_or("", String::as_str),
        );
        let empty = Map::new();
        let context = Context {
            layers: vec![
                recipient.substitution_data.as_ref().unwrap_or(&empty),
                recipient.metadata.as_ref().unwrap_or(&empty),
                &t.substitution_data,
                &t.metadata,
            ],
            builtins: &builtins,
            dynamic: Some(&t.substitution_data),
            snippets: Some(&|id: &str, part| state.snippets.lookup(id, part)),
            snippet_calls: Default::default(),
        };
        generation::generate(&t.content, &context, &addressing, &state.keyring)
            .map_err(|e| generation_failure(&facts, &e))?
    };
    let mail_from = return_path.unwrap_or_else(|| from_email.clone());
    let mut facts = facts;
    facts.friendly_from = from_email;
    facts.msg_from = mail_from.clone();
    facts.subject = subject;
    facts.msg_size = body.len() as u64;
    let expires_ms = t.due_ms + state.max_age_ms(t.options.transactional.unwrap_or(false));
    let message = QueuedMessage {
        id,
        mail_from,
        rcpt_to: address.email.clone(),
        domain: address.domain(),
        pool: t.pool.clone(),
        facts,
        attempts: 0,
        due_ms: t.due_ms,
        expires_ms,
        last_reply: None,
        site: None,
        cancelled: None,
    };
    Ok(NewMessage { message, body })
}

fn facts(
    t: &Transmission,
    recipient: &Recipient,
    address: &Address,
    id: MessageId,
    tags: Vec<String>,
) -> MessageFacts {
    let mut rcpt_meta = t.metadata.clone();
    rcpt_meta.extend(recipient.metadata.clone().unwrap_or_default());
    let rcpt_type = address
        .header_to
        .as_ref()
        .filter(|h| !h.contains(address.email.as_str()))
        .map(|_| {
            let in_cc = t.content.cc_mentions(&address.email);
            if in_cc { "cc" } else { "bcc" }.to_string()
        });
    let (template_id, template_version) = t.template.clone().unwrap_or_default();
    MessageFacts {
        message_id: Some(id),
        transmission_id: t.id.clone(),
        campaign_id: t.campaign_id.clone(),
        template_id,
        template_version,
        raw_rcpt_to: address.email.clone(),
        rcpt_to: address.email.to_ascii_lowercase(),
        rcpt_type,
        rcpt_meta,
        rcpt_tags: tags,
        recipient_domain: address.domain(),
        ip_pool: t.pool.clone(),
        injection_time_ms: now_ms(),
        scheduled_time_ms: t.scheduled.then_some(t.due_ms),
        transactional: t.options.transactional.unwrap_or(false),
        open_tracking: t.options.open_tracking.unwrap_or(false),
        click_tracking: t.options.click_tracking.unwrap_or(true),
        initial_pixel: t.options.initial_open.unwrap_or(false),
        amp_enabled: t.content.has_amp(),
        ..MessageFacts::default()
    }
}

fn generation_failure(facts: &MessageFacts, reason: &str) -> Rejected {
    let mut facts = facts.clone();
    facts.message_id = None;
    let attempt = sluice_core::event::AttemptFacts {
        error_code: Some(554),
        raw_reason: Some(format!("554 5.3.3 [internal] {reason}")),
        reason: Some(format!("554 5.3.3 [internal] {reason}")),
        ..Default::default()
    };
    let event = Event {
        event_id: 0,
        kind: EventKind::GenerationFailure,
        timestamp_ms: now_ms(),
        message: facts.clone(),
        attempt,
    };
    let error = ApiError::invalid(format!(
        "{}: message generation failed: {reason}",
        facts.raw_rcpt_to
    ));
    Rejected::Generation(Box::new(event), error)
}

/// Spools the accepted messages and builds the contract's answer.
async fn answer(
    state: &AppState,
    t: &Transmission,
    accepted: Vec<NewMessage>,
    mut errors: Vec<Value>,
    failed_generation: usize,
    cap: Option<usize>,
) -> Result<Json<Value>, ApiError> {
    let (accepted_count, rejected_count) = (accepted.len(), errors.len());
    if accepted.is_empty() {
        let first = errors
            .into_iter()
            .next()
            .and_then(|e| e.get("description").cloned())
            .unwrap_or(Value::Null);
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "no valid recipients",
            "5002",
            first.as_str().unwrap_or(""),
        ));
    }
    // Recipients refused before rendering were never part of the transmission; those whose
    // rendering failed were, as SparkPost's `num_failed_gen` counts them.
    record::store(
        state,
        &record::summary(t, accepted_count, failed_generation),
    )?;
    state.spool.accept(accepted).await?;
    tracing::info!(transmission_id = %t.id, accepted = accepted_count, rejected = rejected_count, "transmission accepted");
    let mut results = json!({
        "total_rejected_recipients": rejected_count,
        "total_accepted_recipients": accepted_count,
        "id": t.id,
    });
    if rejected_count == 0 {
        return Ok(Json(json!({ "results": results })));
    }
    errors.truncate(cap.unwrap_or(usize::MAX));
    results["rcpt_to_errors"] = Value::Array(errors);
    Ok(Json(json!({
        "errors": [{"message": "transmission created, but with validation errors", "code": "2000"}],
        "results": results,
    })))
}
