use bytes::BytesMut;

use super::*;

const LIMITS: Limits = Limits { max_frame: 1000, max_message: 2000 };
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `first` is the first byte (FIN, RSV, opcode), masked
/// with `KEY`.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&KEY);
    out.extend(payload.iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
    out
}

const TEXT: u8 = 0x81;
const BINARY: u8 = 0x82;
const FIRST_TEXT: u8 = 0x01;
const MIDDLE: u8 = 0x00;
const LAST: u8 = 0x80;
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;

/// Everything `bytes` reads as, fed whole.
fn read_all(bytes: &[u8]) -> Vec<Result<Inbound, Violation>> {
    let mut reader = Reader::new(LIMITS);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match reader.read(&mut buf) {
            Ok(Some(inbound)) => out.push(Ok(inbound)),
            Ok(None) => return out,
            Err(v) => {
                out.push(Err(v));
                return out;
            }
        }
    }
}

/// Everything `bytes` reads as, fed one byte at a time.
fn read_trickled(bytes: &[u8]) -> Vec<Result<Inbound, Violation>> {
    let mut reader = Reader::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &byte in bytes {
        buf.extend_from_slice(&[byte]);
        loop {
            match reader.read(&mut buf) {
                Ok(Some(inbound)) => out.push(Ok(inbound)),
                Ok(None) => break,
                Err(v) => {
                    out.push(Err(v));
                    return out;
                }
            }
        }
    }
    out
}

fn text(s: &str) -> Result<Inbound, Violation> {
    Ok(Inbound::Text(s.to_owned()))
}

#[test]
fn masked_frames_read_as_messages_whole_or_trickled() {
    let mut wire = frame(TEXT, b"hello");
    wire.extend(frame(BINARY, &[0, 1, 2]));
    wire.extend(frame(PING, b"p"));
    wire.extend(frame(TEXT, &[b'x'; 300]));
    wire.extend(frame(TEXT, b""));
    let want = vec![
        text("hello"),
        Ok(Inbound::Binary(vec![0, 1, 2].into())),
        Ok(Inbound::Ping(b"p".to_vec().into())),
        text(&"x".repeat(300)),
        text(""),
    ];
    assert_eq!(read_all(&wire), want);
    assert_eq!(read_trickled(&wire), want);
}

#[test]
fn a_frame_is_taken_from_the_buffer_only_once_whole() {
    let wire = frame(TEXT, b"hello");
    let mut reader = Reader::new(LIMITS);
    let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
    assert_eq!(reader.read(&mut buf), Ok(None));
    assert_eq!(buf.len(), wire.len() - 1, "an incomplete frame stays in the buffer");
    buf.extend_from_slice(&wire[wire.len() - 1..]);
    assert_eq!(reader.read(&mut buf), Ok(Some(Inbound::Text("hello".into()))));
    assert!(buf.is_empty());
}

#[test]
fn fragments_make_one_message_with_control_frames_between_them() {
    let mut wire = frame(FIRST_TEXT, "h\u{e9}".as_bytes());
    wire.extend(frame(PING, b""));
    wire.extend(frame(MIDDLE, b"ll"));
    wire.extend(frame(LAST, b"o"));
    let want = vec![Ok(Inbound::Ping(Default::default())), text("h\u{e9}llo")];
    assert_eq!(read_all(&wire), want);
    assert_eq!(read_trickled(&wire), want);
}

#[test]
fn a_character_split_across_fragments_is_text() {
    let euro = "\u{20ac}".as_bytes();
    let mut wire = frame(FIRST_TEXT, &euro[..1]);
    wire.extend(frame(MIDDLE, &euro[1..2]));
    wire.extend(frame(LAST, &euro[2..]));
    assert_eq!(read_all(&wire), vec![text("\u{20ac}")]);
}

#[test]
fn bad_utf8_fails_on_the_fragment_that_carries_it() {
    // 0xF4 0x90 is over U+10FFFF: invalid from its second byte, so the
    // message fails before its last fragment arrives.
    let mut wire = frame(FIRST_TEXT, b"ok");
    wire.extend(frame(MIDDLE, &[0xF4, 0x90]));
    assert_eq!(read_all(&wire), vec![Err(Violation::InvalidUtf8)]);
    // A character still unfinished at the end of the message.
    let mut wire = frame(FIRST_TEXT, b"ok");
    wire.extend(frame(LAST, &[0xE2, 0x82]));
    assert_eq!(read_all(&wire), vec![Err(Violation::InvalidUtf8)]);
    assert_eq!(read_all(&frame(TEXT, &[0xFF])), vec![Err(Violation::InvalidUtf8)]);
    assert_eq!(Violation::InvalidUtf8.close_code(), CloseCode::InvalidPayload);
}

