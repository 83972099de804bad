//! Packets a capture lost: the counts libpcap's `pcap_stats` gives for a live capture,
//! or the summary lines tcpdump prints on its standard error when it stops.
//!
//! A capture that lost packets cannot prove that something was absent, so these counts
//! travel with every capture into the judge (see `expect::judge_capture`).

use std::fmt;

use serde::Serialize;

/// What the capturing side said it lost, summed over every capture point of one capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    /// Packets the kernel dropped for lack of buffer space (`ps_drop`, tcpdump's
    /// `packets dropped by kernel`).
    pub kernel: u64,
    /// Packets the interface or its driver dropped (`ps_ifdrop`, tcpdump's `packets
    /// dropped by interface`), where the driver reports it.
    pub interface: u64,
    /// Who counted: `libpcap on br-0123456789ab`, `tcpdump on worker`.
    pub reported_by: Vec<String>,
}

impl DropCounts {
    /// Counts from one capture point.
    pub fn new(kernel: u64, interface: u64, reported_by: impl Into<String>) -> DropCounts {
        DropCounts {
            kernel,
            interface,
            reported_by: vec![reported_by.into()],
        }
    }

    /// Packets lost in all.
    pub fn total(&self) -> u64 {
        self.kernel.saturating_add(self.interface)
    }

    /// Adds another capture point's counts.
    pub fn add(&mut self, other: &DropCounts) {
        self.kernel = self.kernel.saturating_add(other.kernel);
        self.interface = self.interface.saturating_add(other.interface);
        self.reported_by.extend(other.reported_by.iter().cloned());
    }

    /// Reads the statistics tcpdump prints on standard error when it stops:
    /// `12 packets captured`, `15 packets received by filter`, `3 packets dropped by
    /// kernel` and, when the driver counts them, `N packets dropped by interface`.
    /// Returns `None` when the kernel line is missing (tcpdump was killed before it
    /// could print): then nothing is known about drops.
    pub fn from_tcpdump_stderr(stderr: &str, reported_by: &str) -> Option<DropCounts> {
        let count = |suffix: &str| {
            stderr.lines().find_map(|line| {
                let line = line.trim();
                let number = line.strip_suffix(suffix)?.trim();
                number.parse::<u64>().ok()
            })
        };
        let kernel = count("packets dropped by kernel")?;
        let interface = count("packets dropped by interface").unwrap_or(0);
        Some(DropCounts::new(kernel, interface, reported_by))
    }
}

impl fmt::Display for DropCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} packet(s) dropped by the kernel and {} by the interface, as counted by {}",
            self.kernel,
            self.interface,
            self.reported_by.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_summary_lines_are_read() {
        let stderr = "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n\
                      1520 packets captured\n1893 packets received by filter\n373 packets dropped by kernel\n";
        let d = DropCounts::from_tcpdump_stderr(stderr, "tcpdump on worker").unwrap();
        assert_eq!((d.kernel, d.interface, d.total()), (373, 0, 373));
        let with_if = "5 packets captured\n5 packets received by filter\n0 packets dropped by kernel\n2 packets dropped by interface\n";
        let d = DropCounts::from_tcpdump_stderr(with_if, "t").unwrap();
        assert_eq!((d.kernel, d.interface), (0, 2));
    }

    #[test]
    fn a_killed_tcpdump_leaves_drops_unknown() {
        assert_eq!(
            DropCounts::from_tcpdump_stderr("tcpdump: listening on eth0\n", "t"),
            None
        );
    }

    #[test]
    fn counts_of_several_points_add_up_and_say_who_counted() {
        let mut d = DropCounts::new(1, 0, "tcpdump on worker");
        d.add(&DropCounts::new(2, 3, "tcpdump on worker2"));
        assert_eq!(d.total(), 6);
        assert_eq!(
            d.to_string(),
            "3 packet(s) dropped by the kernel and 3 by the interface, as counted by tcpdump on worker, tcpdump on worker2"
        );
    }
}
