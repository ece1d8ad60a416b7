//! Email addresses as the API takes them: `a@b`, `Name <a@b>`, or `{email, name, header_to}`.

use mail_builder::headers::address::Address as BuiltAddress;
use mail_parser::MessageParser;
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
                    // Client libraries name every primary recipient here for a cc or bcc copy.
                    address_list("To", header_to).map_err(|e| format!("address.header_to: {e}"))?;
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

    /// What the `To:` header shows: `header_to` for a copy (one address or a list), otherwise
    /// this address.
    pub fn shown_in_to(&self) -> BuiltAddress<'static> {
        self.header_to
            .as_deref()
            .and_then(|h| address_list("To", h).ok())
            .unwrap_or_else(|| BuiltAddress::new_address(self.name.clone(), self.email.clone()))
    }
}

/// Parses `a@b` or `Name <a@b>`.
pub fn parse_mailbox(text: &str) -> Result<Address, String> {
    let (name, email) = split_mailbox(text)?;
    check_email(email)?;
    if let Some(name) = name {
        check_display_name(name)?;
    }
    Ok(Address {
        email: email.to_string(),
        name: name.map(str::to_string),
        header_to: None,
    })
}

/// Splits `a@b` or `Name <a@b>` into its display name, unquoted, and its address, checking
/// neither.
pub fn split_mailbox(text: &str) -> Result<(Option<&str>, &str), String> {
    let text = text.trim();
    let (Some(open), true) = (text.rfind('<'), text.ends_with('>')) else {
        return Ok((None, text));
    };
    let written = text[..open].trim();
    if !written.starts_with('"') && written.contains(['<', '>']) {
        return Err(format!("{text:?} names more than one address"));
    }
    let name = written.trim_matches('"').trim();
    Ok((
        Some(name).filter(|n| !n.is_empty()),
        &text[open + 1..text.len() - 1],
    ))
}

/// Whether a header field holds addresses (RFC 5322, sections 3.6.2 and 3.6.3).
pub(super) fn is_address_field(name: &str) -> bool {
    ["From", "Sender", "Reply-To", "To", "Cc", "Bcc"]
        .iter()
        .any(|field| name.eq_ignore_ascii_case(field))
}

/// Parses an address header's value as a list of mailboxes, so that display names outside ASCII
/// can be encoded (RFC 2047) without touching the addresses. Every address must be one SMTP can
/// carry; the error names the first that is not, or says the value is no list at all.
pub(super) fn address_list(name: &str, value: &str) -> Result<BuiltAddress<'static>, String> {
    let no_list = || {
        format!("{name} is not a list of addresses (a display name with a comma must be quoted)")
    };
    let field = format!("{name}: {value}\r\n\r\n");
    let parsed = MessageParser::default()
        .parse_headers(field.as_bytes())
        .ok_or_else(no_list)?;
    let list = parsed
        .parts
        .first()
        .and_then(|part| part.headers.first())
        .and_then(|header| header.value.as_address())
        .and_then(|address| address.as_list())
        .filter(|list| !list.is_empty())
        .ok_or_else(no_list)?;
    let mut built = Vec::with_capacity(list.len());
    for mailbox in list {
        let email = mailbox.address.as_deref().ok_or_else(no_list)?;
        check_email(email).map_err(|e| format!("{name}: {e}"))?;
        let name = mailbox.name.as_deref().map(str::to_string);
        built.push(BuiltAddress::new_address(name, email.to_string()));
    }
    Ok(BuiltAddress::new_list(built))
}

/// A display name goes into a header: no line breaks or other control characters.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().any(|c| c.is_control()) {
        return Err(format!(
            "name {name:?} contains a line break or control character"
        ));
    }
    Ok(())
}

/// Longest local part and domain SMTP carries (RFC 5321, section 4.5.3.1).
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;

/// Checks an address that goes into an SMTP envelope and a header: an ASCII local part (dotted
/// atoms, or a quoted string) of at most 64 characters, `@`, and a domain name or a bracketed
/// address literal. The error says what is wrong.
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = |why: &str| format!("{email:?} is not a valid email address: {why}");
    let (local, domain) = email
        .rsplit_once('@')
        .ok_or_else(|| invalid("it has no @"))?;
    if !email.is_ascii() {
        // Sending to a non-ASCII address needs SMTPUTF8, which the delivery engine lacks.
        return Err(invalid("only ASCII addresses can be sent to"));
    }
    check_local(local).map_err(&invalid)?;
    check_domain(domain).map_err(invalid)
}

