//! Finding the `meshproof-workload` binary: the one the project images hold and host
//! probes run.
//!
//! `cargo xtask` builds only xtask, so the binary is not there on a fresh checkout. Under
//! cargo (`$CARGO` set) it is built before use with `cargo build --bin
//! meshproof-workload` in the running program's profile and target directory: the
//! dependencies xtask was just built with are reused (meshproof has no cargo features to
//! differ in), and an up-to-date binary costs one cargo no-op. Outside cargo it must lie
//! beside the running program, or be named by `$MESHPROOF_WORKLOAD_BIN`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ImageError;
use crate::env_vars;
use crate::exec::{Cmd, Exec};
use crate::reporter::Reporter;

/// The binary's file name.
pub const WORKLOAD_BINARY: &str = "meshproof-workload";
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// How the binary will be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryPlan {
    /// `$MESHPROOF_WORKLOAD_BIN` names it.
    Given(PathBuf),
    /// Built with cargo, then found at `output`.
    Build {
        /// The cargo running this program.
        cargo: PathBuf,
        /// The cargo profile of the running program (`dev`, `release`).
        profile: String,
        /// The running program's target directory.
        target_dir: PathBuf,
        /// Where the built binary lands.
        output: PathBuf,
    },
    /// Already built, beside the running program.
    Beside(PathBuf),
    /// Not available; the text says how to get it.
    Missing(String),
}

/// What the decision depends on, gathered from the environment by [`BinaryInputs::current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryInputs {
    /// `$MESHPROOF_WORKLOAD_BIN`.
    pub given: Option<PathBuf>,
    /// `$CARGO`.
    pub cargo: Option<PathBuf>,
    /// The running program.
    pub current_exe: Option<PathBuf>,
}

impl BinaryInputs {
    /// The inputs of this process.
    pub fn current() -> BinaryInputs {
        BinaryInputs {
            given: env_vars::workload_bin(),
            cargo: env_vars::cargo(),
            current_exe: std::env::current_exe().ok(),
        }
    }
}

/// The profile directory of a program cargo built (`target/debug/xtask`, or
/// `target/debug/deps/<test>` for test binaries): (directory, cargo profile name).
fn profile_dir(exe: &Path) -> Option<(PathBuf, String)> {
    let mut dir = exe.parent()?;
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir = dir.parent()?;
    }
    let name = dir.file_name()?.to_str()?;
    // cargo puts the `dev` and `test` profiles in `debug`, `bench` in `release`.
    let profile = match name {
        "debug" => "dev",
        other => other,
    };
    Some((dir.to_path_buf(), profile.to_string()))
}

/// Decides where the binary comes from; pure, so every branch is tested.
pub fn plan_workload_binary(inputs: &BinaryInputs) -> BinaryPlan {
    if let Some(path) = &inputs.given {
        return BinaryPlan::Given(path.clone());
    }
    let profile = inputs.current_exe.as_deref().and_then(profile_dir);
    if let (Some(cargo), Some((dir, profile))) = (&inputs.cargo, &profile)
        && let Some(target_dir) = dir.parent()
    {
        return BinaryPlan::Build {
            cargo: cargo.clone(),
            profile: profile.clone(),
            target_dir: target_dir.to_path_buf(),
            output: dir.join(WORKLOAD_BINARY),
        };
    }
    let beside = profile
        .map(|(dir, _)| dir.join(WORKLOAD_BINARY))
        .into_iter()
        .chain(
            inputs
                .current_exe
                .as_deref()
                .and_then(Path::parent)
                .map(|d| d.join(WORKLOAD_BINARY)),
        )
        .find(|p| p.is_file());
    match beside {
        Some(path) => BinaryPlan::Beside(path),
        None => BinaryPlan::Missing(format!(
            "{WORKLOAD_BINARY} is not built: run meshproof through `cargo xtask` (which builds it), \
             or `cargo build -p meshproof --bin {WORKLOAD_BINARY}` and put it beside the program, \
             or set {} to its path",
            env_vars::MESHPROOF_WORKLOAD_BIN.name
        )),
    }
}

