//! The pure instance registry: ids, the EC2 state machine, tags, filters, pagination and a
//! bounded change log. No IO, no clock, no tokio: every operation that depends on time takes
//! `now`, and randomness comes from a seeded generator owned by the fleet.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Instance type reported when the launcher does not name one.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
/// Image id reported for every sandbox instance unless the launcher names one.
pub const DEFAULT_IMAGE_ID: &str = "ami-00000000000000000";
/// Availability zone reported for sandbox instances unless the launcher names one.
pub const DEFAULT_AVAILABILITY_ZONE: &str = "us-east-1a";
/// How long terminated instances stay visible by default (AWS keeps them about an hour).
pub const DEFAULT_TERMINATED_RETENTION: Duration = Duration::from_secs(3600);
/// How many transitions the change log keeps before the oldest are dropped.
pub const DEFAULT_CHANGE_LOG_CAPACITY: usize = 4096;
/// AWS's limit of user tags per resource.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// Smallest `MaxResults` AWS accepts for the paginated describe calls.
pub const MIN_PAGE_SIZE: usize = 5;
/// Largest `MaxResults` AWS accepts for the paginated describe calls.
pub const MAX_PAGE_SIZE: usize = 1000;

const ID_HEX_LEN: usize = 17;
const MAX_TAG_KEY_LEN: usize = 128;
const MAX_TAG_VALUE_LEN: usize = 256;

/// An EC2 instance id: `i-` followed by 17 (or, for old ids, 8) lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id as text, e.g. `i-0123456789abcdef0`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_bits(bits: u128) -> Self {
        let masked = bits & ((1u128 << (4 * ID_HEX_LEN)) - 1);
        InstanceId(format!("i-{masked:0width$x}", width = ID_HEX_LEN))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InstanceId {
    type Err = FleetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("i-")
            .ok_or_else(|| FleetError::MalformedId(s.to_string()))?;
        let well_formed = (hex.len() == ID_HEX_LEN || hex.len() == 8)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(InstanceId(s.to_string()))
        } else {
            Err(FleetError::MalformedId(s.to_string()))
        }
    }
}

/// The EC2 instance lifecycle states, with their documented numeric codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// Code 0: launched, not yet serving.
    Pending,
    /// Code 16: serving.
    Running,
    /// Code 32: being terminated.
    ShuttingDown,
    /// Code 48: gone; stays visible for the retention period.
    Terminated,
    /// Code 64: being stopped.
    Stopping,
    /// Code 80: frozen; can be started again.
    Stopped,
}

impl InstanceState {
    /// Every state, in code order.
    pub const ALL: [InstanceState; 6] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::ShuttingDown,
        InstanceState::Terminated,
        InstanceState::Stopping,
        InstanceState::Stopped,
    ];

    /// The EC2 state code (0, 16, 32, 48, 64, 80).
    pub fn code(self) -> i32 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }

    /// The EC2 state name, e.g. `shutting-down`.
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// The state with this EC2 name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an instance is in its state, as EC2's `stateReason` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateReason {
    /// e.g. `Client.UserInitiatedShutdown`.
    pub code: String,
    /// e.g. `Client.UserInitiatedShutdown: User initiated shutdown`.
    pub message: String,
}

impl StateReason {
    fn new(code: &str, detail: &str) -> Self {
        StateReason {
            code: code.to_string(),
            message: format!("{code}: {detail}"),
        }
    }
}

/// What the launcher (the supervisor) says about a new instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Instance type to report, e.g. `t3.micro`.
    pub instance_type: String,
    /// Image id to report.
    pub image_id: String,
    /// Availability zone to report.
    pub availability_zone: String,
    /// Private address; sandbox instances are local processes.
    pub private_ip: Ipv4Addr,
    /// Initial tags, including reserved `aws:` ones such as `aws:autoscaling:groupName`.
    pub tags: BTreeMap<String, String>,
}

