//! Conditions: the small expression language of the `when` and `clear` fields.
//!
//! `water_cm >= 80 and not cover_open`, `speed_mps > 1.15 * 1.75`, `door_open and moving`.
//! Numbers, `true`/`false`, reading names, `+ - * /`, the comparisons `== != < <= > >=`, `and`,
//! `or`, `not`, `abs(...)` and parentheses; nothing else. Every name is checked against the
//! kind's readings and every operator against its operands' types when the rule file loads, so a
//! rule that parses is a rule that can fire: there is no runtime type error to make it silently
//! never match. Each error carries the byte offset in the condition, for the file's line and column.

use std::fmt;

/// The most readings one condition may name: a payload carries at most 16.
pub const MAX_READINGS: usize = 16;

/// The type of a reading or of a part of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    /// A number (every number is a 64-bit float).
    Number,
    /// `true` or `false`.
    Bool,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Number => "a number",
            Type::Bool => "true/false",
        })
    }
}

/// A value a condition works on.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Val {
    /// A number.
    Num(f64),
    /// A flag.
    Bool(bool),
}

impl Val {
    /// This value's type.
    pub fn ty(self) -> Type {
        match self {
            Val::Num(_) => Type::Number,
            Val::Bool(_) => Type::Bool,
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Num(n) => write!(f, "{n}"),
            Val::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Why a condition was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    /// Byte offset in the condition where the problem starts.
    pub at: usize,
    /// What is wrong.
    pub message: String,
    /// What to write instead, when there is an obvious fix.
    pub hint: Option<String>,
}

impl ExprError {
    fn new(at: usize, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// A checked condition, ready to evaluate. Readings are numbered in the order of
/// [`Expr::readings`], and evaluation takes their values in that order.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    root: Node,
    readings: Vec<String>,
    source: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Lit(Val),
    Reading(usize),
    Not(Box<Node>),
    Neg(Box<Node>),
    Abs(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
}

impl Expr {
    /// Parses and type-checks `src` as a condition (it must be true or false). `reading` gives the
    /// type of a reading name, or the hint to show when the kind has no such reading.
    pub fn parse(
        src: &str,
        reading: &dyn Fn(&str) -> Result<Type, String>,
    ) -> Result<Expr, ExprError> {
        let tokens = lex(src)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            readings: Vec::new(),
            reading,
            src_len: src.len(),
        };
        let (root, ty, at) = p.or()?;
        if let Some(t) = p.peek() {
            return Err(unexpected(t, "the end of the condition"));
        }
        if ty != Type::Bool {
            return Err(
                ExprError::new(at, "this condition is a number, not true/false")
                    .hint("compare it with something, e.g. `water_cm > 80`"),
            );
        }
        Ok(Expr {
            root,
            readings: p.readings,
            source: src.trim().to_owned(),
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The reading names the condition uses, in the order [`Expr::eval`] takes their values.
    pub fn readings(&self) -> &[String] {
        &self.readings
    }

    /// Evaluates the condition with `values[i]` the value of `readings()[i]`. A comparison with
    /// NaN is false, as in IEEE arithmetic.
    pub fn eval(&self, values: &[Val]) -> bool {
        matches!(eval(&self.root, values), Val::Bool(true))
    }

    /// The condition's comparisons with their operands' values, for "why did (not) this fire".
    pub fn explain(&self, values: &[Val]) -> Vec<String> {
        let mut out = Vec::new();
        explain(&self.root, values, &self.readings, &mut out);
        out
    }
}

fn eval(node: &Node, values: &[Val]) -> Val {
    match node {
        Node::Lit(v) => *v,
        Node::Reading(i) => values[*i],
        Node::Not(a) => Val::Bool(!as_bool(eval(a, values))),
        Node::Neg(a) => Val::Num(-as_num(eval(a, values))),
        Node::Abs(a) => Val::Num(as_num(eval(a, values)).abs()),
        Node::And(a, b) => Val::Bool(as_bool(eval(a, values)) && as_bool(eval(b, values))),
        Node::Or(a, b) => Val::Bool(as_bool(eval(a, values)) || as_bool(eval(b, values))),
        Node::Cmp(op, a, b) => {
            let (a, b) = (eval(a, values), eval(b, values));
            Val::Bool(match (a, b) {
                (Val::Num(a), Val::Num(b)) => match op {
                    CmpOp::Eq => a == b,
                    CmpOp::Ne => a != b,
                    CmpOp::Lt => a < b,
                    CmpOp::Le => a <= b,
                    CmpOp::Gt => a > b,
                    CmpOp::Ge => a >= b,
                },
                (Val::Bool(a), Val::Bool(b)) => match op {
                    CmpOp::Eq => a == b,
                    _ => a != b,
                },
                _ => false,
            })
        }
        Node::Arith(op, a, b) => {
            let (a, b) = (as_num(eval(a, values)), as_num(eval(b, values)));
            Val::Num(match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
            })
        }
    }
}

// The checker guarantees the types; a wrong one here can only come from values passed in the
// wrong order, and reads as false or NaN rather than a panic.
fn as_bool(v: Val) -> bool {
    matches!(v, Val::Bool(true))
}

fn as_num(v: Val) -> f64 {
    match v {
        Val::Num(n) => n,
        Val::Bool(_) => f64::NAN,
    }
}

fn explain(node: &Node, values: &[Val], names: &[String], out: &mut Vec<String>) {
    match node {
        Node::Cmp(op, a, b) => out.push(format!(
            "{} {} {} is {}",
            show(a, values, names),
            op.symbol(),
            show(b, values, names),
            eval(node, values)
        )),
        Node::Reading(i) => out.push(format!("{} is {}", names[*i], values[*i])),
        Node::Not(a) => explain(a, values, names, out),
        Node::And(a, b) | Node::Or(a, b) => {
            explain(a, values, names, out);
            explain(b, values, names, out);
        }
        _ => {}
    }
}

fn show(node: &Node, values: &[Val], names: &[String]) -> String {
    match node {
        Node::Lit(v) => v.to_string(),
        Node::Reading(i) => format!("{} ({})", names[*i], values[*i]),
        other => eval(other, values).to_string(),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    at: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
                return Err(ExprError::new(start, "a number cannot have letters in it")
                    .hint("durations are not allowed in conditions: put them in `for`, e.g. for = \"5m\""));
            }
            let text = &src[start..i];
            let n: f64 = text
                .parse()
                .map_err(|_| ExprError::new(start, format!("`{text}` is not a number")))?;
            Tok::Num(n)
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            Tok::Ident(src[start..i].to_owned())
        } else {
            let two = src.get(i..i + 2).unwrap_or("");
            let (op, len) = match two {
                "==" | "!=" | "<=" | ">=" => (two, 2),
                "&&" => {
                    return Err(
                        ExprError::new(start, "`&&` is not part of conditions").hint("write `and`")
                    )
                }
                "||" => {
                    return Err(
                        ExprError::new(start, "`||` is not part of conditions").hint("write `or`")
                    )
                }
                _ => match c {
                    b'<' => ("<", 1),
                    b'>' => (">", 1),
                    b'+' => ("+", 1),
                    b'-' => ("-", 1),
                    b'*' => ("*", 1),
                    b'/' => ("/", 1),
                    b'(' | b')' => ("", 1),
                    b'=' => {
                        return Err(ExprError::new(start, "`=` alone is not a comparison")
                            .hint("write `==` to compare"))
                    }
                    b'!' => {
                        return Err(ExprError::new(start, "`!` is not part of conditions")
                            .hint("write `not`"))
                    }
                    b'"' | b'\'' => {
                        return Err(ExprError::new(start, "conditions have no text values")
                            .hint("compare numbers or true/false"))
                    }
                    _ => {
                        let ch = src[start..].chars().next().unwrap_or('?');
                        return Err(ExprError::new(start, format!("`{ch}` is not part of conditions"))
                            .hint("use reading names, numbers, true/false, + - * /, == != < <= > >=, and, or, not, abs(), ( )"));
                    }
                },
            };
            i += len;
            match c {
                b'(' => Tok::Open,
                b')' => Tok::Close,
                _ => Tok::Op(match op {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    "<" => "<",
                    ">" => ">",
                    "+" => "+",
                    "-" => "-",
                    "*" => "*",
                    _ => "/",
                }),
            }
        };
        out.push(Token { tok, at: start });
    }
    Ok(out)
}

fn describe(t: &Token) -> String {
    match &t.tok {
        Tok::Num(n) => format!("the number {n}"),
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
    }
}

fn unexpected(t: &Token, wanted: &str) -> ExprError {
    ExprError::new(t.at, format!("expected {wanted}, found {}", describe(t)))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    readings: Vec<String>,
    reading: &'a dyn Fn(&str) -> Result<Type, String>,
    src_len: usize,
}

type Parsed = (Node, Type, usize);

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self, wanted: &str) -> Result<Token, ExprError> {
        let t = self.tokens.get(self.pos).cloned().ok_or_else(|| {
            ExprError::new(
                self.src_len,
                format!("the condition ends where {wanted} should be"),
            )
        })?;
        self.pos += 1;
        Ok(t)
    }

    fn at_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s == word)
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Op(o), .. }) if *o == op)
    }

    fn expect(&self, (node, ty, at): Parsed, want: Type, role: &str) -> Result<Node, ExprError> {
        if ty == want {
            Ok(node)
        } else {
            let hint = match want {
                Type::Bool => "compare the number with something, e.g. `water_cm > 80`",
                Type::Number => {
                    "true/false readings are used as they are, e.g. `door_open and moving`"
                }
            };
            Err(ExprError::new(at, format!("{role} needs {want}, but this is {ty}")).hint(hint))
        }
    }

    fn or(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.and()?;
        while self.at_word("or") {
            self.pos += 1;
            let at = left.2;
            let a = self.expect(left, Type::Bool, "`or`")?;
            let right = self.and()?;
            let b = self.expect(right, Type::Bool, "`or`")?;
            left = (Node::Or(Box::new(a), Box::new(b)), Type::Bool, at);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.not()?;
        while self.at_word("and") {
            self.pos += 1;
            let at = left.2;
            let a = self.expect(left, Type::Bool, "`and`")?;
            let right = self.not()?;
            let b = self.expect(right, Type::Bool, "`and`")?;
            left = (Node::And(Box::new(a), Box::new(b)), Type::Bool, at);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Parsed, ExprError> {
        if self.at_word("not") {
            let at = self.next("`not`")?.at;
            let inner = self.not()?;
            let a = self.expect(inner, Type::Bool, "`not`")?;
            return Ok((Node::Not(Box::new(a)), Type::Bool, at));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Parsed, ExprError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Some(Token {
                tok: Tok::Op(o), ..
            }) => match *o {
                "==" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                ">=" => CmpOp::Ge,
                _ => return Ok(left),
            },
            _ => return Ok(left),
        };
        let op_at = self.next("a comparison")?.at;
        let right = self.sum()?;
        let at = left.2;
        let node = match op {
            CmpOp::Eq | CmpOp::Ne => {
                if left.1 != right.1 {
                    return Err(ExprError::new(
                        op_at,
                        format!("`{}` compares {} with {}", op.symbol(), left.1, right.1),
                    )
                    .hint("compare a number with a number, or true/false with true/false"));
                }
                Node::Cmp(op, Box::new(left.0), Box::new(right.0))
            }
            _ => {
                let role = format!("`{}`", op.symbol());
                let a = self.expect(left, Type::Number, &role)?;
                let b = self.expect(right, Type::Number, &role)?;
                Node::Cmp(op, Box::new(a), Box::new(b))
            }
        };
        if let Some(t) = self.peek() {
            if matches!(&t.tok, Tok::Op(o) if matches!(*o, "==" | "!=" | "<" | "<=" | ">" | ">=")) {
                return Err(ExprError::new(t.at, "comparisons cannot be chained")
                    .hint("join two comparisons with `and`, e.g. `x > 1 and x < 5`"));
            }
        }
        Ok((node, Type::Bool, at))
    }

    fn sum(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.product()?;
        while self.at_op("+") || self.at_op("-") {
            let op = if self.at_op("+") {
                ArithOp::Add
            } else {
                ArithOp::Sub
            };
            let sym = if op == ArithOp::Add { "`+`" } else { "`-`" };
            self.pos += 1;
            let at = left.2;
            let a = self.expect(left, Type::Number, sym)?;
            let right = self.product()?;
            let b = self.expect(right, Type::Number, sym)?;
            left = (Node::Arith(op, Box::new(a), Box::new(b)), Type::Number, at);
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.unary()?;
        while self.at_op("*") || self.at_op("/") {
            let op = if self.at_op("*") {
                ArithOp::Mul
            } else {
                ArithOp::Div
            };
            let sym = if op == ArithOp::Mul { "`*`" } else { "`/`" };
            self.pos += 1;
            let at = left.2;
            let a = self.expect(left, Type::Number, sym)?;
            let right = self.unary()?;
            let b = self.expect(right, Type::Number, sym)?;
            left = (Node::Arith(op, Box::new(a), Box::new(b)), Type::Number, at);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Parsed, ExprError> {
        if self.at_op("-") {
            let at = self.next("`-`")?.at;
            let inner = self.unary()?;
            let a = self.expect(inner, Type::Number, "`-`")?;
            return Ok((Node::Neg(Box::new(a)), Type::Number, at));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Parsed, ExprError> {
        let t = self.next("a reading, a number or `(`")?;
        match t.tok {
            Tok::Num(n) => Ok((Node::Lit(Val::Num(n)), Type::Number, t.at)),
            Tok::Open => {
                let inner = self.or()?;
                match self.next("`)`")? {
                    Token {
                        tok: Tok::Close, ..
                    } => Ok((inner.0, inner.1, t.at)),
                    other => Err(unexpected(&other, "`)`")),
                }
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok((Node::Lit(Val::Bool(true)), Type::Bool, t.at)),
                "false" => Ok((Node::Lit(Val::Bool(false)), Type::Bool, t.at)),
                "and" | "or" | "not" => Err(unexpected(
                    &Token {
                        tok: Tok::Ident(name),
                        ..t
                    },
                    "a reading, a number or `(`",
                )),
                "abs" => {
                    match self.next("`(` after abs")? {
                        Token { tok: Tok::Open, .. } => {}
                        other => return Err(unexpected(&other, "`(` after abs")),
                    }
                    let inner = self.or()?;
                    let a = self.expect(inner, Type::Number, "abs()")?;
                    match self.next("`)`")? {
                        Token {
                            tok: Tok::Close, ..
                        } => Ok((Node::Abs(Box::new(a)), Type::Number, t.at)),
                        other => Err(unexpected(&other, "`)`")),
                    }
                }
                _ => {
                    let ty = (self.reading)(&name).map_err(|hint| {
                        ExprError::new(t.at, format!("there is no reading `{name}`")).hint(hint)
                    })?;
                    if matches!(self.peek(), Some(Token { tok: Tok::Open, .. })) {
                        return Err(ExprError::new(t.at, format!("`{name}` is not a function"))
                            .hint("the only function is abs()"));
                    }
                    let idx = match self.readings.iter().position(|r| *r == name) {
                        Some(i) => i,
                        None if self.readings.len() == MAX_READINGS => {
                            return Err(ExprError::new(
                                t.at,
                                format!("a condition may name at most {MAX_READINGS} readings"),
                            )
                            .hint("split it into two rules"));
                        }
                        None => {
                            self.readings.push(name);
                            self.readings.len() - 1
                        }
                    };
                    Ok((Node::Reading(idx), ty, t.at))
                }
            },
            _ => Err(unexpected(&t, "a reading, a number or `(`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(name: &str) -> Result<Type, String> {
        match name {
            "water_cm" | "speed_mps" | "tilt_deg" => Ok(Type::Number),
            "door_open" | "moving" | "cover_open" => Ok(Type::Bool),
            _ => Err(
                "write one of: water_cm, speed_mps, tilt_deg, door_open, moving, cover_open".into(),
            ),
        }
    }

    fn parse(src: &str) -> Result<Expr, ExprError> {
        Expr::parse(src, &kind)
    }

    fn err(src: &str) -> ExprError {
        parse(src).expect_err(src)
    }

    #[test]
    fn conditions_evaluate_as_written() {
        let e = parse("water_cm >= 80 and not cover_open").unwrap();
        assert_eq!(e.readings(), ["water_cm", "cover_open"]);
        assert!(e.eval(&[Val::Num(80.0), Val::Bool(false)]));
        assert!(!e.eval(&[Val::Num(79.9), Val::Bool(false)]));
        assert!(!e.eval(&[Val::Num(90.0), Val::Bool(true)]));
        let e = parse("door_open and moving or speed_mps > 1.15 * 1.75").unwrap();
        assert!(e.eval(&[Val::Bool(true), Val::Bool(true), Val::Num(0.0)]));
        assert!(e.eval(&[Val::Bool(false), Val::Bool(true), Val::Num(2.1)]));
        assert!(!e.eval(&[Val::Bool(false), Val::Bool(true), Val::Num(2.0)]));
        let e = parse("abs(-tilt_deg + 2) > 10 - 2 * (3 - 1)").unwrap();
        assert!(e.eval(&[Val::Num(9.0)]));
        assert!(!e.eval(&[Val::Num(8.0)]));
        assert!(parse("door_open == true").unwrap().eval(&[Val::Bool(true)]));
        assert!(parse("1e2 == 100").unwrap().eval(&[]));
    }

    #[test]
    fn a_name_used_twice_is_one_value() {
        let e = parse("water_cm > 10 and water_cm < 20").unwrap();
        assert_eq!(e.readings(), ["water_cm"]);
        assert!(e.eval(&[Val::Num(15.0)]));
    }

    #[test]
    fn nan_compares_false() {
        let e = parse("water_cm / 0 * 0 > 1 or water_cm / 0 * 0 <= 1").unwrap();
        assert!(!e.eval(&[Val::Num(0.0)]));
    }

    #[test]
    fn mistakes_point_at_the_spot_with_a_fix() {
        let e = err("water > 80");
        assert_eq!(e.at, 0);
        assert!(e.message.contains("no reading `water`"), "{e:?}");
        assert!(e.hint.as_deref().unwrap().contains("water_cm"));

        let e = err("water_cm > 80 && moving");
        assert_eq!((e.at, e.hint.as_deref()), (14, Some("write `and`")));
        assert_eq!(
            err("water_cm = 80").hint.as_deref(),
            Some("write `==` to compare")
        );
        assert_eq!(err("!moving").hint.as_deref(), Some("write `not`"));

        let e = err("water_cm + 1");
        assert!(e.message.contains("not true/false"), "{e:?}");

        let e = err("door_open > 1");
        assert_eq!(e.at, 0);
        assert!(e.message.contains("`>` needs a number"), "{e:?}");

        let e = err("water_cm and moving");
        assert!(e.message.contains("`and` needs true/false"), "{e:?}");

        let e = err("door_open == 1");
        assert_eq!(e.at, 10);

        let e = err("1 < water_cm < 5");
        assert!(e.message.contains("chained"), "{e:?}");

        let e = err("water_cm > ");
        assert_eq!(e.at, 11);
        assert!(e.message.contains("ends"), "{e:?}");

        let e = err("(water_cm > 1");
        assert!(e.message.contains("`)`"), "{e:?}");

        let e = err("water_cm > 5m");
        assert!(e.hint.unwrap().contains("for"));

        let e = err("max(water_cm) > 1");
        assert!(e.message.contains("no reading `max`"), "{e:?}");

        let e = err("water_cm > 1 1");
        assert!(e.message.contains("end of the condition"), "{e:?}");

        let e = err("moving ≥ 1");
        assert_eq!(e.at, 7);
    }

    #[test]
    fn explanations_show_each_comparison_with_its_values() {
        let e = parse("water_cm >= 80 and not cover_open").unwrap();
        let why = e.explain(&[Val::Num(12.5), Val::Bool(false)]);
        assert_eq!(
            why,
            ["water_cm (12.5) >= 80 is false", "cover_open is false"]
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_cleanly(src in "\\PC{0,40}") {
            if let Err(e) = parse(&src) {
                prop_assert!(e.at <= src.len());
            }
        }

        #[test]
        fn arithmetic_matches_rust(a in -1e6f64..1e6, b in -1e6f64..1e6, c in 1f64..100.0) {
            let e = parse(&format!("water_cm * {c} + {b} > {a}")).unwrap();
            let x = 3.5;
            prop_assert_eq!(e.eval(&[Val::Num(x)]), x * c + b > a);
        }
    }
}
