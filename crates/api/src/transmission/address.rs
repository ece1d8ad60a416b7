//! Email addresses as the API takes them: `a@b`, `Name <a@b>`, or `{email, name, header_to}`.

use serde_json::Value;

/// A recipient's or sender's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The address itself.
    pub email: String,
    /// The display name.
    pub name: Option<String>,
    /// For copies: the `To:` header shown instead of this address.
    pub header_to: Option<String>,
}

impl Address {
    /// Reads an address value. The error says what is wrong, for `rcpt_to_errors`.
    pub fn from_json(value: &Value) -> Result<Address, String> {
        match value {
            Value::String(text) => parse_mailbox(text),
            Value::Object(map) => {
                let email = map
                    .get("email")
                    .and_then(Value::as_str)
                    .ok_or("address.email is required for each recipient")?;
                let text = |key: &str| {
                    map.get(key)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                let mut address = parse_mailbox(email)?;
                address.name = text("name").or(address.name);
                if let Some(name) = &address.name {
                    check_display_name(name)?;
                }
                address.header_to = text("header_to");
                if let Some(header_to) = &address.header_to {
                    parse_mailbox(header_to).map_err(|e| format!("address.header_to: {e}"))?;
                }
                Ok(address)
            }
            _ => Err("address must be a string or an object with email".into()),
        }
    }

    /// The domain part, lower-cased.
    pub fn domain(&self) -> String {
        self.email
            .rsplit_once('@')
            .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
    }

    /// The mailbox the `To:` header shows: `header_to` for a copy, otherwise this address.
    pub fn shown_in_to(&self) -> Address {
        self.header_to
            .as_deref()
            .and_then(|h| parse_mailbox(h).ok())
            .unwrap_or_else(|| self.clone())
    }
}

/// Parses `a@b` or `Name <a@b>`.
pub fn parse_mailbox(text: &str) -> Result<Address, String> {
    let text = text.trim();
    let (name, email) = match (text.rfind('<'), text.ends_with('>')) {
        (Some(open), true) => {
            let name = text[..open].trim().trim_matches('"').trim();
            (
                Some(name).filter(|n| !n.is_empty()).map(str::to_string),
                &text[open + 1..text.len() - 1],
            )
        }
        _ => (None, text),
    };
    check_email(email)?;
    if let Some(name) = &name {
        check_display_name(name)?;
    }
    Ok(Address {
        email: email.to_string(),
        name,
        header_to: None,
    })
}

/// A display name goes into a header: no line breaks or other control characters.
fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().any(|c| c.is_control()) {
        return Err(format!(
            "name {name:?} contains a line break or control character"
        ));
    }
    Ok(())
}

/// A deliberately plain check: one `@`, a local part and a dotted or bracketed domain, and
/// nothing that could break an SMTP command or a header.
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = || format!("{email:?} is not a valid email address");
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let bad_char =
        |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';');
    if local.is_empty() || domain.is_empty() || email.chars().any(bad_char) || email.len() > 320 {
        return Err(invalid());
    }
    if domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || domain.contains('@')
    {
        return Err(invalid());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_address_form() {
        let plain = Address::from_json(&json!("a@b.test")).expect("plain");
        assert_eq!(
            (plain.email.as_str(), plain.name.as_deref()),
            ("a@b.test", None)
        );
        let named = Address::from_json(&json!("Ann Lee <ann@b.test>")).expect("named");
        assert_eq!(
            (named.email.as_str(), named.name.as_deref()),
            ("ann@b.test", Some("Ann Lee"))
        );
        let object =
            Address::from_json(&json!({"email":"c@B.test","name":"C","header_to":"a@b.test"}))
                .expect("object");
        assert_eq!(object.domain(), "b.test");
        assert_eq!(object.shown_in_to().email, "a@b.test");
        assert_eq!(named.shown_in_to(), named);
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            json!("nobody"),
            json!("a@"),
            json!("@b"),
            json!("a b@c.test"),
            json!("a@b.test\r\nBcc: x@y"),
            json!(5),
            json!({"name":"x"}),
        ] {
            assert!(Address::from_json(&bad).is_err(), "{bad}");
        }
    }
}