impl Default for LaunchSpec {
    fn default() -> Self {
        LaunchSpec {
            instance_type: DEFAULT_INSTANCE_TYPE.to_string(),
            image_id: DEFAULT_IMAGE_ID.to_string(),
            availability_zone: DEFAULT_AVAILABILITY_ZONE.to_string(),
            private_ip: Ipv4Addr::LOCALHOST,
            tags: BTreeMap::new(),
        }
    }
}

impl LaunchSpec {
    /// Adds one tag (builder style).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }
}

/// One instance as the registry knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Its id.
    pub id: InstanceId,
    /// Its reservation (one per registration).
    pub reservation_id: String,
    /// Image id.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Private address.
    pub private_ip: Ipv4Addr,
    /// When it was registered.
    pub launch_time: DateTime<Utc>,
    /// Current state.
    pub state: InstanceState,
    /// When it entered the current state.
    pub state_since: DateTime<Utc>,
    /// EC2's `stateTransitionReason` text (empty when none).
    pub transition_reason: String,
    /// EC2's `stateReason`, if any.
    pub state_reason: Option<StateReason>,
    /// Tags, ordered by key.
    pub tags: BTreeMap<String, String>,
    /// Registration order; pagination follows it.
    seq: u64,
}

/// An instance's state before and after a request, as the Terminate/Stop/Start calls report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The instance.
    pub id: InstanceId,
    /// State before the request.
    pub previous: InstanceState,
    /// State after the request.
    pub current: InstanceState,
}

impl StateChange {
    /// Whether the request moved the instance.
    pub fn changed(&self) -> bool {
        self.previous != self.current
    }
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Position in the log, starting at 1 and increasing by one.
    pub seq: u64,
    /// The instance.
    pub id: InstanceId,
    /// State before (`None` for a registration).
    pub from: Option<InstanceState>,
    /// State after.
    pub to: InstanceState,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The state reason message, if any.
    pub reason: Option<String>,
}

/// Transitions read from the change log since a cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The transitions, oldest first.
    pub transitions: Vec<Transition>,
    /// How many transitions after the cursor were already dropped from the bounded log.
    pub missed: u64,
    /// The cursor to pass next time.
    pub cursor: u64,
}

/// A describe filter as the API sends it: a name and values (OR'ed); filters are AND'ed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// e.g. `tag:tier`, `instance-state-name`.
    pub name: String,
    /// Accepted values; `*` and `?` are wildcards as in EC2.
    pub values: Vec<String>,
}

impl Filter {
    /// A filter from a name and values.
    pub fn new<I, S>(name: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Filter {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

/// The parameters of a DescribeInstances (or DescribeInstanceStatus) call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescribeQuery {
    /// `InstanceIds`: when non-empty, only these, and every one must exist.
    pub ids: Vec<InstanceId>,
    /// Filters, AND'ed.
    pub filters: Vec<Filter>,
    /// Page size (5..=1000); `None` returns everything.
    pub max_results: Option<usize>,
    /// Token from the previous page.
    pub next_token: Option<String>,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Token for the next page, if there is one.
    pub next_token: Option<String>,
}

/// One tag of one resource, as DescribeTags reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagDescription {
    /// The resource (always an instance here).
    pub resource_id: InstanceId,
    /// Always `instance`.
    pub resource_type: &'static str,
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// A tag to delete: a key, and optionally the only value for which to delete it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagSelector {
    /// The key.
    pub key: String,
    /// When set, the tag is deleted only if its value equals this.
    pub value: Option<String>,
}

/// Which call an incorrect-state error refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// StopInstances.
    Stop,
    /// StartInstances.
    Start,
    /// The supervisor reporting readiness.
    MarkRunning,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Stop => "stopped",
            Action::Start => "started",
            Action::MarkRunning => "marked running",
        })
    }
}

