//! One webhook delivery attempt: a signed JSON POST that counts as delivered only on a 2xx.

use super::signing::Signer;
use super::Delivery;

/// Posts `d` once, stamped with `now_s` (seconds since the epoch).
pub async fn post(
    client: &reqwest::Client,
    signer: Option<&Signer>,
    d: &Delivery,
    now_s: u64,
) -> Result<(), String> {
    let mut req = client
        .post(d.target.as_str())
        .header("content-type", "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", now_s.to_string());
    if let Some(s) = signer {
        req = req.header("webhook-signature", s.sign(&d.id, now_s, d.body.as_bytes()));
    }
    let resp = req
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}
