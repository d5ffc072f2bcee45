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

    /// The text in `lang`.
    pub fn get(&self, lang: Language) -> &str {
        match lang {
            Language::ZhCn => &self.zh_cn,
            Language::En => &self.en,
        }
    }
}
