//! The Debian package on this machine, for real: build it with cargo-deb, install it with
//! dpkg, check files, owners and modes, see the unedited install refuse to start, configure it
//! and start the daemon from it, upgrade it with the config kept, remove it (state kept) and
//! purge it (state gone). That test runs only under `CI=true` or `POSBRIDGE_TEST_DPKG=1`
//! (otherwise it is `ignored`), and then needs root, dpkg and cargo-deb or fails. The packaged
//! configuration itself is checked everywhere.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The packaged configuration's commented simulator example (for a demo box).
const SIMULATOR_EXAMPLE: &str = "# [[terminals]]\n# id = \"demo-1\"\n# serial_number = \"SIM-0001\"\n# protocol = \"simulator\"\n";

/// The configuration the package installs as /etc/posbridge/posbridge.toml.
fn packaged_config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/posbridge-debian.toml"
    ))
    .expect("packaged config")
}

/// What store IT does to the packaged configuration: its VTEX keys instead of the
/// placeholders, and the simulator example uncommented (refused until it is allowed).
fn with_keys_and_simulator(packaged: &str) -> String {
    assert!(
        packaged.contains(SIMULATOR_EXAMPLE),
        "the simulator example:\n{packaged}"
    );
    let simulator: String = SIMULATOR_EXAMPLE
        .lines()
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    packaged
        .lines()
        .map(|line| match line.split_once(" = \"CHANGE-ME\"") {
            Some((key, _)) => format!("{key} = \"store-{key}-5d2e\"\n"),
            None => format!("{line}\n"),
        })
        .collect::<String>()
        .replace(SIMULATOR_EXAMPLE, &simulator)
}

/// A demo box: the simulator allowed.
fn allow_simulator(config: &str) -> String {
    assert!(config.contains("[pos]\n"), "{config}");
    config.replacen("[pos]\n", "[pos]\nallow_simulator = true\n", 1)
}

/// The 1-based line of `text` that starts with `prefix`.
fn line_starting(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with `{prefix}`"))
        + 1
}

