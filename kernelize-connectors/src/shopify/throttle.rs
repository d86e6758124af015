//! Shopify's two throttles, as pieces of the client stack: [`CallLimitPacer`] (a layer that
//! paces REST calls by the leaky bucket's `X-Shopify-Shop-Api-Call-Limit`),
//! [`ThrottledAsRefusal`] (a layer that reports a THROTTLED GraphQL answer as the 429 it
//! is) and [`retry_verdict`] (the retry classification that waits out a GraphQL throttle for
//! as long as the cost extension says).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::Result;
use serde_json::Value;

use crate::http::{Layer, Next, Request, Response, StatusCode, Verdict, default_verdict};

/// The REST rate-limit header: `used/size` of the shop's leaky bucket.
pub const CALL_LIMIT_HEADER: &str = "x-shopify-shop-api-call-limit";

/// The longest wait the GraphQL classification asks for; a throttle needing more (a
/// query costing more than the bucket holds) is left to the retry policy's
/// `max_retry_after`.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(120);

/// Paces REST calls so that the shop's leaky bucket does not overflow.
///
/// Each answer's `X-Shopify-Shop-Api-Call-Limit: used/size` says how full the bucket is;
/// the pacer drains that figure at `leak_per_second` and, before a request, waits until
/// the bucket has more than `reserve` free slots (counting the requests it let through
/// since). It is a layer inside the retry layer, so every attempt is paced; a 429 that
/// still comes (other apps share the bucket) is waited out by the retry layer.
#[derive(Debug)]
pub struct CallLimitPacer {
    leak_per_second: f64,
    reserve: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Slots in use at `at`, as last reported and counted since.
    level: f64,
    /// The bucket's size; unknown until the first answer.
    size: Option<f64>,
    /// When `level` was true (may lie in the future while a request waits its turn).
    at: Instant,
}

impl CallLimitPacer {
    /// A pacer for a bucket draining `leak_per_second`, keeping `reserve` slots free.
    pub fn new(leak_per_second: f64, reserve: u32) -> Self {
        Self {
            leak_per_second: if leak_per_second > 0.0 {
                leak_per_second
            } else {
                2.0
            },
            reserve: f64::from(reserve),
            bucket: Mutex::new(Bucket {
                level: 0.0,
                size: None,
                at: Instant::now(),
            }),
        }
    }

    /// How long the next request must wait, counting it in the bucket.
    fn reserve_slot(&self) -> Duration {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let base = bucket.at.max(now);
        let drained =
            base.saturating_duration_since(bucket.at).as_secs_f64() * self.leak_per_second;
        let level = (bucket.level - drained).max(0.0);
        let Some(size) = bucket.size else {
            return Duration::ZERO;
        };
        // The level the bucket may be at when the request leaves, so that it has room.
        let target = (size - self.reserve - 1.0).max(0.0);
        let extra = ((level - target).max(0.0)) / self.leak_per_second;
        let start = base + Duration::from_secs_f64(extra);
        bucket.level = level.min(target) + 1.0;
        bucket.at = start;
        start.saturating_duration_since(now)
    }

    /// Takes the server's figure from an answer.
    fn observe(&self, response: &Response) {
        let Some((used, size)) = response
            .header(CALL_LIMIT_HEADER)
            .and_then(parse_call_limit)
        else {
            return;
        };
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        bucket.size = Some(size);
        // Requests that waited their turn after this one still count.
        let queued = if bucket.at > now {
            bucket.at.duration_since(now).as_secs_f64() * self.leak_per_second
        } else {
            0.0
        };
        bucket.level = used + queued;
        bucket.at = now.max(bucket.at);
    }
}

/// `32/40` as (32, 40).
pub fn parse_call_limit(value: &str) -> Option<(f64, f64)> {
    let (used, size) = value.trim().split_once('/')?;
    let used: f64 = used.trim().parse().ok()?;
    let size: f64 = size.trim().parse().ok()?;
    (size > 0.0 && used >= 0.0).then_some((used, size))
}

#[async_trait]
impl Layer for CallLimitPacer {
    fn name(&self) -> &'static str {
        "shopify-call-limit"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        if is_graphql(&request.url) {
            return next.run(request).await;
        }
        let wait = self.reserve_slot();
        if !wait.is_zero() {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "shopify: pacing for the REST leaky bucket"
            );
            tokio::time::sleep(wait).await;
        }
        let response = next.run(request).await?;
        self.observe(&response);
        Ok(response)
    }
}

