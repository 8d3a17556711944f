//! The documentation against the code: every configuration key, command and option, route and
//! metric is in docs/reference.md, and the keys and commands it names exist; every `sh` block of
//! the README and docs/ parses in `sh`. The keys come from `Config`'s own serde field lists, the
//! commands from clap, the routes and metrics from the sources, so whatever is added without its
//! reference entry fails here.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use posbridge::terminal::setup::ReadError;
use serde::Deserialize;
use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, Visitor};

const CONFIGURATION_SECTION: &str = "## Configuration keys";
const COMMANDS_SECTION: &str = "## Commands";
const ROUTES_SECTION: &str = "## Routes";
const METRICS_SECTION: &str = "## Metrics";
const RELAY_SECTION: &str = "## The relay's configuration";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference() -> String {
    read(&repo_file("docs/reference.md"))
}

/// The lines of the `## …` section that starts with `heading`, up to the next `## `.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading));
    assert!(
        lines.next().is_some(),
        "docs/reference.md has no `{heading}`"
    );
    lines.take_while(|l| !l.starts_with("## ")).collect()
}

/// Every name in backticks in `text`.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// Everything in the code is documented, and everything documented is in the code.
fn check_both_ways(what: &str, in_code: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let undocumented: Vec<_> = in_code.difference(documented).collect();
    assert!(
        undocumented.is_empty(),
        "{what} missing from docs/reference.md: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(in_code).collect();
    assert!(
        unknown.is_empty(),
        "{what} in docs/reference.md that the code does not have: {unknown:?}"
    );
}

/// The keys named in the first column of the tables of `heading`'s section.
fn keys_in_tables(text: &str, heading: &str) -> BTreeSet<String> {
    section(text, heading)
        .into_iter()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(backticked)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_configuration_key_is_in_the_reference_and_no_other() {
    let in_code = configuration_keys();
    assert!(
        in_code.contains("server.tls.cert") && in_code.contains("terminals[].transport"),
        "the walk missed nested tables: {in_code:?}"
    );
    let documented = keys_in_tables(&reference(), CONFIGURATION_SECTION);
    check_both_ways("configuration keys", &in_code, &documented);
}

/// `relay.toml`'s own keys are in their section; its other tables are the daemon's (above).
#[test]
fn every_relay_key_is_in_the_reference_and_no_other() {
    let mut paths = BTreeSet::new();
    posbridge::config::RelayConfig::deserialize(KeyWalker {
        path: String::new(),
        paths: &mut paths,
    })
    .unwrap_or_else(|e| panic!("walking RelayConfig: {e}"));
    let shared = [
        "server.",
        "vtex.",
        "rate_limits.",
        "callbacks.",
        "onboarding.",
    ];
    let daemon = configuration_keys();
    let in_code: BTreeSet<String> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q.starts_with(&format!("{p}."))))
        .filter(|p| {
            let is_shared = shared.iter().any(|prefix| p.starts_with(prefix));
            assert!(
                !is_shared || daemon.contains(*p),
                "`{p}` is not the daemon's key"
            );
            !is_shared
        })
        .cloned()
        .collect();
    assert!(in_code.contains("nats.url"), "{in_code:?}");
    let documented = keys_in_tables(&reference(), RELAY_SECTION);
    check_both_ways("relay.toml keys", &in_code, &documented);
}

