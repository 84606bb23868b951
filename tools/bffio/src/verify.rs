//! verify=crc32c: every written block starts with a header (magic, CRC32C of the rest of the
//! block, its offset, length and the run's seed) followed by a pattern derived from the seed and
//! the offset, so a read can tell a good block from a corrupted, misplaced or never-written one.

/// Header bytes at the start of each verified block.
pub const HEADER_LEN: usize = 64;
const MAGIC: [u8; 4] = *b"BFV1";

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// CRC32C (Castagnoli), slicing-by-8.
pub fn crc32c(data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    !crc
}

/// Fills `block` (the whole I/O) for `offset`: header, then the seeded pattern.
pub fn fill(block: &mut [u8], offset: u64, seed: u64) {
    debug_assert!(block.len() >= HEADER_LEN);
    let mut x = (seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    for chunk in block[HEADER_LEN..].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    block[..HEADER_LEN].fill(0);
    block[0..4].copy_from_slice(&MAGIC);
    block[8..16].copy_from_slice(&offset.to_le_bytes());
    let len = block.len() as u32;
    block[16..20].copy_from_slice(&len.to_le_bytes());
    block[24..32].copy_from_slice(&seed.to_le_bytes());
    let crc = crc32c(&block[8..]);
    block[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Checks a block read at `offset`; the error says what does not match.
pub fn check(block: &[u8], offset: u64, seed: u64) -> Result<(), String> {
    if block.len() < HEADER_LEN {
        return Err(format!(
            "block of {} bytes has no room for a header",
            block.len()
        ));
    }
    if block[0..4] != MAGIC {
        return Err("bad magic (block never written with verify, or overwritten)".into());
    }
    let want_crc = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
    let at = u64::from_le_bytes(block[8..16].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(block[16..20].try_into().expect("4 bytes"));
    let s = u64::from_le_bytes(block[24..32].try_into().expect("8 bytes"));
    if len as usize != block.len() {
        return Err(format!("header length {len}, read {}", block.len()));
    }
    let got_crc = crc32c(&block[8..]);
    if got_crc != want_crc {
        return Err(format!(
            "crc32c mismatch: header says {want_crc:08x}, data gives {got_crc:08x}"
        ));
    }
    if at != offset {
        return Err(format!("header offset {at}, read at {offset}"));
    }
    if s != seed {
        return Err(format!("header seed {s:#x}, expected {seed:#x}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_values() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn fill_then_check_and_detect_corruption() {
        let mut b = vec![0u8; 4096];
        fill(&mut b, 8192, 7);
        assert_eq!(check(&b, 8192, 7), Ok(()));
        assert!(check(&b, 4096, 7).unwrap_err().contains("offset"));
        assert!(check(&b, 8192, 8).unwrap_err().contains("seed"));
        b[1000] ^= 1;
        assert!(check(&b, 8192, 7).unwrap_err().contains("crc32c"));
        assert!(check(&[0u8; 4096], 0, 7).unwrap_err().contains("magic"));
        assert!(check(&[0u8; 8], 0, 7).is_err());
    }
}