#[test]
fn protocol_violations_are_refused_from_the_header() {
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        (frame(0xC1, b"x"), Violation::ReservedBits),
        (frame(0x83, b""), Violation::UnknownOpcode(3)),
        (frame(0x8B, b""), Violation::UnknownOpcode(0xB)),
        (vec![0x81, 0x01, b'x'], Violation::Unmasked),
        (frame(0x09, b""), Violation::BadControlFrame),
        (frame(PING, &[0; 126]), Violation::BadControlFrame),
        (frame(LAST, b"x"), Violation::UnexpectedContinuation),
        ([frame(FIRST_TEXT, b"a"), frame(TEXT, b"b")].concat(), Violation::UnfinishedMessage),
    ];
    for (wire, violation) in cases {
        // Two header bytes (or the length) are enough to tell.
        let header_only = &wire[..wire.len().min(10)];
        assert_eq!(read_all(header_only).pop(), Some(Err(violation)), "{violation}");
        assert_eq!(violation.close_code(), CloseCode::Protocol);
    }
}

#[test]
fn an_oversized_frame_or_message_is_refused_before_its_payload_arrives() {
    let big = frame(BINARY, &[0; 1001]);
    assert_eq!(read_all(&big[..8]), vec![Err(Violation::FrameTooBig { size: 1001, max: 1000 })]);
    let mut wire = frame(FIRST_TEXT, &[b'a'; 1000]);
    wire.extend(frame(MIDDLE, &[b'a'; 1000]));
    wire.extend(&frame(LAST, b"a")[..4]);
    assert_eq!(read_all(&wire), vec![Err(Violation::MessageTooBig { size: 2001, max: 2000 })]);
    assert_eq!(Violation::FrameTooBig { size: 1, max: 0 }.close_code(), CloseCode::TooBig);
    // A length no usize holds, or one with its forbidden top bit set, is a
    // frame too big (1009), not a crash.
    for huge in [[0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5]]
    {
        assert!(matches!(read_all(&huge)[..], [Err(Violation::FrameTooBig { .. })]), "{huge:?}");
    }
    // Judged from the length alone: the mask key is not waited for.
    assert!(matches!(read_all(&big[..4])[..], [Err(Violation::FrameTooBig { size: 1001, .. })]));
}

#[test]
fn close_frames_carry_a_sendable_code_and_a_utf8_reason() {
    assert_eq!(read_all(&frame(CLOSE, b"")), vec![Ok(Inbound::Close(None))]);
    let bye = [&1000u16.to_be_bytes()[..], b"bye"].concat();
    assert_eq!(read_all(&frame(CLOSE, &bye)), vec![Ok(Inbound::Close(Some((1000, "bye".into()))))]);
    assert_eq!(read_all(&frame(CLOSE, &[3])), vec![Err(Violation::BadClosePayload)]);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000] {
        let wire = frame(CLOSE, &code.to_be_bytes());
        assert_eq!(read_all(&wire), vec![Err(Violation::BadCloseCode(code))], "{code}");
    }
    for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        assert!(sendable_close_code(code), "{code}");
    }
    let bad_reason = [&1000u16.to_be_bytes()[..], &[0xFF]].concat();
    assert_eq!(read_all(&frame(CLOSE, &bad_reason)), vec![Err(Violation::InvalidUtf8)]);
}

#[test]
fn the_server_writes_final_unmasked_frames_with_the_shortest_length() {
    for (len, header) in [(0usize, 2usize), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
        let mut out = Vec::new();
        encode(&mut out, Opcode::Binary, &vec![7; len]);
        assert_eq!(out.len(), header + len, "{len}");
        assert_eq!(out[0], 0x82);
        assert_eq!(out[1] & 0x80, 0, "unmasked");
    }
    let mut out = Vec::new();
    encode(&mut out, Opcode::Text, b"hi");
    assert_eq!(out, [0x81, 2, b'h', b'i']);
}

#[test]
fn a_close_reason_is_cut_to_fit_a_control_frame_at_a_character_boundary() {
    let payload = close_payload(1008, &"\u{e9}".repeat(100));
    assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
    assert_eq!(&payload[..2], &1008u16.to_be_bytes());
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
    assert_eq!(close_payload(1000, "bye"), [0x03, 0xE8, b'b', b'y', b'e']);
}