#[test]
fn every_command_and_option_is_in_the_reference_and_no_other_command() {
    let mut commands = Vec::new();
    walk_commands(&posbridge::cli::Cli::command(), "", &mut commands);
    assert!(
        commands
            .iter()
            .any(|c| c.path == "posbridge terminals end-of-day"),
        "the walk missed subcommands"
    );
    let text = reference();
    let lines = section(&text, COMMANDS_SECTION);
    // `### posbridge payments show`: the heading and what follows it, up to the next heading.
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in lines {
        if let Some(heading) = line.strip_prefix("### ") {
            sections.push((heading.replace('`', "").trim().to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let in_code: BTreeSet<String> = commands.iter().map(|c| c.path.clone()).collect();
    let documented: BTreeSet<String> = sections.iter().map(|(h, _)| h.clone()).collect();
    check_both_ways("commands", &in_code, &documented);

    // An option may be documented with the command that declares it, or with one above or
    // below it (`--config` with each subcommand, `--json` with its parent).
    let mut missing = Vec::new();
    for command in &commands {
        let family: String = sections
            .iter()
            .filter(|(heading, _)| {
                related(heading, &command.path) || related(&command.path, heading)
            })
            .map(|(_, body)| body.as_str())
            .collect();
        for option in &command.options {
            if !mentions(&family, option) {
                missing.push(format!("{}: {option}", command.path));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "options missing from docs/reference.md (under their command's heading): {missing:?}"
    );

    let options_in_code: BTreeSet<String> = commands
        .iter()
        .flat_map(|c| c.options.iter().filter(|o| o.starts_with("--")).cloned())
        .collect();
    let options_documented: BTreeSet<String> = sections
        .iter()
        .flat_map(|(_, body)| body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .filter(|word| word.starts_with("--") && !["--", "--help", "--version"].contains(word))
        .map(str::to_string)
        .collect();
    check_both_ways("options", &options_in_code, &options_documented);
}

/// Every route the code serves (`.route("/…"` in src/), with `{…}` for its parameters.
#[test]
fn every_route_is_in_the_reference() {
    let mut in_code = BTreeSet::new();
    for file in rust_sources(&repo_file("src")) {
        let text = read(&file);
        for after in text.split(".route(").skip(1) {
            if let Some(path) = after
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
            {
                in_code.insert(without_parameter_names(path));
            }
        }
    }
    assert!(
        in_code.contains("/payments/{}/cancellations"),
        "{in_code:?}"
    );
    let documented: BTreeSet<String> = section(&reference(), ROUTES_SECTION)
        .into_iter()
        .flat_map(backticked)
        .flat_map(str::split_whitespace)
        .filter(|word| word.starts_with('/'))
        .map(|path| without_parameter_names(path.split('?').next().unwrap_or(path)))
        .collect();
    let missing: Vec<_> = in_code.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/reference.md `{ROUTES_SECTION}`: {missing:?}"
    );
}

/// `/payments/{payment_id}/refunds` as `/payments/{}/refunds`.
fn without_parameter_names(path: &str) -> String {
    let mut out = String::new();
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push_str("{}");
            }
            '}' => in_parameter = false,
            _ if !in_parameter => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every metric the code records or sets (`counter!("posbridge_…"`, `histogram!`, `gauge`).
#[test]
fn every_metric_is_in_the_reference() {
    let mut in_code = BTreeSet::new();
    for file in rust_sources(&repo_file("src")) {
        let text = read(&file);
        for (at, _) in text.match_indices("\"posbridge_") {
            let before: String = text[..at].chars().filter(|c| !c.is_whitespace()).collect();
            if ["counter!(", "histogram!(", "gauge!(", "gauge("]
                .iter()
                .any(|call| before.ends_with(call))
            {
                let name = text[at + 1..].split('"').next().unwrap_or_default();
                in_code.insert(name.to_string());
            }
        }
    }
    assert!(
        in_code.contains("posbridge_terminal_blocked"),
        "{in_code:?}"
    );
    let documented: BTreeSet<String> = section(&reference(), METRICS_SECTION)
        .into_iter()
        .flat_map(backticked)
        .map(|metric| metric.split('{').next().unwrap_or(metric).to_string())
        .collect();
    let missing: Vec<_> = in_code.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "metrics missing from docs/reference.md `{METRICS_SECTION}`: {missing:?}"
    );
}

fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `word` stands alone somewhere in `text`: `ID` in "probe ID", not in "IDs"; `--nsu` not in
/// `--nsu-extra`.
fn mentions(text: &str, word: &str) -> bool {
    let part_of_word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(part_of_word)
            && !text[at + word.len()..]
                .chars()
                .next()
                .is_some_and(part_of_word)
    })
}

/// `ancestor` is `path` or a command above it.
fn related(ancestor: &str, path: &str) -> bool {
    path == ancestor || path.starts_with(&format!("{ancestor} "))
}

struct DocumentedCommand {
    /// `posbridge payments show`
    path: String,
    /// How each argument is written: `--config`, `ID`.
    options: Vec<String>,
}

fn walk_commands(command: &clap::Command, parent: &str, out: &mut Vec<DocumentedCommand>) {
    let path = if parent.is_empty() {
        command.get_name().to_string()
    } else {
        format!("{parent} {}", command.get_name())
    };
    let options = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !["help", "version"].contains(&a.get_id().as_str()))
        .map(|a| match a.get_long() {
            Some(long) => format!("--{long}"),
            None => a.get_value_names().map_or_else(
                || a.get_id().as_str().to_uppercase(),
                |names| names.iter().map(ToString::to_string).collect(),
            ),
        })
        .collect();
    // The root's only options are --help and --version: it has no section of its own.
    if !parent.is_empty() {
        out.push(DocumentedCommand {
            path: path.clone(),
            options,
        });
    }
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        walk_commands(sub, &path, out);
    }
}

/// Every ```sh block of the README and docs/ parses in `sh` and uses no bash-only syntax;
/// other command blocks say ```bash (checked with `bash -n`). Every fence names its language.
#[test]
fn every_shell_block_in_the_docs_parses_in_its_shell() {
    let mut checked = 0;
    for file in &documentation_files() {
        let text = read(file);
        for block in fenced_blocks(&text) {
            let at = format!("{}:{}", file.display(), block.line);
            let shell = match block.language.as_str() {
                "sh" => "sh",
                "bash" => "bash",
                "toml" | "json" | "ini" | "text" => continue,
                other => panic!(
                    "{at}: a fence must name its language (sh, bash, toml, json, ini, text), not `{other}`"
                ),
            };
            if shell == "sh" {
                for bashism in BASHISMS {
                    assert!(
                        !block.code.contains(bashism),
                        "{at}: `{bashism}` is not sh: rewrite the block for sh or mark it ```bash"
                    );
                }
            }
            let out = Command::new(shell)
                .arg("-n")
                .arg("-c")
                .arg(&block.code)
                .output()
                .unwrap_or_else(|e| panic!("{shell}: {e}"));
            assert!(
                out.status.success(),
                "{at}: does not parse in {shell}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                block.code
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} shell blocks found");
}

/// Every relative link of the README and docs/ points at a file that exists and, with a
/// `#fragment`, at one of its headings (as GitHub names them): moving a section breaks no link.
#[test]
fn every_link_between_the_docs_arrives() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in documentation_files() {
        let text = read(&file);
        let dir = file.parent().unwrap_or(Path::new("."));
        for target in text.split("](").skip(1).filter_map(|t| t.split(')').next()) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            checked += 1;
            if !linked.exists() {
                broken.push(format!("{}: {target}: no such file", file.display()));
            } else if !fragment.is_empty()
                && !read(&linked)
                    .lines()
                    .filter_map(|l| l.trim_start_matches('#').strip_prefix(' '))
                    .any(|heading| slug(heading) == fragment)
            {
                broken.push(format!("{}: {target}: no such heading", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
    assert!(checked >= 20, "only {checked} links found");
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || [' ', '-', '_'].contains(c))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn documentation_files() -> Vec<PathBuf> {
    let mut files = vec![repo_file("README.md")];
    for entry in std::fs::read_dir(repo_file("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// What `sh -n` accepts but only bash runs.
const BASHISMS: &[&str] = &[
    "[[ ",
    "=(",
    "[@]",
    "<<<",
    "function ",
    "source ",
    "$'",
    "&>",
];

struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    language: String,
    code: String,
}

fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(language)) => {
                open = Some(Block {
                    line: i + 1,
                    language: language.trim().to_string(),
                    code: String::new(),
                });
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.code.push_str(trimmed);
                block.code.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    blocks
}

/// The dotted keys of `Config`, read from the field lists serde hands its deserializer:
/// `server.listen`, `server.tls.cert`, `terminals[].transport`; tables themselves are not keys.
fn configuration_keys() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    posbridge::config::Config::deserialize(KeyWalker {
        path: String::new(),
        paths: &mut paths,
    })
    .unwrap_or_else(|e| panic!("walking Config: {e}"));
    // A `[[terminals]]` entry is read in two steps: the keys every terminal has, then the
    // rest by its protocol. Walk both, for every protocol.
    let entry = "terminals[]";
    posbridge::config::CommonTerminalKeys::deserialize(KeyWalker {
        path: entry.to_string(),
        paths: &mut paths,
    })
    .unwrap_or_else(|e| panic!("walking a terminal entry: {e}"));
    for protocol in posbridge::terminal::setup::PROTOCOLS {
        let walker = KeyWalker {
            path: entry.to_string(),
            paths: &mut paths,
        };
        match posbridge::terminal::ProtocolSettings::read(protocol, walker) {
            // The walker's sample values need not pass the protocol's checks: its keys
            // were read first.
            Ok(_) | Err(ReadError::Invalid(_)) => {}
            Err(e) => panic!("walking the `{protocol}` keys: {e}"),
        }
    }
    paths
        .iter()
        .filter(|p| {
            !paths
                .iter()
                .any(|q| q.starts_with(&format!("{p}.")) || q.starts_with(&format!("{p}[].")))
        })
        .cloned()
        .collect()
}

#[derive(Debug)]
struct WalkError(String);

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// A deserializer that answers every struct with all of its fields, recording each field's
/// dotted path, and every value with a harmless sample (a string that is also a socket
/// address, 1, false, the first enum variant, one element per list, an empty map).
struct KeyWalker<'a> {
    path: String,
    paths: &'a mut BTreeSet<String>,
}

impl KeyWalker<'_> {
    /// The walker for what is under `path` + `suffix`.
    fn child(&mut self, suffix: &str) -> KeyWalker<'_> {
        KeyWalker {
            path: format!("{}{suffix}", self.path),
            paths: &mut *self.paths,
        }
    }
}

/// Optional keys that exclude another one (`[uplink]` logs in with a `.creds` file or a user
/// and password file): recorded as keys, then left unset.
const LEFT_UNSET: &[&str] = &[
    "uplink.user",
    "uplink.password_file",
    "nats.user",
    "nats.password_file",
];

/// A string every string-like field accepts: `String`, `PathBuf`, `Secret`, `SocketAddr`.
const SAMPLE: &str = "127.0.0.1:1";

/// The sample for the field at `path`: a list of networks (`trusted_proxies`, parsed when read)
/// takes a bare address, not one with a port; `[uplink]` is checked whole when read (a NATS
/// URL, a store name, one way to log in).
fn sample_at(path: &str) -> &'static str {
    if path.ends_with("trusted_proxies[]") {
        "127.0.0.1"
    } else if path == "uplink.nats_url" || path == "nats.url" {
        "nats://127.0.0.1:1"
    } else if path == "uplink.store_id" {
        "store-1"
    } else {
        SAMPLE
    }
}

macro_rules! sample {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for KeyWalker<'_> {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WalkError> {
        Err(WalkError(format!(
            "`{}` has a self-describing type: teach tests/e2e/reference.rs its keys",
            self.path
        )))
    }

    sample! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(1), deserialize_i16 => visit_i64(1),
        deserialize_i32 => visit_i64(1), deserialize_i64 => visit_i64(1),
        deserialize_u8 => visit_u64(1), deserialize_u16 => visit_u64(1),
        deserialize_u32 => visit_u64(1), deserialize_u64 => visit_u64(1),
        deserialize_f32 => visit_f64(1.0), deserialize_f64 => visit_f64(1.0),
        deserialize_char => visit_char('a'),
        deserialize_identifier => visit_str(SAMPLE),
        deserialize_bytes => visit_bytes(SAMPLE.as_bytes()),
        deserialize_byte_buf => visit_bytes(SAMPLE.as_bytes()),
        deserialize_unit => visit_unit(), deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_str(sample_at(&self.path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_str(sample_at(&self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        if LEFT_UNSET.contains(&self.path.as_str()) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_seq(Elements {
            walker: self.child("[]"),
            left: 1,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_seq(Elements {
            walker: self.child("[]"),
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_tuple(len, visitor)
    }

    /// A table of names the user chooses (`[admin.tokens]`): the key is the table itself.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_map(de::value::MapDeserializer::<
            std::iter::Empty<(&str, &str)>,
            WalkError,
        >::new(std::iter::empty()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_map(Fields {
            walker: self,
            fields: fields.iter(),
            current: "",
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        let first = variants.first().copied().unwrap_or_default();
        visitor.visit_enum(de::value::StrDeserializer::<WalkError>::new(first))
    }
}

/// A struct's fields, each recorded as `path.field` before its value is walked.
struct Fields<'a> {
    walker: KeyWalker<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(StrDeserializer::<WalkError>::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let suffix = if self.walker.path.is_empty() {
            self.current.to_string()
        } else {
            format!(".{}", self.current)
        };
        let child = self.walker.child(&suffix);
        child.paths.insert(child.path.clone());
        seed.deserialize(child)
    }
}

/// `left` sample elements of a list, walked under `path[]`.
struct Elements<'a> {
    walker: KeyWalker<'a>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = WalkError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.walker.child("")).map(Some)
    }
}
