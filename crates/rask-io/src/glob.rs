//! A small glob matcher over `/`-separated paths: `*` and `?` within one segment, `**` across
//! any number of segments (zero included), `[abc]`/`[a-z]` character classes.

/// True when `pattern` contains a wildcard character.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches a `/`-separated path against a pattern.
///
/// ```
/// use rask_io::glob_match;
/// assert!(glob_match("data/*.csv", "data/2001.csv"));
/// assert!(!glob_match("data/*.csv", "data/sub/2001.csv"));
/// assert!(glob_match("data/**/*.csv", "data/2001.csv"));
/// assert!(glob_match("data/**/*.csv", "data/a/b/2001.csv"));
/// ```
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_segments(&pat, &segs)
}

/// Whether the pattern's segments match the path's. A table over (pattern position, path
/// position), filled from the end: each `**` either matches nothing here or takes one more
/// segment, so the work is O(pattern x path) segment matches. (Trying every split for every
/// `**` recursively is exponential: `**/**/.../x` against a long path that ends otherwise
/// would not finish.)
fn match_segments(pat: &[&str], segs: &[&str]) -> bool {
    let width = segs.len() + 1;
    // `next[j]`: pattern from position i + 1 matches `segs[j..]`; `here[j]`: from i.
    let mut next = vec![false; width];
    next[segs.len()] = true;
    let mut here = vec![false; width];
    for p in pat.iter().rev() {
        for j in (0..width).rev() {
            here[j] = if *p == "**" {
                next[j] || (j < segs.len() && here[j + 1])
            } else {
                j < segs.len() && next[j + 1] && match_segment(p.as_bytes(), segs[j].as_bytes())
            };
        }
        std::mem::swap(&mut next, &mut here);
    }
    next[0]
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = match_class(&p[pi..], s[si])
                        && matched
                    {
                        pi += len;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a class starting at `p[0] == b'['`; returns (matched, class length).
fn match_class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let end = p.iter().skip(1).position(|&b| b == b']')? + 1;
    let body = &p[1..end];
    let (negate, body) = match body.first() {
        Some(b'!') | Some(b'^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut i = 0;
    let mut hit = false;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == b'-' {
            hit |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    Some((hit != negate, end + 1))
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn many_double_stars_match_in_polynomial_time() {
        // Exponential backtracking would try every way to split 40 segments among 40 `**`
        // (about 1e23) before saying no; the table does 40 x 41 steps.
        let pattern = format!("{}x", "**/".repeat(40));
        let miss = format!("{}y", "a/".repeat(40));
        let hit = format!("{}x", "a/".repeat(40));
        assert!(!m(&pattern, &miss));
        assert!(m(&pattern, &hit));
        assert!(m(&pattern, "x"));
        let stars = format!("{}*b", "*a".repeat(30));
        assert!(!m(&stars, &"a".repeat(60)));
    }

    #[test]
    fn stars_questions_classes() {
        assert!(m("*.csv", "a.csv"));
        assert!(m("*", "a.csv"));
        assert!(!m("*", "a/b"));
        assert!(m("a?c", "abc"));
        assert!(m("f[0-9].x", "f7.x"));
        assert!(!m("f[!0-9].x", "f7.x"));
        assert!(m("**", "a/b/c"));
        assert!(m("a/**", "a/b/c"));
        assert!(m("**/c", "c"));
        assert!(m("a/**/b/*.t", "a/x/y/b/z.t"));
        assert!(!m("a/**/b/*.t", "a/x/y/c/z.t"));
        assert!(m("*a*b*", "xxaybzz"));
        assert!(!m("*a*b", "xxaybzz"));
    }
}