impl BinaryPlan {
    /// The cargo command of a `Build` plan.
    pub fn cargo_command(&self, root: &Path) -> Option<Cmd> {
        let BinaryPlan::Build {
            cargo,
            profile,
            target_dir,
            ..
        } = self
        else {
            return None;
        };
        Some(
            Cmd::new(cargo.display().to_string())
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "meshproof",
                    "--bin",
                    WORKLOAD_BINARY,
                ])
                .args(["--profile", profile.as_str()])
                .arg("--target-dir")
                .arg(target_dir.display().to_string())
                .cwd(root)
                .timeout(BUILD_TIMEOUT),
        )
    }

    /// Where the binary is once the plan has been carried out (a build plan's output may
    /// not exist yet). Host probes look it up this way, after provisioning built it.
    pub fn path(&self) -> Option<&Path> {
        match self {
            BinaryPlan::Given(p) | BinaryPlan::Beside(p) => Some(p),
            BinaryPlan::Build { output, .. } => Some(output),
            BinaryPlan::Missing(_) => None,
        }
    }

    /// The existing binary this plan names, or an error saying how to get one.
    pub fn existing(&self, root: &Path) -> Result<PathBuf, ImageError> {
        self.path()
            .filter(|p| p.is_file())
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                ImageError::NoWorkloadBinary(format!(
                    "{WORKLOAD_BINARY} is not built yet: {}",
                    self.describe(root)
                ))
            })
    }

    /// One line for the dry-run plan.
    pub fn describe(&self, root: &Path) -> String {
        match self {
            BinaryPlan::Build { .. } => format!(
                "build {WORKLOAD_BINARY}: {}",
                self.cargo_command(root)
                    .map(|c| c.display())
                    .unwrap_or_default()
            ),
            BinaryPlan::Given(p) => format!(
                "{WORKLOAD_BINARY} from {} ({})",
                env_vars::MESHPROOF_WORKLOAD_BIN.name,
                p.display()
            ),
            BinaryPlan::Beside(p) => format!("{WORKLOAD_BINARY} already built: {}", p.display()),
            BinaryPlan::Missing(hint) => hint.clone(),
        }
    }
}