/// Errors of the registry; each maps to an EC2 error code via [`FleetError::ec2_code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// Some ids are unknown (or terminated long enough ago to be forgotten).
    #[error("{}", not_found_message(.0))]
    NotFound(Vec<InstanceId>),
    /// An id is not of the form `i-` + hex.
    #[error("Invalid id: \"{0}\"")]
    MalformedId(String),
    /// The instance is in a state that does not allow the action.
    #[error("The instance '{id}' is not in a state from which it can be {action}.")]
    IncorrectState {
        /// The instance.
        id: InstanceId,
        /// Its state.
        state: InstanceState,
        /// What was asked.
        action: Action,
    },
    /// A filter name this endpoint does not know.
    #[error("The filter '{0}' is invalid")]
    InvalidFilter(String),
    /// A parameter has an invalid value.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// Two parameters that cannot be combined.
    #[error("{0}")]
    InvalidParameterCombination(String),
    /// The instance would have more than [`MAX_TAGS_PER_RESOURCE`] tags.
    #[error("the TagSet for resource '{0}' would have more than {MAX_TAGS_PER_RESOURCE} tags")]
    TagLimitExceeded(InstanceId),
}

fn not_found_message(ids: &[InstanceId]) -> String {
    let list = ids.iter().map(InstanceId::as_str).collect::<Vec<_>>();
    if list.len() == 1 {
        format!("The instance ID '{}' does not exist", list[0])
    } else {
        format!("The instance IDs '{}' do not exist", list.join(", "))
    }
}

impl FleetError {
    /// The EC2 error code clients see for this error.
    pub fn ec2_code(&self) -> &'static str {
        match self {
            FleetError::NotFound(_) => "InvalidInstanceID.NotFound",
            FleetError::MalformedId(_) => "InvalidInstanceID.Malformed",
            FleetError::IncorrectState { .. } => "IncorrectInstanceState",
            FleetError::InvalidFilter(_) | FleetError::InvalidParameterValue(_) => {
                "InvalidParameterValue"
            }
            FleetError::InvalidParameterCombination(_) => "InvalidParameterCombination",
            FleetError::TagLimitExceeded(_) => "TagLimitExceeded",
        }
    }
}

/// A value pattern with EC2's wildcards: `*` (any run) and `?` (one character).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern(Vec<char>);

impl Pattern {
    fn new(text: &str) -> Self {
        Pattern(text.chars().collect())
    }

    fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        glob_match(&self.0, &text)
    }
}

