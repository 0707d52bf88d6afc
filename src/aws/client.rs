//! SDK clients: [`aws_clients`] for a target (AWS itself, the sandbox, moto), and
//! [`local_sqs_config`] for the sandbox's own clients of its loopback SQS endpoint.
//!
//! Credentials, region and endpoints are resolved as the AWS CLI resolves them (the
//! environment, the shared config and credentials files, SSO, assume-role profiles, web
//! identity, ECS container credentials, instance metadata, `credential_process`,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`); the experiment's `[target.aws]` keys
//! override. A target whose endpoints are all on this machine never reaches anything off it:
//! its chain leaves out the instance and container metadata services (and web identity, unless
//! STS is local too), and falls back to placeholder keys, which local endpoints accept.

use std::sync::Once;

use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use super::{AwsError, AwsTarget};

/// The clients of one target, and how they were configured.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// STS (who the credentials are), when an STS endpoint is known: AWS's own, or the
    /// target's `endpoint_url` for a local target.
    pub sts: Option<aws_sdk_sts::Client>,
    /// ELBv2 (target health), when its endpoint is known (as for `sts`).
    pub elbv2: Option<aws_sdk_elasticloadbalancingv2::Client>,
    /// Auto Scaling, when its endpoint is known (as for `sts`).
    pub autoscaling: Option<aws_sdk_autoscaling::Client>,
    /// FIS (the `fis` fault), when its endpoint is known (as for `sts`).
    pub fis: Option<aws_sdk_fis::Client>,
    /// EventBridge (PutEvents), when its endpoint is known (as for `sts`).
    pub eventbridge: Option<aws_sdk_eventbridge::Client>,
    /// CloudWatch (GetMetricData), when its endpoint is known (as for `sts`).
    pub cloudwatch: Option<super::CloudWatch>,
    /// The region the clients call.
    pub region: String,
}

/// Who a target's credentials act as (STS `GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The principal's ARN (`arn:aws:sts::123456789012:assumed-role/ci/session`).
    pub arn: String,
    /// The account id.
    pub account: String,
}

impl AwsClients {
    /// Who the credentials act as; `None` when no STS endpoint is known (a local target
    /// without `endpoint_url`, such as the sandbox, which serves EC2 and SQS only).
    pub async fn identity(&self) -> Result<Option<Identity>, AwsError> {
        let Some(sts) = &self.sts else {
            return Ok(None);
        };
        let out = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::call("sts:GetCallerIdentity", e))?;
        Ok(Some(Identity {
            arn: out.arn().unwrap_or_default().to_owned(),
            account: out.account().unwrap_or_default().to_owned(),
        }))
    }
}

/// A service whose endpoint can be set on its own.
#[derive(Debug, Clone, Copy)]
enum Service {
    Ec2,
    Sqs,
    Sts,
    Elbv2,
    AutoScaling,
    CloudWatch,
    EventBridge,
    Fis,
}

impl Service {
    /// The environment variable naming this service's endpoint (the SDKs' convention).
    fn env_var(self) -> &'static str {
        match self {
            Service::Ec2 => "AWS_ENDPOINT_URL_EC2",
            Service::Sqs => "AWS_ENDPOINT_URL_SQS",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
            Service::Elbv2 => "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
            Service::AutoScaling => "AWS_ENDPOINT_URL_AUTO_SCALING",
            Service::CloudWatch => "AWS_ENDPOINT_URL_CLOUDWATCH",
            Service::EventBridge => "AWS_ENDPOINT_URL_EVENTBRIDGE",
            Service::Fis => "AWS_ENDPOINT_URL_FIS",
        }
    }
}

