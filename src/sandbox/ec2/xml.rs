//! Response side of the EC2 query protocol: XML documents in the 2016-11-15 namespace, shaped
//! as `aws-sdk-ec2`'s deserializers read them (lists are `<xxxSet><item>..</item></xxxSet>`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::fleet::{Instance, InstanceState, Page, StateChange, TagDescription};

/// The EC2 API namespace.
pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
/// Account id reported as owner of sandbox reservations.
pub const ACCOUNT_ID: &str = "000000000000";

/// A minimal XML builder; text is escaped, tags are trusted literals.
#[derive(Default)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    fn open(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// `<tag>children</tag>`.
    pub fn node(&mut self, tag: &str, children: impl FnOnce(&mut Self)) {
        self.open(tag);
        children(self);
        self.close(tag);
    }

    /// `<tag>escaped text</tag>`.
    pub fn text(&mut self, tag: &str, text: &str) {
        self.open(tag);
        escape_into(&mut self.out, text);
        self.close(tag);
    }

    /// `<tag><item>..</item>...</tag>` with one item per element of `items`.
    pub fn set<T>(&mut self, tag: &str, items: &[T], each: impl Fn(&mut Self, &T)) {
        self.node(tag, |w| {
            for item in items {
                w.node("item", |w| each(w, item));
            }
        });
    }

    /// Appends an already built fragment.
    pub fn raw(&mut self, fragment: &str) {
        self.out.push_str(fragment);
    }

    /// The text built so far.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// EC2's timestamp format, e.g. `2024-05-01T12:00:00.000Z`.
fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Builds a fragment (the body of a response, without the root element).
pub fn fragment(build: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::default();
    build(&mut w);
    w.finish()
}

