//! Text cut to a byte limit: a WebSocket close reason, a thread name, a failure's reason.
//! Text from the network may hold any character, so the cut falls where one starts.

/// The longest prefix of `s` of at most `max` bytes that ends between characters.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_falls_between_characters() {
        let long = "é".repeat(100);
        assert_eq!(cut(&long, 123).len(), 122);
        assert_eq!(cut("abc", 2), "ab");
        assert_eq!(cut("abc", 9), "abc");
    }
}