/// Reports a GraphQL answer whose `errors` say `THROTTLED` as a 429, whatever status it
/// came with (sources disagree between 200 and 429).
///
/// Shopify checks a query's requested cost against the bucket before running it, so a
/// throttled operation — a mutation too — was refused without effect; 429 tells the retry
/// layer exactly that, and it retries the request whatever its method. Put it inside the
/// retry layer.
#[derive(Debug, Default)]
pub struct ThrottledAsRefusal;

#[async_trait]
impl Layer for ThrottledAsRefusal {
    fn name(&self) -> &'static str {
        "shopify-graphql-throttle"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let graphql = is_graphql(&request.url);
        let mut response = next.run(request).await?;
        if graphql && response.status == StatusCode::OK && throttle_wait(&response.body).is_some() {
            response.status = StatusCode::TOO_MANY_REQUESTS;
        }
        Ok(response)
    }
}

/// The retry classification of the Shopify client: a GraphQL answer that is THROTTLED
/// (status 200 or 429) is retried after `(requestedQueryCost − currentlyAvailable) /
/// restoreRate` seconds; everything else as [`default_verdict`] (429 and 503 after their
/// `Retry-After`).
pub fn retry_verdict(response: &Response) -> Verdict {
    let status = response.status.as_u16();
    if (status == 200 || status == 429)
        && is_graphql(&response.url)
        && let Some(wait) = throttle_wait(&response.body)
    {
        return Verdict::Retry { after: Some(wait) };
    }
    default_verdict(response)
}

/// Whether a URL is the GraphQL endpoint.
pub(crate) fn is_graphql(url: &url::Url) -> bool {
    url.path().ends_with("/graphql.json")
}

/// When a GraphQL body says THROTTLED: how long until the bucket holds the requested cost
/// (one second when the cost extension is missing).
pub fn throttle_wait(body: &[u8]) -> Option<Duration> {
    // Only bodies that can be a throttle are parsed.
    if !body.windows(9).any(|w| w == b"THROTTLED") {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    let throttled = value
        .get("errors")?
        .as_array()?
        .iter()
        .any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED"));
    if !throttled {
        return None;
    }
    let cost = value.pointer("/extensions/cost");
    let number = |path: &str| cost.and_then(|c| c.pointer(path)).and_then(Value::as_f64);
    let wait = match (
        number("/requestedQueryCost"),
        number("/throttleStatus/currentlyAvailable"),
        number("/throttleStatus/restoreRate"),
    ) {
        (Some(requested), Some(available), Some(rate)) if rate > 0.0 => {
            ((requested - available).max(0.0) / rate).min(MAX_THROTTLE_WAIT.as_secs_f64())
        }
        _ => 1.0,
    };
    // At least a little, so a bucket a hair short is not asked again at once.
    Some(Duration::from_secs_f64(wait.max(0.05)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wait_is_the_missing_points_over_the_restore_rate() {
        let body = json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {"requestedQueryCost": 152, "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 2.0, "restoreRate": 100.0}}}
        });
        let wait = throttle_wait(body.to_string().as_bytes()).unwrap();
        assert_eq!(wait, Duration::from_millis(1500));
        let other = json!({"errors": [{"message": "x", "extensions": {"code": "ACCESS_DENIED"}}]});
        assert_eq!(throttle_wait(other.to_string().as_bytes()), None);
        let bare =
            json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]});
        assert_eq!(
            throttle_wait(bare.to_string().as_bytes()),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn call_limit_headers_parse() {
        assert_eq!(parse_call_limit("39/40"), Some((39.0, 40.0)));
        assert_eq!(parse_call_limit(" 1 / 80 "), Some((1.0, 80.0)));
        assert_eq!(parse_call_limit("x/40"), None);
        assert_eq!(parse_call_limit("3/0"), None);
    }

    #[test]
    fn the_pacer_waits_only_when_the_bucket_is_near_full() {
        let pacer = CallLimitPacer::new(2.0, 0);
        assert_eq!(pacer.reserve_slot(), Duration::ZERO, "nothing known yet");
        {
            let mut b = pacer.bucket.lock().unwrap();
            b.size = Some(4.0);
            b.level = 3.0;
            b.at = Instant::now();
        }
        // 3 of 4 used: room for one more now.
        assert!(pacer.reserve_slot() < Duration::from_millis(50));
        // Now full: the next waits about one leak (0.5 s), the one after about two.
        let w1 = pacer.reserve_slot();
        let w2 = pacer.reserve_slot();
        assert!(
            w1 > Duration::from_millis(400) && w1 <= Duration::from_millis(500),
            "{w1:?}"
        );
        assert!(
            w2 > Duration::from_millis(900) && w2 <= Duration::from_millis(1000),
            "{w2:?}"
        );
    }
}
