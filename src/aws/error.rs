//! [`AwsError`]: why an AWS call failed.

/// Why an AWS call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// No region configured.
    #[error("no AWS region: set `region` in the target or AWS_REGION")]
    NoRegion,
    /// A call failed.
    #[error("{op}: {message}")]
    Call {
        /// The API operation.
        op: &'static str,
        /// Error code, if the service sent one.
        code: Option<String>,
        /// What the SDK said (with its cause chain).
        message: String,
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

impl AwsError {
    /// Wraps an SDK error (of any service: the SDKs share their error types).
    pub fn call<E>(op: &'static str, e: aws_sdk_ec2::error::SdkError<E>) -> AwsError
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        let code = e.code().map(str::to_owned);
        let message = match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            _ => aws_sdk_ec2::error::DisplayErrorContext(&e).to_string(),
        };
        AwsError::Call { op, code, message }
    }

    /// The service's error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Call { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}