fn check_local(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("the part before @ is empty");
    }
    if local.len() > MAX_LOCAL {
        return Err("the part before @ is longer than 64 characters");
    }
    if let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        return check_quoted(quoted);
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(atext))
    {
        return Err("the part before @ has a misplaced dot or a character that needs quoting");
    }
    Ok(())
}

/// The inside of a quoted local part: printable characters and spaces, with `"` and `\`
/// escaped by a backslash.
fn check_quoted(quoted: &str) -> Result<(), &'static str> {
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            chars.next().unwrap_or('"')
        } else {
            c
        };
        if c == '"' || !(c == ' ' || c.is_ascii_graphic()) {
            return Err("the quoted part before @ has a character it cannot hold");
        }
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return Err("the domain is empty or longer than 255 characters");
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return ip
            .parse::<std::net::IpAddr>()
            .map(drop)
            .map_err(|_| "the bracketed domain is not an IP address");
    }
    // Underscores are not valid in host names but occur in real domains; they are let through.
    let label_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let bad_label = |label: &str| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(label_char)
    };
    if domain.split('.').any(bad_label) {
        return Err("the domain is not a valid domain name");
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
        let shown = |a: &Address| {
            let mut out = Vec::new();
            mail_builder::headers::Header::write_header(&a.shown_in_to(), &mut out, 4);
            String::from_utf8(out).expect("ASCII")
        };
        assert_eq!(shown(&object), "<a@b.test>\r\n");
        assert_eq!(shown(&named), "\"Ann Lee\" <ann@b.test>\r\n");
        let copy = json!({"email": "c@b.test", "header_to": "\"Ann\" <a@b.test>, d@b.test"});
        let copy = Address::from_json(&copy).expect("a copy shown to two");
        assert_eq!(shown(&copy), "\"Ann\" <a@b.test>, <d@b.test>\r\n");
    }

    #[test]
    fn takes_the_addresses_smtp_can_carry() {
        for good in [
            "a@b.test",
            "first.last+tag@mail.example.test",
            "o'brien@example.test",
            "\"a b@c\"@example.test",
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
            "a@_dmarc.example.test",
        ] {
            assert_eq!(check_email(good), Ok(()), "{good}");
        }
        let long = check_email(&format!("{}@example.test", "x".repeat(65)));
        assert!(long.is_err_and(|e| e.contains("longer than 64")));
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            json!("nobody"),
            json!("a@"),
            json!("@b"),
            json!("a b@c.test"),
            json!("a@b.test\r\nBcc: x@y"),
            json!("a@b@example.test"),
            json!("a..b@example.test"),
            json!(".a@example.test"),
            json!("a(comment)@example.test"),
            json!(format!("{}@example.test", "x".repeat(65))),
            json!("ü@example.test"),
            json!("a@exämple.test"),
            json!("a@-example.test"),
            json!("a@example..test"),
            json!("a@[300.1.1.1]"),
            json!("Eve <evil@other.test> <x@sender.test>"),
            json!(5),
            json!({"name":"x"}),
        ] {
            assert!(Address::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_lists_keep_every_address_and_refuse_what_is_not_one() {
        let list = address_list("Cc", "Zoë <z@example.test>, b@example.test").expect("a list");
        let mut written = Vec::new();
        mail_builder::headers::Header::write_header(&list, &mut written, 4);
        let written = String::from_utf8(written).expect("ascii");
        assert!(written.contains("<z@example.test>"), "{written}");
        assert!(written.contains("<b@example.test>"), "{written}");
        assert!(
            written.contains("=?utf-8?"),
            "the name is encoded: {written}"
        );
        for bad in [
            "not an address",
            "",
            "a@b@c.test",
            "Zoë Smith, <z@example.test>",
        ] {
            assert!(address_list("Cc", bad).is_err(), "{bad:?}");
        }
    }
}
