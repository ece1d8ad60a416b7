//! [`Behaviour`]: how the webhook receiver answers, as a builder.

use std::time::Duration;

/// Lifetime of OAuth2 tokens unless overridden, matching the usual one-hour default.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// How the receiver answers requests. The default accepts everything with `200 OK`.
///
/// Authentication options are alternatives: when several are configured, a request passes
/// if it satisfies any one of them. A required header is checked in addition.
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub(crate) status: u16,
    pub(crate) statuses: Vec<u16>,
    pub(crate) delay: Duration,
    pub(crate) basic_auth: Option<(String, String)>,
    pub(crate) bearer_token: Option<String>,
    pub(crate) required_header: Option<(String, String)>,
    pub(crate) oauth2: Option<(String, String)>,
    pub(crate) token_lifetime: Duration,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour::new()
    }
}

impl Behaviour {
    /// Accept every request with `200 OK`, no authentication, no delay.
    pub fn new() -> Behaviour {
        Behaviour {
            status: 200,
            statuses: Vec::new(),
            delay: Duration::ZERO,
            basic_auth: None,
            bearer_token: None,
            required_header: None,
            oauth2: None,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }

    /// The status returned once any [`Behaviour::statuses`] are used up (default 200).
    pub fn status(mut self, status: u16) -> Behaviour {
        self.status = status;
        self
    }

    /// Statuses returned to successive authorised requests, one each, before falling back to
    /// [`Behaviour::status`]; e.g. `vec![500, 503]` fails two deliveries and then accepts.
    pub fn statuses(mut self, statuses: Vec<u16>) -> Behaviour {
        self.statuses = statuses;
        self
    }

    /// Waits `delay` before answering each request, to model a slow endpoint.
    pub fn delay(mut self, delay: Duration) -> Behaviour {
        self.delay = delay;
        self
    }

    /// Requires HTTP basic authentication with `user` and `password` (401 otherwise).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Behaviour {
        self.basic_auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Requires `Authorization: Bearer <token>` with this token (401 otherwise).
    pub fn bearer_token(mut self, token: &str) -> Behaviour {
        self.bearer_token = Some(token.to_owned());
        self
    }

    /// Requires header `name` with exactly `value` (400 otherwise), e.g. a shared-secret header.
    pub fn require_header(mut self, name: &str, value: &str) -> Behaviour {
        self.required_header = Some((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Serves client-credentials tokens at `POST /token` for this client, and requires a
    /// bearer token issued there and not yet expired (401 otherwise).
    pub fn oauth2(mut self, client_id: &str, client_secret: &str) -> Behaviour {
        self.oauth2 = Some((client_id.to_owned(), client_secret.to_owned()));
        self
    }

    /// How long OAuth2 tokens stay valid (default one hour), to exercise token refresh.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Behaviour {
        self.token_lifetime = lifetime;
        self
    }

    /// Whether any form of `Authorization` header is required.
    pub(crate) fn requires_authorization(&self) -> bool {
        self.basic_auth.is_some() || self.bearer_token.is_some() || self.oauth2.is_some()
    }
}
