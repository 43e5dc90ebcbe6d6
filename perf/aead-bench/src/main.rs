//! Seal and open one Weft link packet in place, again and again, with the link's AES-128-GCM
//! through `weft_proto::auth` (aes-gcm 0.11) and with aws-lc-rs on the same bytes (24-byte
//! header as AAD, body in place, 16-byte tag), at 100 B and 1400 B of payload. Prints ns per
//! seal and per open (median of 5 runs of `SECONDS`/10 each).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use weft_proto::auth::LinkWindows;
use weft_proto::forward::LinkSender;
use weft_shared::config::LinkKeys;
use weft_shared::ids::{Incarnation, LinkId, NodeId, PathId};
use weft_shared::wire::{LINK_HEADER_LEN, LinkRepr, TAG_LEN};

const KEY: &str = "0 00112233445566778899aabbccddeeff";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_per_op(run: Duration, mut op: impl FnMut()) -> f64 {
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < run {
        for _ in 0..256 {
            op();
        }
        n += 256;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let run = Duration::from_secs_f64(secs / 10.0);
    let keys = LinkKeys::parse(KEY, Path::new("bench.key")).expect("key");
    let link = LinkId::new(0).expect("link");
    let (a, b) = (NodeId::new(1).expect("node"), NodeId::new(2).expect("node"));
    println!("| implementation | payload | seal ns | open ns |");
    println!("|---|---|---|---|");
    for payload in [100usize, 1400] {
        // A real sealed data packet of this size, from a LinkSender with the link's key.
        let mut tx = LinkSender::new(a, Incarnation(7), 0);
        tx.auth_mut().set_keys(link, b, &LinkWindows::new(1, 1), &keys);
        let mut rx = LinkSender::new(b, Incarnation(9), 0);
        rx.auth_mut().set_keys(link, a, &LinkWindows::new(1, 1), &keys);
        let body = vec![0x5au8; payload + 44];
        let mut buf = vec![0u8; 4096];
        let len = tx
            .write_data_record(&mut buf, link, PathId::new(0).expect("path"), &body, 4096)
            .expect("packet");
        let mut pkt = buf[..len].to_vec();
        let (mut seal_w, mut open_w) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            seal_w.push(time_per_op(run, || {
                black_box(tx.auth().seal(black_box(&mut pkt)).expect("seal"));
            }));
            // Opening needs a fresh packet number each time (the window): the bench opens the
            // same sealed packet with the window reset, which costs nothing measurable.
            let sealed = pkt.clone();
            let (h, _) = LinkRepr::parse(&sealed).expect("header");
            open_w.push(time_per_op(run, || {
                pkt.copy_from_slice(&sealed);
                rx.auth_mut().remove(link);
                rx.auth_mut().set_keys(link, a, &LinkWindows::new(1, 1), &keys);
                let _ = black_box(rx.auth_mut().open(&h, black_box(&mut pkt)));
            }));
            pkt.copy_from_slice(&sealed);
        }
        // The copy and the key reload above are part of the open loop; time them alone.
        let sealed = pkt.clone();
        let overhead = median(
            (0..5)
                .map(|_| {
                    time_per_op(run, || {
                        pkt.copy_from_slice(&sealed);
                        rx.auth_mut().remove(link);
                        rx.auth_mut().set_keys(link, a, &LinkWindows::new(1, 1), &keys);
                        black_box(&mut pkt);
                    })
                })
                .collect(),
        );
        println!(
            "| aes-gcm 0.11 (weft_proto::auth) | {payload} B | {:.0} | {:.0} |",
            median(seal_w),
            median(open_w) - overhead
        );

        {
            use aes_gcm::aead::{AeadInOut, KeyInit};
            let c = aes_gcm::Aes128Gcm::new(&[7u8; 16].into());
            let nonce = aes_gcm::Nonce::from([1u8; 12]);
            let mut p = pkt.clone();
            let seal = median(
                (0..5)
                    .map(|_| {
                        time_per_op(run, || {
                            let (head, rest) = p.split_at_mut(LINK_HEADER_LEN);
                            let n = rest.len() - TAG_LEN;
                            let (body, tag) = rest.split_at_mut(n);
                            let t = c
                                .encrypt_inout_detached(&nonce, head, body.into())
                                .expect("seal");
                            tag.copy_from_slice(&t);
                            black_box(&mut p);
                        })
                    })
                    .collect(),
            );
            println!("| aes-gcm 0.11 (raw, same buffer) | {payload} B | {seal:.0} | |");
        }
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).expect("key"));
        let nonce = [1u8; 12];
        let (mut seal_w, mut open_w) = (Vec::new(), Vec::new());
        let mut p = pkt.clone();
        let copy = median(
            (0..5)
                .map(|_| {
                    let sealed = p.clone();
                    time_per_op(run, || {
                        p.copy_from_slice(&sealed);
                        black_box(&mut p);
                    })
                })
                .collect(),
        );
        for _ in 0..5 {
            seal_w.push(time_per_op(run, || {
                let (head, rest) = p.split_at_mut(LINK_HEADER_LEN);
                let n = rest.len() - TAG_LEN;
                let (body, tag) = rest.split_at_mut(n);
                let t: Tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&*head),
                        body,
                    )
                    .expect("seal");
                tag.copy_from_slice(t.as_ref());
                black_box(&mut p);
            }));
            let sealed = p.clone();
            open_w.push(time_per_op(run, || {
                p.copy_from_slice(&sealed);
                let (head, rest) = p.split_at_mut(LINK_HEADER_LEN);
                // Ciphertext then tag, opened in place.
                key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&*head), rest)
                    .expect("open");
                black_box(&mut p);
            }));
            p.copy_from_slice(&sealed);
        }
        println!(
            "| aws-lc-rs | {payload} B | {:.0} | {:.0} |",
            median(seal_w),
            median(open_w) - copy
        );
    }
}
