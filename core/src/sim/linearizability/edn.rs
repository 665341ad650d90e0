//! A reader for the subset of EDN (extensible data notation, <https://github.com/edn-format/edn>)
//! that Jepsen and Knossos histories are written in: maps, vectors, lists, sets, keywords,
//! symbols, integers, floats, strings, characters, booleans, `nil`, tagged values and
//! comments, with commas as whitespace. Every value remembers the line and column where it
//! starts, so that a history error can point at it. Hand-written (a few hundred lines)
//! rather than a dependency: the core stays pure and wasm-safe, and the errors say where.
//!
//! Integers beyond `i64` and floats are kept as their text: histories need neither, and
//! an operation that does use one gets an error naming its position.

use std::fmt;

/// Where a value starts: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A malformed text, or a value that does not fit: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdnError {
    pub at: Position,
    pub problem: String,
}

impl fmt::Display for EdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// What a value is.
#[derive(Debug, Clone, PartialEq)]
pub enum EdnKind {
    Nil,
    Bool(bool),
    Int(i64),
    /// A float, or an integer too large for `i64`, as written.
    Number(String),
    Str(String),
    Char(char),
    /// Without the leading colon (`:invoke` is `Keyword("invoke")`).
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    List(Vec<Edn>),
    Set(Vec<Edn>),
    /// Keys and values in the order written.
    Map(Vec<(Edn, Edn)>),
    /// `#tag value`.
    Tagged(String, Box<Edn>),
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Edn {
    pub kind: EdnKind,
    pub at: Position,
}

impl Edn {
    /// The value of keyword key `name` in a map; `None` if this is not a map or has no
    /// such key.
    pub fn get(&self, name: &str) -> Option<&Edn> {
        let EdnKind::Map(entries) = &self.kind else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(&k.kind, EdnKind::Keyword(n) if n == name))
            .map(|(_, v)| v)
    }

    /// The items of a vector or a list.
    pub fn items(&self) -> Option<&[Edn]> {
        match &self.kind {
            EdnKind::Vector(items) | EdnKind::List(items) => Some(items),
            _ => None,
        }
    }

    /// A short description for error messages: `the keyword :foo`, `a map`.
    pub fn describe(&self) -> String {
        match &self.kind {
            EdnKind::Nil => "nil".into(),
            EdnKind::Bool(b) => format!("the boolean {b}"),
            EdnKind::Int(i) => format!("the integer {i}"),
            EdnKind::Number(n) => format!("the number {n}"),
            EdnKind::Str(s) => format!("the string {s:?}"),
            EdnKind::Char(c) => format!("the character {c:?}"),
            EdnKind::Keyword(k) => format!("the keyword :{k}"),
            EdnKind::Symbol(s) => format!("the symbol {s}"),
            EdnKind::Vector(_) => "a vector".into(),
            EdnKind::List(_) => "a list".into(),
            EdnKind::Set(_) => "a set".into(),
            EdnKind::Map(_) => "a map".into(),
            EdnKind::Tagged(tag, _) => format!("a #{tag} value"),
        }
    }

    /// An error about this value.
    pub fn error(&self, problem: impl Into<String>) -> EdnError {
        EdnError {
            at: self.at,
            problem: problem.into(),
        }
    }
}

/// How deeply collections may nest: the reader recurses, and a hostile text of ten
/// thousand `[` must not overflow the stack.
const MAX_DEPTH: usize = 64;

/// Reads every top-level value of `text`.
pub fn read_all(text: &str) -> Result<Vec<Edn>, EdnError> {
    let mut reader = Reader {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        column: 1,
    };
    let mut values = Vec::new();
    loop {
        reader.skip_blank();
        if reader.peek().is_none() {
            return Ok(values);
        }
        values.push(reader.value(0)?);
    }
}

struct Reader {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
}

