//! Group robots: the webhooks of WeCom (企业微信), DingTalk (钉钉) and Feishu/Lark (飞书) that post
//! into a team's group chat, each with its own text format and signing.
//!
//! Pure: [`request`] builds the URL and JSON body of one post, [`accepted`] reads the robot's
//! answer; sending is the caller's. These robots answer HTTP 200 also when they refuse a message
//! (bad signature, keyword missing, rate limit), so only [`accepted`] says whether the group saw it.
//!
//! Signing, as each platform documents it:
//! - DingTalk "加签": `sign = urlencode(base64(HMAC-SHA256(key = secret, msg = "{ts_ms}\n{secret}")))`,
//!   sent as `&timestamp={ts_ms}&sign={sign}` on the URL.
//! - Feishu "签名校验": `sign = base64(HMAC-SHA256(key = "{ts_s}\n{secret}", msg = ""))`, sent as
//!   `"timestamp"` (seconds, a string) and `"sign"` in the body.
//! - WeCom group robots have no signing: the `key` in the URL is the only credential.
//!
//! Both signing platforms refuse a timestamp more than an hour from their clock, so a retry needs
//! a fresh [`request`], not a copy of the first one.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

/// The platform a group robot belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Robot {
    /// A WeCom (企业微信) group robot: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`.
    WeCom,
    /// A DingTalk (钉钉) custom robot: `https://oapi.dingtalk.com/robot/send?access_token=…`.
    DingTalk,
    /// A Feishu/Lark (飞书) custom bot: `https://open.feishu.cn/open-apis/bot/v2/hook/…`.
    Feishu,
}

/// One message for a group.
#[derive(Clone, Copy, Debug)]
pub struct RobotMessage<'a> {
    /// The first line; left out when empty.
    pub title: &'a str,
    /// The message itself.
    pub text: &'a str,
    /// Mobile numbers of the group members to @-mention.
    pub mention_mobiles: &'a [String],
}

/// Why a robot request cannot be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RobotError {
    /// WeCom group robots cannot check a signature, so a secret there is a misconfiguration.
    #[error("WeCom group robots have no signing secret; remove the secret")]
    SecretNotSupported,
    /// An empty secret would sign with an empty key, which the robot refuses.
    #[error("the {0:?} robot's signing secret is empty")]
    EmptySecret(Robot),
    // The URL is not in the message: it carries the robot's token, and errors end up in logs.
    /// The URL cannot take the signing parameters or is not a web address.
    #[error("the {0:?} robot's URL must start with https:// or http:// and have no #fragment")]
    BadUrl(Robot),
}

/// The final URL and the JSON body of one post of `msg` to the robot at `url`, signed with
/// `secret` at `now_ms` (milliseconds since the epoch) where the robot supports signing.
pub fn request(
    robot: Robot,
    url: &str,
    secret: Option<&str>,
    msg: &RobotMessage,
    now_ms: u64,
) -> Result<(String, Vec<u8>), RobotError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('#') {
        return Err(RobotError::BadUrl(robot));
    }
    if secret == Some("") {
        return Err(RobotError::EmptySecret(robot));
    }
    let content = content(msg);
    let (url, body) = match robot {
        Robot::WeCom => {
            if secret.is_some() {
                return Err(RobotError::SecretNotSupported);
            }
            // The text type, not markdown: only text can @-mention by mobile number.
            let body = json!({
                "msgtype": "text",
                "text": {"content": content, "mentioned_mobile_list": msg.mention_mobiles},
            });
            (url.to_owned(), body)
        }
        Robot::DingTalk => {
            let url = match secret {
                Some(secret) => {
                    let sep = if url.ends_with(['?', '&']) {
                        ""
                    } else if url.contains('?') {
                        "&"
                    } else {
                        "?"
                    };
                    let sign = url_encode_base64(&dingtalk_sign(secret, now_ms));
                    format!("{url}{sep}timestamp={now_ms}&sign={sign}")
                }
                None => url.to_owned(),
            };
            let body = json!({
                "msgtype": "text",
                "text": {"content": content},
                "at": {"atMobiles": msg.mention_mobiles, "isAtAll": false},
            });
            (url, body)
        }
        Robot::Feishu => {
            // Feishu mentions need the member's open id, which the roster does not know; the
            // numbers in the text at least tell the group who is meant.
            let mut text = content;
            if !msg.mention_mobiles.is_empty() {
                text.push('\n');
                let mentions: Vec<String> = msg
                    .mention_mobiles
                    .iter()
                    .map(|m| format!("@{m}"))
                    .collect();
                text.push_str(&mentions.join(" "));
            }
            let mut body = json!({"msg_type": "text", "content": {"text": text}});
            if let Some(secret) = secret {
                let ts = now_ms / 1000;
                body["timestamp"] = json!(ts.to_string());
                body["sign"] = json!(feishu_sign(secret, ts));
            }
            (url.to_owned(), body)
        }
    };
    Ok((url, body.to_string().into_bytes()))
}

