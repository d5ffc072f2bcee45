//! Alert texts, in Chinese (the default) and English.

use serde::Serialize;

use crate::config::Language;
use crate::registry::Device;

/// One alert's message in every language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Messages {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    pub zh_cn: String,
    /// English.
    pub en: String,
}

impl Messages {
    /// The texts for a rule that fired on `device`.
    pub fn for_rule(rule: &str, d: &Device) -> Self {
        match rule {
            gridwatch_edge_rules::SOS_PRESSED => Self {
                zh_cn: format!(
                    "{}{}一键呼救：老人按下了求助按钮，请立即上门查看",
                    d.building_name, d.location
                ),
                en: format!(
                    "SOS at {}, {}: a resident pressed the help button; go and check at once",
                    d.location, d.building_name
                ),
            },
            super::JOURNAL_WRITE_FAILED => Self {
                zh_cn: "网关无法写入本地日志（磁盘已满或故障）：已暂停确认传感器消息，消息在MQTT代理处排队，请立即检查网关磁盘".into(),
                en: "The gateway cannot write its journal (disk full or failing): it has stopped acknowledging sensor messages, which now queue at the broker. Check the gateway's disk now.".into(),
            },
            other => Self {
                zh_cn: format!("{}{}告警：{other}", d.building_name, d.location),
                en: format!("Alert at {}, {}: {other}", d.location, d.building_name),
            },
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
