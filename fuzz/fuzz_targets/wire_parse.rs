//! Fuzz target: arbitrary bytes into the full link-packet parser (link header, every record,
//! every data, control, hello and feedback body).
//!
//! The parser must never panic, and anything it accepts must re-encode to the same bytes (the
//! wire format has one encoding per value; a parser that drops or normalises a byte fails here).

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_shared::wire::{Message, Packet, PacketWriter, TAG_LEN, parse_packet, peek_class};

fuzz_target!(|data: &[u8]| {
    let _ = peek_class(data);
    if parse_packet(data).is_err() {
        return;
    }
    // Accepted: rebuild the datagram from the parsed values and compare.
    let Ok(packet) = Packet::parse(data) else {
        panic!("parse_packet accepted what Packet::parse rejects");
    };
    let mut out = vec![0u8; data.len()];
    let mut writer = match PacketWriter::new(&mut out, &packet.header, data.len()) {
        Ok(w) => w,
        Err(e) => panic!("accepted header does not re-emit: {e}"),
    };
    for record in packet.records() {
        let Ok(record) = record else {
            panic!("parse_packet accepted a bad record");
        };
        let Ok(message) = Message::parse(&record) else {
            panic!("parse_packet accepted a bad record body");
        };
        let (flags, link_seq) = (record.header.flags, record.header.link_seq);
        if let Err(e) = message.push_to(writer.records(), flags, link_seq) {
            panic!("accepted record does not re-emit: {e}");
        }
    }
    let len = match writer.finish() {
        Ok(len) => len,
        Err(e) => panic!("accepted packet does not finish: {e}"),
    };
    assert_eq!(len, data.len(), "re-emitted length differs");
    let body_end = len - if packet.tag.is_some() { TAG_LEN } else { 0 };
    assert_eq!(out[..body_end], data[..body_end], "re-emitted bytes differ");
});