/// A success document `<{action}Response xmlns=..><requestId>..</requestId>body</..>`.
pub fn response(action: &str, request_id: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
    let root = format!("{action}Response");
    let mut w = XmlWriter::default();
    w.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    w.out.push_str(&format!(r#"<{root} xmlns="{NAMESPACE}">"#));
    w.text("requestId", request_id);
    body(&mut w);
    w.close(&root);
    w.finish()
}

/// EC2's error document; the SDK reads `Errors/Error/Code` and `Message`.
pub fn error(code: &str, message: &str, request_id: &str) -> String {
    let mut w = XmlWriter::default();
    w.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    w.node("Response", |w| {
        w.node("Errors", |w| {
            w.node("Error", |w| {
                w.text("Code", code);
                w.text("Message", message);
            })
        });
        w.text("RequestID", request_id);
    });
    w.finish()
}

fn state(w: &mut XmlWriter, tag: &str, s: InstanceState) {
    w.node(tag, |w| {
        w.text("code", &s.code().to_string());
        w.text("name", s.name());
    });
}

fn tag_set(w: &mut XmlWriter, tags: &BTreeMap<String, String>) {
    let tags: Vec<(&String, &String)> = tags.iter().collect();
    w.set("tagSet", &tags, |w, (k, v)| {
        w.text("key", k);
        w.text("value", v);
    });
}

fn private_dns(i: &Instance) -> String {
    format!(
        "ip-{}.ec2.internal",
        i.private_ip.to_string().replace('.', "-")
    )
}

fn instance(w: &mut XmlWriter, i: &Instance) {
    w.text("instanceId", i.id.as_str());
    w.text("imageId", &i.image_id);
    state(w, "instanceState", i.state);
    w.text("privateDnsName", &private_dns(i));
    w.text("dnsName", "");
    w.text("reason", &i.transition_reason);
    w.text("amiLaunchIndex", "0");
    w.text("instanceType", &i.instance_type);
    w.text("launchTime", &timestamp(&i.launch_time));
    w.node("placement", |w| {
        w.text("availabilityZone", &i.availability_zone);
        w.text("groupName", "");
        w.text("tenancy", "default");
    });
    w.node("monitoring", |w| w.text("state", "disabled"));
    w.text("privateIpAddress", &i.private_ip.to_string());
    if let Some(r) = &i.state_reason {
        w.node("stateReason", |w| {
            w.text("code", &r.code);
            w.text("message", &r.message);
        });
    }
    w.text("architecture", "x86_64");
    w.text("rootDeviceType", "ebs");
    w.text("rootDeviceName", "/dev/xvda");
    w.text("virtualizationType", "hvm");
    w.text("hypervisor", "xen");
    tag_set(w, &i.tags);
}

/// The DescribeInstances body: one reservation per instance.
pub fn describe_instances(w: &mut XmlWriter, page: &Page<Instance>) {
    w.set("reservationSet", &page.items, |w, i| {
        w.text("reservationId", &i.reservation_id);
        w.text("ownerId", ACCOUNT_ID);
        w.node("groupSet", |_| {});
        w.set("instancesSet", std::slice::from_ref(i), instance);
    });
    next_token(w, page.next_token.as_deref());
}

fn next_token(w: &mut XmlWriter, token: Option<&str>) {
    if let Some(t) = token {
        w.text("nextToken", t);
    }
}

/// The Terminate/Stop/StartInstances body.
pub fn state_changes(w: &mut XmlWriter, changes: &[StateChange]) {
    w.set("instancesSet", changes, |w, c| {
        w.text("instanceId", c.id.as_str());
        state(w, "currentState", c.current);
        state(w, "previousState", c.previous);
    });
}

/// The CreateTags/DeleteTags body.
pub fn returned_true(w: &mut XmlWriter) {
    w.text("return", "true");
}

/// The DescribeTags body.
pub fn describe_tags(w: &mut XmlWriter, page: &Page<TagDescription>) {
    w.set("tagSet", &page.items, |w, t| {
        w.text("resourceId", t.resource_id.as_str());
        w.text("resourceType", t.resource_type);
        w.text("key", &t.key);
        w.text("value", &t.value);
    });
    next_token(w, page.next_token.as_deref());
}

/// (instance status, system status) as EC2 reports them for a state.
fn health(s: InstanceState) -> &'static str {
    match s {
        InstanceState::Running => "ok",
        InstanceState::Pending => "initializing",
        _ => "not-applicable",
    }
}

fn status_summary(w: &mut XmlWriter, tag: &str, s: InstanceState) {
    let status = health(s);
    w.node(tag, |w| {
        w.text("status", status);
        let detail: &[&str] = match s {
            InstanceState::Running => &["passed"],
            InstanceState::Pending => &["initializing"],
            _ => &[],
        };
        w.set("details", detail, |w, d| {
            w.text("name", "reachability");
            w.text("status", d);
        });
    });
}

/// The DescribeInstanceStatus body.
pub fn instance_status(w: &mut XmlWriter, page: &Page<Instance>) {
    w.set("instanceStatusSet", &page.items, |w, i| {
        w.text("instanceId", i.id.as_str());
        w.text("availabilityZone", &i.availability_zone);
        state(w, "instanceState", i.state);
        status_summary(w, "systemStatus", i.state);
        status_summary(w, "instanceStatus", i.state);
    });
    next_token(w, page.next_token.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_wraps_lists_in_items() {
        let mut w = XmlWriter::default();
        w.set("tagSet", &["a<b&\"c'"], |w, v| w.text("value", v));
        assert_eq!(
            w.finish(),
            "<tagSet><item><value>a&lt;b&amp;&quot;c&apos;</value></item></tagSet>"
        );
    }

    #[test]
    fn error_document_has_the_shape_the_sdk_parses() {
        let doc = error("InvalidAction", "no <such> action", "rid");
        assert!(doc.ends_with(
            "<Response><Errors><Error><Code>InvalidAction</Code>\
             <Message>no &lt;such&gt; action</Message></Error></Errors>\
             <RequestID>rid</RequestID></Response>"
        ));
    }

    #[test]
    fn timestamps_have_milliseconds_and_zulu() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(timestamp(&t.to_utc()), "2024-05-01T12:00:00.000Z");
    }
}
