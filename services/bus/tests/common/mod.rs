//! What the bus's integration tests share.

use imgcrawl_bus::dlq::DeadLetter;
use imgcrawl_bus::Bus;

/// Every dead letter in the stream, in order.
pub async fn dead_letters(bus: &Bus) -> Vec<DeadLetter> {
    let mut stream = bus.js.get_stream(&bus.config.stream).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            if m.subject.starts_with("imgcrawl.dlq.") {
                out.push(serde_json::from_slice(&m.payload).unwrap());
            }
        }
    }
    out
}
