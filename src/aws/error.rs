//! [`AwsError`]: why an AWS call failed, in one line a person can act on: the call (as the
//! IAM action it needs), the resource, the service's error code and message, and the fix
//! where one is known. Never a Debug dump of the SDK's error.

use aws_credential_types::provider::error::CredentialsError;

/// Why an AWS call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// No region configured.
    #[error(
        "no AWS region: set `region` in [target.aws], AWS_REGION, or `region` in your AWS profile"
    )]
    NoRegion,
    /// No credentials anywhere in the chain.
    #[error(
        "{op}: no AWS credentials found: set AWS_PROFILE (and run `aws sso login` for an SSO profile), export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is provided (web identity, ECS task role, instance profile)"
    )]
    NoCredentials {
        /// The call that needed them.
        op: &'static str,
    },
    /// The credentials could not be obtained (an expired SSO session, a refused role).
    #[error("{op}: getting AWS credentials failed: {message}{}", hint_suffix(*hint))]
    Credentials {
        /// The call that needed them.
        op: &'static str,
        /// What the provider said.
        message: String,
        /// The fix, if known.
        hint: Option<&'static str>,
    },
    /// The endpoint could not be reached (refused, DNS, timeout, TLS).
    #[error(
        "{op}: could not reach the endpoint: {message}{}",
        hint_suffix(Some(UNREACHABLE_HINT))
    )]
    Unreachable {
        /// The call.
        op: &'static str,
        /// The cause, outermost first.
        message: String,
    },
    /// The service answered with an error.
    #[error(
        "{op}{}: {}{message}{}",
        resource.as_deref().map(|r| format!(" on {r}")).unwrap_or_default(),
        code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(),
        hint_suffix(hint_for(code.as_deref(), *status))
    )]
    Call {
        /// The call, as the IAM action it needs (`sqs:SetQueueAttributes`).
        op: &'static str,
        /// What it was called on (a queue URL, instance ids), if known.
        resource: Option<String>,
        /// The service's error code, if it sent one.
        code: Option<String>,
        /// The service's message (or the HTTP status when it sent none we could read).
        message: String,
        /// The HTTP status of the answer.
        status: Option<u16>,
    },
    /// The answer lacked something we need.
    #[error("{op}: unexpected answer: {message}")]
    Unexpected {
        /// The API operation.
        op: &'static str,
        /// What was missing.
        message: String,
    },
}

const UNREACHABLE_HINT: &str =
    "check [target.aws] endpoint_url / AWS_ENDPOINT_URL, the region, and the network";

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!(" (fix: {h})")).unwrap_or_default()
}

/// The codes of a call refused for lack of permission (EC2, SQS, STS and the query APIs).
const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "UnauthorizedAccess",
];

/// Whether an answer is a refusal for lack of permission: one of [`ACCESS_DENIED`], or a
/// 403 without a code we could read (moto's SQS answers JSON calls with XML).
fn denied(code: Option<&str>, status: Option<u16>) -> bool {
    match code {
        Some(c) => ACCESS_DENIED.contains(&c),
        None => status == Some(403),
    }
}

/// The fix for a service error code, where one is known.
fn hint_for(code: Option<&str>, status: Option<u16>) -> Option<&'static str> {
    Some(match code {
        Some(c) if ACCESS_DENIED.contains(&c) => {
            "the identity shakedown runs as lacks this action on this resource: grant it (docs/aws.md lists what each fault and probe needs); `shakedown run --dry-run` prints the identity"
        }
        Some(
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired",
        ) => "the credentials expired: renew them (`aws sso login`, or a new session token)",
        Some("InvalidClientTokenId" | "UnrecognizedClientException" | "AuthFailure") => {
            "the access key is not known to this endpoint: check AWS_PROFILE or the keys, and that the endpoint and region are the account's"
        }
        Some("SignatureDoesNotMatch" | "IncompleteSignature") => {
            "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY or the profile"
        }
        Some(
            "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "QueueDoesNotExistException",
        ) => {
            "no such queue in this region and account: check the queue's name and [target.aws] region"
        }
        Some(c) if c.starts_with("InvalidInstanceID") => {
            "no such instance in this region and account: check the ids and [target.aws] region"
        }
        Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
            "the API rate limit was hit: probe less often (`every`) or retry later"
        }
        None if status == Some(403) => {
            "access was denied: the identity shakedown runs as lacks this action (docs/aws.md lists what each fault and probe needs)"
        }
        _ => return None,
    })
}

