//! Snappy (raw format) decompression of Parquet pages, for the fused groupby's page path.
//!
//! Why not the `snap` crate polars uses: on the columns a groupby reads, a snappy page is
//! mostly one short copy per value (a float column of few distinct values compresses to
//! one 3-byte "copy 8 bytes from n back" per row), so the cost is per operation, not per
//! byte. This loop checks for room once per operation (20 input and 80 output bytes of
//! slack), copies 8 or 16 bytes without length-exact memcpys, and decodes everything else
//! (long literals, 4-byte offsets, the last bytes of a page) with fully checked code.
//!
//! Any malformed input (a bad length header, an offset before the start, a copy or literal
//! past the end) is `None`, never a panic or an out-of-bounds access; the caller then
//! decodes the page the general way, which reports the error.

/// Bytes the fast path may read past an operation's start in `src`.
const SRC_SLACK: usize = 20;
/// Bytes the fast path may write past an operation's start in `dst` (a 64-byte copy
/// rounded up to whole 8-byte words, plus one word).
const DST_SLACK: usize = 80;

/// The decompressed length a snappy stream declares, and the bytes of that header.
pub(crate) fn decompressed_len(src: &[u8]) -> Option<(usize, usize)> {
    let mut n: u64 = 0;
    for (i, &b) in src.iter().take(5).enumerate() {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(n).ok().map(|n| (n as usize, i + 1));
        }
    }
    None
}

/// Decompresses `src` into `dst`, which must be exactly the declared length.
pub(crate) fn decompress(src: &[u8], dst: &mut [u8]) -> Option<()> {
    let (n, header) = decompressed_len(src)?;
    if n != dst.len() {
        return None;
    }
    let (mut s, mut d) = (header, 0usize);
    let (send, dend) = (src.len(), dst.len());
    // The fast loop runs while an operation starting at s and d has its slack.
    let s_limit = send.saturating_sub(SRC_SLACK);
    let d_limit = dend.saturating_sub(DST_SLACK);
    loop {
        while s < s_limit && d < d_limit {
            // The tag and the three bytes after it in one load.
            // SAFETY: s + 4 < s + SRC_SLACK <= send.
            let word =
                unsafe { std::ptr::read_unaligned(src.as_ptr().add(s) as *const u32) }.to_le();
            let tag = word as u8;
            let (len, offset) = match tag & 3 {
                2 => {
                    s += 3;
                    ((tag >> 2) as usize + 1, ((word >> 8) & 0xffff) as usize)
                }
                1 => {
                    s += 2;
                    let high = ((tag >> 5) as usize) << 8;
                    (
                        4 + ((tag >> 2) & 7) as usize,
                        high | ((word >> 8) & 0xff) as usize,
                    )
                }
                0 if tag < 64 => {
                    // A literal of at most 16 bytes: one 16-byte copy.
                    let len = (tag >> 2) as usize + 1;
                    // SAFETY: s + 1 + 16 < s + SRC_SLACK <= send and d + 16 < d +
                    // DST_SLACK <= dend; src and dst are distinct slices.
                    unsafe {
                        let from = src.as_ptr().add(s + 1);
                        std::ptr::copy_nonoverlapping(from, dst.as_mut_ptr().add(d), 16);
                    }
                    s += 1 + len;
                    d += len;
                    continue;
                }
                // A literal of more than 16 bytes, or a 4-byte offset: rare.
                _ => break,
            };
            // offset == 0 or offset > d: a copy from before the start.
            if offset.wrapping_sub(1) >= d {
                return None;
            }
            // SAFETY: len <= 64, so every write below lies in [d, d + 72) and d + 72 < d +
            // DST_SLACK <= dend; every read lies in [d - offset, d + 72 - offset), with
            // 1 <= offset <= d. Reads and writes go through the same pointer `base`, in
            // order, so a copy that overlaps its own output sees the bytes it just wrote,
            // as snappy's copies require.
            unsafe {
                let base = dst.as_mut_ptr();
                let to = base.add(d);
                let from = base.add(d - offset);
                if offset >= 8 {
                    // Each 8-byte read ends at or before the start of its own write.
                    copy_word(from, to);
                    copy_word(from.add(8), to.add(8));
                    if len > 16 {
                        let mut i = 16;
                        while i < len {
                            copy_word(from.add(i), to.add(i));
                            i += 8;
                        }
                    }
                } else {
                    for i in 0..len {
                        *to.add(i) = *from.add(i);
                    }
                }
            }
            d += len;
        }
        if s >= send {
            break;
        }
        general_op(src, dst, &mut s, &mut d)?;
    }
    (d == dend).then_some(())
}

/// Copies 8 bytes from `from` to `to` (unaligned; the ranges may overlap when `to - from`
/// is at least 8, which makes the read complete before the write).
///
/// # Safety
/// Both ranges must be in bounds of one allocation.
#[inline(always)]
unsafe fn copy_word(from: *const u8, to: *mut u8) {
    // SAFETY: the caller guarantees both 8-byte ranges are in bounds.
    unsafe {
        std::ptr::write_unaligned(to as *mut u64, std::ptr::read_unaligned(from as *const u64))
    }
}

