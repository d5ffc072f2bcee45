//! The config shown in the README is the default config: if a default changes, this fails until the
//! README says the same; and the README's configuration reference is the one the code generates.

use std::path::Path;

use gridwatch_gateway::config::Config;
use gridwatch_gateway::config_keys::reference_markdown;

/// The first ```toml block after `heading` in the README.
fn toml_block_after(readme: &str, heading: &str) -> String {
    let from = readme.find(heading).expect("the heading is in the README");
    let rest = &readme[from..];
    let start = rest.find("```toml\n").expect("a toml block follows") + "```toml\n".len();
    let end = rest[start..].find("```").expect("the block ends");
    rest[start..start + end].to_owned()
}

#[test]
fn the_readme_config_is_the_default_config() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md at the workspace root");
    let shown = toml_block_after(&readme, "### Config file");
    let parsed =
        Config::parse(&shown, Path::new("README.md")).expect("the README's config is valid");
    assert_eq!(format!("{parsed:#?}"), format!("{:#?}", Config::default()));
}

/// Between these markers the README holds `gridwatch config reference`'s output.
const REFERENCE_BEGIN: &str = "<!-- config-reference:begin -->\n";
const REFERENCE_END: &str = "<!-- config-reference:end -->";

#[test]
fn the_readme_configuration_reference_is_the_one_the_code_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md at the workspace root");
    let start = readme.find(REFERENCE_BEGIN).expect("the begin marker") + REFERENCE_BEGIN.len();
    let end = start + readme[start..].find(REFERENCE_END).expect("the end marker");
    let generated = reference_markdown();
    if readme[start..end] == generated {
        return;
    }
    if std::env::var("UPDATE_README").as_deref() == Ok("1") {
        let updated = format!("{}{generated}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).expect("README.md is writable");
        return;
    }
    let first_difference = readme[start..end]
        .lines()
        .zip(generated.lines())
        .find(|(shown, made)| shown != made);
    panic!(
        "the README's configuration reference differs from the code's (first difference: \
         {first_difference:?}); regenerate it with \
         `UPDATE_README=1 cargo test -p gridwatch-gateway --test readme`"
    );
}

#[test]
fn the_readme_broker_security_example_is_a_valid_config_with_tls_on() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md at the workspace root");
    let shown = toml_block_after(&readme, "### Broker security");
    let parsed = Config::parse(&shown, Path::new("README.md")).expect("the example is valid");
    assert!(parsed.mqtt.tls.enabled);
    assert_eq!(
        parsed.mqtt.tls.ca_file.as_deref(),
        Some(Path::new("/etc/gridwatch/mqtt-ca.pem"))
    );
    assert_eq!(parsed.mqtt.username.as_deref(), Some("gridwatch-gateway"));
    assert_eq!(parsed.mqtt.client_id, "gridwatch-gateway");
}