/// Characters that end a symbol, keyword or number.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';')
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn here(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn error(&self, at: Position, problem: impl Into<String>) -> EdnError {
        EdnError {
            at,
            problem: problem.into(),
        }
    }

    /// Skips whitespace, commas and `;` comments.
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == ';' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// A run of non-delimiter characters.
    fn token(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if is_delimiter(c) {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    fn value(&mut self, depth: usize) -> Result<Edn, EdnError> {
        self.skip_blank();
        let at = self.here();
        if depth > MAX_DEPTH {
            return Err(self.error(at, format!("values nest more than {MAX_DEPTH} deep")));
        }
        let Some(c) = self.peek() else {
            return Err(self.error(at, "expected a value, found the end of the text"));
        };
        let kind = match c {
            '{' => {
                self.bump();
                let items = self.sequence('}', at, "map", depth)?;
                if items.len() % 2 == 1 {
                    return Err(self.error(at, "a map needs an even number of forms"));
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    entries.push((k, v));
                }
                EdnKind::Map(entries)
            }
            '[' => {
                self.bump();
                EdnKind::Vector(self.sequence(']', at, "vector", depth)?)
            }
            '(' => {
                self.bump();
                EdnKind::List(self.sequence(')', at, "list", depth)?)
            }
            ')' | ']' | '}' => return Err(self.error(at, format!("unexpected `{c}`"))),
            '"' => EdnKind::Str(self.string(at)?),
            '\\' => {
                self.bump();
                let name = self.token();
                let mut letters = name.chars();
                match (letters.next(), letters.next(), name.as_str()) {
                    (_, _, "newline") => EdnKind::Char('\n'),
                    (_, _, "space") => EdnKind::Char(' '),
                    (_, _, "tab") => EdnKind::Char('\t'),
                    (Some(one), None, _) => EdnKind::Char(one),
                    (None, _, _) => match self.bump() {
                        Some(delimiter) => EdnKind::Char(delimiter),
                        None => return Err(self.error(at, "the text ends after `\\`")),
                    },
                    _ => return Err(self.error(at, format!("unknown character `\\{name}`"))),
                }
            }
            ':' => {
                self.bump();
                let name = self.token();
                if name.is_empty() {
                    return Err(self.error(at, "a keyword needs a name after `:`"));
                }
                EdnKind::Keyword(name)
            }
            '#' => {
                self.bump();
                match self.peek() {
                    Some('{') => {
                        self.bump();
                        EdnKind::Set(self.sequence('}', at, "set", depth)?)
                    }
                    Some('_') => {
                        // `#_` discards the next value.
                        self.bump();
                        self.value(depth + 1)?;
                        return self.value(depth);
                    }
                    _ => {
                        let tag = self.token();
                        if tag.is_empty() {
                            return Err(self.error(at, "`#` must start a set or a tag"));
                        }
                        EdnKind::Tagged(tag, Box::new(self.value(depth + 1)?))
                    }
                }
            }
            _ => {
                let token = self.token();
                atom(&token).ok_or_else(|| {
                    self.error(at, format!("unexpected `{}`", token_or_char(&token, c)))
                })?
            }
        };
        Ok(Edn { kind, at })
    }

    /// The values up to the closing `close`, which it consumes. A text that ends first is
    /// an error at the opening, `opened_at`, where the reader can point to what is open.
    fn sequence(
        &mut self,
        close: char,
        opened_at: Position,
        what: &str,
        depth: usize,
    ) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                None => {
                    return Err(self.error(
                        opened_at,
                        format!(
                            "this {what} is not closed: `{close}` expected before the end of \
                             the text"
                        ),
                    ));
                }
                Some(c @ (')' | ']' | '}')) => {
                    let at = self.here();
                    return Err(self.error(at, format!("expected `{close}`, found `{c}`")));
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self, at: Position) -> Result<String, EdnError> {
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error(at, "this string is not closed"));
            };
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let escape_at = self.here();
                    let escaped = match self.bump() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('u') => {
                            let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    self.error(escape_at, format!("bad escape `\\u{hex}`"))
                                })?
                        }
                        Some(other) => {
                            return Err(
                                self.error(escape_at, format!("unknown escape `\\{other}`"))
                            );
                        }
                        None => return Err(self.error(at, "this string is not closed")),
                    };
                    out.push(escaped);
                }
                other => out.push(other),
            }
        }
    }
}

fn token_or_char(token: &str, c: char) -> String {
    if token.is_empty() {
        c.to_string()
    } else {
        token.to_string()
    }
}

