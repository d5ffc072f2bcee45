//! Standard Webhooks signatures, so a receiver can drop forgeries and replays.
//!
//! Each delivery carries `webhook-id` (the same on every retry, for deduplication),
//! `webhook-timestamp` (seconds since the epoch, of this attempt) and `webhook-signature`:
//! `v1,` then base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the secret's bytes.
//! The secret is written `whsec_` followed by base64, as the Standard Webhooks libraries expect.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A webhook signing key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("GRIDWATCH_WEBHOOK_SECRET must be `whsec_` followed by base64 of at least 24 bytes ({0})")]
pub struct BadSecret(&'static str);

impl Signer {
    /// A signer from a `whsec_…` secret.
    pub fn from_secret(secret: &str) -> Result<Self, BadSecret> {
        let b64 = secret
            .strip_prefix("whsec_")
            .ok_or(BadSecret("no whsec_ prefix"))?;
        let key = STANDARD.decode(b64).map_err(|_| BadSecret("not base64"))?;
        if key.len() < 24 {
            return Err(BadSecret("too short"));
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let s = Signer::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_secrets_it_cannot_use() {
        assert!(Signer::from_secret("hunter2").is_err());
        assert!(Signer::from_secret("whsec_!!!").is_err());
        assert!(Signer::from_secret("whsec_c2hvcnQ=").is_err());
    }
}