/// Decodes one operation at `*s` with every bound checked.
fn general_op(src: &[u8], dst: &mut [u8], s: &mut usize, d: &mut usize) -> Option<()> {
    let tag = *src.get(*s)?;
    *s += 1;
    if tag & 3 == 0 {
        let mut len = (tag >> 2) as usize + 1;
        if len > 60 {
            let extra = len - 60;
            let bytes = src.get(*s..*s + extra)?;
            len = bytes
                .iter()
                .rev()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize)
                .checked_add(1)?;
            *s += extra;
        }
        let literal = src.get(*s..s.checked_add(len)?)?;
        dst.get_mut(*d..d.checked_add(len)?)?
            .copy_from_slice(literal);
        *s += len;
        *d += len;
        return Some(());
    }
    let (len, offset, used) = match tag & 3 {
        1 => (
            4 + ((tag >> 2) & 7) as usize,
            (((tag >> 5) as usize) << 8) | *src.get(*s)? as usize,
            1,
        ),
        2 => {
            let b = src.get(*s..*s + 2)?;
            (
                (tag >> 2) as usize + 1,
                u16::from_le_bytes([b[0], b[1]]) as usize,
                2,
            )
        }
        _ => {
            let b = src.get(*s..*s + 4)?;
            let offset = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            ((tag >> 2) as usize + 1, offset, 4)
        }
    };
    *s += used;
    if offset == 0 || offset > *d || len > dst.len() - *d {
        return None;
    }
    if offset >= len {
        dst.copy_within(*d - offset..*d - offset + len, *d);
    } else {
        for i in *d..*d + len {
            dst[i] = dst[i - offset];
        }
    }
    *d += len;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(compressed: &[u8]) -> Option<Vec<u8>> {
        let (n, _) = decompressed_len(compressed)?;
        if n > 1 << 24 {
            return None;
        }
        let mut out = vec![0u8; n];
        decompress(compressed, &mut out).map(|()| out)
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    /// Bytes in the shapes pages have: float columns of few distinct values, runs,
    /// random bytes, text.
    fn page_like() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(-40i32..150, 0..3000)
                .prop_map(|v| { v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect() }),
            prop::collection::vec((0u8..4, 1usize..200), 0..60).prop_map(|runs| {
                runs.iter()
                    .flat_map(|&(b, n)| std::iter::repeat_n(b, n))
                    .collect()
            }),
            prop::collection::vec(any::<u8>(), 0..5000),
            prop::collection::vec(prop::sample::select(b"SFOLAXJFK,\n".to_vec()), 0..5000),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_what_snap_compresses(data in page_like()) {
            prop_assert_eq!(ours(&compress(&data)), Some(data));
        }

        /// A damaged stream decodes to what `snap` decodes it to, or is refused by both;
        /// never a panic.
        #[test]
        fn damaged_streams_agree_with_snap(
            data in page_like(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut c = compress(&data);
            for (at, byte) in edits {
                let i = at.index(c.len());
                c[i] = byte;
            }
            if truncate {
                c.truncate(cut.index(c.len() + 1));
            }
            let theirs = snap::raw::decompress_len(&c).ok().filter(|&n| n <= 1 << 24).and_then(|n| {
                let mut out = vec![0u8; n];
                snap::raw::Decoder::new().decompress(&c, &mut out).ok().map(|w| {
                    out.truncate(w);
                    out
                })
            });
            prop_assert_eq!(ours(&c), theirs);
        }
    }

    #[test]
    fn long_literals_four_byte_offsets_and_overlapping_copies() {
        // A literal of 61..=64+ bytes uses extra length bytes.
        let text: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(ours(&compress(&text)), Some(text.clone()));
        // Copies with offsets 1..8 overlap their own output.
        for period in 1..9 {
            let data: Vec<u8> = (0..1000).map(|i| (i % period) as u8 + 1).collect();
            assert_eq!(ours(&compress(&data)), Some(data));
        }
        // Hand-made: a literal "ab", then a copy of 10 bytes from offset 2 (tag kind 1),
        // then a copy with a 4-byte offset (kind 3).
        let stream = [
            16u8,
            0b0000_0100,
            b'a',
            b'b',
            0b0001_1001,
            2,
            0b0000_1111,
            2,
            0,
            0,
            0,
        ];
        assert_eq!(ours(&stream), Some(b"abababababababab".to_vec()));
    }

    #[test]
    fn malformed_streams_are_refused() {
        // Declared length longer than what follows.
        assert_eq!(ours(&[10, 0b0000_0100, b'a', b'b']), None);
        // A copy from before the start.
        assert_eq!(ours(&[4, 0b0000_0100, b'a', b'b', 0b0000_0001, 3]), None);
        // Offset zero.
        assert_eq!(ours(&[6, 0b0000_0100, b'a', b'b', 0b0000_0001, 0]), None);
        // More output than declared.
        assert_eq!(ours(&[1, 0b0000_0100, b'a', b'b']), None);
        // A header that never ends.
        assert_eq!(ours(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(ours(&[]), None);
    }
}
