//! Filters (with `*`/`?` wildcards) and pagination tokens of DescribeInstances and
//! DescribeTags.

use super::types::*;

/// A value pattern with EC2's wildcards: `*` (any run) and `?` (one character).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pattern(Vec<char>);

impl Pattern {
    pub(super) fn new(text: &str) -> Self {
        Pattern(text.chars().collect())
    }

    pub(super) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        glob_match(&self.0, &text)
    }
}

/// Iterative glob matching with single-star backtracking (linear in practice).
pub(super) fn glob_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

pub(super) fn any_matches(patterns: &[Pattern], text: &str) -> bool {
    patterns.iter().any(|p| p.matches(text))
}

pub(super) fn patterns(values: &[String]) -> Vec<Pattern> {
    values.iter().map(|v| Pattern::new(v)).collect()
}

/// A validated DescribeInstances filter.
#[derive(Clone, Debug)]
pub(super) enum InstanceFilter {
    Tag { key: String, values: Vec<Pattern> },
    TagKey(Vec<Pattern>),
    TagValue(Vec<Pattern>),
    StateName(Vec<Pattern>),
    StateCode(Vec<Pattern>),
    InstanceId(Vec<Pattern>),
    InstanceType(Vec<Pattern>),
    PrivateIp(Vec<Pattern>),
    ReservationId(Vec<Pattern>),
    AvailabilityZone(Vec<Pattern>),
}

impl InstanceFilter {
    pub(super) fn parse(filter: &Filter) -> Result<Self, FleetError> {
        let values = patterns(&filter.values);
        if let Some(key) = filter.name.strip_prefix("tag:") {
            return Ok(InstanceFilter::Tag {
                key: key.to_string(),
                values,
            });
        }
        Ok(match filter.name.as_str() {
            "tag-key" => InstanceFilter::TagKey(values),
            "tag-value" => InstanceFilter::TagValue(values),
            "instance-state-name" => InstanceFilter::StateName(values),
            "instance-state-code" => InstanceFilter::StateCode(values),
            "instance-id" => InstanceFilter::InstanceId(values),
            "instance-type" => InstanceFilter::InstanceType(values),
            "private-ip-address" => InstanceFilter::PrivateIp(values),
            "reservation-id" => InstanceFilter::ReservationId(values),
            "availability-zone" => InstanceFilter::AvailabilityZone(values),
            other => return Err(FleetError::InvalidFilter(other.to_string())),
        })
    }

    pub(super) fn matches(&self, i: &Instance) -> bool {
        match self {
            InstanceFilter::Tag { key, values } => {
                i.tags.get(key).is_some_and(|v| any_matches(values, v))
            }
            InstanceFilter::TagKey(p) => i.tags.keys().any(|k| any_matches(p, k)),
            InstanceFilter::TagValue(p) => i.tags.values().any(|v| any_matches(p, v)),
            InstanceFilter::StateName(p) => any_matches(p, i.state.name()),
            InstanceFilter::StateCode(p) => any_matches(p, &i.state.code().to_string()),
            InstanceFilter::InstanceId(p) => any_matches(p, i.id.as_str()),
            InstanceFilter::InstanceType(p) => any_matches(p, &i.instance_type),
            InstanceFilter::PrivateIp(p) => any_matches(p, &i.private_ip.to_string()),
            InstanceFilter::ReservationId(p) => any_matches(p, &i.reservation_id),
            InstanceFilter::AvailabilityZone(p) => any_matches(p, &i.availability_zone),
        }
    }
}

/// A validated DescribeTags filter.
#[derive(Clone, Debug)]
pub(super) enum TagFilter {
    ResourceId(Vec<Pattern>),
    ResourceType(Vec<Pattern>),
    Key(Vec<Pattern>),
    Value(Vec<Pattern>),
}

impl TagFilter {
    pub(super) fn parse(filter: &Filter) -> Result<Self, FleetError> {
        let values = patterns(&filter.values);
        Ok(match filter.name.as_str() {
            "resource-id" => TagFilter::ResourceId(values),
            "resource-type" => TagFilter::ResourceType(values),
            "key" => TagFilter::Key(values),
            "value" => TagFilter::Value(values),
            other => return Err(FleetError::InvalidFilter(other.to_string())),
        })
    }

    pub(super) fn matches(&self, tag: &TagDescription) -> bool {
        match self {
            TagFilter::ResourceId(p) => any_matches(p, tag.resource_id.as_str()),
            TagFilter::ResourceType(p) => any_matches(p, tag.resource_type),
            TagFilter::Key(p) => any_matches(p, &tag.key),
            TagFilter::Value(p) => any_matches(p, &tag.value),
        }
    }
}

/// Validates `MaxResults` against EC2's 5..=1000 range.
pub fn validate_page_size(max_results: Option<usize>) -> Result<(), FleetError> {
    match max_results {
        Some(n) if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&n) => {
            Err(FleetError::InvalidParameterValue(format!(
                "Value ( {n} ) for parameter maxResults is invalid. \
                 Expecting a value between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}."
            )))
        }
        _ => Ok(()),
    }
}

pub(super) fn invalid_token(token: &str) -> FleetError {
    FleetError::InvalidParameterValue(format!("Invalid value '{token}' for nextToken"))
}

/// Instance pages resume after the registration sequence number of the last item.
pub(super) fn parse_instance_token(token: &str) -> Result<u64, FleetError> {
    token
        .strip_prefix("sd-i-")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| invalid_token(token))
}

pub(super) fn instance_token(seq: u64) -> String {
    format!("sd-i-{seq:x}")
}

/// Tag pages resume after (registration seq, key) of the last item; the key is hex-encoded.
pub(super) fn parse_tag_token(token: &str) -> Result<(u64, String), FleetError> {
    let bad = || invalid_token(token);
    let rest = token.strip_prefix("sd-t-").ok_or_else(bad)?;
    let (seq, key_hex) = rest.split_once('.').ok_or_else(bad)?;
    let seq = u64::from_str_radix(seq, 16).map_err(|_| bad())?;
    let bytes = hex_decode(key_hex).ok_or_else(bad)?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    Ok((seq, key))
}

pub(super) fn tag_token(seq: u64, key: &str) -> String {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sd-t-{seq:x}.{hex}")
}

pub(super) fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// Splits `items` (already in order) into one page of at most `max` items.
pub(super) fn paginate<T, F>(items: Vec<T>, max: Option<usize>, token_of: F) -> Page<T>
where
    F: Fn(&T) -> String,
{
    let Some(max) = max else {
        return Page {
            items,
            next_token: None,
        };
    };
    let more = items.len() > max;
    let mut items = items;
    items.truncate(max);
    let next_token = if more {
        items.last().map(token_of)
    } else {
        None
    };
    Page { items, next_token }
}
