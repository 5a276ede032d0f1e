//! WebSocket (RFC 6455) server framing, run inside the mio workers on their own
//! sockets (no bridge thread, no extra copy of inbound payloads).
//!
//! Role: [`WsDecoder`] turns the raw bytes a worker read from a WebSocket
//! connection into whole messages and control events; [`encode`] builds the
//! unmasked server frames. Missive maps one binary message to one protocol
//! frame payload (spec/PROTOCOL.md section 2.2), but this module knows nothing
//! about protocol frames.
//!
//! Invariants:
//! - a frame or message larger than `max_message` is refused from its header
//!   alone (close code 1009), before any buffer grows for it; so is a control
//!   frame over 125 bytes (1002);
//! - nothing is consumed from the input buffer while a frame is incomplete;
//! - every protocol violation maps to a close code (1002 protocol error, 1007
//!   invalid UTF-8, 1009 too big); on error the caller sends that Close and
//!   drops the connection, the decoder is not used again;
//! - text messages are validated as UTF-8 incrementally, so invalid text fails
//!   at the fragment that makes it invalid.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// Close code: protocol error.
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: unsupported data (a text message on the protocol endpoint).
pub(crate) const CLOSE_UNSUPPORTED: u16 = 1003;
/// Close code: invalid payload data (bad UTF-8).
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: policy violation (the session was closed by the server).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code: message too big.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

const OP_CONT: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Something the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsEvent {
    /// A complete data message (text already validated as UTF-8).
    Message { text: bool, payload: Bytes },
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (ignored).
    Pong,
    /// The peer's Close: `code` to echo (None if it sent no code).
    Close { code: Option<u16> },
}

/// A violation: close the connection with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WsError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

fn fail<T>(code: u16, reason: &'static str) -> Result<T, WsError> {
    Err(WsError { code, reason })
}

/// A message being reassembled from fragments.
#[derive(Debug)]
struct Partial {
    text: bool,
    buf: BytesMut,
    /// Bytes of `buf` known to be valid UTF-8 (text only).
    valid_to: usize,
}

/// Incremental decoder of client-to-server frames.
#[derive(Debug)]
pub(crate) struct WsDecoder {
    max_message: usize,
    partial: Option<Partial>,
}

/// Checks UTF-8 of `buf[from..]`; `complete` says no more bytes will follow.
/// Returns the new validated length, or an error as soon as the bytes cannot
/// be the start of valid text.
fn check_utf8(buf: &[u8], from: usize, complete: bool) -> Result<usize, WsError> {
    match std::str::from_utf8(&buf[from..]) {
        Ok(_) => Ok(buf.len()),
        Err(e) if e.error_len().is_none() && !complete => Ok(from + e.valid_up_to()),
        Err(_) => fail(CLOSE_INVALID_DATA, "invalid UTF-8 in text message"),
    }
}

