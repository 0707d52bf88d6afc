//! One window (usually one second, or a whole run) of one stream.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histograms track exactly: one hour, in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// An HDR histogram for latencies in microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds");
    h.auto(true);
    h
}

/// Why a request failed. The order is the order of the timeline's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection was refused (nothing listening).
    Refused,
    /// Connect or request timeout.
    Timeout,
    /// Connection reset or closed mid-request.
    Reset,
    /// An HTTP 4xx response.
    Status4xx,
    /// An HTTP 5xx response.
    Status5xx,
    /// Anything else (DNS, protocol errors, local resource limits).
    Other,
    /// Still in flight when the run stopped and the drain deadline passed.
    Aborted,
    /// The service throttled the call (HTTP 429, SQS `ThrottlingException`,
    /// `RequestThrottled`, EventBridge `ThrottlingException`...).
    Throttled,
    /// One entry of a batch refused while others went through (SQS partial batch failure).
    Rejected,
    /// TLS: the server's certificate chains to no trusted root.
    TlsUnknownIssuer,
    /// TLS: the server's certificate is not for the name asked for.
    TlsBadName,
    /// TLS: the server's certificate is expired or not yet valid.
    TlsExpired,
    /// TLS: any other handshake or record failure (protocol, alert, client certificate).
    TlsProtocol,
}

impl ErrorClass {
    /// How many classes there are.
    pub const COUNT: usize = 13;

    pub const ALL: [ErrorClass; Self::COUNT] = [
        ErrorClass::Refused,
        ErrorClass::Timeout,
        ErrorClass::Reset,
        ErrorClass::Status4xx,
        ErrorClass::Status5xx,
        ErrorClass::Other,
        ErrorClass::Aborted,
        ErrorClass::Throttled,
        ErrorClass::Rejected,
        ErrorClass::TlsUnknownIssuer,
        ErrorClass::TlsBadName,
        ErrorClass::TlsExpired,
        ErrorClass::TlsProtocol,
    ];

