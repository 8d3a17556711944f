//! The Debian package on this machine, for real: build it with cargo-deb, install it with
//! dpkg, check files, owners and modes, start the daemon from it, upgrade it with the config
//! kept, remove it (state kept) and purge it (state gone). It needs root, dpkg and cargo-deb:
//! without them it is skipped locally and fails in CI.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tool_missing() -> Option<String> {
    let ok = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok("id", &["-u"]) || String::from_utf8_lossy(&run("id", &["-u"]).stdout).trim() != "0" {
        return Some("not root".into());
    }
    for (program, args) in [
        ("dpkg", &["--version"][..]),
        ("cargo", &["deb", "--version"][..]),
        ("useradd", &["--help"][..]),
    ] {
        if !ok(program, args) {
            return Some(format!("`{program}` is missing"));
        }
    }
    None
}

fn owner_group_mode(path: &str) -> (String, String, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |id: u32, db: &str| {
        let out = run("getent", &[db, &id.to_string()]);
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    (
        name(meta.uid(), "passwd"),
        name(meta.gid(), "group"),
        meta.permissions().mode() & 0o7777,
    )
}

/// Starts the installed daemon as the service user until it says it listens, then stops it.
fn start_installed_daemon() {
    let id = |flag: &str| -> u32 {
        String::from_utf8_lossy(&run("id", &[flag, "posbridge"]).stdout)
            .trim()
            .parse()
            .expect("id")
    };
    // Directly as the service user (not through runuser, whose child would outlive a kill).
    let mut child = Command::new("/usr/bin/posbridge")
        .args(["run", "--config", "/etc/posbridge/posbridge.toml"])
        .uid(id("-u"))
        .gid(id("-g"))
        .current_dir("/var/lib/posbridge")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the installed daemon");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on http://") {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    assert!(started.is_ok(), "the installed daemon did not start");
}

#[test]
fn debian_package_installs_upgrades_removes_and_purges() {
    if let Some(why) = tool_missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "packaging test cannot run in CI: {why}"
        );
        eprintln!("SKIPPED debian_package_installs_upgrades_removes_and_purges: {why}");
        return;
    }
    let repo = env!("CARGO_MANIFEST_DIR");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let v1 = out_dir.path().join("posbridge_v1.deb");
    let v2 = out_dir.path().join("posbridge_v2.deb");
    // A target dir of its own: this test runs while `cargo test` owns the main one.
    let deb_target = format!("{repo}/target/deb");
    let cargo_deb = |args: &[&str]| {
        let out = Command::new("cargo")
            .arg("deb")
            .args(args)
            .current_dir(repo)
            .env("CARGO_TARGET_DIR", &deb_target)
            .output()
            .expect("cargo deb");
        assert!(
            out.status.success(),
            "cargo deb {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cargo_deb(&["--output", v1.to_str().expect("utf8")]);
    cargo_deb(&[
        "--no-build",
        "--deb-revision",
        "2",
        "--output",
        v2.to_str().expect("utf8"),
    ]);

    let _ = Command::new("dpkg").args(["--purge", "posbridge"]).output();
    run("dpkg", &["-i", v1.to_str().expect("utf8")]);

    // Files, owners, modes.
    assert_eq!(
        owner_group_mode("/usr/bin/posbridge"),
        ("root".into(), "root".into(), 0o755)
    );
    assert_eq!(
        owner_group_mode("/etc/posbridge/posbridge.toml"),
        ("root".into(), "posbridge".into(), 0o640)
    );
    assert_eq!(
        owner_group_mode("/var/lib/posbridge"),
        ("posbridge".into(), "posbridge".into(), 0o750)
    );
    assert!(Path::new("/lib/systemd/system/posbridge.service").exists());
    assert!(Path::new("/usr/share/doc/posbridge/examples/60-posbridge-terminals.rules").exists());
    let groups = String::from_utf8_lossy(&run("id", &["-nG", "posbridge"]).stdout).to_string();
    assert!(
        groups.split_whitespace().any(|g| g == "dialout"),
        "posbridge is in dialout: {groups}"
    );
    let conffiles = String::from_utf8_lossy(
        &run(
            "dpkg-query",
            &["--showformat=${Conffiles}", "--show", "posbridge"],
        )
        .stdout,
    )
    .to_string();
    assert!(
        conffiles.contains("/etc/posbridge/posbridge.toml"),
        "a conffile: {conffiles}"
    );
    let version =
        String::from_utf8_lossy(&run("/usr/bin/posbridge", &["--version"]).stdout).to_string();
    assert!(
        version.contains("commit") && version.contains("built"),
        "{version}"
    );
    run(
        "/usr/bin/posbridge",
        &["check-config", "--config", "/etc/posbridge/posbridge.toml"],
    );
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let verify = Command::new("systemd-analyze")
            .args(["verify", "/lib/systemd/system/posbridge.service"])
            .output()
            .expect("verify");
        let text = String::from_utf8_lossy(&verify.stderr).to_string()
            + &String::from_utf8_lossy(&verify.stdout);
        assert!(verify.status.success(), "systemd-analyze verify: {text}");
    }

    // Store IT edits the config; the daemon creates its database.
    let config = std::fs::read_to_string("/etc/posbridge/posbridge.toml").expect("config");
    std::fs::write(
        "/etc/posbridge/posbridge.toml",
        config.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\""),
    )
    .expect("edit");
    start_installed_daemon();
    assert!(Path::new("/var/lib/posbridge/posbridge.db").exists());

    // Upgrade: the edited config is kept, the database stays and still opens.
    run("dpkg", &["-i", v2.to_str().expect("utf8")]);
    let status = String::from_utf8_lossy(
        &run(
            "dpkg-query",
            &["--showformat=${Version}", "--show", "posbridge"],
        )
        .stdout,
    )
    .to_string();
    assert!(status.ends_with("-2"), "upgraded: {status}");
    assert!(
        std::fs::read_to_string("/etc/posbridge/posbridge.toml")
            .expect("config")
            .contains("127.0.0.1:0"),
        "config kept"
    );
    assert_eq!(
        owner_group_mode("/etc/posbridge/posbridge.toml"),
        ("root".into(), "posbridge".into(), 0o640)
    );
    start_installed_daemon();

    // Remove keeps state and config; purge removes both and the user.
    run("dpkg", &["-r", "posbridge"]);
    assert!(!Path::new("/usr/bin/posbridge").exists());
    assert!(
        Path::new("/var/lib/posbridge/posbridge.db").exists(),
        "remove keeps the data"
    );
    run("dpkg", &["--purge", "posbridge"]);
    assert!(
        !Path::new("/var/lib/posbridge").exists(),
        "purge removes the data"
    );
    assert!(!Path::new("/etc/posbridge").exists());
    assert!(
        !Command::new("getent")
            .args(["passwd", "posbridge"])
            .status()
            .expect("getent")
            .success()
    );
}
