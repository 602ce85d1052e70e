//! The relay's Prometheus metrics, rendered for `GET /metrics`.
//!
//! Every metric handle is an `Arc`'d atomic (or a locked histogram) inside
//! `prometheus-client`, so the helpers take `&self`: share one [`Metrics`]
//! behind an `Arc` and call the helpers from any task.
//!
//! Free-form label values (`kind`, `op`, `reason`) are `&'static str` on
//! purpose: each distinct value creates a time series, so they must come
//! from the code, never from client input.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s output: prometheus-client
/// writes the OpenMetrics text format, which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Rejection reasons pre-created at zero, so dashboards and `rate()` see the
/// series before the first rejection. Other reasons still work; they just
/// appear on first use.
pub const KNOWN_REJECT_REASONS: &[&str] = &[
    "token_missing",
    "token_invalid",
    "token_expired",
    "token_room",
    "read_only",
    "too_large",
    "text_frame",
    "malformed",
    "slow_consumer",
    "bad_update",
    "too_many",
    "too_deep",
    "too_many_ids",
    "presence_not_owned",
    "room_panicked",
    "set_aside",
];

/// Which WebSocket endpoint a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/yjs/{room}`, the y-websocket protocol.
    Yjs,
    /// `/sync/{room}`, the native protocol.
    Sync,
}

impl Endpoint {
    /// The label value: `"yjs"` or `"sync"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Yjs => "yjs",
            Endpoint::Sync => "sync",
        }
    }
}

/// Whether a message was received or sent by the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client to the relay.
    In,
    /// From the relay to a client.
    Out,
}

impl Direction {
    /// The label value: `"in"` or `"out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    direction: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The relay's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<EndpointLabels, Gauge>,
    rooms_loaded: Gauge,
    messages: Family<MessageLabels, Counter>,
    bytes: Family<MessageLabels, Counter>,
    crdt_operations: Family<OpLabels, Counter>,
    persist_seconds: Histogram,
    fanout_seconds: Histogram,
    rejected: Family<ReasonLabels, Counter>,
}

