//! bzip2 on every core, still one standard bzip2 stream (as lbzip2 does, unlike pbzip2's
//! concatenated streams, which some readers stop after the first of).
//!
//! The input is cut into fixed chunks of 700,000 bytes. bzip2's first stage (RLE1) grows
//! data by at most 5/4, so a chunk always fits one level-9 block (899,981 bytes); each chunk
//! is compressed on its own thread as a one-block stream, and that block's bits are lifted
//! out (between the stream header and the end-of-stream marker, found from the end by its
//! magic and CRC) and appended, bit-aligned, to the output. The stream CRC is the blocks'
//! CRCs combined as bzip2 combines them. The chunking is fixed, so the bytes do not depend
//! on the number of threads.

use std::io::{self, Read, Write};

const CHUNK: usize = 700_000;
const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const END_MAGIC: u64 = 0x1772_4538_5090;

/// `n` (at most 57) bits of `data` from bit `pos`, most significant first.
fn bits(data: &[u8], pos: usize, n: usize) -> u64 {
    let mut v = 0u64;
    for i in pos..pos + n {
        v = (v << 1) | u64::from((data[i / 8] >> (7 - i % 8)) & 1);
    }
    v
}

/// One compressed block: its CRC and its bits `data[start..end]` (bit positions).
struct Block {
    crc: u32,
    data: Vec<u8>,
    start: usize,
    end: usize,
}

fn bad(what: &str) -> io::Error {
    io::Error::other(format!("bzip2 block extraction: {what}"))
}

/// Compress `chunk` as a one-block stream and lift the block out.
fn block(chunk: &[u8]) -> io::Result<Block> {
    let mut enc = bzip2::write::BzEncoder::new(
        Vec::with_capacity(chunk.len() + 1024),
        bzip2::Compression::best(),
    );
    enc.write_all(chunk)?;
    let data = enc.finish()?;
    if data.len() < 4 + 10 + 10 || &data[..4] != b"BZh9" || bits(&data, 32, 48) != BLOCK_MAGIC {
        return Err(bad("not a one-block stream"));
    }
    let crc = bits(&data, 80, 32) as u32;
    let total = data.len() * 8;
    for pad in 0..8 {
        let end = total - pad;
        if bits(&data, end - 32, 32) as u32 == crc
            && bits(&data, end - 80, 48) == END_MAGIC
            && (pad == 0 || bits(&data, end, pad) == 0)
        {
            return Ok(Block {
                crc,
                data,
                start: 32,
                end: end - 80,
            });
        }
    }
    Err(bad("no end-of-stream marker"))
}

/// Bits appended most significant first.
struct BitWriter<W: Write> {
    out: W,
    acc: u64,
    n: u32,
    buf: Vec<u8>,
}

impl<W: Write> BitWriter<W> {
    fn put(&mut self, value: u64, n: u32) -> io::Result<()> {
        // n <= 32 keeps acc within 64 bits (at most 7 bits are pending).
        self.acc = (self.acc << n) | (value & ((1u64 << n) - 1));
        self.n += n;
        while self.n >= 8 {
            self.n -= 8;
            self.buf.push((self.acc >> self.n) as u8);
        }
        if self.buf.len() >= 1 << 20 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn put_block(&mut self, b: &Block) -> io::Result<()> {
        let mut pos = b.start;
        // Whole bytes where the source is at a byte boundary, single bits elsewhere.
        while pos < b.end {
            if pos.is_multiple_of(8) && pos + 8 <= b.end {
                self.put(u64::from(b.data[pos / 8]), 8)?;
                pos += 8;
            } else {
                self.put(bits(&b.data, pos, 1), 1)?;
                pos += 1;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put(0, pad)?;
        }
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Read a full chunk (shorter only at the end of the input).
fn read_chunk(input: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    input.take(CHUNK as u64).read_to_end(buf)?;
    Ok(())
}

/// bzip2 (level 9) `input` into `output` on `threads` threads; one standard stream.
pub fn compress<R: Read, W: Write>(mut input: R, output: W, threads: usize) -> io::Result<W> {
    let threads = threads.max(1);
    let mut w = BitWriter {
        out: output,
        acc: 0,
        n: 0,
        buf: Vec::with_capacity(1 << 20),
    };
    for b in b"BZh9" {
        w.put(u64::from(*b), 8)?;
    }
    let mut combined = 0u32;
    let mut zero_block: Option<Block> = None;
    let mut chunks: Vec<Vec<u8>> = (0..threads).map(|_| Vec::new()).collect();
    loop {
        let mut count = 0;
        for chunk in chunks.iter_mut() {
            read_chunk(&mut input, chunk)?;
            if chunk.is_empty() {
                break;
            }
            count += 1;
        }
        if count == 0 {
            break;
        }
        // A disk is mostly zeros: a full chunk of zeros is always the same block, made once.
        let zero: Vec<bool> = chunks[..count]
            .iter()
            .map(|c| c.len() == CHUNK && c.iter().all(|&b| b == 0))
            .collect();
        if zero_block.is_none() && zero.iter().any(|&z| z) {
            zero_block = Some(block(&vec![0u8; CHUNK])?);
        }
        let blocks: Vec<Option<io::Result<Block>>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks[..count]
                .iter()
                .zip(&zero)
                .map(|(c, &z)| (!z).then(|| s.spawn(move || block(c))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.map(|h| h.join().unwrap_or_else(|_| Err(bad("a thread panicked")))))
                .collect()
        });
        for b in blocks {
            let owned;
            let b = match b {
                Some(b) => {
                    owned = b?;
                    &owned
                }
                None => zero_block.as_ref().ok_or_else(|| bad("no zero block"))?,
            };
            combined = combined.rotate_left(1) ^ b.crc;
            w.put_block(b)?;
        }
        if count < threads || chunks[count - 1].len() < CHUNK {
            break;
        }
    }
    w.put(END_MAGIC >> 24, 24)?;
    w.put(END_MAGIC & 0xff_ffff, 24)?;
    w.put(u64::from(combined), 32)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8], threads: usize) -> Vec<u8> {
        let packed = compress(data, Vec::new(), threads).unwrap();
        // The single-stream decoder reads it all: it is one stream.
        let mut out = vec![];
        bzip2::read::BzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        packed
    }

    #[test]
    fn many_blocks_make_one_stream() {
        let mut data = vec![0u8; CHUNK * 2 + 12345];
        let mut x = 1u32;
        for (i, b) in data.iter_mut().enumerate() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 3 != 0 {
                *b = (x >> 24) as u8;
            }
        }
        let one = round_trip(&data, 1);
        let three = round_trip(&data, 3);
        assert_eq!(one, three, "the bytes do not depend on the thread count");
    }

    #[test]
    fn edge_sizes() {
        round_trip(b"", 2);
        round_trip(b"a", 2);
        round_trip(&vec![7u8; CHUNK], 2);
        // Whole chunks of zeros (the cached block) between data.
        let mut sparse = vec![0u8; CHUNK * 5 + 3];
        sparse[CHUNK + 17] = 1;
        sparse[CHUNK * 5] = 2;
        round_trip(&sparse, 2);
        // Worst case for RLE1 growth: runs of exactly four.
        let runs: Vec<u8> = (0..CHUNK).map(|i| (i / 4) as u8).collect();
        round_trip(&runs, 2);
    }
}
