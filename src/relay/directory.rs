//! Which store has which terminal, as the stores announced it in the serial map (one entry per
//! store: its list of serial numbers). The relay routes a payment by the serial the Sales App
//! submits; a serial two stores claim goes to neither until a person removes it from one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv;
use tokio_util::sync::CancellationToken;

/// Where a submitted serial number leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The one store that has the terminal.
    Store(&'a str),
    /// No store announced it (the submitUrl answers 404, as a single store does).
    Unknown,
    /// Several stores claim it: refused, with an alarm naming them.
    Disputed(Vec<&'a str>),
}

/// The serial map as the relay last read it.
#[derive(Debug, Default)]
pub struct Directory {
    /// Each store's announced serials.
    stores: HashMap<String, BTreeSet<String>>,
    /// Each serial's claimants (most have one).
    serials: HashMap<String, BTreeSet<String>>,
}

impl Directory {
    /// A store's entry as it now stands: its serials, or `None` when its entry was removed.
    /// Returns the serials this change put in dispute (for the alarm).
    pub fn apply(&mut self, store_id: &str, serials: Option<Vec<String>>) -> Vec<String> {
        if let Some(old) = self.stores.remove(store_id) {
            for serial in old {
                if let Some(claimants) = self.serials.get_mut(&serial) {
                    claimants.remove(store_id);
                    if claimants.is_empty() {
                        self.serials.remove(&serial);
                    }
                }
            }
        }
        let Some(serials) = serials else {
            return Vec::new();
        };
        let serials: BTreeSet<String> = serials.into_iter().collect();
        let mut disputed = Vec::new();
        for serial in &serials {
            let claimants = self.serials.entry(serial.clone()).or_default();
            claimants.insert(store_id.to_string());
            if claimants.len() == 2 {
                disputed.push(serial.clone());
            }
        }
        self.stores.insert(store_id.to_string(), serials);
        disputed
    }

    pub fn lookup(&self, serial: &str) -> Lookup<'_> {
        match self.serials.get(serial) {
            None => Lookup::Unknown,
            Some(claimants) if claimants.len() == 1 => claimants
                .iter()
                .next()
                .map_or(Lookup::Unknown, |store| Lookup::Store(store)),
            Some(claimants) => Lookup::Disputed(claimants.iter().map(String::as_str).collect()),
        }
    }

    /// The stores that announced themselves (for the relay's status).
    pub fn stores(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }
}

/// The directory every request of one relay replica reads, kept by [`follow`].
pub type SharedDirectory = Arc<RwLock<Directory>>;

/// A serial map entry as a store writes it: its serial numbers.
fn serials_of(entry: &kv::Entry) -> Option<Vec<String>> {
    if entry.operation != kv::Operation::Put {
        return None;
    }
    match serde_json::from_slice(&entry.value) {
        Ok(serials) => Some(serials),
        Err(e) => {
            tracing::error!(store_id = %entry.key, error = %e, "a store's terminal list in the serial map cannot be read: its terminals are not routed");
            None
        }
    }
}

fn apply(directory: &SharedDirectory, store_id: &str, serials: Option<Vec<String>>) {
    log_routed(store_id, serials.as_deref());
    let disputed = match directory.write() {
        Ok(mut directory) => directory.apply(store_id, serials),
        Err(_) => return,
    };
    for serial in disputed {
        let claimants = directory
            .read()
            .map(|d| match d.lookup(&serial) {
                Lookup::Disputed(stores) => stores.join(", "),
                _ => String::new(),
            })
            .unwrap_or_default();
        tracing::error!(serial = %serial, stores = %claimants, "ALARM: two stores claim one terminal serial number: payments naming it are refused until it is removed from all but one store's configuration");
    }
}

fn log_routed(store_id: &str, serials: Option<&[String]>) {
    match serials {
        Some(serials) => {
            tracing::info!(store_id = %store_id, serials = %serials.join(", "), "a store's terminals routed");
        }
        None => tracing::info!(
            store_id,
            "a store left the serial map: its terminals are no longer routed"
        ),
    }
}

/// Keeps `directory` equal to the serial map until `stop` (`watch::follow`); `loaded` once
/// it was read whole.
pub async fn follow(
    bucket: kv::Store,
    directory: SharedDirectory,
    loaded: CancellationToken,
    stop: CancellationToken,
) {
    let shared = directory.clone();
    let reload = move |entries: Vec<kv::Entry>| {
        let mut fresh = Directory::default();
        let mut disputed = Vec::new();
        for entry in entries {
            let serials = serials_of(&entry);
            log_routed(&entry.key, serials.as_deref());
            disputed.extend(fresh.apply(&entry.key, serials));
        }
        if let Ok(mut shared) = shared.write() {
            *shared = fresh;
        }
        for serial in disputed {
            tracing::error!(serial = %serial, "ALARM: two stores claim one terminal serial number: payments naming it are refused until it is removed from all but one store's configuration");
        }
    };
    let change = move |entry: kv::Entry| apply(&directory, &entry.key, serials_of(&entry));
    super::watch::follow(bucket, "the serial map", reload, change, loaded, stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(serials: &[&str]) -> Option<Vec<String>> {
        Some(serials.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_serial_leads_to_the_store_that_announced_it_and_unknown_ones_nowhere() {
        let mut directory = Directory::default();
        assert!(directory.apply("store-1", list(&["A", "B"])).is_empty());
        assert!(directory.apply("store-2", list(&["C"])).is_empty());
        assert_eq!(directory.lookup("B"), Lookup::Store("store-1"));
        assert_eq!(directory.lookup("C"), Lookup::Store("store-2"));
        assert_eq!(directory.lookup("Z"), Lookup::Unknown);
    }

    #[test]
    fn a_serial_two_stores_claim_goes_to_neither_until_one_lets_go() {
        let mut directory = Directory::default();
        directory.apply("store-1", list(&["A", "B"]));
        assert_eq!(
            directory.apply("store-2", list(&["B"])),
            vec!["B".to_string()]
        );
        assert_eq!(
            directory.lookup("B"),
            Lookup::Disputed(vec!["store-1", "store-2"])
        );
        // Announced again (a restart): still disputed, said again.
        assert_eq!(
            directory.apply("store-2", list(&["B", "D"])),
            vec!["B".to_string()]
        );
        assert_eq!(directory.lookup("A"), Lookup::Store("store-1"));
        directory.apply("store-2", list(&["D"]));
        assert_eq!(directory.lookup("B"), Lookup::Store("store-1"));
    }

    #[test]
    fn a_store_that_drops_a_terminal_or_leaves_no_longer_receives_it() {
        let mut directory = Directory::default();
        directory.apply("store-1", list(&["A", "B"]));
        directory.apply("store-1", list(&["B"]));
        assert_eq!(directory.lookup("A"), Lookup::Unknown);
        directory.apply("store-1", None);
        assert_eq!(directory.lookup("B"), Lookup::Unknown);
        assert_eq!(directory.stores().count(), 0);
    }
}
