//! Request signing, byte for byte as the CloudStack management server checks it
//! (`ApiServer.verifyRequest`): every parameter but `signature`, sorted by name with Java's
//! `Collections.sort` (plain code-unit order, so `Zone` sorts before `apiKey`: the order is
//! case-*sensitive*, and the `cs` client library does the same), each written as
//! `name=URLEncoder.encode(value)` with `+` turned into `%20`, joined by `&`, the whole string
//! lower-cased, then HMAC-SHA1 with the secret key and Base64.
//!
//! The names are not encoded (CloudStack does not encode them either). The values are
//! encoded the Java way: only `A-Z a-z 0-9 . - * _` stay as they are, everything else is its
//! UTF-8 bytes as `%XX`. The same encoding is used on the wire, so what the server decodes
//! is exactly what was signed.

use crate::secret::Secret;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// How long a signed request stays valid (`signatureVersion=3`, `expires`).
pub const DEFAULT_EXPIRY_SECS: i64 = 600;

/// `java.net.URLEncoder.encode(value, "UTF-8").replace("+", "%20")`.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b".-*_".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The string that is signed: sorted, encoded, joined and lower-cased. `signature` itself is
/// left out, whatever its case.
pub fn canonical(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("signature"))
        .collect();
    // Java sorts Strings by UTF-16 code unit; for the ASCII names of the API that is byte order.
    sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let joined: Vec<String> = sorted
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    joined.join("&").to_lowercase()
}

/// Base64 of HMAC-SHA1 over [`canonical`], keyed with the secret key.
pub fn signature(params: &[(String, String)], secret: &Secret) -> String {
    // HMAC accepts a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(canonical(params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `expires` value CloudStack parses (`yyyy-MM-dd'T'HH:mm:ssZ`), in UTC.
pub fn expires_at(epoch_secs: i64) -> String {
    let c = crate::epoch::civil(epoch_secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The query string sent: the parameters in the order given, then `signature`, each value
/// encoded as it was signed.
pub fn query(params: &[(String, String)], signature: &str) -> String {
    let mut parts: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    parts.push(format!("signature={}", encode(signature)));
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn encodes_like_java_urlencoder() {
        assert_eq!(encode("a b+c*d/e=f~g"), "a%20b%2Bc*d%2Fe%3Df%7Eg");
        assert_eq!(encode("été"), "%C3%A9t%C3%A9");
        assert_eq!(encode("A-Z_0.9"), "A-Z_0.9");
    }

    #[test]
    fn sorts_case_sensitively_and_lowercases_after() {
        let params = p(&[
            ("response", "json"),
            ("apiKey", "KEY"),
            ("Zone", "Z 1"),
            ("command", "listHosts"),
            ("signature", "ignored"),
        ]);
        assert_eq!(
            canonical(&params),
            "zone=z%201&apikey=key&command=listhosts&response=json"
        );
    }

    #[test]
    fn the_documented_example_signature() {
        // The worked example of the CloudStack developer's guide ("Signing API Requests").
        let secret = Secret::new(
            "VDaACYb0LV9eNjTetIOElcVQkvJck_J_QljX_FcHRj87ZKiy0z0ty0ZsYBkoXkY9b7eq1EhwJaw7FF3akA3KBQ"
                .into(),
        );
        let params = p(&[
            ("command", "listUsers"),
            ("response", "json"),
            (
                "apiKey",
                "plgWJfZK4gyS3mOMTVmjUVg-X-jlWlnfaUJ9GAbBbf9EdM-kAYMmAiLqzzq1ElZLYq_u38zCm0bewzGUdP66mg",
            ),
        ]);
        assert_eq!(signature(&params, &secret), "TTpdDq/7j/J58XCRHomKoQXEQds=");
    }

    #[test]
    fn expires_is_utc_with_offset() {
        assert_eq!(expires_at(1_700_000_000), "2023-11-14T22:13:20+0000");
    }
}
