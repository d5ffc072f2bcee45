//! `gridwatch config`: print the commented default config, print the reference of every key,
//! check a config file.
//!
//! `check` exits 0 when the file is valid, 1 when it has problems (every one is listed with its
//! key and line), 2 when it cannot be checked (the file cannot be read; clap also uses 2 for
//! wrong arguments).

use std::io::Write;
use std::path::PathBuf;

use crate::config::{Config, ConfigError};
use crate::config_keys;

/// What `gridwatch config` can do.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the default config: every key with its meaning as a comment and its default value.
    PrintDefault,
    /// Print every key (path, default, meaning) as a Markdown table, as in the README.
    Reference,
    /// Check a config file and list every problem with its key and line. Exit code 0: valid;
    /// 1: problems found; 2: the file cannot be read.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

/// Runs one `config` command, writing results to `out` and problems to `err`; returns the exit
/// code.
pub fn run(command: ConfigCommand, out: &mut impl Write, err: &mut impl Write) -> u8 {
    // A closed pipe (`| head`) is not an error worth reporting.
    let written = match command {
        ConfigCommand::PrintDefault => out.write_all(config_keys::default_toml().as_bytes()),
        ConfigCommand::Reference => out.write_all(config_keys::reference_markdown().as_bytes()),
        ConfigCommand::Check { file } => {
            return match Config::load(&file) {
                Ok(_) => {
                    let _ = writeln!(out, "{}: valid", file.display());
                    0
                }
                Err(ConfigError::Read { path, source }) => {
                    let _ = writeln!(
                        err,
                        "error: cannot read config file {}: {source}",
                        path.display()
                    );
                    2
                }
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    1
                }
            }
        }
    };
    u8::from(written.is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_check(text: Option<&str>) -> (u8, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gridwatch.toml");
        if let Some(text) = text {
            std::fs::write(&file, text).unwrap();
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            ConfigCommand::Check { file: file.clone() },
            &mut out,
            &mut err,
        );
        let clean = |b: Vec<u8>| {
            String::from_utf8(b)
                .unwrap()
                .replace(&file.display().to_string(), "FILE")
        };
        (code, clean(out), clean(err))
    }

    #[test]
    fn a_valid_file_exits_0() {
        assert_eq!(
            run_check(Some("[mqtt]\nport = 1884\n")),
            (0, "FILE: valid\n".into(), String::new())
        );
    }

    #[test]
    fn a_file_with_problems_exits_1_and_lists_them_all() {
        let (code, out, err) = run_check(Some(
            "[mqtt]\nhots = \"x\"\nport = 0\n[store]\nbatch_lines = -1\n",
        ));
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "config file FILE has 2 problem(s):\n  \
             line 2: mqtt.hots: unknown key; did you mean `host`?\n  \
             line 5: store.batch_lines: invalid value: integer `-1`, expected usize\n"
        );
    }

    #[test]
    fn a_file_with_syntax_errors_exits_1_with_their_lines() {
        let (code, _, err) = run_check(Some("[mqtt\nport = = 1\n"));
        assert_eq!(code, 1);
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn a_missing_file_exits_2() {
        let (code, out, err) = run_check(None);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(
            err.starts_with("error: cannot read config file FILE: "),
            "{err}"
        );
    }

    #[test]
    fn print_default_writes_the_commented_default_config() {
        let mut out = Vec::new();
        assert_eq!(
            run(ConfigCommand::PrintDefault, &mut out, &mut Vec::new()),
            0
        );
        assert_eq!(String::from_utf8(out).unwrap(), config_keys::default_toml());
    }
}
