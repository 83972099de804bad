//! AMQP 0-9-1 framing tests: the workload's broker and client against each other.

use super::*;

#[test]
fn frames_carry_type_channel_size_and_end() {
    let f = Method::new(CHANNEL_OPEN).shortstr("").frame(1).encode();
    assert_eq!(f, vec![1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xCE]);
}

#[tokio::test]
async fn publish_and_get_round_trip() {
    let queues = Queues::default();
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    let q = queues.clone();
    let srv = tokio::spawn(async move { serve(&mut server, &q).await });
    let opts = PublishOptions {
        queue: "canary",
        quorum: false,
        consume: true,
    };
    let got = publish(&mut client, &opts, b"MESHPROOF-CANARY-x")
        .await
        .unwrap();
    assert_eq!(got.product, "meshproof-workload");
    assert_eq!(got.consumed.as_deref(), Some(&b"MESHPROOF-CANARY-x"[..]));
    srv.await.unwrap().unwrap();
}

#[tokio::test]
async fn quorum_messages_are_handed_to_the_replicator() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let queues = Queues::replicated(tx);
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move { serve(&mut server, &queues).await });
    let opts = PublishOptions {
        queue: "q",
        quorum: true,
        consume: false,
    };
    publish(&mut client, &opts, b"replicate me").await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), b"replicate me");
}

#[tokio::test]
async fn a_wrong_header_gets_ours_back() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let srv = tokio::spawn(async move { serve(&mut server, &Queues::default()).await });
    client.write_all(b"AMQP\x00\x00\x08\x00").await.unwrap();
    let mut back = [0u8; 8];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, PROTOCOL_HEADER);
    assert!(srv.await.unwrap().is_err());
}

#[tokio::test]
async fn a_bad_frame_end_is_an_error() {
    let mut bytes: &[u8] = &[1, 0, 0, 0, 0, 0, 1, 9, 0x00];
    assert!(read_frame(&mut bytes).await.is_err());
}
