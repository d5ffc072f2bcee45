//! `gridwatch init DIR`: a working installation in one folder, ready to start as it is.
//!
//! ```text
//! DIR/gridwatch.toml           the config: a local broker, the local store, data under DIR/data
//! DIR/registry.toml            the community, with commented examples of every table (the roster too)
//! DIR/registry-template.xlsx   the spreadsheets to fill in and `gridwatch registry import`
//! DIR/rules.toml               the built-in alert rules, to adapt
//! DIR/secrets.env              the secrets' variables, empty, readable by the owner only
//! DIR/data/                    journal, readings, dead letters
//! ```
//!
//! It never overwrites: a folder that already has a `gridwatch.toml` is refused.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::registry::{files, sheets};

/// The registry `init` writes: valid as it is (a community and nothing else), with every table
/// shown in comments.
const REGISTRY: &str = r#"# The community registry. Fill in registry-template.xlsx and run
#   gridwatch registry import registry-template.xlsx --out registry.toml
# or edit this file. A running gateway follows changes to workers, duty and shifts at once;
# new devices need a restart. Ids follow [A-Za-z0-9_-]{1,64}.

[community]
id = "community"
name = "社区"
# duty_officer = "w-zhang"      # the last step of every escalation
# time_zone = "Asia/Shanghai"   # the roster's time zone

# [[buildings]]
# id = "b1"
# name = "1号楼"

# [[grids]]
# id = "g1"
# name = "第一网格"

# [[workers]]
# id = "w-wangfang"
# name = "王芳"
# phone = "13800000001"
# wecom = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"

# [[duty]]                      # who is on duty for a grid when no shift says otherwise
# grid = "g1"
# worker = "w-wangfang"
# backup = "w-lijun"
# leader = "w-zhang"

# [[shifts]]                    # the roster: a shift takes over from [[duty]] while it lasts
# grid = "g1"
# worker = "w-lijun"
# role = "on_duty"
# days = "mon-fri"
# from = "20:00"
# to = "08:00"

# [[devices]]
# id = "elev-b1-1"
# kind = "elevator"
# building = "b1"
# grid = "g1"
# location = "1单元客梯"
"#;

const SECRETS: &str =
    "# Secrets for the gateway, read by systemd (EnvironmentFile=) or `set -a; . ./secrets.env`.
# Never commit this file; it is readable by its owner only. Uncomment and fill in; no comments
# after a value (systemd would take them as part of it).
#
# The bearer token for HTTP writes and worker-app actions:
# GRIDWATCH_API_TOKEN=
# The broker password for mqtt.username:
# GRIDWATCH_MQTT_PASSWORD=
# The webhook signing secret, whsec_ + base64 of at least 24 bytes:
# GRIDWATCH_WEBHOOK_SECRET=
# The time-series store's token (store.backend = \"influx\"):
# GRIDWATCH_TSDB_TOKEN=
# The SMTP password for notify.smtp.username:
# GRIDWATCH_SMTP_PASSWORD=
";

/// The config `init` writes, with `{DATA}` the installation's data folder.
fn config(data: &Path) -> String {
    let data = data.display().to_string().replace('\\', "/");
    format!(
        r#"# Written by `gridwatch init`. Every key, its default and its meaning:
#   gridwatch config print-default
# Check a change before restarting: gridwatch config check gridwatch.toml

[mqtt]
host = "127.0.0.1"
port = 1883
client_id = "gridwatch-gateway"
# username = "gateway"          # the password comes from GRIDWATCH_MQTT_PASSWORD

[journal]
path = "{data}/journal"

[store]
backend = "local"               # or "influx", with [store.influx] url = "http://host:8428"
dead_letter_path = "{data}/dead-letter"

[store.local]
path = "{data}/tsdb"

[http]
listen = "127.0.0.1:8080"

[registry]
path = "registry.toml"

[rules]
path = "rules.toml"
"#
    )
}

/// Lays out an installation in `dir` (made if missing) and returns the files written.
pub fn init(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let config_path = dir.join("gridwatch.toml");
    if config_path.exists() {
        anyhow::bail!(
            "{} already exists: init never overwrites an installation (pick an empty folder)",
            config_path.display()
        );
    }
    let data = dir.join("data");
    for sub in ["journal", "tsdb", "dead-letter"] {
        let d = data.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let data =
        std::fs::canonicalize(&data).with_context(|| format!("resolving {}", data.display()))?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write("registry.toml", REGISTRY)?;
    write("rules.toml", crate::rules::BUILTIN)?;
    write("secrets.env", SECRETS)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("secrets.env");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    let template = dir.join("registry-template.xlsx");
    let (tables, readme) = sheets::template();
    files::write(&template, &tables, Some(&readme))?;
    written.push(template);
    // The config last: its presence is what marks the folder as initialised.
    std::fs::write(&config_path, config(&data))
        .with_context(|| format!("writing {}", config_path.display()))?;
    written.push(config_path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;
    use crate::config::Config;
    use crate::registry::Registry;
    use std::sync::Arc;

    #[test]
    fn an_initialised_folder_loads_as_it_is_and_is_not_initialised_twice() {
        let dir = tempfile::tempdir().unwrap();
        let written = init(dir.path()).unwrap();
        assert_eq!(written.len(), 5);
        let config = Config::load(&dir.path().join("gridwatch.toml")).unwrap();
        let catalogue = Arc::new(Catalogue::builtin());
        let registry = Registry::load(&config.registry.path, catalogue.clone()).unwrap();
        assert_eq!(registry.community, "community");
        let rules = config.rules.path.as_ref().unwrap();
        gridwatch_edge_rules::RuleSet::load(rules, &crate::rules::schema(&catalogue)).unwrap();
        assert!(config.journal.path.is_absolute() && config.journal.path.is_dir());
        let template = files::read(&[dir.path().join("registry-template.xlsx")]).unwrap();
        assert_eq!(template.len(), 4);
        let again = init(dir.path()).unwrap_err().to_string();
        assert!(again.contains("never overwrites"), "{again}");
    }

    #[test]
    fn the_secrets_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("secrets.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
