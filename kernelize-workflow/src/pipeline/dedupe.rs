//! Where a dedupe stage keeps the keys it has seen.
//!
//! A key goes through two steps. When an event reaches the stage, its key is *claimed* for a
//! lease: a claim nobody else holds is [`KeyClaim::New`] and the event goes on; a key
//! processed within the window is [`KeyClaim::Done`] and the event is dropped as a
//! duplicate; a key another event holds right now is [`KeyClaim::Pending`] and the event is
//! handed back to its source to come again later (never dropped: the holder may still
//! fail). When the event is settled the claim is *settled*: remembered for the window when
//! a sink wrote it, forgotten when it was dead-lettered or will be delivered again, so that a
//! replay or a redelivery is not taken for a duplicate.
//!
//! A process that dies holding claims leaves them until their lease ends; the source
//! redelivers those events meanwhile and they wait. A process that dies after a sink wrote
//! an event and before the key was remembered lets the redelivered event through once more:
//! end-to-end exactly-once needs an idempotent sink for that window (an upsert on the same
//! key), which is why the SQL sinks offer `mode: upsert`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::{Call, Error, ErrorKind, Payload, PluginManager, Result};
use serde_json::{Value, json};

use crate::store::{KeyClaim, Store};

/// Keeps de-duplication keys; see the [module](self) docs.
#[async_trait]
pub trait DedupeStore: Send + Sync + 'static {
    /// Claims `key` of `scope` for `owner` for `lease`.
    async fn claim(&self, scope: &str, key: &str, owner: &str, lease: Duration)
    -> Result<KeyClaim>;

    /// Remembers `key` as processed for `window` (`Some`) or forgets `owner`'s claim (`None`).
    async fn settle(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()>;

    /// Forgets the expired keys of `scope`, for stores that do not expire them on their own;
    /// the dedupe stage calls it about once a minute.
    async fn purge(&self, scope: &str) -> Result<u64> {
        let _ = scope;
        Ok(0)
    }
}

/// Keys in the process's memory, at most `max_keys` of them (the oldest go first when it is
/// full). Nothing survives the process: use [`StoreDedupe`] or [`PluginDedupe`] for that.
pub struct MemoryDedupe {
    inner: Mutex<MemoryKeys>,
    max_keys: usize,
}

#[derive(Default)]
struct MemoryKeys {
    keys: HashMap<(String, String), (String, bool, Instant)>,
    order: VecDeque<(Instant, (String, String))>,
}

impl std::fmt::Debug for MemoryDedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDedupe")
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl MemoryDedupe {
    /// Holds at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        MemoryDedupe {
            inner: Mutex::new(MemoryKeys::default()),
            max_keys: max_keys.max(1),
        }
    }
}

impl Default for MemoryDedupe {
    /// At most a million keys.
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl MemoryKeys {
    fn put(&mut self, id: (String, String), value: (String, bool, Instant), max: usize) {
        self.order.push_back((value.2, id.clone()));
        self.keys.insert(id, value);
        let now = Instant::now();
        while self.keys.len() > max
            || self.order.len() > 4 * max
            || self.order.front().is_some_and(|(t, _)| *t < now)
        {
            let Some((at, old)) = self.order.pop_front() else {
                break;
            };
            // Only the entry this place in the queue was made for; a later put of the same
            // key has its own place.
            if self.keys.get(&old).is_some_and(|v| v.2 == at) {
                self.keys.remove(&old);
            }
        }
    }
}

#[async_trait]
impl DedupeStore for MemoryDedupe {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<KeyClaim> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = (scope.to_string(), key.to_string());
        let now = Instant::now();
        match inner.keys.get(&id) {
            Some((_, true, until)) if *until >= now => Ok(KeyClaim::Done),
            Some((_, false, until)) if *until >= now => Ok(KeyClaim::Pending),
            _ => {
                inner.put(id, (owner.to_string(), false, now + lease), self.max_keys);
                Ok(KeyClaim::New)
            }
        }
    }

    async fn settle(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = (scope.to_string(), key.to_string());
        if inner.keys.get(&id).is_none_or(|(o, _, _)| o != owner) {
            return Ok(());
        }
        match window {
            Some(w) => {
                let max = self.max_keys;
                inner.put(id, (owner.to_string(), true, Instant::now() + w), max);
            }
            None => {
                inner.keys.remove(&id);
            }
        }
        Ok(())
    }
}

/// Keys in a workflow [`Store`]: SQLite for one machine, PostgreSQL shared by every process
/// of a pipeline. Expired keys are purged by the store's `purge_keys`, which the dedupe
/// stage calls now and then.
#[derive(Clone)]
pub struct StoreDedupe(pub Arc<dyn Store>);

impl std::fmt::Debug for StoreDedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreDedupe")
            .field(&self.0.backend())
            .finish()
    }
}

#[async_trait]
impl DedupeStore for StoreDedupe {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<KeyClaim> {
        self.0.claim_key(scope, key, owner, lease).await
    }

