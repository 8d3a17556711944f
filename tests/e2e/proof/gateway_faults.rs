//! Gateway faults.
