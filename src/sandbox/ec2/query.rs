//! Request side of the EC2 query protocol: `application/x-www-form-urlencoded` pairs with
//! flattened lists (`InstanceId.1=..`, `Filter.1.Name=..`, `Filter.1.Value.1=..`).

use std::collections::BTreeMap;

use super::fleet::{Filter, InstanceId};

/// A request parameter problem; maps to an EC2 client error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The body is not valid form encoding.
    #[error("malformed query string: {0}")]
    Malformed(String),
    /// A required parameter is absent.
    #[error("The request must contain the parameter {0}")]
    Missing(&'static str),
    /// A parameter's value cannot be parsed.
    #[error("Value ({value}) for parameter {name} is invalid")]
    Invalid {
        /// Parameter name.
        name: String,
        /// Its value.
        value: String,
    },
}

impl ParamError {
    /// The EC2 error code for this problem.
    pub fn ec2_code(&self) -> &'static str {
        match self {
            ParamError::Malformed(_) => "MalformedQueryString",
            ParamError::Missing(_) => "MissingParameter",
            ParamError::Invalid { .. } => "InvalidParameterValue",
        }
    }
}

/// Decoded request parameters, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes an `application/x-www-form-urlencoded` string (`+` is a space).
    pub fn parse(input: &[u8]) -> Result<Self, ParamError> {
        let mut pairs = Vec::new();
        for part in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Params(pairs))
    }

    /// Appends the pairs of `other` (e.g. URL query after form body).
    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`false`); absent is `false`.
    pub fn flag(&self, name: &str) -> Result<bool, ParamError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid(name, v)),
        }
    }

    /// An optional non-negative integer parameter.
    pub fn number(&self, name: &str) -> Result<Option<usize>, ParamError> {
        self.get(name)
            .map(|v| v.parse().map_err(|_| invalid(name, v)))
            .transpose()
    }

    /// A flattened list `prefix.1`, `prefix.2`, ... ordered by index.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let mut items: Vec<(u32, &str)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let idx = k.strip_prefix(prefix)?.strip_prefix('.')?.parse().ok()?;
                Some((idx, v.as_str()))
            })
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v.to_string()).collect()
    }

    /// Structured list members `prefix.N.rest=value`, grouped by N (ordered), each as its own
    /// parameter set keyed by `rest`.
    pub fn members(&self, prefix: &str) -> Vec<Params> {
        let mut groups: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let Some((idx, field)) = rest.split_once('.') else {
                continue;
            };
            if let Ok(idx) = idx.parse::<u32>() {
                groups
                    .entry(idx)
                    .or_default()
                    .push((field.to_string(), v.clone()));
            }
        }
        groups.into_values().map(Params).collect()
    }

    /// Instance ids from the flattened list `prefix.N`.
    pub fn instance_ids(&self, prefix: &str) -> Result<Vec<InstanceId>, super::FleetError> {
        self.list(prefix).iter().map(|s| s.parse()).collect()
    }

    /// Filters from `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<Filter>, ParamError> {
        self.members("Filter")
            .into_iter()
            .map(|m| {
                let name = m.get("Name").ok_or(ParamError::Missing("Filter.N.Name"))?;
                Ok(Filter::new(name, m.list("Value")))
            })
            .collect()
    }
}

fn invalid(name: &str, value: &str) -> ParamError {
    ParamError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// Percent-decodes one component (`+` means space) into UTF-8.
fn decode(raw: &[u8]) -> Result<String, ParamError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ParamError::Malformed("bad percent escape".into()))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParamError::Malformed("not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn parses_filters_lists_and_flags() {
        let body = b"Action=DescribeInstances&Version=2016-11-15&Filter.2.Name=tag-key\
            &Filter.2.Value.1=tier&Filter.1.Name=tag%3Atier&Filter.1.Value.2=db\
            &Filter.1.Value.1=web&InstanceId.2=i-00000002&InstanceId.1=i-00000001&DryRun=true";
        let p = Params::parse(body).unwrap();
        assert_eq!(p.get("Action"), Some("DescribeInstances"));
        assert_eq!(
            p.filters().unwrap(),
            vec![
                Filter::new("tag:tier", ["web", "db"]),
                Filter::new("tag-key", ["tier"])
            ]
        );
        assert_eq!(p.list("InstanceId"), vec!["i-00000001", "i-00000002"]);
        assert!(p.flag("DryRun").unwrap());
        assert!(!p.flag("Force").unwrap());
    }

    #[test]
    fn members_keep_absent_and_empty_values_apart() {
        let p = Params::parse(b"Tag.1.Key=a&Tag.2.Key=b&Tag.2.Value=").unwrap();
        let m = p.members("Tag");
        assert_eq!(m[0].get("Value"), None);
        assert_eq!(m[1].get("Value"), Some(""));
    }

    #[test]
    fn rejects_bad_escapes_and_values() {
        assert!(matches!(
            Params::parse(b"a=%zz"),
            Err(ParamError::Malformed(_))
        ));
        assert!(matches!(
            Params::parse(b"a=%4"),
            Err(ParamError::Malformed(_))
        ));
        let p = Params::parse(b"MaxResults=ten&DryRun=maybe").unwrap();
        assert_eq!(
            p.number("MaxResults").unwrap_err().ec2_code(),
            "InvalidParameterValue"
        );
        assert!(p.flag("DryRun").is_err());
        let f = Params::parse(b"Filter.1.Value.1=x").unwrap().filters();
        assert_eq!(f.unwrap_err(), ParamError::Missing("Filter.N.Name"));
    }

    proptest! {
        #[test]
        fn decode_inverts_percent_encoding(k in "\\PC{0,12}", v in "\\PC{0,24}") {
            let body = format!("{}={}", encode(&k), encode(&v));
            let p = Params::parse(body.as_bytes()).unwrap();
            if k.is_empty() && v.is_empty() {
                // "=" alone is one pair with both sides empty.
                prop_assert_eq!(p.get(""), Some(""));
            } else {
                prop_assert_eq!(p.get(&k), Some(v.as_str()));
            }
        }
    }
}