/// `nil`, `true`, `false`, a number or a symbol; `None` if `token` is none of them.
fn atom(token: &str) -> Option<EdnKind> {
    match token {
        "" => None,
        "nil" => Some(EdnKind::Nil),
        "true" => Some(EdnKind::Bool(true)),
        "false" => Some(EdnKind::Bool(false)),
        _ => {
            let mut chars = token.chars();
            let first = chars.next()?;
            let second = chars.next();
            let numeric = first.is_ascii_digit()
                || (matches!(first, '+' | '-') && second.is_some_and(|c| c.is_ascii_digit()));
            if numeric {
                let digits = token.strip_suffix('N').unwrap_or(token);
                let digits = digits.strip_prefix('+').unwrap_or(digits);
                if let Ok(i) = digits.parse::<i64>() {
                    return Some(EdnKind::Int(i));
                }
                let plain = digits.strip_prefix('-').unwrap_or(digits);
                let well_formed = plain
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | 'M'));
                return well_formed.then(|| EdnKind::Number(token.to_string()));
            }
            let symbolic = token.chars().all(|c| {
                c.is_alphanumeric()
                    || matches!(
                        c,
                        '.' | '*'
                            | '+'
                            | '!'
                            | '-'
                            | '_'
                            | '?'
                            | '$'
                            | '%'
                            | '&'
                            | '='
                            | '<'
                            | '>'
                            | '/'
                            | '\''
                            | '#'
                            | ':'
                    )
            });
            symbolic.then(|| EdnKind::Symbol(token.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> EdnKind {
        let values = read_all(text).unwrap();
        assert_eq!(values.len(), 1, "{text}");
        values.into_iter().next().unwrap().kind
    }

    fn error(text: &str) -> (usize, usize, String) {
        let e = read_all(text).unwrap_err();
        (e.at.line, e.at.column, e.problem)
    }

    #[test]
    fn reads_the_values_histories_use() {
        assert_eq!(one("nil"), EdnKind::Nil);
        assert_eq!(one(" true "), EdnKind::Bool(true));
        assert_eq!(one("-42"), EdnKind::Int(-42));
        assert_eq!(one("+7"), EdnKind::Int(7));
        assert_eq!(one("12N"), EdnKind::Int(12));
        assert_eq!(one("1.5"), EdnKind::Number("1.5".into()));
        assert_eq!(
            one("99999999999999999999"),
            EdnKind::Number("99999999999999999999".into())
        );
        assert_eq!(one(":invoke"), EdnKind::Keyword("invoke".into()));
        assert_eq!(one(":jepsen/x"), EdnKind::Keyword("jepsen/x".into()));
        assert_eq!(one("read"), EdnKind::Symbol("read".into()));
        assert_eq!(
            one(r#""a \"b\"\n\u00e9""#),
            EdnKind::Str("a \"b\"\né".into())
        );
        assert_eq!(one(r"\a"), EdnKind::Char('a'));
        assert_eq!(one(r"\newline"), EdnKind::Char('\n'));
        let EdnKind::Map(entries) = one("{:a 1, :b [2 nil] ; comment\n :c (3)}") else {
            panic!("a map");
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].1.items().unwrap().len(), 2);
        assert!(matches!(one("#{1 2}"), EdnKind::Set(items) if items.len() == 2));
        assert!(matches!(one("#inst \"2024-01-01\""), EdnKind::Tagged(tag, _) if tag == "inst"));
        assert_eq!(one("#_ :dropped 5"), EdnKind::Int(5));
        assert_eq!(read_all(" ; nothing\n,,").unwrap(), vec![]);
    }

    #[test]
    fn positions_count_lines_and_columns() {
        let values = read_all("{:a 1}\n\n  [:x\n   :y]").unwrap();
        assert_eq!(values[0].at, Position { line: 1, column: 1 });
        assert_eq!(values[1].at, Position { line: 3, column: 3 });
        let y = &values[1].items().unwrap()[1];
        assert_eq!(y.at, Position { line: 4, column: 4 });
        assert_eq!(values[0].get("a").map(|v| v.at.column), Some(5));
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            error("{:a 1}\n{:b 2"),
            (
                2,
                1,
                "this map is not closed: `}` expected before the end of the text".into()
            )
        );
        assert_eq!(error("[1 2}").0, 1);
        assert_eq!(error("[1 2}").1, 5);
        assert_eq!(
            error("{:a}"),
            (1, 1, "a map needs an even number of forms".into())
        );
        assert_eq!(error("\n  \"open").0, 2);
        assert_eq!(error("\n  \"open").1, 3);
        assert_eq!(error("[1 @]").1, 4);
        assert_eq!(error(": x").1, 1);
        assert_eq!(error("\"\\q\"").1, 3);
        assert_eq!(error(")").1, 1);
        let deep = "[".repeat(100);
        assert!(error(&deep).2.contains("nest"));
    }
}
