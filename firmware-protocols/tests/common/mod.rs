//! Access to the shared golden data (`shared/terminal-data/`), read at run
//! time. Some captures contain real-looking card numbers: tests must never
//! print raw bytes from them (compare with `assert!`, not `assert_eq!`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn data_dir() -> PathBuf {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/terminal-data/"
    ));
    assert!(
        dir.is_dir(),
        "golden test data not found at {}: the `shared` repository must be cloned beside the \
         main repository (CI always provides it)",
        dir.display()
    );
    dir.to_path_buf()
}

pub fn read_text(name: &str) -> String {
    let path = data_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

pub fn hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    assert!(text.len().is_multiple_of(2), "odd-length hex string");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn data_lines(name: &str) -> Vec<String> {
    read_text(name)
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The APDUs of `zvt-apdus-ecrterm.txt`, in file order.
pub fn ecrterm_apdus() -> Vec<Vec<u8>> {
    data_lines("zvt-apdus-ecrterm.txt")
        .iter()
        .map(|line| hex(line))
        .collect()
}

/// `(name, apdu)` from `zvt-misc-vectors.txt`.
pub fn misc_vectors() -> Vec<(String, Vec<u8>)> {
    data_lines("zvt-misc-vectors.txt")
        .iter()
        .map(|line| {
            let (name, value) = line.split_once('\t').expect("tab-separated line");
            (name.to_owned(), hex(value))
        })
        .collect()
}

pub fn misc_vector(name: &str) -> Vec<u8> {
    misc_vectors()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, bytes)| bytes)
        .unwrap_or_else(|| panic!("no misc vector {name}"))
}

/// `(file name, apdu)` for every EVerest blob.
pub fn everest_blobs() -> Vec<(String, Vec<u8>)> {
    let dir = data_dir().join("zvt-everest-blobs");
    let mut blobs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "blob"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("readable blob"))
        })
        .collect();
    blobs.sort();
    blobs
}

pub fn everest_blob(name: &str) -> Vec<u8> {
    let path = data_dir().join("zvt-everest-blobs").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// One row of `zvt-serial-frames-ecrterm.tsv`.
pub struct SerialFrame {
    pub name: String,
    pub frame: Vec<u8>,
    pub apdu: Vec<u8>,
    pub crc_ok: bool,
}

pub fn serial_frames() -> Vec<SerialFrame> {
    data_lines("zvt-serial-frames-ecrterm.tsv")
        .iter()
        .filter(|line| !line.starts_with("source_test"))
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            assert_eq!(columns.len(), 4, "four columns per frame row");
            SerialFrame {
                name: columns[0].to_owned(),
                frame: hex(columns[1]),
                apdu: hex(columns[2]),
                crc_ok: columns[3] == "True",
            }
        })
        .collect()
}

/// The nibbles of `bytes` as a string of hex digits (for "does not leak"
/// checks; never print the result).
pub fn nibble_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
