//! An image's root filesystem, assembled in memory from host files and written as a tar.
//!
//! Binaries come with the shared libraries (and the dynamic loader) `ldd` lists for them,
//! at their host paths, so the image needs no base image. Every entry has mtime 0, so the
//! same inputs give the same tar and the same [`Rootfs::content_hash`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImageError;
use crate::exec::{Cmd, Exec};

/// Files by absolute image path, with their modes and contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rootfs {
    files: BTreeMap<String, (u32, Vec<u8>)>,
    dirs: BTreeSet<String>,
}

/// The shared libraries (and the dynamic loader) `ldd` lists for a binary.
pub fn parse_ldd(binary: &str, output: &str) -> Result<Vec<PathBuf>, ImageError> {
    let mut libs = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            return Err(ImageError::MissingLibrary {
                binary: binary.to_string(),
                line: line.to_string(),
            });
        }
        let target = match line.split_once("=>") {
            Some((_, right)) => right.trim(),
            None => line,
        };
        let path = target.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

impl Rootfs {
    /// An empty rootfs with a world-writable, sticky `/tmp`.
    pub fn new() -> Rootfs {
        let mut fs = Rootfs::default();
        fs.dirs.insert("tmp".into());
        // glibc looks hosts up through NSS; Docker and the kubelet supply /etc/hosts and
        // /etc/resolv.conf.
        fs.add_file("/etc/nsswitch.conf", 0o644, b"hosts: files dns\n".to_vec());
        fs
    }

    /// Adds an empty directory (parents implied).
    pub fn add_dir(&mut self, path: &str) {
        self.dirs.insert(path.trim_matches('/').to_string());
    }

    /// Adds a file with its contents.
    pub fn add_file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.files.insert(path.to_string(), (mode, data));
    }

    /// Adds a host binary at `image_path`, and every library `ldd` lists for it at its
    /// host path (symlinks followed, so the image holds real files).
    pub async fn add_binary(
        &mut self,
        exec: &Exec,
        image_path: &str,
        host: &Path,
    ) -> Result<(), ImageError> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| ImageError::file(p, e));
        self.add_file(image_path, 0o755, read(host)?);
        let out = exec
            .run(&Cmd::new("ldd").arg(host.display().to_string()))
            .await?;
        for lib in parse_ldd(&host.display().to_string(), &out.stdout_text())? {
            self.add_file(&lib.display().to_string(), 0o755, read(&lib)?);
        }
        Ok(())
    }

    /// The image paths of every file, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Whether a file is in the rootfs.
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// A hash of `layout` (bumped when an image's layout changes), every path, mode and
    /// content, and every directory: 16 hex digits.
    pub fn content_hash(&self, layout: &str) -> String {
        let mut h = Sha256::new();
        h.update(layout.as_bytes());
        for (path, (mode, data)) in &self.files {
            h.update(path.as_bytes());
            h.update(mode.to_le_bytes());
            h.update(Sha256::digest(data));
        }
        for dir in &self.dirs {
            h.update(b"dir:");
            h.update(dir.as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }

    /// The rootfs as a tar: directories first (parents of every file included), then files.
    pub fn tar(&self) -> Result<Vec<u8>, ImageError> {
        let err = |e: std::io::Error| ImageError::File {
            path: "<rootfs tar>".into(),
            reason: e.to_string(),
        };
        let mut builder = tar::Builder::new(Vec::new());
        let mut dirs = self.dirs.clone();
        for path in self.files.keys().chain(self.dirs.iter()) {
            let mut p = Path::new(path.trim_start_matches('/'));
            while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(parent.display().to_string());
                p = parent;
            }
        }
        for dir in &dirs {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
            header.set_size(0);
            header.set_mtime(0);
            builder
                .append_data(&mut header, format!("{dir}/"), std::io::empty())
                .map_err(err)?;
        }
        for (path, (mode, data)) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_size(data.len() as u64);
            header.set_mtime(0);
            builder
                .append_data(&mut header, path.trim_start_matches('/'), data.as_slice())
                .map_err(err)?;
        }
        builder.into_inner().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd("/bin/x", out).unwrap();
        assert_eq!(
            libs,
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        let err = parse_ldd("/bin/x", "\tlibpcap.so.0.8 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libpcap.so.0.8"), "{err}");
        assert!(err.to_string().contains("/bin/x"), "{err}");
    }

    #[test]
    fn the_hash_follows_every_input() {
        let mut fs = Rootfs::new();
        fs.add_file("/envoy", 0o755, b"a".to_vec());
        let first = fs.content_hash("layout/1");
        assert_eq!(first.len(), 16);
        assert_eq!(first, fs.content_hash("layout/1"));
        assert_ne!(first, fs.content_hash("layout/2"));
        fs.add_file("/envoy", 0o755, b"b".to_vec());
        assert_ne!(first, fs.content_hash("layout/1"));
        let by_content = fs.content_hash("layout/1");
        fs.add_file("/envoy", 0o700, b"b".to_vec());
        assert_ne!(by_content, fs.content_hash("layout/1"));
        let by_mode = fs.content_hash("layout/1");
        fs.add_dir("/etc/certs");
        assert_ne!(by_mode, fs.content_hash("layout/1"));
    }

    #[test]
    fn the_tar_has_parents_and_a_sticky_tmp() {
        let mut fs = Rootfs::new();
        fs.add_file("/lib/x86_64-linux-gnu/libc.so.6", 0o755, b"elf".to_vec());
        fs.add_dir("/etc/meshproof");
        let tar = fs.tar().unwrap();
        assert_eq!(tar, fs.tar().unwrap(), "the same inputs give the same tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        for want in [
            ("lib/", 0o755),
            ("lib/x86_64-linux-gnu/", 0o755),
            ("tmp/", 0o1777),
            ("etc/meshproof/", 0o755),
            ("etc/nsswitch.conf", 0o644),
            ("lib/x86_64-linux-gnu/libc.so.6", 0o755),
        ] {
            assert!(
                entries.contains(&(want.0.into(), want.1)),
                "{want:?} in {entries:?}"
            );
        }
    }
}
