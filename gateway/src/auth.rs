//! The API token check, shared by the HTTP API and actions from worker apps over MQTT.

/// Whether `given` is the token, compared in constant time so the answer's timing does not
/// leak how much of it was right.
pub fn token_matches(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_whole_token_matches() {
        assert!(token_matches("t0ken", "t0ken"));
        assert!(!token_matches("t0ke", "t0ken"));
        assert!(!token_matches("t0kex", "t0ken"));
        assert!(!token_matches("", "t0ken"));
    }
}
