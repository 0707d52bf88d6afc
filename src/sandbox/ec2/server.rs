//! The HTTP endpoint: EC2 query protocol requests (POST form body or GET query string) in,
//! XML documents out; errors in EC2's `<Response><Errors>` shape.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::fleet::{DescribeQuery, Filter, FleetError, InstanceId, TagSelector};
use super::query::{ParamError, Params};
use super::{ControlError, FleetHandle, xml};

/// An error as the client sees it: HTTP status, EC2 code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn dry_run() -> Self {
        ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            code: "DryRunOperation",
            message: "Request would have succeeded, but DryRun flag is set.".into(),
        }
    }
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        ApiError::client(e.ec2_code(), e.to_string())
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::client(e.ec2_code(), e.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Fleet(f) => f.into(),
            driver @ ControlError::Driver { .. } => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "InternalError",
                message: driver.to_string(),
            },
        }
    }
}

type ApiResult = Result<String, ApiError>;

/// The routes: every path and method goes to the query dispatcher, like EC2's endpoint.
pub fn router(fleet: FleetHandle) -> Router {
    Router::new()
        .route("/", any(handle))
        .fallback(handle)
        .with_state(fleet)
}

async fn handle(State(fleet): State<FleetHandle>, uri: Uri, body: Bytes) -> Response {
    let request_id = new_request_id();
    let outcome = request_params(&uri, &body).and_then(|p| dispatch(&fleet, &p, &request_id));
    let (status, doc) = match outcome {
        Ok(doc) => (StatusCode::OK, doc),
        Err(e) => (e.status, xml::error(e.code, &e.message, &request_id)),
    };
    let mut response = (status, doc).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

fn request_params(uri: &Uri, body: &[u8]) -> Result<Params, ApiError> {
    let mut params = Params::parse(body)?;
    if let Some(q) = uri.query() {
        params.extend(Params::parse(q.as_bytes())?);
    }
    Ok(params)
}

fn dispatch(fleet: &FleetHandle, p: &Params, rid: &str) -> ApiResult {
    let action = p.get("Action").unwrap_or_default();
    let body = match action {
        "DescribeInstances" => describe_instances(fleet, p),
        "DescribeInstanceStatus" => describe_instance_status(fleet, p),
        "TerminateInstances" => control(fleet, p, FleetHandle::terminate),
        "StopInstances" => control(fleet, p, FleetHandle::stop),
        "StartInstances" => control(fleet, p, FleetHandle::start),
        "CreateTags" => create_tags(fleet, p),
        "DeleteTags" => delete_tags(fleet, p),
        "DescribeTags" => describe_tags(fleet, p),
        "" => Err(ApiError::client(
            "MissingAction",
            "The request must contain the parameter Action",
        )),
        other => Err(ApiError::client(
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }?;
    Ok(xml::response(action, rid, |w| w.raw(&body)))
}

/// Fails with `DryRunOperation` when `DryRun=true`: the request was valid and would succeed.
fn check_dry_run(p: &Params) -> Result<(), ApiError> {
    if p.flag("DryRun")? {
        Err(ApiError::dry_run())
    } else {
        Ok(())
    }
}

fn required_ids(p: &Params) -> Result<Vec<InstanceId>, ApiError> {
    let ids = p.instance_ids("InstanceId")?;
    if ids.is_empty() {
        return Err(ParamError::Missing("InstanceId").into());
    }
    Ok(ids)
}

fn describe_query(p: &Params) -> Result<DescribeQuery, ApiError> {
    Ok(DescribeQuery {
        ids: p.instance_ids("InstanceId")?,
        filters: p.filters()?,
        max_results: p.number("MaxResults")?,
        next_token: p.get("NextToken").map(str::to_string),
    })
}

fn describe_instances(fleet: &FleetHandle, p: &Params) -> ApiResult {
    let query = describe_query(p)?;
    check_dry_run(p)?;
    let page = fleet.describe(&query)?;
    Ok(xml::fragment(|w| xml::describe_instances(w, &page)))
}

fn describe_instance_status(fleet: &FleetHandle, p: &Params) -> ApiResult {
    let mut query = describe_query(p)?;
    let include_all = p.flag("IncludeAllInstances")?;
    check_dry_run(p)?;
    if !include_all {
        query
            .filters
            .push(Filter::new("instance-state-name", ["running"]));
    }
    let page = fleet.describe(&query)?;
    Ok(xml::fragment(|w| xml::instance_status(w, &page)))
}

fn control(
    fleet: &FleetHandle,
    p: &Params,
    act: fn(&FleetHandle, &[InstanceId]) -> Result<Vec<super::StateChange>, ControlError>,
) -> ApiResult {
    let ids = required_ids(p)?;
    check_dry_run(p)?;
    let changes = act(fleet, &ids)?;
    Ok(xml::fragment(|w| xml::state_changes(w, &changes)))
}

/// Resource ids for the tag calls: only instances live here.
fn resource_ids(p: &Params) -> Result<Vec<InstanceId>, ApiError> {
    let raw = p.list("ResourceId");
    if raw.is_empty() {
        return Err(ParamError::Missing("ResourceId").into());
    }
    raw.iter()
        .map(|r| {
            r.parse()
                .map_err(|_| ApiError::client("InvalidID", format!("The ID '{r}' is not valid")))
        })
        .collect()
}

fn create_tags(fleet: &FleetHandle, p: &Params) -> ApiResult {
    let ids = resource_ids(p)?;
    let tags = p
        .members("Tag")
        .into_iter()
        .map(|m| {
            let key = m.get("Key").ok_or(ParamError::Missing("Tag.N.Key"))?;
            Ok((
                key.to_string(),
                m.get("Value").unwrap_or_default().to_string(),
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    if tags.is_empty() {
        return Err(ParamError::Missing("Tag").into());
    }
    check_dry_run(p)?;
    fleet.create_tags(&ids, &tags)?;
    Ok(xml::fragment(xml::returned_true))
}

fn delete_tags(fleet: &FleetHandle, p: &Params) -> ApiResult {
    let ids = resource_ids(p)?;
    let selectors = p
        .members("Tag")
        .into_iter()
        .map(|m| {
            let key = m.get("Key").ok_or(ParamError::Missing("Tag.N.Key"))?;
            Ok(TagSelector {
                key: key.to_string(),
                value: m.get("Value").map(str::to_string),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    check_dry_run(p)?;
    fleet.delete_tags(&ids, &selectors)?;
    Ok(xml::fragment(xml::returned_true))
}

fn describe_tags(fleet: &FleetHandle, p: &Params) -> ApiResult {
    let filters = p.filters()?;
    let max_results = p.number("MaxResults")?;
    check_dry_run(p)?;
    let page = fleet.describe_tags(&filters, max_results, p.get("NextToken"))?;
    Ok(xml::fragment(|w| xml::describe_tags(w, &page)))
}

/// A request id shaped like AWS's (a UUID).
fn new_request_id() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
