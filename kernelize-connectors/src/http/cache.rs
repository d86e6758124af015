//! [`ResponseCache`]: an in-memory, size-bounded LRU of answers with a time to live and
//! ETag / Last-Modified revalidation. Opt-in per request ([`Request::cached`]).
//!
//! The LRU itself is the `lru` crate; byte accounting, freshness and revalidation are
//! ours. `moka` (a concurrent cache with TTL) was the alternative rejected: its TTL is per
//! cache, not per request, and it cannot keep a stale entry for revalidation.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};
use lru::LruCache;
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};

use super::layer::{Layer, Next};
use super::request::{Body, Request, Response};

/// Bounds of a [`ResponseCache`].
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Most entries kept.
    pub max_entries: usize,
    /// Most body bytes kept, all entries together; the least recently used go first.
    pub max_bytes: usize,
    /// Largest body stored; larger answers pass through uncached.
    pub max_entry_bytes: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_entries: 1024,
            max_bytes: 64 << 20,
            max_entry_bytes: 4 << 20,
        }
    }
}

/// What the cache did for one request, counted in its [`CacheStats`] and in the
/// `kernelize_http_cache_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A fresh entry answered; nothing was sent.
    Hit,
    /// A stale entry was revalidated: the server answered 304 and the stored body served.
    Revalidated,
    /// Nothing usable was stored; the request went out.
    Miss,
}

impl CacheOutcome {
    fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Miss => "miss",
        }
    }
}

/// Counters of a [`ResponseCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from a fresh entry.
    pub hits: u64,
    /// Answered from a stale entry after a 304.
    pub revalidated: u64,
    /// Sent to the server with nothing usable stored.
    pub misses: u64,
    /// Entries pushed out to stay within the bounds.
    pub evictions: u64,
    /// Entries now stored.
    pub entries: usize,
    /// Body bytes now stored.
    pub bytes: usize,
}

