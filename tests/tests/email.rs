//! Alert mails through a real SMTP server (aiosmtpd), read back with Python's own e-mail parser:
//! what arrives is what a grid worker's mailbox gets.

use std::time::{Duration, Instant};

use gridwatch_e2e::{free_port, SmtpServer};
use gridwatch_gateway::notify::email::{Mailer, SmtpConfig, SmtpTls};

fn plain_config(port: u16, timeout_ms: u64) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        from: "网格值班 <gridwatch@example.com>".into(),
        timeout_ms,
    }
}

#[tokio::test]
async fn a_chinese_alert_mail_arrives_decoded_with_its_delivery_as_message_id() -> anyhow::Result<()>
{
    let smtp = SmtpServer::start()?;
    let mailer = Mailer::new(&plain_config(smtp.port, 5000), None)?;
    let subject = "【紧急】一键呼救：3号楼2单元301室";
    let text = "王阿姨按下了呼救按钮。\n请立即到场处理，并在应用中确认。";
    mailer
        .send("王芳 <wang@example.com>", subject, text, "a1.0.w-wang")
        .await
        .map_err(anyhow::Error::msg)?;

    let mails = smtp.mails()?;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(m.envelope_to, "wang@example.com");
    assert_eq!(m.to, "王芳 <wang@example.com>");
    assert_eq!(m.from, "网格值班 <gridwatch@example.com>");
    assert_eq!(m.subject, subject);
    assert_eq!(m.message_id, "<a1.0.w-wang@gridwatch>");
    assert_eq!(m.content_type, "text/plain");
    // Text travels with CRLF line ends (RFC 2046's canonical form); mail clients show them as lines.
    assert_eq!(m.body.replace("\r\n", "\n"), text);
    Ok(())
}

#[tokio::test]
async fn a_retried_delivery_arrives_again_under_the_same_message_id() -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mailer = Mailer::new(&plain_config(smtp.port, 5000), None)?;
    for _ in 0..2 {
        mailer
            .send("wang@example.com", "井盖移位", "东门", "a7.1.w-wang")
            .await
            .map_err(anyhow::Error::msg)?;
    }
    mailer
        .send("wang@example.com", "井盖移位", "西门", "a8.1.w-wang")
        .await
        .map_err(anyhow::Error::msg)?;

    let mut ids: Vec<String> = smtp.mails()?.into_iter().map(|m| m.message_id).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "<a7.1.w-wang@gridwatch>",
            "<a7.1.w-wang@gridwatch>",
            "<a8.1.w-wang@gridwatch>"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_recipient_is_refused_by_name_before_anything_is_sent() -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mailer = Mailer::new(&plain_config(smtp.port, 5000), None)?;
    let e = mailer
        .send("wang at example.com", "s", "t", "a1")
        .await
        .unwrap_err();
    assert!(e.contains("\"wang at example.com\""), "{e}");
    assert!(smtp.mails()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_an_error_at_once() -> anyhow::Result<()> {
    let mailer = Mailer::new(&plain_config(free_port(), 2000), None)?;
    let started = Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        mailer.send("wang@example.com", "s", "t", "a1"),
    )
    .await?
    .unwrap_err();
    assert!(e.starts_with("SMTP:"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() -> anyhow::Result<()> {
    // The kernel completes the TCP handshake for a listener that never accepts, so the client
    // connects and then waits for a greeting that never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mailer = Mailer::new(&plain_config(silent.local_addr()?.port(), 500), None)?;
    let started = Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        mailer.send("wang@example.com", "s", "t", "a1"),
    )
    .await?
    .unwrap_err();
    let took = started.elapsed();
    assert!(e.contains("no answer within 500 ms"), "{e}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    Ok(())
}