    async fn settle(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()> {
        self.0.settle_key(scope, key, owner, window).await
    }

    async fn purge(&self, scope: &str) -> Result<u64> {
        self.0.purge_keys(scope).await
    }
}

/// Keys in a cache plugin with `get` `{key}` and `set` `{key, value, ttl, only_if_absent}`
/// actions (`redis-connector`'s). The value is `{"owner", "done"}`; a claim is one `SET NX`
/// with the lease as its time to live, so it is atomic; settling reads, then writes.
pub struct PluginDedupe {
    manager: PluginManager,
    plugin: String,
}

impl std::fmt::Debug for PluginDedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PluginDedupe").field(&self.plugin).finish()
    }
}

impl PluginDedupe {
    /// Keys kept by the active plugin (or instance) `plugin`.
    pub fn new(manager: PluginManager, plugin: impl Into<String>) -> Self {
        PluginDedupe {
            manager,
            plugin: plugin.into(),
        }
    }

    fn name(scope: &str, key: &str) -> String {
        format!("dedupe:{scope}:{key}")
    }

    async fn get(&self, name: &str) -> Result<Value> {
        self.manager
            .call(
                &self.plugin,
                Call::new("get", Payload::json(json!({"key": name}))),
            )
            .await?
            .into_json()
    }

    async fn set(
        &self,
        name: &str,
        value: Value,
        ttl: Duration,
        only_if_absent: bool,
    ) -> Result<bool> {
        let input = json!({
            "key": name,
            "value": value,
            "ttl": format!("{}ms", ttl.as_millis().max(1)),
            "only_if_absent": only_if_absent,
        });
        let out = self
            .manager
            .call(&self.plugin, Call::new("set", Payload::json(input)))
            .await?
            .into_json()?;
        Ok(out.get("stored").and_then(Value::as_bool).unwrap_or(false))
    }
}

#[async_trait]
impl DedupeStore for PluginDedupe {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<KeyClaim> {
        let name = Self::name(scope, key);
        if self
            .set(&name, json!({"owner": owner, "done": false}), lease, true)
            .await?
        {
            return Ok(KeyClaim::New);
        }
        let held = self.get(&name).await?;
        Ok(match held.get("done").and_then(Value::as_bool) {
            Some(true) => KeyClaim::Done,
            Some(false) => KeyClaim::Pending,
            // Gone between the two calls (expired): take it.
            None if self
                .set(&name, json!({"owner": owner, "done": false}), lease, true)
                .await? =>
            {
                KeyClaim::New
            }
            None => KeyClaim::Pending,
        })
    }

    async fn settle(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()> {
        let name = Self::name(scope, key);
        let held = self.get(&name).await?;
        if held.get("owner").and_then(Value::as_str) != Some(owner) {
            return Ok(());
        }
        match window {
            Some(w) => {
                self.set(&name, json!({"owner": owner, "done": true}), w, false)
                    .await?;
            }
            None => {
                self.manager
                    .call(
                        &self.plugin,
                        Call::new("delete", Payload::json(json!({"keys": [name]}))),
                    )
                    .await
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Dependency,
                            format!("could not release dedupe key `{key}`: {e}"),
                        )
                    })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_new_then_pending_then_done_and_a_release_frees_it() -> Result<()> {
        let store = MemoryDedupe::new(100);
        let lease = Duration::from_secs(60);
        assert_eq!(store.claim("p", "k", "a", lease).await?, KeyClaim::New);
        assert_eq!(store.claim("p", "k", "b", lease).await?, KeyClaim::Pending);
        store.settle("p", "k", "b", Some(lease)).await?; // not b's claim: no effect
        assert_eq!(store.claim("p", "k", "b", lease).await?, KeyClaim::Pending);
        store.settle("p", "k", "a", Some(lease)).await?;
        assert_eq!(store.claim("p", "k", "b", lease).await?, KeyClaim::Done);
        assert_eq!(store.claim("other", "k", "b", lease).await?, KeyClaim::New);
        store.settle("other", "k", "b", None).await?;
        assert_eq!(store.claim("other", "k", "c", lease).await?, KeyClaim::New);
        Ok(())
    }

    #[tokio::test]
    async fn expired_claims_and_windows_end() -> Result<()> {
        let store = MemoryDedupe::new(100);
        let short = Duration::from_millis(20);
        assert_eq!(store.claim("p", "k", "a", short).await?, KeyClaim::New);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.claim("p", "k", "b", short).await?, KeyClaim::New);
        store.settle("p", "k", "b", Some(short)).await?;
        assert_eq!(store.claim("p", "k", "c", short).await?, KeyClaim::Done);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.claim("p", "k", "c", short).await?, KeyClaim::New);
        Ok(())
    }

    #[tokio::test]
    async fn memory_holds_at_most_max_keys() -> Result<()> {
        let store = MemoryDedupe::new(10);
        let lease = Duration::from_secs(60);
        for i in 0..100 {
            store.claim("p", &i.to_string(), "a", lease).await?;
        }
        let held = store
            .inner
            .lock()
            .map(|i| i.keys.len())
            .unwrap_or(usize::MAX);
        assert_eq!(held, 10);
        // The newest are kept.
        assert_eq!(store.claim("p", "99", "b", lease).await?, KeyClaim::Pending);
        assert_eq!(store.claim("p", "0", "b", lease).await?, KeyClaim::New);
        Ok(())
    }
}