/// Whether the robot took the message, from its answer's HTTP status and body; the error carries
/// the robot's own code and words ("keywords not in content", "sign not match", rate limits), which
/// is what an operator needs to fix it.
pub fn accepted(robot: Robot, status: u16, body: &[u8]) -> Result<(), String> {
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    let verdict = answer.as_ref().and_then(|a| verdict(robot, a));
    if !(200..300).contains(&status) {
        return Err(match verdict {
            Some((code, msg)) => format!("{robot:?} robot answered HTTP {status}: {code} {msg}"),
            None => format!("{robot:?} robot answered HTTP {status}: {}", snippet(body)),
        });
    }
    match verdict {
        Some((0, _)) => Ok(()),
        Some((code, msg)) => Err(format!("{robot:?} robot refused the message: {code} {msg}")),
        None => Err(format!(
            "{robot:?} robot answered HTTP {status} without a result code: {}",
            snippet(body)
        )),
    }
}

/// The robot's result code and message, if the answer has a code.
fn verdict(robot: Robot, answer: &Value) -> Option<(i64, String)> {
    // Feishu's v2 hook answers `code`/`msg`; older deployments answer `StatusCode`/`StatusMessage`.
    let (codes, msgs): (&[&str], &[&str]) = match robot {
        Robot::WeCom | Robot::DingTalk => (&["errcode"], &["errmsg"]),
        Robot::Feishu => (&["code", "StatusCode"], &["msg", "StatusMessage"]),
    };
    let code = codes.iter().find_map(|k| answer.get(k)?.as_i64())?;
    let msg = msgs
        .iter()
        .find_map(|k| answer.get(k)?.as_str())
        .unwrap_or("");
    Some((code, msg.to_owned()))
}

/// The start of a body that is not the expected JSON, for the error message.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// The text of a message: the title on its own line, then the text.
fn content(msg: &RobotMessage) -> String {
    if msg.title.is_empty() {
        msg.text.to_owned()
    } else {
        format!("{}\n{}", msg.title, msg.text)
    }
}

fn hmac_sha256_base64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn dingtalk_sign(secret: &str, ts_ms: u64) -> String {
    hmac_sha256_base64(secret.as_bytes(), format!("{ts_ms}\n{secret}").as_bytes())
}

fn feishu_sign(secret: &str, ts_s: u64) -> String {
    hmac_sha256_base64(format!("{ts_s}\n{secret}").as_bytes(), b"")
}

