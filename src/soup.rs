//! Deterministic byte soup for the tests that feed parsers of network input with
//! arbitrary data: an xorshift generator biased towards the characters those parsers care
//! about, so that the soup reaches past their first check.

/// `count` strings of up to `max_len` characters, the same for the same seed.
pub(crate) fn strings(seed: u64, count: usize, max_len: usize, alphabet: &[u8]) -> Vec<String> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let len = (next() % (max_len as u64 + 1)) as usize;
            (0..len)
                .map(|_| {
                    let r = next();
                    // One in eight picks any byte, as UTF-8 lossy text.
                    if r % 8 == 0 {
                        char::from((r >> 8) as u8)
                    } else {
                        char::from(alphabet[(r >> 8) as usize % alphabet.len()])
                    }
                })
                .collect()
        })
        .collect()
}

/// Characters JSON parsers branch on.
pub(crate) const JSON: &[u8] = b"{}[]\":,0123456789.-eE truefalsnul\\event:websocket:dtmfdigitcontent-typeaudio/l16;rate=16000";
