//! A throw-away lab of two network namespaces on a bridge, for capturing real traffic.
//!
//! ```text
//!   root namespace: bridge mpb<id> 10.<n>.<m>.1/24  (libpcap captures here)
//!     ├── veth ── namespace meshproof-<id>-a: eth0 10.<n>.<m>.2/24
//!     └── veth ── namespace meshproof-<id>-b: eth0 10.<n>.<m>.3/24
//! ```
//! Everything is deleted when the lab is dropped, also when the test fails.
//!
//! Traffic should run between the root namespace and a lab namespace: traffic between
//! the two lab namespaces is bridged through the host's FORWARD chain (br_netfilter),
//! which Docker sets to DROP.

use std::time::Duration;

use meshproof::exec::{Cmd, Exec, ExecError, Output};
use rand::Rng;

/// The lab; dropping it removes the namespaces, the bridge and the veths.
pub struct NetLab {
    pub id: String,
    pub bridge: String,
    pub ns_a: String,
    pub ns_b: String,
    pub root_ip: String,
    pub ip_a: String,
    pub ip_b: String,
    exec: Exec,
}

fn ip(args: &[&str]) -> Cmd {
    Cmd::new("ip")
        .args(args.iter().copied())
        .timeout(Duration::from_secs(10))
}

impl NetLab {
    /// Creates the lab, or explains why it cannot be created here.
    pub async fn create() -> Result<NetLab, String> {
        let mut rng = rand::rng();
        let id = format!("{:06x}", rng.random_range(0..0xff_ffffu32));
        let (n, m) = (rng.random_range(64..250u8), rng.random_range(1..250u8));
        let net = format!("10.{n}.{m}");
        let lab = NetLab {
            bridge: format!("mpb{id}"),
            ns_a: format!("meshproof-{id}-a"),
            ns_b: format!("meshproof-{id}-b"),
            root_ip: format!("{net}.1"),
            ip_a: format!("{net}.2"),
            ip_b: format!("{net}.3"),
            id,
            exec: Exec::new(),
        };
        lab.build()
            .await
            .map_err(|e| format!("cannot build a namespace lab (needs root and iproute2): {e}"))?;
        Ok(lab)
    }

    async fn build(&self) -> Result<(), ExecError> {
        let br = self.bridge.as_str();
        self.run(ip(&["link", "add", br, "type", "bridge"])).await?;
        self.run(ip(&[
            "addr",
            "add",
            &format!("{}/24", self.root_ip),
            "dev",
            br,
        ]))
        .await?;
        self.run(ip(&["link", "set", br, "up"])).await?;
        for (ns, addr, side) in [(&self.ns_a, &self.ip_a, "a"), (&self.ns_b, &self.ip_b, "b")] {
            let host = format!("mpv{side}{}", self.id);
            let peer = format!("mpp{side}{}", self.id);
            self.run(ip(&["netns", "add", ns])).await?;
            self.run(ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &peer,
            ]))
            .await?;
            self.run(ip(&["link", "set", &host, "master", br, "up"]))
                .await?;
            self.run(ip(&["link", "set", &peer, "netns", ns])).await?;
            self.run(ip(&["-n", ns, "link", "set", &peer, "name", "eth0"]))
                .await?;
            self.run(ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]))
            .await?;
            self.run(ip(&["-n", ns, "link", "set", "eth0", "up"]))
                .await?;
            self.run(ip(&["-n", ns, "link", "set", "lo", "up"])).await?;
        }
        Ok(())
    }

    async fn run(&self, cmd: Cmd) -> Result<Output, ExecError> {
        self.exec.run(&cmd).await
    }

    /// A command run inside namespace `ns`.
    pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Cmd {
        Cmd::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args.iter().copied())
    }

    /// Waits until something listens on TCP `port` inside `ns` (so that no connection
    /// attempt is refused and shows up as a stray flow in the capture).
    pub async fn wait_listening(&self, ns: &str, port: u16) -> Result<(), String> {
        let filter = format!("sport = :{port}");
        for _ in 0..100 {
            let out = self
                .exec
                .output(&Self::in_ns(ns, "ss", &["-Hltn", &filter]))
                .await
                .map_err(|e| e.to_string())?;
            if !out.stdout_text().trim().is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("nothing listens on port {port} in {ns}"))
    }

    fn teardown(&self) {
        let cmds = [
            ip(&["netns", "delete", &self.ns_a]),
            ip(&["netns", "delete", &self.ns_b]),
            ip(&["link", "delete", &format!("mpva{}", self.id)]),
            ip(&["link", "delete", &format!("mpvb{}", self.id)]),
            ip(&["link", "delete", &self.bridge]),
        ];
        let exec = self.exec.clone();
        // Drop may run inside the test's runtime, where blocking on another runtime is
        // not allowed, so the teardown gets a thread and a runtime of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    for cmd in cmds {
                        let _ = exec.output(&cmd).await;
                    }
                });
            }
        })
        .join();
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        self.teardown();
    }
}