/// XORs `data` with the 4-byte mask, 8 bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let m8 = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ m8).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Close codes a peer may send (RFC 6455 7.4, IANA registry).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl WsDecoder {
    pub(crate) fn new(max_message: usize) -> Self {
        Self { max_message, partial: None }
    }

    /// Changes the largest accepted message (the handshake raises it from
    /// the Hello limit to `max_frame_size`).
    pub(crate) fn set_max_message(&mut self, max_message: usize) {
        self.max_message = max_message;
    }

    /// Decodes the next event from the front of `src`; `Ok(None)` = need more bytes.
    pub(crate) fn next(&mut self, src: &mut BytesMut) -> Result<Option<WsEvent>, WsError> {
        loop {
            if src.len() < 2 {
                return Ok(None);
            }
            let (b0, b1) = (src[0], src[1]);
            let fin = b0 & 0x80 != 0;
            let opcode = b0 & 0x0F;
            if b0 & 0x70 != 0 {
                return fail(CLOSE_PROTOCOL, "reserved bits set (no extension negotiated)");
            }
            if b1 & 0x80 == 0 {
                return fail(CLOSE_PROTOCOL, "client frames must be masked");
            }
            let control = opcode & 0x08 != 0;
            if !matches!(opcode, OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
                return fail(CLOSE_PROTOCOL, "unknown opcode");
            }
            let (len, ext) = match b1 & 0x7F {
                126 => {
                    if src.len() < 4 {
                        return Ok(None);
                    }
                    (u64::from(u16::from_be_bytes([src[2], src[3]])), 2)
                }
                127 => {
                    if src.len() < 10 {
                        return Ok(None);
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&src[2..10]);
                    let l = u64::from_be_bytes(b);
                    if l >> 63 != 0 {
                        return fail(CLOSE_PROTOCOL, "64-bit length with the high bit set");
                    }
                    (l, 8)
                }
                l => (u64::from(l), 0),
            };
            if control {
                if !fin {
                    return fail(CLOSE_PROTOCOL, "fragmented control frame");
                }
                if len > 125 {
                    return fail(CLOSE_PROTOCOL, "control frame payload over 125 bytes");
                }
            } else {
                match (opcode, &self.partial) {
                    (OP_CONT, None) => return fail(CLOSE_PROTOCOL, "continuation without a message"),
                    (OP_TEXT | OP_BINARY, Some(_)) => {
                        return fail(CLOSE_PROTOCOL, "new message inside a fragmented one");
                    }
                    _ => {}
                }
                let already = self.partial.as_ref().map_or(0, |p| p.buf.len()) as u64;
                if already + len > self.max_message as u64 {
                    return fail(CLOSE_TOO_BIG, "message exceeds max_frame_size");
                }
            }
            // `len` is now bounded by max_message (or 125), so it fits usize.
            let len = len as usize;
            let header = 2 + ext + 4;
            if src.len() < header + len {
                src.reserve(header + len - src.len());
                return Ok(None);
            }
            let mask = [src[header - 4], src[header - 3], src[header - 2], src[header - 1]];
            src.advance(header);
            let mut payload = src.split_to(len);
            unmask(&mut payload, mask);
            if let Some(ev) = self.on_frame(fin, opcode, payload)? {
                return Ok(Some(ev));
            }
        }
    }

    fn on_frame(&mut self, fin: bool, opcode: u8, payload: BytesMut) -> Result<Option<WsEvent>, WsError> {
        match opcode {
            OP_PING => Ok(Some(WsEvent::Ping(payload.freeze()))),
            OP_PONG => Ok(Some(WsEvent::Pong)),
            OP_CLOSE => {
                if payload.is_empty() {
                    return Ok(Some(WsEvent::Close { code: None }));
                }
                if payload.len() == 1 {
                    return fail(CLOSE_PROTOCOL, "close payload of one byte");
                }
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !valid_close_code(code) {
                    return fail(CLOSE_PROTOCOL, "invalid close code");
                }
                check_utf8(&payload, 2, true)?;
                Ok(Some(WsEvent::Close { code: Some(code) }))
            }
            OP_TEXT | OP_BINARY if fin => {
                let text = opcode == OP_TEXT;
                if text {
                    check_utf8(&payload, 0, true)?;
                }
                Ok(Some(WsEvent::Message { text, payload: payload.freeze() }))
            }
            OP_TEXT | OP_BINARY => {
                let text = opcode == OP_TEXT;
                let valid_to = if text { check_utf8(&payload, 0, false)? } else { 0 };
                self.partial = Some(Partial { text, buf: payload, valid_to });
                Ok(None)
            }
            _ => {
                // OP_CONT (checked by the caller: a message is in progress).
                let Some(p) = self.partial.as_mut() else {
                    return fail(CLOSE_PROTOCOL, "continuation without a message");
                };
                p.buf.extend_from_slice(&payload);
                if p.text {
                    p.valid_to = check_utf8(&p.buf, p.valid_to, fin)?;
                }
                if !fin {
                    return Ok(None);
                }
                let Some(p) = self.partial.take() else { return Ok(None) };
                Ok(Some(WsEvent::Message { text: p.text, payload: p.buf.freeze() }))
            }
        }
    }
}