struct Entry {
    response: Response,
    fresh_until: Instant,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Entry {
    fn can_revalidate(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

struct State {
    entries: LruCache<u64, Entry>,
    bytes: usize,
    stats: CacheStats,
}

/// A response cache as a layer. Put it outermost, so that a hit costs no concurrency slot,
/// no rate-limit budget and no token.
///
/// For a request marked with [`Request::cached`]: a stored answer younger than its time to
/// live is returned without a request; an older one that carries an `ETag` or a
/// `Last-Modified` is revalidated (`If-None-Match`, `If-Modified-Since`) and a 304 serves
/// the stored body; anything else goes out, and a 200 answer is stored. The server's
/// `Cache-Control` is obeyed where it asks for less: `no-store` is never stored,
/// `no-cache` is stored but revalidated every time, and `max-age` shortens the time to
/// live. A request made with [`Request::cached_if`] stores only the answers its predicate
/// accepts.
///
/// Entries are keyed by method, URL, the request's headers as they reach this layer and a
/// hash of the body (so a GraphQL query over POST can be cached). Authentication layers sit
/// below the cache and add their headers after it, so one cache must serve one identity:
/// never share a `ResponseCache` between clients with different credentials.
pub struct ResponseCache {
    settings: CacheSettings,
    state: Mutex<State>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ResponseCache {
    /// A cache within `settings`' bounds; zero entries or bytes is a config error.
    pub fn new(settings: CacheSettings) -> Result<Self> {
        let cap = NonZeroUsize::new(settings.max_entries).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "a response cache needs room for at least one entry",
            )
        })?;
        if settings.max_bytes == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "a response cache needs a byte budget above zero",
            ));
        }
        Ok(Self {
            settings,
            state: Mutex::new(State {
                entries: LruCache::new(cap),
                bytes: 0,
                stats: CacheStats::default(),
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            entries: state.entries.len(),
            bytes: state.bytes,
            ..state.stats
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.entries.clear();
        state.bytes = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves counts that are still consistent enough to
        // use: take the state back rather than poisoning every later request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, outcome: CacheOutcome) {
        let mut state = self.lock();
        match outcome {
            CacheOutcome::Hit => state.stats.hits += 1,
            CacheOutcome::Revalidated => state.stats.revalidated += 1,
            CacheOutcome::Miss => state.stats.misses += 1,
        }
        drop(state);
        metrics::counter!("kernelize_http_cache_total", "outcome" => outcome.as_str()).increment(1);
        tracing::trace!(outcome = outcome.as_str(), "http cache");
    }

    fn store(
        &self,
        key: u64,
        response: &Response,
        ttl: Duration,
        keep: Option<fn(&Response) -> bool>,
    ) {
        let rules = Directives::of(response);
        if rules.no_store
            || response.body.len() > self.settings.max_entry_bytes
            || keep.is_some_and(|keep| !keep(response))
        {
            self.remove(key);
            return;
        }
        let mut ttl = ttl;
        if rules.no_cache {
            ttl = Duration::ZERO;
        }
        if let Some(max_age) = rules.max_age {
            ttl = ttl.min(max_age);
        }
        let entry = Entry {
            response: response.clone(),
            fresh_until: Instant::now() + ttl,
            etag: response.headers.get(ETAG).cloned(),
            last_modified: response.headers.get(LAST_MODIFIED).cloned(),
        };
        if ttl.is_zero() && !entry.can_revalidate() {
            self.remove(key);
            return;
        }
        let size = entry.response.body.len();
        let mut state = self.lock();
        if let Some(old) = state.entries.pop(&key) {
            state.bytes -= old.response.body.len();
        }
        while state.bytes + size > self.settings.max_bytes
            || state.entries.len() >= self.settings.max_entries
        {
            match state.entries.pop_lru() {
                Some((_, old)) => {
                    state.bytes -= old.response.body.len();
                    state.stats.evictions += 1;
                }
                None => break,
            }
        }
        if state.bytes + size <= self.settings.max_bytes {
            state.bytes += size;
            state.entries.put(key, entry);
        }
    }

    fn remove(&self, key: u64) {
        let mut state = self.lock();
        if let Some(old) = state.entries.pop(&key) {
            state.bytes -= old.response.body.len();
        }
    }

    /// What is stored for `key`: the response when fresh, else the validators of a stale
    /// entry that has some.
    fn lookup(&self, key: u64) -> Lookup {
        let mut state = self.lock();
        match state.entries.get(&key) {
            Some(entry) if Instant::now() < entry.fresh_until => {
                Lookup::Fresh(entry.response.clone())
            }
            Some(entry) if entry.can_revalidate() => Lookup::Stale {
                etag: entry.etag.clone(),
                last_modified: entry.last_modified.clone(),
            },
            _ => Lookup::Nothing,
        }
    }

    /// After a 304: the stored answer, fresh again for `ttl` (or the new `max-age`).
    fn revalidated(&self, key: u64, not_modified: &Response, ttl: Duration) -> Option<Response> {
        let rules = Directives::of(not_modified);
        let mut ttl = if rules.no_cache { Duration::ZERO } else { ttl };
        if let Some(max_age) = rules.max_age {
            ttl = ttl.min(max_age);
        }
        let mut state = self.lock();
        let entry = state.entries.get_mut(&key)?;
        entry.fresh_until = Instant::now() + ttl;
        // RFC 9111 §4.3.4: the 304's validators and caching headers replace the stored ones.
        for name in [ETAG, LAST_MODIFIED, CACHE_CONTROL] {
            if let Some(value) = not_modified.headers.get(&name) {
                entry.response.headers.insert(name.clone(), value.clone());
            }
        }
        entry.etag = entry.response.headers.get(ETAG).cloned();
        entry.last_modified = entry.response.headers.get(LAST_MODIFIED).cloned();
        Some(entry.response.clone())
    }
}

enum Lookup {
    Fresh(Response),
    Stale {
        etag: Option<HeaderValue>,
        last_modified: Option<HeaderValue>,
    },
    Nothing,
}

/// The `Cache-Control` directives this cache obeys.
#[derive(Debug, Default)]
struct Directives {
    no_store: bool,
    no_cache: bool,
    max_age: Option<Duration>,
}

impl Directives {
    fn of(response: &Response) -> Self {
        let mut rules = Directives::default();
        for value in response.headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let directive = directive.trim().to_ascii_lowercase();
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim().to_string(), Some(a.trim().trim_matches('"'))),
                    None => (directive.clone(), None),
                };
                match (name.as_str(), arg) {
                    ("no-store", _) => rules.no_store = true,
                    ("no-cache", _) => rules.no_cache = true,
                    ("max-age", Some(secs)) => {
                        // An unreadable max-age is treated as stale (RFC 9111 §4.2.1).
                        let secs = secs.parse::<u64>().unwrap_or(0);
                        rules.max_age = Some(Duration::from_secs(secs));
                    }
                    _ => {}
                }
            }
        }
        rules
    }
}

