//! Queue policies, as far as the sandbox enforces them: explicit `Deny` statements. The
//! `Policy` attribute is stored verbatim (any JSON); a request is refused with
//! `AccessDenied` when a statement with `"Effect": "Deny"` matches its action and caller.
//! `Allow` statements are not evaluated (every caller is allowed by default), nor are
//! conditions; that is all the chaos module's `stall-consumers` needs to behave on the
//! sandbox as on AWS. Pure.
//!
//! The caller: the sandbox signs nothing, so the caller is named by the access key id of
//! its SigV4 `Authorization` header: key `K` acts as `arn:aws:iam::<account>:role/K`. The
//! sandbox's workers sign with `sandbox-workers`, its web tier with `sandbox-web`.

use serde_json::Value;

/// The principal ARN of a caller signing with access key id `key`.
pub fn principal_of_key(key: &str, account: &str) -> String {
    format!("arn:aws:iam::{account}:role/{key}")
}

/// The access key id of a SigV4 `Authorization` header (`... Credential=KEY/...`).
pub fn access_key_id(authorization: &str) -> Option<&str> {
    let rest = authorization.split("Credential=").nth(1)?;
    rest.split('/').next().filter(|k| !k.is_empty())
}

/// Whether `policy` (the `Policy` attribute's text) denies `action` (e.g.
/// `sqs:ReceiveMessage`) to `principal` (an ARN; `None`: unknown caller, matched only by
/// `"*"`) in `account`. A policy that is not JSON denies nothing.
pub fn denies(policy: &str, action: &str, principal: Option<&str>, account: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    };
    statements.into_iter().any(|s| {
        s["Effect"].as_str() == Some("Deny")
            && strings(&s["Action"])
                .iter()
                .any(|a| action_matches(a, action))
            && principal_matches(&s["Principal"], principal, account)
    })
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `sqs:ReceiveMessage`, `sqs:*`, `*`, `sqs:Receive*` (case-insensitive, `*` suffix only).
fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.strip_suffix('*') {
        Some(prefix) => a.starts_with(prefix),
        None => p == a,
    }
}

/// `"*"`, `{"AWS": "*"}`, `{"AWS": <arn or account id or list>}`.
fn principal_matches(p: &Value, principal: Option<&str>, account: &str) -> bool {
    let candidates = match p {
        Value::String(s) => vec![s.as_str()],
        Value::Object(map) => map.get("AWS").map(strings).unwrap_or_default(),
        _ => Vec::new(),
    };
    candidates.iter().any(|c| {
        *c == "*"
            || principal.is_some_and(|p| {
                *c == p
                    || (*c == account && p.starts_with(&format!("arn:aws:iam::{account}:")))
                    || *c == format!("arn:aws:iam::{account}:root")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKERS: &str = "arn:aws:iam::000000000000:role/sandbox-workers";

    fn deny(principal: &str, action: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"keep","Effect":"Allow","Principal":"*","Action":"sqs:*"}},{{"Sid":"stall","Effect":"Deny","Principal":{principal},"Action":{action},"Resource":"arn:aws:sqs:us-east-1:000000000000:jobs"}}]}}"#
        )
    }

    #[test]
    fn a_deny_for_the_workers_stops_only_their_receives() {
        let p = deny(
            &format!(r#"{{"AWS":"{WORKERS}"}}"#),
            r#""sqs:ReceiveMessage""#,
        );
        assert!(denies(
            &p,
            "sqs:ReceiveMessage",
            Some(WORKERS),
            "000000000000"
        ));
        assert!(!denies(
            &p,
            "sqs:SendMessage",
            Some(WORKERS),
            "000000000000"
        ));
        let web = principal_of_key("sandbox-web", "000000000000");
        assert!(!denies(
            &p,
            "sqs:ReceiveMessage",
            Some(&web),
            "000000000000"
        ));
        assert!(!denies(&p, "sqs:ReceiveMessage", None, "000000000000"));
    }

    #[test]
    fn wildcards_accounts_and_lists_match() {
        for principal in [
            r#""*""#.to_owned(),
            r#"{"AWS":"*"}"#.to_owned(),
            r#"{"AWS":"000000000000"}"#.to_owned(),
            format!(r#"{{"AWS":["arn:aws:iam::1:role/x","{WORKERS}"]}}"#),
        ] {
            for action in [r#""sqs:*""#, r#""*""#, r#"["sqs:receive*"]"#] {
                let p = deny(&principal, action);
                assert!(
                    denies(&p, "sqs:ReceiveMessage", Some(WORKERS), "000000000000"),
                    "{p}"
                );
            }
        }
        // A single statement object, not a list.
        let p = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"sqs:ReceiveMessage"}}"#;
        assert!(denies(p, "sqs:ReceiveMessage", None, "0"));
        assert!(!denies("not json", "sqs:ReceiveMessage", None, "0"));
        assert!(!denies(
            &deny(r#""*""#, r#""sqs:ReceiveMessage""#).replace("Deny", "Allow"),
            "sqs:ReceiveMessage",
            None,
            "0"
        ));
    }

    #[test]
    fn the_access_key_is_read_from_the_authorization_header() {
        let h = "AWS4-HMAC-SHA256 Credential=sandbox-workers/20261128/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(access_key_id(h), Some("sandbox-workers"));
        assert_eq!(access_key_id("Bearer x"), None);
    }
}