/// Carries out the plan for this process: the path of an existing, current binary.
pub async fn locate_or_build(
    exec: &Exec,
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<PathBuf, ImageError> {
    carry_out(
        &plan_workload_binary(&BinaryInputs::current()),
        exec,
        root,
        reporter,
    )
    .await
}

/// Carries out a plan.
pub async fn carry_out(
    plan: &BinaryPlan,
    exec: &Exec,
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<PathBuf, ImageError> {
    let path = match plan {
        BinaryPlan::Given(p) | BinaryPlan::Beside(p) => p.clone(),
        BinaryPlan::Build { output, .. } => {
            if let Some(cmd) = plan.cargo_command(root) {
                reporter.debug(&format!("building {WORKLOAD_BINARY}: {}", cmd.display()));
                exec.run(&cmd).await?;
            }
            output.clone()
        }
        BinaryPlan::Missing(hint) => return Err(ImageError::NoWorkloadBinary(hint.clone())),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(ImageError::NoWorkloadBinary(format!(
            "{} does not exist ({})",
            path.display(),
            plan.describe(root)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Output;
    use crate::reporter::NullReporter;

    fn inputs(given: Option<&str>, cargo: Option<&str>, exe: &Path) -> BinaryInputs {
        BinaryInputs {
            given: given.map(PathBuf::from),
            cargo: cargo.map(PathBuf::from),
            current_exe: Some(exe.to_path_buf()),
        }
    }

    #[test]
    fn under_cargo_it_is_built_in_the_running_profile() {
        let plan = plan_workload_binary(&inputs(
            None,
            Some("/usr/bin/cargo"),
            Path::new("/repo/target/debug/xtask"),
        ));
        assert_eq!(
            plan,
            BinaryPlan::Build {
                cargo: "/usr/bin/cargo".into(),
                profile: "dev".into(),
                target_dir: "/repo/target".into(),
                output: "/repo/target/debug/meshproof-workload".into(),
            }
        );
        assert_eq!(
            plan.cargo_command(Path::new("/repo")).unwrap().display(),
            "/usr/bin/cargo build --quiet -p meshproof --bin meshproof-workload --profile dev --target-dir /repo/target"
        );
        // `cargo xtask-release` and test binaries (in deps/) keep their own profile.
        let release = plan_workload_binary(&inputs(
            None,
            Some("cargo"),
            Path::new("/repo/target/release/xtask"),
        ));
        assert!(matches!(release, BinaryPlan::Build { ref profile, .. } if profile == "release"));
        let test = plan_workload_binary(&inputs(
            None,
            Some("cargo"),
            Path::new("/repo/target/debug/deps/meshproof-0a1b"),
        ));
        assert!(
            matches!(test, BinaryPlan::Build { ref output, .. } if output == Path::new("/repo/target/debug/meshproof-workload"))
        );
    }

    #[test]
    fn the_environment_wins_and_outside_cargo_only_a_built_binary_will_do() {
        let given = plan_workload_binary(&inputs(
            Some("/opt/mw"),
            Some("cargo"),
            Path::new("/repo/target/debug/xtask"),
        ));
        assert_eq!(given, BinaryPlan::Given("/opt/mw".into()));
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("target/release");
        std::fs::create_dir_all(profile.join("deps")).unwrap();
        let exe = profile.join("deps/xtask-1234");
        let missing = plan_workload_binary(&inputs(None, None, &exe));
        let BinaryPlan::Missing(hint) = missing else {
            panic!("{missing:?}")
        };
        assert!(hint.contains("cargo xtask"), "{hint}");
        assert!(hint.contains("MESHPROOF_WORKLOAD_BIN"), "{hint}");
        std::fs::write(profile.join(WORKLOAD_BINARY), b"elf").unwrap();
        assert_eq!(
            plan_workload_binary(&inputs(None, None, &exe)),
            BinaryPlan::Beside(profile.join(WORKLOAD_BINARY))
        );
    }

    #[tokio::test]
    async fn building_runs_cargo_and_then_requires_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("debug")).unwrap();
        let plan = plan_workload_binary(&inputs(
            None,
            Some("cargo"),
            &target.join("debug").join("xtask"),
        ));
        let cmd = plan.cargo_command(dir.path()).unwrap();
        let ok = || Output {
            command: cmd.display(),
            status: Some(0),
            stdout: vec![],
            stderr: vec![],
            millis: 1,
        };
        // cargo "succeeded" but left nothing: a clear error, not a later exec failure.
        let exec = Exec::replay([ok()]);
        let err = carry_out(&plan, &exec, dir.path(), &NullReporter)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(exec.journal().len(), 1);
        std::fs::write(target.join("debug").join(WORKLOAD_BINARY), b"elf").unwrap();
        let exec = Exec::replay([ok()]);
        let path = carry_out(&plan, &exec, dir.path(), &NullReporter)
            .await
            .unwrap();
        assert_eq!(path, target.join("debug").join(WORKLOAD_BINARY));
        let missing = carry_out(
            &BinaryPlan::Missing("build it".into()),
            &Exec::replay([]),
            dir.path(),
            &NullReporter,
        )
        .await
        .unwrap_err();
        assert_eq!(missing.to_string(), "build it");
    }

    #[test]
    fn lookup_after_provisioning_uses_the_same_plan() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("debug")).unwrap();
        let plan = plan_workload_binary(&inputs(
            None,
            Some("cargo"),
            &target.join("debug").join("xtask"),
        ));
        let err = plan.existing(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cargo build"), "{err}");
        std::fs::write(target.join("debug").join(WORKLOAD_BINARY), b"elf").unwrap();
        assert_eq!(
            plan.existing(dir.path()).unwrap(),
            target.join("debug").join(WORKLOAD_BINARY)
        );
        assert!(
            BinaryPlan::Missing("x".into())
                .existing(dir.path())
                .is_err()
        );
    }
}
