//! IAM wildcard patterns: `*` matches any run of characters (including none and `/`), `?`
//! exactly one. In a 2012-10-17 policy, `${key}` takes the value of a request key (a
//! policy variable) and `${*}`, `${?}`, `${$}` stand for those characters; a substituted
//! value matches literally, never as a wildcard. Matching is linear in practice (one
//! backtrack point, no recursion), so no pattern or value can make it blow up.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`
    Any,
    /// `?`
    One,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Token>);

/// What `${…}` in a pattern stands for.
pub enum Variables<'a> {
    /// Written as they are (policies of version 2008-10-17, and action names).
    Literal,
    /// Replaced by the value `resolve` gives a key, or the pattern matches nothing.
    Resolve(&'a dyn Fn(&str) -> Option<String>),
}

impl Pattern {
    /// Compiles `text`; `None` when it names a variable the request has no value for (the
    /// element then matches nothing, as in AWS).
    pub fn compile(text: &str, variables: Variables<'_>) -> Option<Pattern> {
        let mut tokens = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let (Variables::Resolve(resolve), Some(inner)) = (&variables, rest.strip_prefix("${"))
                && let Some(end) = inner.find('}')
            {
                let name = &inner[..end];
                match name {
                    "*" | "?" | "$" => tokens.push(Token::Char(name.chars().next().expect("one character"))),
                    _ => tokens.extend(resolve(name)?.chars().map(Token::Char)),
                }
                rest = &inner[end + 1..];
                continue;
            }
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                c => Token::Char(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        Some(Pattern(tokens))
    }

    /// Whether `value` matches, comparing characters exactly or, with `ignore_case`,
    /// ASCII-case-insensitively (action names).
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        let pattern = &self.0;
        let value: Vec<char> = value.chars().collect();
        let same = |a: char, b: char| if ignore_case { a.eq_ignore_ascii_case(&b) } else { a == b };
        let (mut p, mut v) = (0, 0);
        // Where the last `*` was, and the value position it was tried at.
        let mut star: Option<(usize, usize)> = None;
        while v < value.len() {
            match pattern.get(p) {
                Some(Token::Any) => {
                    star = Some((p, v));
                    p += 1;
                    continue;
                }
                Some(Token::One) => {
                    p += 1;
                    v += 1;
                    continue;
                }
                Some(Token::Char(c)) if same(*c, value[v]) => {
                    p += 1;
                    v += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                // Let the last `*` take one more character, and try again after it.
                Some((star_p, star_v)) => {
                    p = star_p + 1;
                    v = star_v + 1;
                    star = Some((star_p, star_v + 1));
                }
                None => return false,
            }
        }
        pattern[p..].iter().all(|t| *t == Token::Any)
    }
}

/// Whether `value` matches the wildcard pattern `pattern` (no variables).
pub fn matches(pattern: &str, value: &str, ignore_case: bool) -> bool {
    Pattern::compile(pattern, Variables::Literal).is_some_and(|p| p.matches(value, ignore_case))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_iam_defines_them() {
        let table: &[(&str, &str, bool, bool)] = &[
            // (pattern, value, ignore case, matches)
            ("*", "", false, true),
            ("*", "anything/at/all", false, true),
            ("bucket/*", "bucket/", false, true),
            ("bucket/*", "bucket/a/b/c", false, true),
            ("bucket/*", "bucket", false, false),
            ("bucket/private/*", "bucket/private/*x", false, true),
            ("bucket/private/*", "bucket/private*x", false, false),
            ("a?c", "abc", false, true),
            ("a?c", "ac", false, false),
            ("a?c", "abbc", false, false),
            ("*.txt", "notes.txt", false, true),
            ("*.txt", "notes.txt.gz", false, false),
            ("a*b*c", "aXXbYYbZZc", false, true),
            ("a*b*c", "aXXbYY", false, false),
            ("home/${x}/*", "home/${x}/k", false, true),
            ("Bucket/*", "bucket/k", false, false),
            ("s3:get*", "s3:GetObject", true, true),
            ("s3:GetObject", "S3:GETOBJECT", true, true),
            ("s3:GetObject", "s3:GetObjectAcl", true, false),
            ("é*", "éclair", false, true),
            ("??", "éé", false, true),
        ];
        for &(pattern, value, ignore_case, expected) in table {
            assert_eq!(matches(pattern, value, ignore_case), expected, "{pattern:?} against {value:?}");
        }
    }

    #[test]
    fn variables_are_replaced_and_match_literally() {
        let resolve = |name: &str| match name {
            "aws:username" => Some("alice".to_string()),
            "star" => Some("a*".to_string()),
            _ => None,
        };
        let compile = |text: &str| Pattern::compile(text, Variables::Resolve(&resolve));
        let table: &[(&str, &str, Option<bool>)] = &[
            ("home/${aws:username}/*", "home/alice/notes", Some(true)),
            ("home/${aws:username}/*", "home/bob/notes", Some(false)),
            // A value with a `*` in it is a literal `*`.
            ("x/${star}", "x/a*", Some(true)),
            ("x/${star}", "x/abc", Some(false)),
            // Escapes.
            ("q${?}", "q?", Some(true)),
            ("q${?}", "qx", Some(false)),
            ("s${*}", "s*", Some(true)),
            ("d${$}", "d$", Some(true)),
            // Unknown variables: the element matches nothing.
            ("home/${aws:userid}/*", "home//x", None),
            // An unclosed `${` is text.
            ("a${b", "a${b", Some(true)),
        ];
        for &(text, value, expected) in table {
            assert_eq!(compile(text).map(|p| p.matches(value, false)), expected, "{text:?} against {value:?}");
        }
        // Version 2008-10-17: `${…}` is text.
        assert!(matches("home/${aws:username}", "home/${aws:username}", false));
    }

    #[test]
    fn long_hostile_patterns_finish() {
        let value = "a".repeat(5000);
        let pattern = format!("{}b", "*a".repeat(200));
        assert!(!matches(&pattern, &value, false));
    }
}
