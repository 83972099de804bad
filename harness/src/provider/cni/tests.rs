//! CNI detection on recorded cluster objects (`fixtures/cni/`).

use super::*;

fn recorded(name: &str) -> Cni {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/cni")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    detect(&ClusterObjects::from_list_json(&text).unwrap())
}

fn tunnel(kind: TunnelKind, port: Option<u16>, cross_subnet_only: bool) -> Tunnel {
    Tunnel {
        kind,
        port,
        cross_subnet_only,
    }
}

fn wireguard(port: u16) -> Option<Encryption> {
    Some(Encryption {
        kind: EncryptionKind::Wireguard,
        port: Some(port),
    })
}

#[test]
fn each_recorded_cluster_names_its_cni_tunnels_and_encryption() {
    let cases: [(&str, CniKind, Vec<Tunnel>, Option<Encryption>); 11] = [
        ("kindnet.json", CniKind::Kindnet, vec![], None),
        (
            "flannel-vxlan.json",
            CniKind::Flannel,
            vec![tunnel(TunnelKind::Vxlan, Some(8472), false)],
            None,
        ),
        (
            "flannel-wireguard.json",
            CniKind::Flannel,
            vec![],
            wireguard(51830),
        ),
        (
            "k3s-default.json",
            CniKind::K3sFlannel,
            vec![tunnel(TunnelKind::Vxlan, Some(8472), false)],
            None,
        ),
        (
            "k3s-wireguard-native.json",
            CniKind::K3sFlannel,
            vec![],
            wireguard(51820),
        ),
        (
            "calico-ipip.json",
            CniKind::Calico,
            vec![tunnel(TunnelKind::Ipip, None, false)],
            None,
        ),
        (
            "calico-vxlan-wireguard.json",
            CniKind::Calico,
            vec![tunnel(TunnelKind::Vxlan, Some(4789), true)],
            wireguard(51820),
        ),
        (
            "calico-operator.json",
            CniKind::Calico,
            vec![
                tunnel(TunnelKind::Ipip, None, false),
                tunnel(TunnelKind::Vxlan, Some(4789), false),
            ],
            None,
        ),
        (
            "cilium-default.json",
            CniKind::Cilium,
            vec![tunnel(TunnelKind::Vxlan, Some(8472), false)],
            None,
        ),
        (
            "cilium-geneve-wireguard.json",
            CniKind::Cilium,
            vec![tunnel(TunnelKind::Geneve, Some(6081), false)],
            wireguard(51871),
        ),
        (
            "cilium-native-ipsec.json",
            CniKind::Cilium,
            vec![],
            Some(Encryption {
                kind: EncryptionKind::IpsecEsp,
                port: None,
            }),
        ),
    ];
    for (file, kind, tunnels, encryption) in cases {
        let cni = recorded(file);
        assert_eq!(
            (cni.kind, &cni.tunnels, cni.encryption),
            (kind, &tunnels, encryption),
            "{file}: {cni:#?}"
        );
        assert!(!cni.evidence.is_empty(), "{file} says nothing of why");
    }
}

#[test]
fn capture_filters_keep_the_tunnels_and_fragments() {
    assert_eq!(recorded("kindnet.json").capture_filter("tcp"), "tcp");
    assert_eq!(
        recorded("calico-ipip.json").capture_filter("tcp"),
        "(tcp) or ip proto 4 or ip proto 41 or (ip[6:2] & 0x3fff != 0)"
    );
    assert_eq!(
        recorded("cilium-geneve-wireguard.json").capture_filter("tcp"),
        "(tcp) or udp port 6081 or udp port 51871 or (ip[6:2] & 0x3fff != 0)"
    );
    assert_eq!(
        recorded("cilium-native-ipsec.json").capture_filter("tcp"),
        "(tcp) or ip proto 50 or udp port 4500 or (ip[6:2] & 0x3fff != 0)"
    );
}

#[test]
fn encryption_moves_cross_node_captures_to_the_pods_interfaces() {
    let wg = recorded("cilium-geneve-wireguard.json");
    assert_eq!(wg.capture_point(false), CapturePoint::PodInterface);
    assert_eq!(wg.capture_point(true), CapturePoint::Node);
    let vxlan = recorded("flannel-vxlan.json");
    assert_eq!(vxlan.capture_point(false), CapturePoint::Node);
    assert!(wg.node_view().contains("captured at the pods' interfaces"));
    assert!(vxlan.node_view().contains("vxlan (UDP 8472)"));
}

#[test]
fn the_analyzer_learns_nonstandard_ports() {
    let mut cni = recorded("cilium-default.json");
    cni.tunnels[0].port = Some(8999);
    let cfg = cni.tunnel_config();
    assert_eq!(cfg.vxlan_ports, vec![4789, 8472, 8999]);
    assert_eq!(
        recorded("flannel-wireguard.json")
            .tunnel_config()
            .wireguard_ports,
        vec![51820, 51871, 51830]
    );
}

#[test]
fn the_plan_names_the_cni_and_the_capture_points() {
    let entries = plan_entries(&recorded("calico-vxlan-wireguard.json"), "tcp");
    let text: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(text[0], "CNI: calico");
    assert!(
        text[1].contains("vxlan (UDP 4789) between subnets"),
        "{}",
        text[1]
    );
    assert!(text[1].contains("wireguard encrypts"), "{}", text[1]);
    assert_eq!(
        text[3],
        "capture points: same node on the node, across nodes at the pods' interfaces"
    );
}

#[test]
fn bad_input_is_a_located_error() {
    assert!(matches!(
        ClusterObjects::from_list_json("[]"),
        Err(CniError::NotAList(_))
    ));
    let err = ClusterObjects::from_list_json(
        r#"{"items": [{"kind": "Node"}, {"kind": "DaemonSet", "spec": 7}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("item 1 (DaemonSet)"), "{err}");
    let unknown = detect(&ClusterObjects::default());
    assert_eq!(unknown.kind, CniKind::Unknown);
}
