//! Alert texts, in Chinese (the default) and English. Rule alerts take theirs from the rule's
//! message templates; the gateway's own alerts are written here.

use serde::{Deserialize, Serialize};

use crate::config::Language;

/// One alert's message in every language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    pub zh_cn: String,
    /// English.
    pub en: String,
}

impl Messages {
    /// The texts of the gateway's own alert when its journal cannot be written.
    pub fn journal_write_failed() -> Self {
        Self {
            zh_cn: "网关无法写入本地日志（磁盘已满或故障）：已暂停确认传感器消息，消息在MQTT代理处排队，请立即检查网关磁盘".into(),
            en: "The gateway cannot write its journal (disk full or failing): it has stopped acknowledging sensor messages, which now queue at the broker. Check the gateway's disk now.".into(),
        }
    }

    /// A grid will have nobody on duty from `from` (local `HH:MM`) to `until`.
    pub fn nobody_on_duty(grid: &str, from: &str, until: &str) -> Self {
        Self {
            zh_cn: format!("{grid}自{from}起无人值班（排班空缺至{until}），请安排值班人员"),
            en: format!(
                "Nobody is on duty for {grid} from {from} to {until}: put someone on the roster"
            ),
        }
    }

    /// A worker on duty has no webhook, robot or e-mail.
    pub fn unreachable(worker: &str) -> Self {
        Self {
            zh_cn: format!("值班人员{worker}没有任何可用的通知方式（应用、群机器人或邮箱），告警无法送达"),
            en: format!("{worker} is on duty with no way to reach them (app webhook, group robot or e-mail)"),
        }
    }

    /// A device sends more than its rate; what is over it is dropped.
    pub fn flooding(place: &str, dropped: u64) -> Self {
        Self {
            zh_cn: format!("{place}的设备发送过于频繁，已丢弃{dropped}条消息（设备故障或被人改动），请派人查看；一键呼救等紧急事件不受影响"),
            en: format!("The device at {place} sends too often: {dropped} messages dropped (broken or tampered with); please check it. Emergency events are never dropped"),
        }
    }

    /// A worker's channel keeps failing.
    pub fn channel_failing(
        worker: &str,
        channel: &str,
        failures: u32,
        since: &str,
        error: &str,
    ) -> Self {
        Self {
            zh_cn: format!("{worker}的{channel}通知通道自{since}起连续失败{failures}次：{error}"),
            en: format!("{worker}'s {channel} channel has failed {failures} times in a row since {since}: {error}"),
        }
    }

    /// `n` devices of one building raised `rule` at once, grouped into one alert.
    pub fn storm(building: &str, n: usize, rule: &str) -> Self {
        Self {
            zh_cn: format!("{building}共{n}台设备同时触发“{rule}”，疑似停电或网络故障，已合并为一条告警"),
            en: format!("{n} devices in {building} raised {rule} at once (a power cut or a network fault?), grouped into one alert"),
        }
    }

    /// The text in `lang`.
    pub fn get(&self, lang: Language) -> &str {
        match lang {
            Language::ZhCn => &self.zh_cn,
            Language::En => &self.en,
        }
    }
}

/// What a person reads about `alert` in a group chat or an e-mail: a title line and a few lines
/// of where, what, when and who; `escalated` when it went up its chain.
pub fn notice(
    alert: &super::Alert,
    escalated: bool,
    lang: Language,
    offset_min: i32,
) -> (String, String) {
    use gridwatch_edge_rules::Severity;
    let d = &alert.device;
    let when = crate::clock::local_time(alert.started_at, offset_min);
    let who = alert
        .assignee
        .as_ref()
        .map(|a| match &a.phone {
            Some(p) => format!("{} {p}", a.name),
            None => a.name.clone(),
        })
        .unwrap_or_default();
    let message = alert.messages.get(lang);
    match lang {
        Language::ZhCn => {
            let severity = match alert.severity {
                Severity::Critical => "紧急",
                Severity::Major => "重要",
                Severity::Minor => "一般",
                Severity::Info => "提示",
            };
            let up = if escalated { "·已升级" } else { "" };
            let mut text = format!(
                "位置：{} {}（{}）\n设备：{}（{}）\n发生时间：{when}\n处理人：{who}",
                d.building_name, d.location, d.grid_name, d.id, d.kind
            );
            if escalated {
                text += &format!("\n升级：第{}级，此前无人确认", alert.escalation_level);
            }
            text += &format!("\n告警编号：{}", alert.alert_id);
            (format!("【{severity}{up}】{message}"), text)
        }
        Language::En => {
            let up = if escalated { ", escalated" } else { "" };
            let mut text = format!(
                "Where: {} {} ({})\nDevice: {} ({})\nSince: {when}\nAssigned to: {who}",
                d.building_name, d.location, d.grid_name, d.id, d.kind
            );
            if escalated {
                text += &format!(
                    "\nEscalation: level {}, nobody acknowledged before",
                    alert.escalation_level
                );
            }
            text += &format!("\nAlert: {}", alert.alert_id);
            (format!("[{}{up}] {message}", alert.severity.as_str()), text)
        }
    }
}
