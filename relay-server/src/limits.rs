//! Connection limits: how many WebSocket connections the relay holds at
//! once, in all and per client address.
//!
//! A connection costs memory and a file descriptor whether or not it is
//! used, so a client that opens thousands could starve everyone else. A
//! slot is taken before the upgrade (beyond a limit the request is refused
//! with HTTP 503, saying which limit) and given back when the connection
//! ends, however it ends: [`Slot`] releases itself on drop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The relay's connection limits and the connections counted against them.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitError {
    /// The relay holds `--max-connections` connections.
    Total(usize),
    /// This address holds `--max-connections-per-ip` connections.
    PerIp(usize),
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitError::Total(n) => write!(
                f,
                "the relay holds its maximum of {n} connections (--max-connections); try again later"
            ),
            LimitError::PerIp(n) => write!(
                f,
                "your address holds its maximum of {n} connections (--max-connections-per-ip); close one first"
            ),
        }
    }
}

impl LimitError {
    /// The `reason` label for `neuroplex_rejected_total`.
    pub fn metric_reason(self) -> &'static str {
        match self {
            LimitError::Total(_) => "max_connections",
            LimitError::PerIp(_) => "max_connections_per_ip",
        }
    }

    /// HTTP 503 with the reason, and a hint to retry a little later.
    pub fn into_response(self) -> Response {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// One connection counted against the limits; released on drop.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections, `max_per_ip` of them from one
    /// address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a slot for a connection from `ip`, or says which limit is
    /// reached. IPv4 addresses mapped into IPv6 count as themselves.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, LimitError> {
        let ip = ip.to_canonical();
        let mut c = self.counts.lock().expect("limits lock");
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.max_per_ip {
            return Err(LimitError::PerIp(self.max_per_ip));
        }
        if c.total >= self.max_total {
            return Err(LimitError::Total(self.max_total));
        }
        c.total += 1;
        c.per_ip.insert(ip, mine + 1);
        Ok(Slot {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().expect("limits lock");
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            // No entry per address that has gone: the map stays as small
            // as the set of connected addresses.
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_then_total_and_slots_come_back() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), LimitError::PerIp(2));
        // The mapped form is the same address.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(limits.acquire(mapped).unwrap_err(), LimitError::PerIp(2));
        let _b1 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), LimitError::Total(3));
        drop(a1); // frees a slot of the total
        let _b2 = limits.acquire(b).unwrap();
        assert!(
            LimitError::Total(3)
                .to_string()
                .contains("--max-connections")
        );
    }
}
