//! Merchants onboarded through the configuration flow (app key and a hash of the token).

use rusqlite::{Connection, params};

use super::StoreError;

pub fn insert(c: &Connection, app_key: &str, token_hash: &str, now: i64) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO merchants (app_key, token_hash, created_at) VALUES (?1, ?2, ?3)",
        params![app_key, token_hash, now],
    )?;
    Ok(())
}

pub fn all(c: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = c.prepare("SELECT app_key, token_hash FROM merchants")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