/// Percent-encodes standard base64 for a query string. Its alphabet has only three characters
/// that need it, so this is exact without a URL-encoding crate.
fn url_encode_base64(b64: &str) -> String {
    let mut out = String::with_capacity(b64.len() + 12);
    for c in b64.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DINGTALK_SECRET: &str =
        "SEC1f6a3d3c5e0b4b8a9c7d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0";
    const FEISHU_SECRET: &str = "abcDEF0123456789ghIJ";

    fn msg<'a>(title: &'a str, text: &'a str, mobiles: &'a [String]) -> RobotMessage<'a> {
        RobotMessage {
            title,
            text,
            mention_mobiles: mobiles,
        }
    }

    fn json_of(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("bodies are JSON")
    }

    #[test]
    fn robot_kinds_read_from_config_by_their_lowercase_names() {
        let kinds: Vec<Robot> = serde_json::from_str(r#"["wecom", "dingtalk", "feishu"]"#).unwrap();
        assert_eq!(kinds, [Robot::WeCom, Robot::DingTalk, Robot::Feishu]);
        assert!(serde_json::from_str::<Robot>(r#""WeCom""#).is_err());
    }

    #[test]
    fn dingtalk_signature_matches_an_independent_computation() {
        // Expected value computed once with Python 3.11, following DingTalk's documented sample:
        //   s = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(),
        //                                 hashlib.sha256).digest()).decode()
        //   urllib.parse.quote_plus(s)
        // with ts = 1795000000123, chosen so the signature holds all of + / and =.
        let sign = dingtalk_sign(DINGTALK_SECRET, 1_795_000_000_123);
        assert_eq!(sign, "b7HFY/3s+8LTqYLlmn/Lww4jPUZ/n9+QEt6C1KjLmqs=");
        assert_eq!(
            url_encode_base64(&sign),
            "b7HFY%2F3s%2B8LTqYLlmn%2FLww4jPUZ%2Fn9%2BQEt6C1KjLmqs%3D"
        );
    }

    #[test]
    fn feishu_signature_matches_an_independent_computation() {
        // Expected value computed once with Python 3.11, following Feishu's documented sample:
        //   base64.b64encode(hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest())
        // with ts = 1795000000 (seconds).
        assert_eq!(
            feishu_sign(FEISHU_SECRET, 1_795_000_000),
            "TxaOtLWWV19dwwCO9v3Gxw3QZF+MpkE045HLc8C7q3o="
        );
    }

    #[test]
    fn wecom_posts_text_with_mobiles_to_mention_and_the_url_unchanged() {
        let mobiles = vec!["13800000000".to_owned()];
        let url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k";
        let (final_url, body) = request(
            Robot::WeCom,
            url,
            None,
            &msg("一键呼救", "3号楼2单元301室", &mobiles),
            1,
        )
        .unwrap();
        assert_eq!(final_url, url);
        assert_eq!(
            json_of(&body),
            json!({"msgtype": "text", "text": {
                "content": "一键呼救\n3号楼2单元301室",
                "mentioned_mobile_list": ["13800000000"],
            }})
        );
    }

    #[test]
    fn wecom_refuses_a_secret_it_could_not_use() {
        let r = request(
            Robot::WeCom,
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            Some("s"),
            &msg("", "t", &[]),
            1,
        );
        assert_eq!(r, Err(RobotError::SecretNotSupported));
    }

    #[test]
    fn dingtalk_posts_text_with_at_mobiles() {
        let mobiles = vec!["13800000000".to_owned(), "13900000000".to_owned()];
        let url = "https://oapi.dingtalk.com/robot/send?access_token=t";
        let (final_url, body) = request(
            Robot::DingTalk,
            url,
            None,
            &msg("", "电梯困人", &mobiles),
            1,
        )
        .unwrap();
        assert_eq!(final_url, url);
        assert_eq!(
            json_of(&body),
            json!({
                "msgtype": "text",
                "text": {"content": "电梯困人"},
                "at": {"atMobiles": ["13800000000", "13900000000"], "isAtAll": false},
            })
        );
    }

    #[test]
    fn dingtalk_signs_on_the_url_with_the_timestamp_in_milliseconds() {
        let (url, _) = request(
            Robot::DingTalk,
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            Some(DINGTALK_SECRET),
            &msg("", "x", &[]),
            1_795_000_000_123,
        )
        .unwrap();
        assert_eq!(
            url,
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1795000000123\
             &sign=b7HFY%2F3s%2B8LTqYLlmn%2FLww4jPUZ%2Fn9%2BQEt6C1KjLmqs%3D"
        );
    }

    #[test]
    fn dingtalk_starts_the_query_when_the_url_has_none() {
        for (base, expected) in [
            (
                "http://proxy.local/ding",
                "http://proxy.local/ding?timestamp=5&sign=",
            ),
            (
                "http://proxy.local/ding?",
                "http://proxy.local/ding?timestamp=5&sign=",
            ),
            (
                "http://proxy.local/ding?a=1&",
                "http://proxy.local/ding?a=1&timestamp=5&sign=",
            ),
        ] {
            let (url, _) =
                request(Robot::DingTalk, base, Some("s"), &msg("", "x", &[]), 5).unwrap();
            assert!(url.starts_with(expected), "{url}");
        }
    }

    #[test]
    fn feishu_writes_mobiles_into_the_text_and_signs_in_the_body_in_seconds() {
        let mobiles = vec!["13800000000".to_owned()];
        let url = "https://open.feishu.cn/open-apis/bot/v2/hook/abc";
        let (final_url, body) = request(
            Robot::Feishu,
            url,
            Some(FEISHU_SECRET),
            &msg("井盖移位", "东门", &mobiles),
            1_795_000_000_999,
        )
        .unwrap();
        assert_eq!(final_url, url);
        assert_eq!(
            json_of(&body),
            json!({
                "msg_type": "text",
                "content": {"text": "井盖移位\n东门\n@13800000000"},
                "timestamp": "1795000000",
                "sign": "TxaOtLWWV19dwwCO9v3Gxw3QZF+MpkE045HLc8C7q3o=",
            })
        );
    }

    #[test]
    fn feishu_without_a_secret_sends_no_signature() {
        let (_, body) = request(
            Robot::Feishu,
            "https://open.feishu.cn/open-apis/bot/v2/hook/abc",
            None,
            &msg("", "x", &[]),
            1,
        )
        .unwrap();
        assert_eq!(
            json_of(&body),
            json!({"msg_type": "text", "content": {"text": "x"}})
        );
    }

    #[test]
    fn refuses_empty_secrets_and_urls_it_cannot_sign() {
        let m = msg("", "x", &[]);
        assert_eq!(
            request(Robot::DingTalk, "https://a/b", Some(""), &m, 1),
            Err(RobotError::EmptySecret(Robot::DingTalk))
        );
        for url in ["oapi.dingtalk.com/robot/send", "https://a/b#frag", ""] {
            assert_eq!(
                request(Robot::DingTalk, url, None, &m, 1),
                Err(RobotError::BadUrl(Robot::DingTalk))
            );
        }
    }

    #[test]
    fn bad_url_errors_do_not_leak_the_token() {
        let e = request(
            Robot::Feishu,
            "ftp://open.feishu.cn/hook/secret-token",
            None,
            &msg("", "x", &[]),
            1,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret-token"), "{e}");
    }

    #[test]
    fn accepts_only_a_2xx_with_result_code_zero() {
        assert_eq!(
            accepted(Robot::WeCom, 200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Ok(())
        );
        assert_eq!(
            accepted(Robot::DingTalk, 200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Ok(())
        );
        assert_eq!(
            accepted(
                Robot::Feishu,
                200,
                br#"{"code":0,"msg":"success","data":{}}"#
            ),
            Ok(())
        );
        assert_eq!(
            accepted(
                Robot::Feishu,
                200,
                br#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#
            ),
            Ok(())
        );
    }

    #[test]
    fn refusals_under_http_200_carry_the_robots_code_and_words() {
        let cases: [(Robot, &[u8], &str); 5] = [
            (
                Robot::DingTalk,
                br#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
                "310000 keywords not in content",
            ),
            (
                Robot::DingTalk,
                br#"{"errcode":310000,"errmsg":"sign not match"}"#,
                "310000 sign not match",
            ),
            (
                Robot::WeCom,
                br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                "45009 api freq out of limit",
            ),
            (
                Robot::Feishu,
                br#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
                "19021 sign match fail",
            ),
            (
                Robot::Feishu,
                br#"{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]","data":{}}"#,
                "11232 frequency limited",
            ),
        ];
        for (robot, body, words) in cases {
            let e = accepted(robot, 200, body).unwrap_err();
            assert!(e.contains(words), "{robot:?}: {e}");
        }
    }

    #[test]
    fn http_errors_are_refusals_even_with_result_code_zero() {
        let e = accepted(Robot::WeCom, 502, br#"{"errcode":0,"errmsg":"ok"}"#).unwrap_err();
        assert!(e.contains("HTTP 502"), "{e}");
        let e = accepted(Robot::Feishu, 400, br#"{"code":9499,"msg":"Bad Request"}"#).unwrap_err();
        assert!(e.contains("9499 Bad Request"), "{e}");
        let e = accepted(Robot::DingTalk, 503, b"<html>busy</html>").unwrap_err();
        assert!(e.contains("<html>busy</html>"), "{e}");
    }

    #[test]
    fn answers_without_a_result_code_are_not_accepted() {
        for body in [&b""[..], b"ok", b"{}", br#"{"errcode":"0"}"#, b"\xff\xfe"] {
            assert!(accepted(Robot::DingTalk, 200, body).is_err());
        }
        // A WeCom-shaped answer from a URL configured as Feishu is a misconfiguration.
        assert!(accepted(Robot::Feishu, 200, br#"{"errcode":0,"errmsg":"ok"}"#).is_err());
    }

    /// The text each robot shows, read back out of its body.
    fn shown_text(robot: Robot, body: &Value) -> Option<&str> {
        match robot {
            Robot::WeCom | Robot::DingTalk => body["text"]["content"].as_str(),
            Robot::Feishu => body["content"]["text"].as_str(),
        }
    }

    proptest! {
        #[test]
        fn any_text_makes_valid_json_that_carries_it_unchanged(
            title in any::<String>(),
            text in any::<String>(),
            quoted in "[\"\\\\\n\r\t\u{0}\u{2028}你好😀]{0,16}",
            now_ms in any::<u64>(),
        ) {
            let text = format!("{text}{quoted}");
            for robot in [Robot::WeCom, Robot::DingTalk, Robot::Feishu] {
                let secret = (robot != Robot::WeCom).then_some("s");
                let m = msg(&title, &text, &[]);
                let (_, body) = request(robot, "https://robot.example/hook", secret, &m, now_ms)
                    .unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                let expected = if title.is_empty() { text.clone() } else { format!("{title}\n{text}") };
                prop_assert_eq!(shown_text(robot, &body), Some(expected.as_str()));
            }
        }
    }
}