/// Iterative glob matching with single-star backtracking (linear in practice).
fn glob_match(pattern: &[char], text: &[char]) -> bool {
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

fn any_matches(patterns: &[Pattern], text: &str) -> bool {
    patterns.iter().any(|p| p.matches(text))
}

fn patterns(values: &[String]) -> Vec<Pattern> {
    values.iter().map(|v| Pattern::new(v)).collect()
}

/// A validated DescribeInstances filter.
#[derive(Clone, Debug)]
enum InstanceFilter {
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
    fn parse(filter: &Filter) -> Result<Self, FleetError> {
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

    fn matches(&self, i: &Instance) -> bool {
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
enum TagFilter {
    ResourceId(Vec<Pattern>),
    ResourceType(Vec<Pattern>),
    Key(Vec<Pattern>),
    Value(Vec<Pattern>),
}

impl TagFilter {
    fn parse(filter: &Filter) -> Result<Self, FleetError> {
        let values = patterns(&filter.values);
        Ok(match filter.name.as_str() {
            "resource-id" => TagFilter::ResourceId(values),
            "resource-type" => TagFilter::ResourceType(values),
            "key" => TagFilter::Key(values),
            "value" => TagFilter::Value(values),
            other => return Err(FleetError::InvalidFilter(other.to_string())),
        })
    }

    fn matches(&self, tag: &TagDescription) -> bool {
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

fn invalid_token(token: &str) -> FleetError {
    FleetError::InvalidParameterValue(format!("Invalid value '{token}' for nextToken"))
}

/// Instance pages resume after the registration sequence number of the last item.
fn parse_instance_token(token: &str) -> Result<u64, FleetError> {
    token
        .strip_prefix("sd-i-")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| invalid_token(token))
}

fn instance_token(seq: u64) -> String {
    format!("sd-i-{seq:x}")
}

/// Tag pages resume after (registration seq, key) of the last item; the key is hex-encoded.
fn parse_tag_token(token: &str) -> Result<(u64, String), FleetError> {
    let bad = || invalid_token(token);
    let rest = token.strip_prefix("sd-t-").ok_or_else(bad)?;
    let (seq, key_hex) = rest.split_once('.').ok_or_else(bad)?;
    let seq = u64::from_str_radix(seq, 16).map_err(|_| bad())?;
    let bytes = hex_decode(key_hex).ok_or_else(bad)?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    Ok((seq, key))
}

fn tag_token(seq: u64, key: &str) -> String {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sd-t-{seq:x}.{hex}")
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
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
fn paginate<T, F>(items: Vec<T>, max: Option<usize>, token_of: F) -> Page<T>
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

fn user_initiated(now: DateTime<Utc>) -> String {
    format!("User initiated ({})", now.format("%Y-%m-%d %H:%M:%S GMT"))
}

/// The instance registry.
#[derive(Debug)]
pub struct Fleet {
    instances: HashMap<InstanceId, Instance>,
    next_seq: u64,
    rng: StdRng,
    retention: chrono::Duration,
    log: VecDeque<Transition>,
    log_capacity: usize,
    next_log_seq: u64,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new(rand::random())
    }
}

impl Fleet {
    /// An empty registry whose ids derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Fleet {
            instances: HashMap::new(),
            next_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            retention: to_chrono(DEFAULT_TERMINATED_RETENTION),
            log: VecDeque::new(),
            log_capacity: DEFAULT_CHANGE_LOG_CAPACITY,
            next_log_seq: 1,
        }
    }

    /// Sets how long terminated instances stay visible (builder style).
    pub fn with_terminated_retention(mut self, retention: Duration) -> Self {
        self.retention = to_chrono(retention);
        self
    }

    /// Sets the change log capacity (builder style; at least 1).
    pub fn with_change_log_capacity(mut self, capacity: usize) -> Self {
        self.log_capacity = capacity.max(1);
        self
    }

    /// Number of instances currently known (terminated ones included until forgotten).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether no instance is known.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The instance with this id, if known.
    pub fn get(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id)
    }

    /// Sequence number of the newest transition (0 when none yet).
    pub fn version(&self) -> u64 {
        self.next_log_seq - 1
    }

    /// Registers a new instance in `pending`; the launcher calls this when it spawns a process.
    pub fn register(&mut self, spec: LaunchSpec, now: DateTime<Utc>) -> InstanceId {
        self.purge(now);
        let id = self.fresh_id();
        let reservation_id = format!("r-{:017x}", self.rng.random::<u128>() & ((1 << 68) - 1));
        self.next_seq += 1;
        let instance = Instance {
            id: id.clone(),
            reservation_id,
            image_id: spec.image_id,
            instance_type: spec.instance_type,
            availability_zone: spec.availability_zone,
            private_ip: spec.private_ip,
            launch_time: now,
            state: InstanceState::Pending,
            state_since: now,
            transition_reason: String::new(),
            state_reason: None,
            tags: spec.tags,
            seq: self.next_seq,
        };
        self.instances.insert(id.clone(), instance);
        self.record(&id, None, InstanceState::Pending, now, None);
        id
    }

    fn fresh_id(&mut self) -> InstanceId {
        loop {
            let id = InstanceId::from_bits(self.rng.random());
            if !self.instances.contains_key(&id) {
                return id;
            }
        }
    }

    /// The launcher reports the instance ready: `pending -> running` (idempotent on `running`).
    pub fn mark_running(
        &mut self,
        id: &InstanceId,
        now: DateTime<Utc>,
    ) -> Result<StateChange, FleetError> {
        self.purge(now);
        let state = self.existing(id)?.state;
        match state {
            InstanceState::Pending => Ok(self.set_state(id, InstanceState::Running, now, None)),
            InstanceState::Running => Ok(unchanged(id, state)),
            _ => Err(FleetError::IncorrectState {
                id: id.clone(),
                state,
                action: Action::MarkRunning,
            }),
        }
    }

    /// The launcher reports the process gone on its own: any state `-> terminated`.
    pub fn mark_exited(
        &mut self,
        id: &InstanceId,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<StateChange, FleetError> {
        self.purge(now);
        let state = self.existing(id)?.state;
        if state == InstanceState::Terminated {
            return Ok(unchanged(id, state));
        }
        let reason = StateReason::new("Client.InstanceInitiatedShutdown", message);
        let change = self.set_state(id, InstanceState::Terminated, now, Some(reason));
        self.set_transition_reason(id, format!("Instance exited: {message}"));
        Ok(change)
    }

    /// First half of TerminateInstances: every listed instance that is not already going away
    /// moves to `shutting-down`. All ids are checked before anything changes.
    pub fn begin_terminate(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        let reason = StateReason::new("Client.UserInitiatedShutdown", "User initiated shutdown");
        Ok(unique(ids)
            .map(|id| {
                let state = self.instances[id].state;
                match state {
                    InstanceState::ShuttingDown | InstanceState::Terminated => unchanged(id, state),
                    _ => self.user_transition(id, InstanceState::ShuttingDown, &reason, now),
                }
            })
            .collect())
    }

    /// First half of StopInstances: `running -> stopping`; `stopping`/`stopped` stay.
    /// Fails whole if any instance is pending, shutting down or terminated.
    pub fn begin_stop(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, FleetError> {
        use InstanceState::*;
        self.begin_user_action(ids, now, Action::Stop, &[Running, Stopping, Stopped], |s| {
            (s == Running).then_some(Stopping)
        })
    }

    /// First half of StartInstances: `stopped -> pending`; `pending`/`running` stay.
    /// Fails whole if any instance is stopping, shutting down or terminated.
    pub fn begin_start(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, FleetError> {
        use InstanceState::*;
        self.begin_user_action(ids, now, Action::Start, &[Stopped, Pending, Running], |s| {
            (s == Stopped).then_some(Pending)
        })
    }

    fn begin_user_action(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
        action: Action,
        allowed: &[InstanceState],
        next: impl Fn(InstanceState) -> Option<InstanceState>,
    ) -> Result<Vec<StateChange>, FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        if let Some(bad) = ids
            .iter()
            .find(|id| !allowed.contains(&self.instances[*id].state))
        {
            return Err(FleetError::IncorrectState {
                id: bad.clone(),
                state: self.instances[bad].state,
                action,
            });
        }
        let reason = match action {
            Action::Stop => Some(StateReason::new(
                "Client.UserInitiatedShutdown",
                "User initiated shutdown",
            )),
            _ => None,
        };
        Ok(unique(ids)
            .map(|id| {
                let state = self.instances[id].state;
                match (next(state), &reason) {
                    (Some(to), Some(r)) => self.user_transition(id, to, r, now),
                    (Some(to), None) => self.set_state(id, to, now, None),
                    (None, _) => unchanged(id, state),
                }
            })
            .collect())
    }

    /// Second half of a transition, once the driver acted: moves the instance from the
    /// intermediate state `from` to `to`. Returns `None` (and changes nothing) if the instance
    /// is gone or has meanwhile left `from` (e.g. it exited on its own).
    pub fn complete(
        &mut self,
        id: &InstanceId,
        from: InstanceState,
        to: InstanceState,
        now: DateTime<Utc>,
    ) -> Option<StateChange> {
        let state = self.instances.get(id)?.state;
        (state == from).then(|| {
            let reason = self.instances[id].state_reason.clone();
            self.set_state(id, to, now, reason)
        })
    }

    /// Undoes the first half of a transition whose driver call failed: back from `from` to
    /// `to`, recording `message` as the state reason. Same `None` rule as [`Fleet::complete`].
    pub fn abort(
        &mut self,
        id: &InstanceId,
        from: InstanceState,
        to: InstanceState,
        message: &str,
        now: DateTime<Utc>,
    ) -> Option<StateChange> {
        let state = self.instances.get(id)?.state;
        (state == from).then(|| {
            let reason = StateReason::new("Server.InternalError", message);
            let change = self.set_state(id, to, now, Some(reason.clone()));
            // Kept even when rolled back to `running`, so the failure stays visible.
            self.instances
                .get_mut(id)
                .expect("checked above")
                .state_reason = Some(reason);
            change
        })
    }

    /// CreateTags: adds or overwrites tags on every listed instance (all must exist).
    pub fn create_tags(
        &mut self,
        ids: &[InstanceId],
        tags: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        check_tags(tags)?;
        for id in ids {
            let current = &self.instances[id].tags;
            let added = tags.iter().filter(|(k, _)| !current.contains_key(k));
            let new_keys: std::collections::BTreeSet<&String> = added.map(|(k, _)| k).collect();
            if current.len() + new_keys.len() > MAX_TAGS_PER_RESOURCE {
                return Err(FleetError::TagLimitExceeded(id.clone()));
            }
        }
        for id in ids {
            let instance = self.instances.get_mut(id).expect("checked above");
            for (k, v) in tags {
                instance.tags.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    /// DeleteTags: removes the selected tags; with no selectors, every non-`aws:` tag.
    pub fn delete_tags(
        &mut self,
        ids: &[InstanceId],
        selectors: &[TagSelector],
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        if let Some(s) = selectors.iter().find(|s| s.key.starts_with("aws:")) {
            return Err(reserved_key(&s.key));
        }
        for id in ids {
            let tags = &mut self.instances.get_mut(id).expect("checked above").tags;
            if selectors.is_empty() {
                tags.retain(|k, _| k.starts_with("aws:"));
            }
            for s in selectors {
                let matches = match &s.value {
                    None => true,
                    Some(v) => tags.get(&s.key) == Some(v),
                };
                if matches {
                    tags.remove(&s.key);
                }
            }
        }
        Ok(())
    }

    /// DescribeInstances: instances matching ids and filters, in registration order, paged.
    pub fn describe(
        &mut self,
        query: &DescribeQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<Instance>, FleetError> {
        self.purge(now);
        if !query.ids.is_empty() && query.max_results.is_some() {
            return Err(FleetError::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults"
                    .to_string(),
            ));
        }
        validate_page_size(query.max_results)?;
        self.check_all_exist(&query.ids)?;
        let filters = query
            .filters
            .iter()
            .map(InstanceFilter::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let after = query
            .next_token
            .as_deref()
            .map(parse_instance_token)
            .transpose()?;
        let mut matching: Vec<Instance> = self
            .instances
            .values()
            .filter(|i| query.ids.is_empty() || query.ids.contains(&i.id))
            .filter(|i| after.is_none_or(|a| i.seq > a))
            .filter(|i| filters.iter().all(|f| f.matches(i)))
            .cloned()
            .collect();
        matching.sort_by_key(|i| i.seq);
        Ok(paginate(matching, query.max_results, |i| {
            instance_token(i.seq)
        }))
    }

    /// DescribeTags: tags matching the filters, ordered by instance then key, paged.
    pub fn describe_tags(
        &mut self,
        filters: &[Filter],
        max_results: Option<usize>,
        next_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Page<TagDescription>, FleetError> {
        self.purge(now);
        validate_page_size(max_results)?;
        let filters = filters
            .iter()
            .map(TagFilter::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let after = next_token.map(parse_tag_token).transpose()?;
        let mut instances: Vec<&Instance> = self.instances.values().collect();
        instances.sort_by_key(|i| i.seq);
        let mut out = Vec::new();
        for i in instances {
            for (key, value) in &i.tags {
                let past = after
                    .as_ref()
                    .is_none_or(|(s, k)| (i.seq, key.as_str()) > (*s, k.as_str()));
                let tag = TagDescription {
                    resource_id: i.id.clone(),
                    resource_type: "instance",
                    key: key.clone(),
                    value: value.clone(),
                };
                if past && filters.iter().all(|f| f.matches(&tag)) {
                    out.push((i.seq, tag));
                }
            }
        }
        let page = paginate(out, max_results, |(seq, t)| tag_token(*seq, &t.key));
        Ok(Page {
            items: page.items.into_iter().map(|(_, t)| t).collect(),
            next_token: page.next_token,
        })
    }

    /// Transitions after `cursor` (0 for all that are still logged).
    pub fn changes_since(&self, cursor: u64) -> Changes {
        let oldest = self.log.front().map_or(self.next_log_seq, |t| t.seq);
        let missed = oldest.saturating_sub(cursor + 1);
        let transitions: Vec<Transition> = self
            .log
            .iter()
            .filter(|t| t.seq > cursor)
            .cloned()
            .collect();
        Changes {
            transitions,
            missed,
            cursor: self.version().max(cursor),
        }
    }

    /// Forgets instances terminated longer than the retention period ago.
    pub fn purge(&mut self, now: DateTime<Utc>) {
        let retention = self.retention;
        self.instances
            .retain(|_, i| i.state != InstanceState::Terminated || now - i.state_since < retention);
    }

    fn existing(&self, id: &InstanceId) -> Result<&Instance, FleetError> {
        self.instances
            .get(id)
            .ok_or_else(|| FleetError::NotFound(vec![id.clone()]))
    }

    fn check_all_exist(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        let missing: Vec<InstanceId> = unique(ids)
            .filter(|id| !self.instances.contains_key(*id))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FleetError::NotFound(missing))
        }
    }

    fn user_transition(
        &mut self,
        id: &InstanceId,
        to: InstanceState,
        reason: &StateReason,
        now: DateTime<Utc>,
    ) -> StateChange {
        let change = self.set_state(id, to, now, Some(reason.clone()));
        self.set_transition_reason(id, user_initiated(now));
        change
    }

    fn set_transition_reason(&mut self, id: &InstanceId, text: String) {
        if let Some(i) = self.instances.get_mut(id) {
            i.transition_reason = text;
        }
    }

    fn set_state(
        &mut self,
        id: &InstanceId,
        to: InstanceState,
        now: DateTime<Utc>,
        reason: Option<StateReason>,
    ) -> StateChange {
        let instance = self
            .instances
            .get_mut(id)
            .expect("caller checked existence");
        let previous = instance.state;
        instance.state = to;
        instance.state_since = now;
        if to == InstanceState::Running {
            instance.transition_reason.clear();
        }
        instance.state_reason = if to == InstanceState::Running {
            None
        } else {
            reason
        };
        let message = instance.state_reason.as_ref().map(|r| r.message.clone());
        self.record(id, Some(previous), to, now, message);
        StateChange {
            id: id.clone(),
            previous,
            current: to,
        }
    }

    fn record(
        &mut self,
        id: &InstanceId,
        from: Option<InstanceState>,
        to: InstanceState,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) {
        let seq = self.next_log_seq;
        self.next_log_seq += 1;
        self.log.push_back(Transition {
            seq,
            id: id.clone(),
            from,
            to,
            at,
            reason,
        });
        while self.log.len() > self.log_capacity {
            self.log.pop_front();
        }
    }
}

fn unchanged(id: &InstanceId, state: InstanceState) -> StateChange {
    StateChange {
        id: id.clone(),
        previous: state,
        current: state,
    }
}

/// The ids in order, each once.
fn unique(ids: &[InstanceId]) -> impl Iterator<Item = &InstanceId> {
    ids.iter()
        .enumerate()
        .filter(|(n, id)| !ids[..*n].contains(id))
        .map(|(_, id)| id)
}

fn reserved_key(key: &str) -> FleetError {
    FleetError::InvalidParameterValue(format!(
        "Value ( {key} ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use"
    ))
}

/// Validates user-supplied tags (CreateTags): no `aws:` prefix, EC2's length limits.
fn check_tags(tags: &[(String, String)]) -> Result<(), FleetError> {
    for (key, value) in tags {
        if key.starts_with("aws:") {
            return Err(reserved_key(key));
        }
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_LEN {
            return Err(FleetError::InvalidParameterValue(format!(
                "Tag key must be 1 to {MAX_TAG_KEY_LEN} characters: '{key}'"
            )));
        }
        if value.chars().count() > MAX_TAG_VALUE_LEN {
            return Err(FleetError::InvalidParameterValue(format!(
                "Tag value for key '{key}' exceeds {MAX_TAG_VALUE_LEN} characters"
            )));
        }
    }
    Ok(())
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests;