/// Runs a `posbridge run` that must refuse to start: its exit status and output. A daemon that
/// announces a listener instead fails the test (it would take payments).
fn refused_to_start(mut command: Command) -> Output {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let file = |path: &Path| std::fs::File::create(path).expect("output file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file(&stdout_path))
        .stderr(file(&stderr_path))
        .spawn()
        .expect("start posbridge run");
    let read = |path: &Path| std::fs::read(path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        let stdout = read(&stdout_path);
        if String::from_utf8_lossy(&stdout).contains("listening on") || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "it started instead of refusing:\n{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&read(&stderr_path))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    }
}

/// Out of the box nothing can be approved: `check-config`, `run` and `doctor` refuse the
/// packaged configuration, naming the placeholder key and its line, until store IT sets the
/// VTEX keys; a simulator terminal is refused until it is allowed.
#[test]
fn the_packaged_config_refuses_to_run_until_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let posbridge = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run posbridge")
    };
    // Only where it runs changes: a free port, a database in the test's directory.
    let packaged = packaged_config()
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "/var/lib/posbridge/posbridge.db",
            &dir.path().join("posbridge.db").display().to_string(),
        );
    let path = dir.path().join("posbridge.toml");
    let config = path.to_str().expect("utf8");
    std::fs::write(&path, &packaged).expect("write");
    let placeholder = format!(
        "posbridge.toml:{}: vtex.app_key: is a placeholder: set your VTEX credentials",
        line_starting(&packaged, "app_key = ")
    );

    let out = posbridge(&["check-config", "--config", config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "check-config: {stderr}");
    assert!(stderr.contains(&placeholder), "check-config: {stderr}");

    let mut run = Command::new(env!("CARGO_BIN_EXE_posbridge"));
    run.args(["run", "--config", config])
        .current_dir(dir.path());
    let out = refused_to_start(run);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "run: {stderr}");
    assert!(stderr.contains(&placeholder), "run: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = posbridge(&["doctor", "--config", config]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "doctor: {report}");
    assert!(
        report.contains("FAIL  configuration") && report.contains(&placeholder),
        "doctor: {report}"
    );

    // The keys set and the simulator example uncommented: refused at the simulator's line.
    let configured = with_keys_and_simulator(&packaged);
    std::fs::write(&path, &configured).expect("write");
    let out = posbridge(&["check-config", "--config", config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "simulator: {stderr}");
    let simulator = format!(
        "posbridge.toml:{}: terminals[0].protocol:",
        line_starting(&configured, "protocol = \"simulator\"")
    );
    assert!(
        stderr.contains(&simulator) && stderr.contains("allow_simulator = true"),
        "simulator: {stderr}"
    );

    // Allowed: a demo box.
    std::fs::write(&path, allow_simulator(&configured)).expect("write");
    let out = posbridge(&["check-config", "--config", config]);
    assert!(
        out.status.success(),
        "demo box: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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

/// `posbridge run` as the unit runs it: the installed binary and configuration, as the service
/// user, in its state directory.
fn installed_daemon() -> Command {
    let id = |flag: &str| -> u32 {
        String::from_utf8_lossy(&run("id", &[flag, "posbridge"]).stdout)
            .trim()
            .parse()
            .expect("id")
    };
    // Directly as the service user (not through runuser, whose child would outlive a kill).
    let mut command = Command::new("/usr/bin/posbridge");
    command
        .args(["run", "--config", "/etc/posbridge/posbridge.toml"])
        .uid(id("-u"))
        .gid(id("-g"))
        .current_dir("/var/lib/posbridge");
    command
}

/// Starts the installed daemon until it says it listens, then stops it.
fn start_installed_daemon() {
    let mut child = installed_daemon()
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

/// Installs, upgrades and purges the package system-wide: only where asked (build.rs sets the
/// cfg under `CI=true` or `POSBRIDGE_TEST_DPKG=1`), elsewhere `ignored` in the summary.
#[test]
#[cfg_attr(
    not(posbridge_dpkg_allowed),
    ignore = "runs dpkg -i system-wide: set POSBRIDGE_TEST_DPKG=1 (CI sets CI=true)"
)]
fn debian_package_installs_upgrades_removes_and_purges() {
    // `--include-ignored` alone is no consent to install system-wide.
    let asked = std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("POSBRIDGE_TEST_DPKG").as_deref() == Ok("1");
    assert!(
        asked,
        "this test installs the package system-wide: set POSBRIDGE_TEST_DPKG=1 to run it"
    );
    if let Some(why) = tool_missing() {
        panic!("the packaging test cannot run here: {why}");
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
    // The relay tier's unit and examples, for a partner's server; never enabled by the package.
    assert!(Path::new("/lib/systemd/system/posbridge-relay.service").exists());
    for example in [
        "relay.toml",
        "nats-server.conf",
        "nats-server-posbridge.conf",
    ] {
        assert!(
            Path::new("/usr/share/doc/posbridge/examples")
                .join(example)
                .exists()
        );
    }
    // The guides beside the README, where its links and the unit's Documentation= point.
    for doc in [
        "README.md",
        "docs/operator-guide.md",
        "docs/integrator-guide.md",
        "docs/reference.md",
        "docs/status-page.png",
    ] {
        let installed = Path::new("/usr/share/doc/posbridge").join(doc);
        assert!(installed.exists(), "{} is installed", installed.display());
    }
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
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        for unit in ["posbridge.service", "posbridge-relay.service"] {
            let verify = Command::new("systemd-analyze")
                .arg("verify")
                .arg(Path::new("/lib/systemd/system").join(unit))
                .output()
                .expect("verify");
            let text = String::from_utf8_lossy(&verify.stderr).to_string()
                + &String::from_utf8_lossy(&verify.stdout);
            assert!(
                verify.status.success(),
                "systemd-analyze verify {unit}: {text}"
            );
        }
    }

    // Unedited, it takes no payment: the service refuses to start (exit 64, which systemd
    // does not restart), saying which key to set.
    let installed = std::fs::read_to_string("/etc/posbridge/posbridge.toml").expect("config");
    let placeholder = format!(
        "/etc/posbridge/posbridge.toml:{}: vtex.app_key: is a placeholder",
        line_starting(&installed, "app_key = ")
    );
    let check = Command::new("/usr/bin/posbridge")
        .args(["check-config", "--config", "/etc/posbridge/posbridge.toml"])
        .output()
        .expect("check-config");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(64), "check-config: {stderr}");
    assert!(stderr.contains(&placeholder), "check-config: {stderr}");
    let refused = refused_to_start(installed_daemon());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(64), "run: {stderr}");
    assert!(stderr.contains(&placeholder), "run: {stderr}");
    let doctor = Command::new("/usr/bin/posbridge")
        .args(["doctor", "--config", "/etc/posbridge/posbridge.toml"])
        .output()
        .expect("doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "doctor: {report}");
    assert!(report.contains("FAIL  configuration"), "doctor: {report}");

    // Store IT edits the config (the VTEX keys, a terminal: the simulator, allowed, on a demo
    // box); the daemon creates its database.
    std::fs::write(
        "/etc/posbridge/posbridge.toml",
        allow_simulator(&with_keys_and_simulator(&installed))
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\""),
    )
    .expect("edit");
    run(
        "/usr/bin/posbridge",
        &["check-config", "--config", "/etc/posbridge/posbridge.toml"],
    );
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