/// The cache key: method, URL, headers as they reach the cache, and the body.
fn key_of(request: &Request) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.method.as_str().hash(&mut h);
    request.url.as_str().hash(&mut h);
    let mut headers: Vec<(&str, &[u8])> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    headers.sort_unstable();
    headers.hash(&mut h);
    match &request.body {
        Body::Empty => 0u8.hash(&mut h),
        Body::Json(value) => {
            1u8.hash(&mut h);
            value.to_string().hash(&mut h);
        }
        Body::Bytes { data, content_type } => {
            2u8.hash(&mut h);
            data.hash(&mut h);
            content_type.hash(&mut h);
        }
        Body::Multipart(parts) => {
            3u8.hash(&mut h);
            for part in parts {
                part.name.hash(&mut h);
                part.file_name.hash(&mut h);
                part.content_type.hash(&mut h);
                part.data.hash(&mut h);
            }
        }
    }
    h.finish()
}

#[async_trait]
impl Layer for ResponseCache {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let Some(ttl) = request.cache_ttl else {
            return next.run(request).await;
        };
        let key = key_of(&request);
        let keep = request.cache_if;
        match self.lookup(key) {
            Lookup::Fresh(response) => {
                self.count(CacheOutcome::Hit);
                Ok(response)
            }
            Lookup::Stale {
                etag,
                last_modified,
            } => {
                let mut conditional = request;
                if let Some(etag) = etag {
                    conditional.headers.insert(IF_NONE_MATCH, etag);
                }
                if let Some(date) = last_modified {
                    conditional.headers.insert(IF_MODIFIED_SINCE, date);
                }
                let response = next.run(conditional).await?;
                if response.status == StatusCode::NOT_MODIFIED
                    && let Some(stored) = self.revalidated(key, &response, ttl)
                {
                    self.count(CacheOutcome::Revalidated);
                    return Ok(stored);
                }
                self.count(CacheOutcome::Miss);
                if response.status == StatusCode::OK {
                    self.store(key, &response, ttl, keep);
                } else {
                    self.remove(key);
                }
                Ok(response)
            }
            Lookup::Nothing => {
                self.count(CacheOutcome::Miss);
                let response = next.run(request).await?;
                if response.status == StatusCode::OK {
                    self.store(key, &response, ttl, keep);
                }
                Ok(response)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use reqwest::header::HeaderMap;

    fn response(cache_control: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(cc) = cache_control {
            headers.insert(CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        }
        Response {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::from_static(b"body"),
            url: url::Url::parse("http://127.0.0.1/").unwrap(),
        }
    }

    #[test]
    fn cache_control_directives_are_read() {
        let d = Directives::of(&response(Some("public, max-age=60")));
        assert_eq!(d.max_age, Some(Duration::from_secs(60)));
        assert!(!d.no_store && !d.no_cache);
        let d = Directives::of(&response(Some("No-Store")));
        assert!(d.no_store);
        let d = Directives::of(&response(Some("no-cache, max-age=bogus")));
        assert!(d.no_cache);
        assert_eq!(d.max_age, Some(Duration::ZERO));
    }

    #[test]
    fn the_byte_budget_evicts_the_least_recently_used() {
        let cache = ResponseCache::new(CacheSettings {
            max_entries: 10,
            max_bytes: 10,
            max_entry_bytes: 10,
        })
        .unwrap();
        let ttl = Duration::from_secs(60);
        cache.store(1, &response(None), ttl, None);
        cache.store(2, &response(None), ttl, None);
        // Touch 1, so that 2 is the least recently used when 3 needs room.
        assert!(matches!(cache.lookup(1), Lookup::Fresh(_)));
        cache.store(3, &response(None), ttl, None);
        assert!(matches!(cache.lookup(2), Lookup::Nothing));
        assert!(matches!(cache.lookup(1), Lookup::Fresh(_)));
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.bytes, stats.evictions), (2, 8, 1));
    }

    #[test]
    fn no_store_and_oversized_answers_are_not_kept() {
        let cache = ResponseCache::new(CacheSettings {
            max_entries: 10,
            max_bytes: 100,
            max_entry_bytes: 3,
        })
        .unwrap();
        cache.store(1, &response(None), Duration::from_secs(60), None);
        assert_eq!(
            cache.stats().entries,
            0,
            "4 bytes is over the 3-byte entry limit"
        );
        let cache = ResponseCache::new(CacheSettings::default()).unwrap();
        cache.store(
            1,
            &response(Some("no-store")),
            Duration::from_secs(60),
            None,
        );
        assert_eq!(cache.stats().entries, 0);
        cache.store(
            1,
            &response(None),
            Duration::from_secs(60),
            Some(|r| r.body.is_empty()),
        );
        assert_eq!(cache.stats().entries, 0);
        assert!(
            ResponseCache::new(CacheSettings {
                max_entries: 0,
                ..CacheSettings::default()
            })
            .is_err()
        );
    }
}