    /// The short name used in columns and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Refused => "refused",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::Status4xx => "4xx",
            ErrorClass::Status5xx => "5xx",
            ErrorClass::Other => "other",
            ErrorClass::Aborted => "aborted",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Rejected => "rejected",
            ErrorClass::TlsUnknownIssuer => "tls_unknown_issuer",
            ErrorClass::TlsBadName => "tls_bad_name",
            ErrorClass::TlsExpired => "tls_expired",
            ErrorClass::TlsProtocol => "tls_protocol",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Plain counts of what happened in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Arrivals whose intended send time fell in the window.
    pub intended: u64,
    /// Requests actually started.
    pub sent: u64,
    /// Responses with a 1xx-3xx status (or SQS sends accepted).
    pub ok: u64,
    /// Failures by class, indexed like [`ErrorClass::ALL`].
    pub errors: [u64; ErrorClass::COUNT],
    /// Sent, but later than `late_after` behind the intended time.
    pub late: u64,
    /// Never sent: could not start within `max_lateness`, or the run stopped first.
    pub dropped: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Counters {
    pub fn error(&self, class: ErrorClass) -> u64 {
        self.errors[class.index()]
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Requests that finished one way or the other.
    pub fn completed(&self) -> u64 {
        self.ok + self.errors_total()
    }

    pub fn merge(&mut self, other: &Counters) {
        self.intended += other.intended;
        self.sent += other.sent;
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.late += other.late;
        self.dropped += other.dropped;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
    }
}

/// Counters plus latency histograms of the responses received in the window.
#[derive(Debug, Clone)]
pub struct Window {
    pub counters: Counters,
    /// From the intended send time (includes waiting for a free connection).
    pub corrected: Histogram<u64>,
    /// From the moment the request was actually started.
    pub uncorrected: Histogram<u64>,
    /// How far behind its intended time each send started (the driver's own lag).
    pub lateness: Histogram<u64>,
    /// Connections opened in the window (`None` until the first: most seconds of a
    /// keep-alive run open none).
    pub connects: Option<Box<Connects>>,
}

/// The connections opened in a window: how many, how long their TCP connect and TLS
/// handshake took (the latency components a request on a new connection pays first), and
/// how many TLS sessions were resumed rather than negotiated in full.
#[derive(Debug, Clone)]
pub struct Connects {
    pub opened: u64,
    /// TLS handshakes that resumed an earlier session.
    pub resumed: u64,
    /// TCP connect time, microseconds.
    pub tcp: Histogram<u64>,
    /// TLS handshake time (after the TCP connect), microseconds; empty over plain http.
    pub tls: Histogram<u64>,
}

impl Default for Connects {
    fn default() -> Self {
        Connects {
            opened: 0,
            resumed: 0,
            tcp: new_histogram(),
            tls: new_histogram(),
        }
    }
}

impl Connects {
    pub fn merge(&mut self, other: &Connects) {
        self.opened += other.opened;
        self.resumed += other.resumed;
        let _ = self.tcp.add(&other.tcp);
        let _ = self.tls.add(&other.tls);
    }
}

impl Default for Window {
    fn default() -> Self {
        Window {
            counters: Counters::default(),
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            lateness: new_histogram(),
            connects: None,
        }
    }
}

impl Window {
    /// Records a response (any status): `corrected_us` from the intended time,
    /// `uncorrected_us` from the actual send.
    pub fn record_response(
        &mut self,
        corrected_us: u64,
        uncorrected_us: u64,
        error: Option<ErrorClass>,
    ) {
        self.corrected.saturating_record(corrected_us.max(1));
        self.uncorrected.saturating_record(uncorrected_us.max(1));
        match error {
            None => self.counters.ok += 1,
            Some(class) => self.counters.errors[class.index()] += 1,
        }
    }

    /// Records a send that started `lateness_us` after its intended time.
    pub fn record_send(&mut self, body_bytes: u64, lateness_us: u64, late: bool) {
        self.counters.sent += 1;
        self.counters.bytes_sent += body_bytes;
        if late {
            self.counters.late += 1;
        }
        // Zero lag is recorded as the smallest trackable value (1 µs).
        self.lateness.saturating_record(lateness_us.max(1));
    }

    /// Records a connection opened: its TCP connect time, and its TLS handshake time and
    /// whether the session was resumed (https only).
    pub fn record_connect(&mut self, tcp_us: u64, tls: Option<(u64, bool)>) {
        let c = self.connects.get_or_insert_with(Box::default);
        c.opened += 1;
        c.tcp.saturating_record(tcp_us.max(1));
        if let Some((handshake_us, resumed)) = tls {
            c.tls.saturating_record(handshake_us.max(1));
            c.resumed += u64::from(resumed);
        }
    }

    /// Records a failure with no response (refused, reset, timeout...).
    pub fn record_failure(&mut self, class: ErrorClass) {
        self.counters.errors[class.index()] += 1;
    }

    pub fn merge(&mut self, other: &Window) {
        self.counters.merge(&other.counters);
        // Both histograms auto-resize, so adding never fails.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.lateness.add(&other.lateness);
        if let Some(other) = &other.connects {
            self.connects.get_or_insert_with(Box::default).merge(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Window::default();
        a.record_response(1_000, 900, None);
        a.record_failure(ErrorClass::Refused);
        let mut b = Window::default();
        b.record_response(2_000_000, 1_000, Some(ErrorClass::Status5xx));
        b.counters.late = 3;
        a.merge(&b);
        assert_eq!(a.counters.ok, 1);
        assert_eq!(a.counters.error(ErrorClass::Refused), 1);
        assert_eq!(a.counters.error(ErrorClass::Status5xx), 1);
        assert_eq!(a.counters.late, 3);
        assert_eq!(a.corrected.len(), 2);
        assert!(a.corrected.max() >= 1_999_000);
        assert!(a.uncorrected.max() < 1_100);
    }

    #[test]
    fn error_class_order_matches_index() {
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