/// The endpoint `service` is called at: the target's own keys first, then the
/// environment; `None` is AWS's public endpoint (or one named in the shared config file).
fn endpoint(target: &AwsTarget, service: Service) -> Option<String> {
    let configured = match service {
        Service::Ec2 => target.ec2_endpoint(),
        Service::Sqs => target.sqs_endpoint(),
        Service::EventBridge => target
            .events_endpoint_url
            .as_deref()
            .or(target.endpoint_url.as_deref()),
        Service::Sts
        | Service::Elbv2
        | Service::AutoScaling
        | Service::CloudWatch
        | Service::Fis => target.endpoint_url.as_deref(),
    };
    configured.map(str::to_owned).or_else(|| {
        [service.env_var(), "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
    })
}

/// Whether the target is on this machine: its EC2, SQS and EventBridge endpoints (those
/// configured, at least one) are all loopback addresses. `load --sqs-endpoint` names SQS alone.
fn is_local(target: &AwsTarget) -> bool {
    let endpoints: Vec<String> = [Service::Ec2, Service::Sqs, Service::EventBridge]
        .into_iter()
        .filter_map(|s| endpoint(target, s))
        .collect();
    !endpoints.is_empty() && endpoints.iter().all(|e| super::target::loopback(e))
}

/// Builds the clients for `target`.
pub async fn aws_clients(target: &AwsTarget) -> Result<AwsClients, AwsError> {
    let local = is_local(target);
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // AWS's own region chain (which may ask the instance metadata) runs in the loader.
    let region = match (&target.region, local) {
        (Some(region), _) => Some(Region::new(region.clone())),
        (None, true) => local_region(target).region().await,
        (None, false) => None,
    };
    if let Some(region) = &region {
        loader = loader.region(region.clone());
    }
    if let Some(credentials) = static_credentials(target) {
        loader = loader.credentials_provider(credentials);
    } else if local {
        loader = loader.credentials_provider(local_chain(target, region));
    }
    let config = loader.load().await;
    let region = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .ok_or(AwsError::NoRegion)?;

    let ec2 = {
        let mut b = aws_sdk_ec2::config::Builder::from(&config);
        if let Some(url) = target.ec2_endpoint() {
            b = b.endpoint_url(url);
        }
        aws_sdk_ec2::Client::from_conf(b.build())
    };
    let sqs = {
        let mut b = aws_sdk_sqs::config::Builder::from(&config);
        if let Some(url) = target.sqs_endpoint() {
            b = b.endpoint_url(url);
        }
        aws_sdk_sqs::Client::from_conf(b.build())
    };
    // A local target's other services are at its own endpoint, never AWS's: without one,
    // there is no client.
    let local_endpoint =
        |service| endpoint(target, service).filter(|url| super::target::loopback(url));
    // A client of `$sdk` at the local endpoint of `$service`, or AWS's.
    macro_rules! client {
        ($sdk:ident, $service:expr) => {
            match local {
                true => local_endpoint($service).map(|url| {
                    $sdk::Client::from_conf(
                        $sdk::config::Builder::from(&config)
                            .endpoint_url(url)
                            .build(),
                    )
                }),
                false => Some($sdk::Client::new(&config)),
            }
        };
    }
    let sts = client!(aws_sdk_sts, Service::Sts);
    let elbv2 = client!(aws_sdk_elasticloadbalancingv2, Service::Elbv2);
    let autoscaling = client!(aws_sdk_autoscaling, Service::AutoScaling);
    let eventbridge = client!(aws_sdk_eventbridge, Service::EventBridge);
    let fis = client!(aws_sdk_fis, Service::Fis);
    // Spoken by hand (see `cloudwatch`): the same endpoint rules, the same credentials.
    let cloudwatch_endpoint = match local {
        true => local_endpoint(Service::CloudWatch),
        false => Some(
            endpoint(target, Service::CloudWatch)
                .unwrap_or_else(|| super::CloudWatch::public_endpoint(&region)),
        ),
    };
    let cloudwatch = match (cloudwatch_endpoint, config.credentials_provider()) {
        (Some(url), Some(credentials)) => {
            // The system's roots; a machine without any still gets a client, whose https
            // calls then fail with the TLS error that says why.
            let timeout = std::time::Duration::from_secs(30);
            let http = crate::tls::http_client(&crate::tls::TlsOptions::default(), timeout)
                .or_else(|_| crate::tls::client_builder().timeout(timeout).build())
                .map_err(|e| AwsError::Unexpected {
                    op: super::cloudwatch::GET_METRIC_DATA,
                    message: format!("building the HTTP client: {e}"),
                })?;
            Some(super::CloudWatch::new(
                url,
                region.clone(),
                credentials,
                http,
            ))
        }
        _ => None,
    };
    Ok(AwsClients {
        ec2,
        sqs,
        sts,
        elbv2,
        autoscaling,
        eventbridge,
        fis,
        cloudwatch,
        region,
    })
}

/// Why a local target has no client of `service` (its endpoints do not serve it, and calling
/// AWS's public endpoint instead is never the fallback), with the fix.
pub fn unserved(service: &str) -> String {
    format!(
        "no {service} endpoint: the target's local endpoints do not serve it; set `endpoint_url` in [target.aws] (moto, LocalStack) or AWS_ENDPOINT_URL"
    )
}

/// The target's static keys, if it names them.
fn static_credentials(target: &AwsTarget) -> Option<SharedCredentialsProvider> {
    let (id, secret) = (
        target.access_key_id.as_ref()?,
        target.secret_access_key.as_ref()?,
    );
    Some(SharedCredentialsProvider::new(Credentials::new(
        id,
        secret,
        None,
        None,
        "shakedown-static",
    )))
}

/// The region of a local target without one: the environment's or the profile's, else
/// `us-east-1` (never the instance metadata service's).
fn local_region(target: &AwsTarget) -> RegionProviderChain {
    use aws_config::environment::region::EnvironmentVariableRegionProvider;
    use aws_config::profile::region::ProfileFileRegionProvider;
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(name) = &target.profile {
        profile = profile.profile_name(name);
    }
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build())
        .or_else(Region::new("us-east-1"))
}

