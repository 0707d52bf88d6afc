//! The registry's vocabulary: instance ids, the EC2 state machine's states, launch specs,
//! queries, answers and errors.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

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

pub(super) const ID_HEX_LEN: usize = 17;
pub(super) const MAX_TAG_KEY_LEN: usize = 128;
pub(super) const MAX_TAG_VALUE_LEN: usize = 256;

/// An EC2 instance id: `i-` followed by 17 (or, for old ids, 8) lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id as text, e.g. `i-0123456789abcdef0`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn from_bits(bits: u128) -> Self {
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
    pub(super) fn new(code: &str, detail: &str) -> Self {
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
    pub(super) seq: u64,
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

pub(super) fn not_found_message(ids: &[InstanceId]) -> String {
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