impl AwsError {
    /// Wraps an SDK error of the call `op` (written as its IAM action, `sqs:GetQueueUrl`).
    /// The SDKs share their error types, so this takes any service's.
    pub fn call<E>(op: &'static str, e: aws_sdk_ec2::error::SdkError<E>) -> AwsError
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
        match &e {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                AwsError::Call {
                    op,
                    resource: None,
                    code: e.code().map(str::to_owned),
                    message: e
                        .message()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("HTTP {status}")),
                    status: Some(status),
                }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                if let Some(c) = credentials_error(&e) {
                    return from_credentials(op, c);
                }
                AwsError::Unreachable {
                    op,
                    message: causes(&e),
                }
            }
            SdkError::ResponseError(_) => AwsError::Unexpected {
                op,
                message: causes(&e),
            },
            _ => AwsError::Call {
                op,
                resource: None,
                code: e.code().map(str::to_owned),
                message: causes(&e),
                status: None,
            },
        }
    }

    /// The same error, naming the resource the call was on.
    pub fn on(mut self, what: impl std::fmt::Display) -> AwsError {
        if let AwsError::Call { resource, .. } = &mut self {
            *resource = Some(what.to_string());
        }
        self
    }

    /// The service's error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Call { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether the service refused the call for lack of permission.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, AwsError::Call { code, status, .. } if denied(code.as_deref(), *status))
    }
}

/// The credentials error behind a dispatch failure, if that is what it was.
fn credentials_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        source = s.source();
    }
    None
}

pub(super) fn from_credentials(op: &'static str, e: &CredentialsError) -> AwsError {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => AwsError::NoCredentials { op },
        _ => {
            let message = causes(e);
            let lower = message.to_ascii_lowercase();
            let hint = if lower.contains("sso") || lower.contains("token has expired") {
                Some("run `aws sso login` with the same AWS_PROFILE")
            } else if lower.contains("assumerole") || lower.contains("assume role") {
                Some("check the profile's role_arn and that its source credentials may assume it")
            } else {
                None
            };
            AwsError::Credentials { op, message, hint }
        }
    }
}

/// An error and its causes on one line, each said once (the SDK repeats a cause in its
/// wrapper's message).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let text = err.to_string().replace('\n', " ");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> AwsError {
        AwsError::Call {
            op: "sqs:SetQueueAttributes",
            resource: None,
            code: Some("AccessDenied".into()),
            message: "User: arn:aws:sts::123456789012:assumed-role/ci/gh is not authorized to perform: sqs:setqueueattributes".into(),
            status: Some(403),
        }
    }

    #[test]
    fn a_refused_call_names_the_action_the_resource_the_code_and_the_fix() {
        let e = denied().on("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs");
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with(
                "sqs:SetQueueAttributes on https://sqs.eu-west-1.amazonaws.com/123456789012/jobs: AccessDenied: User: arn:aws:sts::123456789012:assumed-role/ci/gh"
            ),
            "{line}"
        );
        assert!(
            line.contains("(fix: the identity shakedown runs as lacks this action"),
            "{line}"
        );
        assert!(e.is_access_denied());
    }

    #[test]
    fn a_403_without_a_readable_code_is_still_access_denied() {
        let e = AwsError::Call {
            op: "sqs:GetQueueUrl",
            resource: Some("jobs".into()),
            code: None,
            message: "HTTP 403".into(),
            status: Some(403),
        };
        assert!(e.is_access_denied());
        assert!(e.to_string().contains("access was denied"), "{e}");
    }

    #[test]
    fn no_credentials_says_how_to_get_some() {
        let e = from_credentials(
            "sts:GetCallerIdentity",
            &CredentialsError::not_loaded("no providers in chain provided credentials"),
        );
        let line = e.to_string();
        assert!(line.contains("no AWS credentials found"), "{line}");
        assert!(line.contains("aws sso login"), "{line}");
        assert!(line.contains("AWS_PROFILE"), "{line}");
    }

    #[test]
    fn causes_are_said_once_on_one_line() {
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure: {0}")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("connection refused\n(os error 111)")]
        struct Inner;
        let line = causes(&Outer(Inner));
        assert_eq!(line, "dispatch failure: connection refused (os error 111)");
    }
}
