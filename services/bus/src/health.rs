//! The NATS readiness probe: the connection is up and a round trip (flush) completes.
//! Registered by every long-running process on its `Readiness` as `nats`.

use imgcrawl_telemetry::Readiness;

use crate::Bus;

/// Whether the bus's connection answers now.
pub async fn nats_ok(bus: &Bus) -> Result<(), String> {
    let state = bus.client.connection_state();
    if state != async_nats::connection::State::Connected {
        return Err(format!("connection {state}"));
    }
    bus.client.flush().await.map_err(|e| e.to_string())
}

/// Registers the `nats` probe of `bus` on `readiness`.
pub fn register(bus: &Bus, readiness: &Readiness) {
    let bus = bus.clone();
    readiness.probe("nats", move || {
        let bus = bus.clone();
        async move { nats_ok(&bus).await }
    });
}