/// The credentials of a local target without static keys: the environment's, the
/// profile's, web identity when STS is local too, else placeholder keys. `region` is the
/// region of the STS calls an assume-role profile or web identity makes.
fn local_chain(target: &AwsTarget, region: Option<Region>) -> CredentialsProviderChain {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_config::profile::ProfileFileCredentialsProvider;
    use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
    let conf = ProviderConfig::default().with_region(region);
    let mut profile = ProfileFileCredentialsProvider::builder().configure(&conf);
    if let Some(name) = &target.profile {
        profile = profile.profile_name(name);
    }
    let mut chain = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", profile.build());
    let sts_is_local = endpoint(target, Service::Sts)
        .as_deref()
        .is_some_and(super::target::loopback);
    if sts_is_local {
        chain = chain.or_else(
            "WebIdentityToken",
            WebIdentityTokenCredentialsProvider::builder()
                .configure(&conf)
                .build(),
        );
    }
    chain.or_else(
        "LocalPlaceholder",
        Credentials::new(
            "shakedown-local",
            "shakedown-local",
            None,
            None,
            "shakedown-loopback",
        ),
    )
}

/// The SQS configuration of a client of a local endpoint: fixed region, static credentials
/// (`key_id` names the caller to the sandbox's queue policy), nothing read from profiles,
/// the environment or instance metadata. Callers add retries and timeouts, then `build()`.
pub fn local_sqs_config(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
) -> aws_sdk_sqs::config::Builder {
    let credentials = Credentials::new(key_id, secret, None, None, "shakedown-local-static");
    aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
}

/// Sets `AWS_EC2_METADATA_DISABLED=true` once, unless the environment already says something,
/// so that no SDK configuration built afterwards probes the instance-metadata address.
/// Programs that build SDK clients from several threads should set the variable at startup.
pub fn disable_imds() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("AWS_EC2_METADATA_DISABLED").is_none() {
            // SAFETY: this runs once, before the caller builds any SDK configuration, and
            // only when the variable is unset. Callers document that programs touching the
            // environment concurrently must set it at startup instead.
            unsafe { std::env::set_var("AWS_EC2_METADATA_DISABLED", "true") };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_target_signs_with_placeholders_and_has_no_aws_sts() {
        // The sandbox's shape: EC2 and SQS on two loopback ports, no endpoint for STS.
        let target = AwsTarget {
            ec2_endpoint_url: Some("http://127.0.0.1:1".into()),
            sqs_endpoint_url: Some("http://127.0.0.1:2".into()),
            region: Some("eu-west-3".into()),
            ..AwsTarget::default()
        };
        let clients = aws_clients(&target).await.unwrap();
        assert!(is_local(&target));
        assert_eq!(clients.region, "eu-west-3");
        assert!(clients.sts.is_none(), "STS would be AWS's public endpoint");
        assert!(clients.elbv2.is_none() && clients.autoscaling.is_none());
        assert!(clients.identity().await.unwrap().is_none());
        assert!(!is_local(&AwsTarget::default()), "no endpoint: AWS's own");
    }
}
