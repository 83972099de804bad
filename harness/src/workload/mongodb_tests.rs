//! The MongoDB exchange: framing byte by byte, the seeded store, insert then find, and
//! the errors a wrong peer gets.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI32;

use bson::doc;
use serde_json::json;

use super::*;

fn seeded() -> Store {
    let seed = BTreeMap::from([(
        "test.ratings".to_string(),
        vec![json!({"rating": 1}), json!({"rating": 1})],
    )]);
    Store::seeded(&seed).unwrap()
}

#[test]
fn op_msg_header_and_section_are_the_real_layout() {
    let m = Message {
        request_id: 7,
        response_to: 0,
        body: doc! {"hello": 1, "$db": "admin"},
    };
    let bytes = encode(&m).unwrap();
    let le = |i: usize| i32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(le(0) as usize, bytes.len());
    assert_eq!((le(4), le(8), le(12)), (7, 0, 2013));
    assert_eq!(
        (le(16), bytes[20]),
        (0, 0),
        "flag bits, then section kind 0"
    );
    let body_len = le(21) as usize;
    assert_eq!(
        21 + body_len,
        bytes.len(),
        "the section is one BSON document"
    );
}

#[tokio::test]
async fn read_gives_back_what_encode_wrote() {
    let m = Message {
        request_id: 3,
        response_to: 2,
        body: doc! {"find": "ratings", "filter": {}, "$db": "test"},
    };
    let bytes = encode(&m).unwrap();
    assert_eq!(read(&mut bytes.as_slice()).await.unwrap(), m);
}

#[tokio::test]
async fn other_opcodes_and_lengths_are_refused() {
    let mut bytes = encode(&Message {
        request_id: 1,
        response_to: 0,
        body: doc! {"hello": 1},
    })
    .unwrap();
    bytes[12..16].copy_from_slice(&2004i32.to_le_bytes());
    let e = read(&mut bytes.as_slice()).await.unwrap_err();
    assert!(e.to_string().contains("opcode 2004"), "{e}");
    bytes[0..4].copy_from_slice(&3i32.to_le_bytes());
    let e = read(&mut bytes.as_slice()).await.unwrap_err();
    assert!(e.to_string().contains("length 3"), "{e}");
}

#[tokio::test]
async fn the_client_reads_the_seeded_ratings_and_its_own_insert() {
    let (mut c, mut s) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move { serve(&mut s, &seeded(), &AtomicI32::new(100)).await });
    let all = Operations {
        database: "test".into(),
        collection: "ratings".into(),
        find: Some(doc! {}),
        ..Default::default()
    };
    let text = client(&mut c, &all).await.unwrap();
    assert!(
        text.contains(r#"found 2 in test.ratings: [{"rating":1},{"rating":1}]"#),
        "{text}"
    );
    let mine = Operations {
        insert: vec![document(&json!({"rating": 5, "reviewer": "canary-x"})).unwrap()],
        find: Some(doc! {"reviewer": "canary-x"}),
        ..all
    };
    let text = client(&mut c, &mine).await.unwrap();
    assert!(text.contains("inserted 1"), "{text}");
    assert!(
        text.contains(r#"found 1 in test.ratings: [{"rating":5,"reviewer":"canary-x"}]"#),
        "{text}"
    );
}

#[test]
fn unknown_commands_fail_like_mongod() {
    let r = answer(&doc! {"drop": "ratings", "$db": "test"}, &seeded());
    assert_eq!(r.get_f64("ok").unwrap(), 0.0);
    assert_eq!(r.get_str("codeName").unwrap(), "CommandNotFound");
}

#[test]
fn numbers_match_across_bson_types() {
    let r = answer(
        &doc! {"find": "ratings", "filter": {"rating": 1.0}, "$db": "test"},
        &seeded(),
    );
    let batch = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch.len(), 2);
}