/// Length of the server frame header for a payload of `len` bytes.
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Writes an unmasked FIN frame header for `opcode` and `len` into `dst`.
fn put_header(dst: &mut BytesMut, opcode: u8, len: usize) {
    dst.put_u8(0x80 | opcode);
    match len {
        0..=125 => dst.put_u8(len as u8),
        126..=0xFFFF => {
            dst.put_u8(126);
            dst.put_u16(len as u16);
        }
        _ => {
            dst.put_u8(127);
            dst.put_u64(len as u64);
        }
    }
}

/// One unmasked, unfragmented server frame.
pub(crate) fn encode(opcode: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    put_header(&mut b, opcode, payload.len());
    b.extend_from_slice(payload);
    b.freeze()
}

/// A Close frame with a code and a (truncated to fit 125 bytes) UTF-8 reason.
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = Vec::with_capacity(2 + cut);
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    encode(OP_CLOSE, &p)
}

/// Re-frames a length-prefixed protocol frame (as built for TCP, see
/// `frames.rs`) as one binary WebSocket message: the 4-byte prefix is replaced
/// by the WebSocket header. One copy, into one buffer, so the write queue
/// never holds a header apart from its payload.
pub(crate) fn wrap(prefixed: &[u8]) -> Bytes {
    let payload = prefixed.get(missive_protocol::LENGTH_PREFIX_LEN..).unwrap_or(&[]);
    encode(OP_BINARY, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut b = BytesMut::new();
        b.put_u8(if fin { 0x80 } else { 0 } | opcode);
        match payload.len() {
            l @ 0..=125 => b.put_u8(0x80 | l as u8),
            l @ 126..=0xFFFF => {
                b.put_u8(0x80 | 126);
                b.put_u16(l as u16);
            }
            l => {
                b.put_u8(0x80 | 127);
                b.put_u64(l as u64);
            }
        }
        b.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        unmask(&mut p, mask);
        b.extend_from_slice(&p);
        b.to_vec()
    }

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<WsEvent>, WsError> {
        let mut d = WsDecoder::new(max);
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        // Feed byte by byte: incomplete frames must consume nothing.
        for b in bytes {
            src.put_u8(*b);
            while let Some(ev) = d.next(&mut src)? {
                out.push(ev);
            }
        }
        assert!(src.is_empty(), "leftover bytes");
        Ok(out)
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn unmask_round_trips_all_lengths() {
        for n in 0..40 {
            let orig: Vec<u8> = (0..n as u8).collect();
            let mut d = orig.clone();
            unmask(&mut d, [1, 2, 3, 4]);
            let expect: Vec<u8> = orig.iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]).collect();
            assert_eq!(d, expect);
        }
    }

    #[test]
    fn messages_fragments_and_control_frames() {
        let big = vec![7u8; 70_000];
        let mut wire = client_frame(true, OP_BINARY, b"abc");
        wire.extend(client_frame(false, OP_TEXT, "hé".as_bytes()));
        wire.extend(client_frame(true, OP_PING, b"p"));
        wire.extend(client_frame(true, OP_CONT, "llo".as_bytes()));
        wire.extend(client_frame(true, OP_BINARY, &big));
        wire.extend(client_frame(true, OP_CLOSE, &[0x03, 0xE8, b'o', b'k']));
        let evs = decode_all(&wire, 100_000).expect("valid");
        assert_eq!(evs.len(), 5);
        assert_eq!(evs[0], WsEvent::Message { text: false, payload: Bytes::from_static(b"abc") });
        assert_eq!(evs[1], WsEvent::Ping(Bytes::from_static(b"p")));
        assert_eq!(evs[2], WsEvent::Message { text: true, payload: Bytes::from("héllo") });
        assert!(matches!(&evs[3], WsEvent::Message { payload, .. } if payload.len() == 70_000));
        assert_eq!(evs[4], WsEvent::Close { code: Some(1000) });
    }

    #[test]
    fn utf8_split_across_fragments_is_fine_but_invalid_fails_fast() {
        let e = "€".as_bytes();
        let mut wire = client_frame(false, OP_TEXT, &e[..1]);
        wire.extend(client_frame(true, OP_CONT, &e[1..]));
        assert!(decode_all(&wire, 100).is_ok());
        // 0xC0 can never start valid UTF-8: fails on the first fragment.
        let mut d = WsDecoder::new(100);
        let mut src = BytesMut::from(&client_frame(false, OP_TEXT, &[b'a', 0xC0])[..]);
        assert_eq!(d.next(&mut src).map_err(|e| e.code), Err(CLOSE_INVALID_DATA));
    }

    #[test]
    fn violations_map_to_close_codes() {
        let code = |wire: Vec<u8>, max| decode_all(&wire, max).map_err(|e| e.code);
        let mut unmasked = client_frame(true, OP_BINARY, b"x");
        unmasked[1] &= 0x7F;
        assert_eq!(code(unmasked, 100), Err(CLOSE_PROTOCOL));
        let mut rsv = client_frame(true, OP_BINARY, b"x");
        rsv[0] |= 0x40;
        assert_eq!(code(rsv, 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, 0x3, b""), 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, OP_CONT, b"x"), 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(false, OP_PING, b""), 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, OP_PING, &[0; 126]), 1000), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, OP_BINARY, &[0; 101]), 100), Err(CLOSE_TOO_BIG));
        let mut two = client_frame(false, OP_BINARY, &[0; 60]);
        two.extend(client_frame(true, OP_CONT, &[0; 60]));
        assert_eq!(code(two, 100), Err(CLOSE_TOO_BIG));
        let mut nested = client_frame(false, OP_BINARY, b"a");
        nested.extend(client_frame(true, OP_TEXT, b"b"));
        assert_eq!(code(nested, 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, OP_CLOSE, &[3]), 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, OP_CLOSE, &[0x03, 0xED]), 100), Err(CLOSE_PROTOCOL));
        assert_eq!(code(client_frame(true, OP_CLOSE, &[0x03, 0xE8, 0xFF]), 100), Err(CLOSE_INVALID_DATA));
        assert_eq!(code(client_frame(true, OP_TEXT, &[0xFF]), 100), Err(CLOSE_INVALID_DATA));
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload_arrives() {
        let mut d = WsDecoder::new(1024);
        let mut src = BytesMut::from(&[0x82u8, 0xFF, 0, 0, 0, 0, 0x10, 0, 0, 0][..]);
        assert_eq!(d.next(&mut src).map_err(|e| e.code), Err(CLOSE_TOO_BIG));
        assert!(src.capacity() < 4096, "no buffer grown for the declared length");
    }

    #[test]
    fn server_frames_have_minimal_headers() {
        assert_eq!(&encode(OP_BINARY, b"hi")[..], &[0x82, 2, b'h', b'i']);
        assert_eq!(encode(OP_BINARY, &[0; 200])[..4], [0x82, 126, 0, 200]);
        assert_eq!(encode(OP_BINARY, &[0; 70_000])[..2], [0x82, 127]);
        let c = close_frame(1000, &"é".repeat(100));
        assert!(c.len() <= 127 && std::str::from_utf8(&c[4..]).is_ok());
    }

    /// Server frames with a protocol frame inside: the header and payload in one buffer.
    #[test]
    fn wrap_payload() {
        let f = wrap(&[0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(&f[..], &[0x82, 3, 1, 2, 3]);
    }
}
