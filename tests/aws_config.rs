//! The AWS configuration chain, end to end: `shakedown run --dry-run` of a shipped AWS
//! experiment against moto_server, with credentials from the environment, from an
//! assume-role profile of the shared files, and from web identity (GitHub Actions OIDC, EKS),
//! the endpoint from `AWS_ENDPOINT_URL`; and the errors a user sees when credentials or
//! permissions are missing.
//!
//! Every command runs with a cleared environment (only what the case sets), so nothing of
//! the machine's own AWS configuration leaks in, and `AWS_EC2_METADATA_DISABLED=true`: the
//! instance metadata address is never contacted.

#[path = "support/moto.rs"]
mod moto;

use std::path::Path;
use std::process::{Command, Output};

use shakedown::aws::aws_clients;

/// Creates the queues and the Auto Scaling group `chaos/aws-queue-worker.toml` names, in
/// its region (5 calls).
async fn queues(moto: &moto::Moto) {
    let c = aws_clients(&moto::fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    moto::fixtures::queues(&c, &["jobs", "jobs-dlq", "jobs-done"]).await;
    moto::fixtures::auto_scaling_group(&c, "workers", (0, 0, 4), "eu-west-1a").await;
}

/// `shakedown run chaos/aws-queue-worker.toml --dry-run` with only `env` (plus PATH, a home
/// of its own, and metadata disabled).
async fn dry_run(home: &Path, env: &[(&str, String)]) -> (Output, String) {
    let empty = home.join("empty");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shakedown"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "chaos/aws-queue-worker.toml", "--dry-run"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn web_identity_from_the_environment_acts_as_the_role_at_aws_endpoint_url() {
    let moto = moto::Moto::start().await;
    queues(&moto).await;
    let home = tempfile::tempdir().unwrap();
    let token = home.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.oidc-token-from-github").unwrap();
    let (out, text) = dry_run(
        home.path(),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci".into()),
            ("AWS_ROLE_SESSION_NAME", "gh-actions".into()),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "aws: acting as arn:aws:sts::123456789012:assumed-role/ci/gh-actions (account 123456789012), region eu-west-1"
        ),
        "{text}"
    );
    // The queues were resolved at AWS_ENDPOINT_URL, and the AWS probes sampled there.
    assert!(
        text.contains(&format!("queue: {}/123456789012/jobs\n", moto.endpoint)),
        "{text}"
    );
    assert!(text.contains("probe backlog: every 1s, now 0"), "{text}");
    assert!(text.contains("stall-workers#0 [stall-consumers]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn an_assume_role_profile_of_the_shared_files_is_followed() {
    let moto = moto::Moto::start().await;
    queues(&moto).await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let credentials = home.path().join("credentials");
    std::fs::write(
        &config,
        "[profile chaos]\nrole_arn = arn:aws:iam::123456789012:role/chaos-runner\n\
         source_profile = base\nrole_session_name = from-profile\n\n[profile base]\n",
    )
    .unwrap();
    std::fs::write(
        &credentials,
        "[base]\naws_access_key_id = AKIASHAKEDOWNBASE\naws_secret_access_key = base-secret\n",
    )
    .unwrap();
    let (out, text) = dry_run(
        home.path(),
        &[
            ("AWS_PROFILE", "chaos".into()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "aws: acting as arn:aws:sts::123456789012:assumed-role/chaos-runner/from-profile"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn keys_in_the_environment_and_a_service_endpoint_variable() {
    let moto = moto::Moto::start().await;
    queues(&moto).await;
    let home = tempfile::tempdir().unwrap();
    let (out, text) = dry_run(
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIASHAKEDOWNENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
            // Per service, each at moto, nothing at AWS_ENDPOINT_URL.
            ("AWS_ENDPOINT_URL_EC2", moto.endpoint.clone()),
            ("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()),
            ("AWS_ENDPOINT_URL_STS", moto.endpoint.clone()),
            ("AWS_ENDPOINT_URL_AUTO_SCALING", moto.endpoint.clone()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", moto.endpoint.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("aws: acting as arn:aws:sts::123456789012:user/moto"),
        "{text}"
    );
    assert!(
        text.contains(&format!("dlq: {}/123456789012/jobs-dlq\n", moto.endpoint)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sso_profile_without_a_login_says_to_log_in_and_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\n\
         sso_role_name = Dev\nregion = eu-west-1\n\n[sso-session corp]\n\
         sso_region = eu-west-1\nsso_start_url = https://example.awsapps.com/start\n",
    )
    .unwrap();
    // Every endpoint on a closed loopback port: whatever happens, nothing leaves the machine.
    let (out, text) = dry_run(
        home.path(),
        &[
            ("AWS_PROFILE", "dev".into()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("getting AWS credentials failed"), "{text}");
    assert!(text.contains("aws sso login"), "{text}");
    assert!(!text.contains("Error {"), "a Debug dump: {text}");
    assert!(
        !text.contains(", now "),
        "probes sampled without credentials: {text}"
    );
}

/// One IAM query call to moto (no IAM SDK in this crate): moto routes it by the credential
/// scope of the Authorization header, and does not check the signature while it is not
/// enforcing IAM yet.
async fn iam(moto: &moto::Moto, params: &[(&str, &str)]) -> String {
    let mut form = params.to_vec();
    form.push(("Version", "2010-05-08"));
    shakedown::tls::client_builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(&moto.endpoint)
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261202/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// moto enforcing IAM: a user allowed to resolve queues but not to read their attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn a_denied_action_names_the_call_the_resource_and_the_fix_and_exits_2() {
    // The setup's calls (3 queues, 2 for the group, 3 IAM calls) pass unauthenticated;
    // every later call is checked against the user's policy.
    let moto = moto::Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "8")]).await;
    queues(&moto).await;
    iam(&moto, &[("Action", "CreateUser"), ("UserName", "ci")]).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sts:GetCallerIdentity","sqs:GetQueueUrl","ec2:DescribeInstances"],"Resource":"*"}]}"#;
    iam(
        &moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "ci"),
            ("PolicyName", "resolve-only"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    let keys = iam(&moto, &[("Action", "CreateAccessKey"), ("UserName", "ci")]).await;
    let field = |name: &str| {
        keys.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|s| s.split(&format!("</{name}>")).next())
            .unwrap_or_else(|| panic!("no {name} in {keys}"))
            .to_owned()
    };
    let home = tempfile::tempdir().unwrap();
    let (out, text) = dry_run(
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", field("AccessKeyId")),
            ("AWS_SECRET_ACCESS_KEY", field("SecretAccessKey")),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("aws: acting as arn:aws:iam::123456789012:user/ci"),
        "{text}"
    );
    // The queue resolves (allowed); sampling its depth is denied, on one line that names the
    // action, the queue and the fix.
    let line = text
        .lines()
        .find(|l| l.starts_with("probe backlog: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with(&format!(
            "probe backlog: sqs:GetQueueAttributes on {}/123456789012/jobs: ",
            moto.endpoint
        )),
        "{line}"
    );
    assert!(line.contains("docs/aws.md"), "{line}");
    println!("{line}");
}
