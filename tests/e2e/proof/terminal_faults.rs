//! Terminal faults, on every driver that can simulate them.
