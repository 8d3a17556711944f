//! The relay tier (`posbridge relay`): one public Service URL for the Gateway in front of many
//! stores that only dial out (`uplink`). Built so far: the directory that routes a submitted
//! terminal serial to its store. The relay's listener and routing are not built yet.

pub mod directory;
