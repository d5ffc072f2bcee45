//! Alert message templates: text with `{field}` placeholders filled from the reading and the
//! registry when the alert opens. `{{` and `}}` write a brace.

/// Fields every template may use, filled from the registry and the alert.
pub const REGISTRY_FIELDS: &[&str] = &[
    "device",
    "kind",
    "community",
    "building",
    "building_name",
    "grid",
    "grid_name",
    "location",
    "rule",
    "severity",
    "since",
];

/// A checked template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// A template problem: the byte offset in the template and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset in the template.
    pub at: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl Template {
    /// Parses `src`, accepting the placeholders for which `known` is true.
    pub fn parse(src: &str, known: &dyn Fn(&str) -> bool) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            match c {
                '{' if rest.peek().map(|p| p.1) == Some('{') => {
                    rest.next();
                    text.push('{');
                }
                '}' if rest.peek().map(|p| p.1) == Some('}') => {
                    rest.next();
                    text.push('}');
                }
                '}' => {
                    return Err(TemplateError {
                        at: i,
                        message: "a `}` with no `{`; write `}}` for a brace".into(),
                    })
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match rest.next() {
                            Some((_, '}')) => break,
                            Some((_, ch)) => name.push(ch),
                            None => {
                                return Err(TemplateError {
                                    at: i,
                                    message: "a `{` with no `}`; write `{{` for a brace".into(),
                                })
                            }
                        }
                    }
                    if !known(&name) {
                        return Err(TemplateError {
                            at: i,
                            message: format!(
                                "there is no field `{name}`; use a reading of the kind or one of: {}",
                                REGISTRY_FIELDS.join(", ")
                            ),
                        });
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field(name));
                }
                _ => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self { parts })
    }

    /// The text with each field replaced by `value(field)`, or `?` where there is none.
    pub fn render(&self, value: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(value(f).as_deref().unwrap_or("?")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str) -> bool {
        REGISTRY_FIELDS.contains(&name) || name == "water_cm"
    }

    #[test]
    fn fields_are_filled_and_braces_escaped() {
        let t = Template::parse(
            "{building_name}{location} 水位 {water_cm} 厘米 {{ok}}",
            &known,
        )
        .unwrap();
        let text = t.render(&|f| match f {
            "building_name" => Some("1号楼".into()),
            "location" => Some("东侧".into()),
            _ => None,
        });
        assert_eq!(text, "1号楼东侧 水位 ? 厘米 {ok}");
    }

    #[test]
    fn unknown_fields_and_stray_braces_are_errors() {
        let e = Template::parse("水位 {water}", &known).unwrap_err();
        assert_eq!(e.at, "水位 ".len());
        assert!(e.message.contains("no field `water`"));
        assert!(Template::parse("a } b", &known).is_err());
        assert!(Template::parse("a { b", &known).is_err());
    }
}