/// Latency buckets from 50 µs doubling up to ~6.5 s: persistence (an fsync)
/// and fan-out range from tens of microseconds to seconds under overload.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(50e-6, 2.0, 18)
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections = Family::<EndpointLabels, Gauge>::default();
        let rooms_loaded = Gauge::default();
        let messages = Family::<MessageLabels, Counter>::default();
        let bytes = Family::<MessageLabels, Counter>::default();
        let crdt_operations = Family::<OpLabels, Counter>::default();
        let persist_seconds = Histogram::new(latency_buckets());
        let fanout_seconds = Histogram::new(latency_buckets());
        let rejected = Family::<ReasonLabels, Counter>::default();

        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "neuroplex_connections",
            "Open WebSocket connections, by endpoint",
            connections.clone(),
        );
        registry.register(
            "neuroplex_rooms_loaded",
            "Rooms currently loaded in memory",
            rooms_loaded.clone(),
        );
        registry.register(
            "neuroplex_messages",
            "WebSocket messages, by direction and kind",
            messages.clone(),
        );
        registry.register(
            "neuroplex_bytes",
            "WebSocket message bytes, by direction and kind",
            bytes.clone(),
        );
        registry.register(
            "neuroplex_crdt_operations",
            "CRDT operations applied, by operation",
            crdt_operations.clone(),
        );
        registry.register_with_unit(
            "neuroplex_persist",
            "Time to make a batch of updates durable",
            Unit::Seconds,
            persist_seconds.clone(),
        );
        registry.register_with_unit(
            "neuroplex_fanout",
            "Time to hand an update to every connection of its room",
            Unit::Seconds,
            fanout_seconds.clone(),
        );
        registry.register(
            "neuroplex_rejected",
            "Refused connections, messages and consumers, by reason",
            rejected.clone(),
        );

        for endpoint in [Endpoint::Yjs, Endpoint::Sync] {
            let _ = connections.get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            });
        }
        for &reason in KNOWN_REJECT_REASONS {
            let _ = rejected.get_or_create(&ReasonLabels { reason });
        }

        Metrics {
            registry,
            connections,
            rooms_loaded,
            messages,
            bytes,
            crdt_operations,
            persist_seconds,
            fanout_seconds,
            rejected,
        }
    }

    /// A connection was accepted on `endpoint`.
    pub fn connection_opened(&self, endpoint: Endpoint) {
        self.connection_gauge(endpoint).inc();
    }

    /// A connection on `endpoint` ended (pair with exactly one
    /// [`Metrics::connection_opened`]).
    pub fn connection_closed(&self, endpoint: Endpoint) {
        self.connection_gauge(endpoint).dec();
    }

    fn connection_gauge(&self, endpoint: Endpoint) -> Gauge {
        self.connections.get_or_create_owned(&EndpointLabels {
            endpoint: endpoint.as_str(),
        })
    }

    /// A room was loaded.
    pub fn room_loaded(&self) {
        self.rooms_loaded.inc();
    }

    /// A room was unloaded.
    pub fn room_unloaded(&self) {
        self.rooms_loaded.dec();
    }

    /// One message of `kind` and `bytes` bytes went in `direction`.
    pub fn message(&self, direction: Direction, kind: &'static str, bytes: usize) {
        let labels = MessageLabels {
            direction: direction.as_str(),
            kind,
        };
        self.messages.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// `count` messages of `kind`, `bytes` bytes in all, went in `direction`.
    pub fn messages(&self, direction: Direction, kind: &'static str, count: u64, bytes: u64) {
        if count == 0 {
            return;
        }
        let labels = MessageLabels {
            direction: direction.as_str(),
            kind,
        };
        self.messages.get_or_create(&labels).inc_by(count);
        self.bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// One CRDT operation `op` was applied (e.g. `"yrs_update"`,
    /// `"delta_join"`).
    pub fn crdt_op(&self, op: &'static str) {
        self.crdt_operations.get_or_create(&OpLabels { op }).inc();
    }

    /// A durable write took `d`.
    pub fn observe_persist(&self, d: Duration) {
        self.persist_seconds.observe(d.as_secs_f64());
    }

    /// A fan-out to a room's connections took `d`.
    pub fn observe_fanout(&self, d: Duration) {
        self.fanout_seconds.observe(d.as_secs_f64());
    }

    /// Something was refused for `reason` (see [`KNOWN_REJECT_REASONS`]).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The text exposition of every metric (serve with [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in
        // a metric's encoder, and a partial page is still the best answer.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series` followed by a
    /// space (so `x_total{a="b"}` does not match `x_total{a="b",c="d"}`).
    fn sample(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| {
                l.strip_prefix(series)
                    .is_some_and(|rest| rest.starts_with(' '))
            })
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    }

    #[test]
    fn render_contains_every_metric_with_labels_and_values() {
        let m = Metrics::new();
        m.connection_opened(Endpoint::Yjs);
        m.connection_opened(Endpoint::Yjs);
        m.connection_opened(Endpoint::Sync);
        m.connection_closed(Endpoint::Yjs);
        m.room_loaded();
        m.room_loaded();
        m.room_loaded();
        m.room_unloaded();
        m.message(Direction::In, "update", 100);
        m.message(Direction::In, "update", 20);
        m.message(Direction::Out, "sync_step1", 7);
        m.crdt_op("yrs_update");
        m.crdt_op("yrs_update");
        m.crdt_op("delta_join");
        m.observe_persist(Duration::from_millis(2));
        m.observe_fanout(Duration::from_micros(30));
        m.observe_fanout(Duration::from_secs(100));
        m.rejected("read_only");
        m.rejected("custom_reason");

        let text = m.render();
        assert_eq!(
            sample(&text, r#"neuroplex_connections{endpoint="yjs"}"#),
            1.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_connections{endpoint="sync"}"#),
            1.0
        );
        assert_eq!(sample(&text, "neuroplex_rooms_loaded"), 2.0);
        assert_eq!(
            sample(
                &text,
                r#"neuroplex_messages_total{direction="in",kind="update"}"#
            ),
            2.0
        );
        assert_eq!(
            sample(
                &text,
                r#"neuroplex_bytes_total{direction="in",kind="update"}"#
            ),
            120.0
        );
        assert_eq!(
            sample(
                &text,
                r#"neuroplex_messages_total{direction="out",kind="sync_step1"}"#
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                r#"neuroplex_bytes_total{direction="out",kind="sync_step1"}"#
            ),
            7.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_crdt_operations_total{op="yrs_update"}"#),
            2.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_crdt_operations_total{op="delta_join"}"#),
            1.0
        );
        assert_eq!(sample(&text, "neuroplex_persist_seconds_count"), 1.0);
        assert!((sample(&text, "neuroplex_persist_seconds_sum") - 0.002).abs() < 1e-9);
        assert_eq!(sample(&text, "neuroplex_fanout_seconds_count"), 2.0);
        // 30 µs lands in the first bucket; 100 s only in +Inf.
        assert_eq!(
            sample(&text, r#"neuroplex_fanout_seconds_bucket{le="0.00005"}"#),
            1.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_fanout_seconds_bucket{le="+Inf"}"#),
            2.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_rejected_total{reason="read_only"}"#),
            1.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_rejected_total{reason="custom_reason"}"#),
            1.0
        );
        assert!(text.contains("# TYPE neuroplex_persist_seconds histogram"));
        assert!(text.contains("# TYPE neuroplex_messages counter"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn fresh_registry_shows_zeroed_series() {
        let text = Metrics::new().render();
        assert_eq!(
            sample(&text, r#"neuroplex_connections{endpoint="yjs"}"#),
            0.0
        );
        assert_eq!(
            sample(&text, r#"neuroplex_connections{endpoint="sync"}"#),
            0.0
        );
        assert_eq!(sample(&text, "neuroplex_rooms_loaded"), 0.0);
        for reason in KNOWN_REJECT_REASONS {
            let series = format!(r#"neuroplex_rejected_total{{reason="{reason}"}}"#);
            assert_eq!(sample(&text, &series), 0.0);
        }
        assert_eq!(sample(&text, "neuroplex_persist_seconds_count"), 0.0);
        assert_eq!(sample(&text, "neuroplex_fanout_seconds_count"), 0.0);
    }

    #[test]
    fn shared_across_threads() {
        let m = std::sync::Arc::new(Metrics::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        m.message(Direction::Out, "update", 2);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                r#"neuroplex_messages_total{direction="out",kind="update"}"#
            ),
            1000.0
        );
        assert_eq!(
            sample(
                &text,
                r#"neuroplex_bytes_total{direction="out",kind="update"}"#
            ),
            2000.0
        );
    }
}
