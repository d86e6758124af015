//! Shopify's two throttles, as pieces of the client stack: [`CallLimitPacer`] (a layer that
//! paces REST calls by the leaky bucket's `X-Shopify-Shop-Api-Call-Limit`),
//! [`GraphqlCostPacer`] (a layer that paces GraphQL calls by the cost extension's points
//! bucket, before a throttle happens) and [`retry_verdict`] (the retry classification that
//! takes a THROTTLED GraphQL answer, whatever its status, for the refusal it is and waits it
//! out for as long as the cost extension says).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::Result;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::http::{Body, Layer, Next, Request, Response, Verdict, default_verdict};

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

tokio::task_local! {
    /// The deadline of the call in progress on this task, for [`GraphqlCostPacer`].
    static CALL_DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the call deadline [`GraphqlCostPacer`] keeps its waits
/// within (the earlier of it and any deadline already set around it).
pub(crate) async fn within_deadline<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    let outer = CALL_DEADLINE.try_with(|d| *d).ok();
    let deadline = match (deadline, outer) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match deadline {
        Some(d) => CALL_DEADLINE.scope(d, work).await,
        None => work.await,
    }
}

/// The most query texts whose cost [`GraphqlCostPacer`] remembers; past it, it forgets them
/// all and learns again.
const MAX_REMEMBERED_QUERIES: usize = 512;

/// Paces GraphQL calls so that they do not meet a THROTTLED answer.
///
/// Shopify's GraphQL Admin API charges each query its calculated cost from a points
/// bucket, and every answer tells how the bucket stands:
/// `extensions.cost{requestedQueryCost, actualQueryCost, throttleStatus{maximumAvailable,
/// currentlyAvailable, restoreRate}}`. The pacer keeps a model of that bucket — points
/// available now = `min(maximumAvailable, currentlyAvailable + restoreRate × elapsed)`,
/// less the estimated costs of the requests sent without an answer yet and of those
/// queued ahead — and, before a request, estimates its cost (the `requestedQueryCost`
/// last answered for the same query text, or `default_cost` for a text not seen yet).
/// When the model does not cover it, the request first waits `(cost − available) /
/// restoreRate` seconds.
///
/// - The waiting requests form a queue (first come, first sent), and each wakes when an
///   answer changes the model, so an over-estimate ahead of it (a query not seen yet)
///   costs no more than the time until that answer.
/// - The wait is at most `max_wait`; a request that would need more goes after it, and
///   a THROTTLED answer is then waited out by the retry layer ([`retry_verdict`]).
/// - A wait that would not end before the call's deadline is not started (or not
///   continued): the request goes at once (the model is cautious, so Shopify may still
///   run it), and Shopify's answer decides.
/// - Before the first answer nothing is known, and a query costing more than the whole
///   bucket can never be covered: neither waits.
///
/// The layer is shared by every clone of the client, so concurrent calls share the
/// model. It sits inside the retry layer, so a retry is paced too (after a THROTTLED
/// answer the model already holds the figures the retry's wait was computed from, so it
/// adds nothing).
#[derive(Debug)]
pub struct GraphqlCostPacer {
    default_cost: f64,
    max_wait: Duration,
    model: Mutex<CostModel>,
    /// Bumped whenever the model changes, to wake the waiting requests.
    changes: watch::Sender<u64>,
}

/// What the pacer knows of the points bucket.
#[derive(Debug, Default)]
struct CostModel {
    /// `(maximumAvailable, restoreRate)`, once an answer told them.
    shape: Option<(f64, f64)>,
    /// Points available at `at`, as last reported (or the model's projection, when lower).
    reported: f64,
    /// When `reported` was true.
    at: Option<Instant>,
    /// The requests counted in the model, by their place in the queue: their estimated
    /// cost, and whether they were sent (no answer yet) or still wait their turn.
    claims: BTreeMap<u64, Claimed>,
    /// The next request's place in the queue.
    next_seq: u64,
    /// The last `requestedQueryCost` of each query text (by its hash).
    costs: HashMap<u64, f64>,
}

#[derive(Debug, Clone, Copy)]
struct Claimed {
    cost: f64,
    sent: bool,
}

/// One request's place in the model, given back when its answer comes or, if none comes
/// (an error, the call dropped at its deadline), when the request ends.
struct Claim<'a> {
    pacer: &'a GraphqlCostPacer,
    seq: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.pacer.release(self.seq);
    }
}

/// The cost extension of a GraphQL answer, read without building the rest of it.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    extensions: Option<Extensions>,
}

#[derive(Debug, Deserialize)]
struct Extensions {
    #[serde(default)]
    cost: Option<CostExtension>,
}

/// `extensions.cost` of a GraphQL answer.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CostExtension {
    #[serde(default)]
    requested_query_cost: Option<f64>,
    #[serde(default)]
    actual_query_cost: Option<f64>,
    #[serde(default)]
    throttle_status: Option<ThrottleStatus>,
}

/// `extensions.cost.throttleStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThrottleStatus {
    maximum_available: f64,
    currently_available: f64,
    restore_rate: f64,
}

impl GraphqlCostPacer {
    /// A pacer assuming `default_cost` points for a query text it has not seen answered,
    /// and waiting at most `max_wait` before one request.
    pub fn new(default_cost: f64, max_wait: Duration) -> Self {
        Self {
            default_cost: if default_cost.is_finite() && default_cost >= 0.0 {
                default_cost
            } else {
                0.0
            },
            max_wait,
            model: Mutex::new(CostModel::default()),
            changes: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CostModel> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Queues a request of query text `key`: its place and estimated cost.
    fn enqueue(&self, key: u64) -> (u64, f64) {
        let mut model = self.lock();
        let cost = model.costs.get(&key).copied().unwrap_or(self.default_cost);
        let seq = model.next_seq;
        model.next_seq += 1;
        model.claims.insert(seq, Claimed { cost, sent: false });
        (seq, cost)
    }

    /// How much longer request `seq` (queued at `queued`) waits at `now`: until the
    /// bucket covers it, at most what is left of `max_wait`, and not at all when the wait
    /// would not end before `deadline`.
    fn wait(&self, seq: u64, now: Instant, queued: Instant, deadline: Option<Instant>) -> Duration {
        let needed = self.lock().wait_for(seq, now);
        let left = self
            .max_wait
            .saturating_sub(now.saturating_duration_since(queued));
        let wait = needed.min(left);
        match deadline {
            Some(d) if !wait.is_zero() && now.checked_add(wait).is_none_or(|end| end >= d) => {
                Duration::ZERO
            }
            _ => wait,
        }
    }

    /// Request `seq` leaves: its cost counts as spent until its answer.
    fn mark_sent(&self, seq: u64) {
        if let Some(claim) = self.lock().claims.get_mut(&seq) {
            claim.sent = true;
        }
        self.changed();
    }

    /// Request `seq` is done without an answer to learn from.
    fn release(&self, seq: u64) {
        let removed = self.lock().claims.remove(&seq).is_some();
        if removed {
            self.changed();
        }
    }

    /// Takes the answer to request `seq` of query text `key`: the query's requested cost,
    /// and the bucket, whose figure includes the request's charge (so its claim ends).
    fn observe(&self, seq: u64, key: u64, cost: &CostExtension, now: Instant) {
        {
            let mut model = self.lock();
            model.claims.remove(&seq);
            model.learn(key, cost, now);
        }
        self.changed();
    }
}

impl CostModel {
    fn learn(&mut self, key: u64, cost: &CostExtension, now: Instant) {
        if let Some(requested) = cost
            .requested_query_cost
            .filter(|c| c.is_finite() && *c >= 0.0)
        {
            if self.costs.len() >= MAX_REMEMBERED_QUERIES && !self.costs.contains_key(&key) {
                self.costs.clear();
            }
            self.costs.insert(key, requested);
        }
        let Some(status) = cost.throttle_status else {
            return;
        };
        let usable = |v: f64| v.is_finite() && v >= 0.0;
        if !(usable(status.maximum_available)
            && usable(status.currently_available)
            && status.restore_rate.is_finite()
            && status.restore_rate > 0.0)
        {
            return;
        }
        // Answers may come out of the order Shopify ran them in: an earlier-run answer
        // knows fewer of the other requests' charges, so the lower of its figure and the
        // model's projection is kept.
        let reported = status.currently_available.min(status.maximum_available);
        self.reported = match self.projection(now) {
            Some(p) => reported.min(p),
            None => reported,
        };
        self.at = Some(now);
        self.shape = Some((status.maximum_available, status.restore_rate));
    }

    /// The bucket at `now` without the open claims: the last figure, restored since.
    fn projection(&self, now: Instant) -> Option<f64> {
        let (max, rate) = self.shape?;
        let at = self.at?;
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        Some((self.reported + rate * elapsed).min(max))
    }

    /// How long until the bucket covers request `seq` on top of the requests sent and
    /// those queued ahead of it.
    fn wait_for(&self, seq: u64, now: Instant) -> Duration {
        let Some(cost) = self.claims.get(&seq).map(|c| c.cost) else {
            return Duration::ZERO;
        };
        let (Some((max, rate)), Some(projected)) = (self.shape, self.projection(now)) else {
            return Duration::ZERO;
        };
        if cost > max {
            // Never covered: Shopify refuses such a query outright (MAX_COST_EXCEEDED).
            return Duration::ZERO;
        }
        let ahead: f64 = self
            .claims
            .iter()
            .filter(|(s, c)| **s != seq && (**s < seq || c.sent))
            .map(|(_, c)| c.cost)
            .sum();
        let available = projected - ahead;
        if available >= cost {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64((cost - available) / rate).unwrap_or(Duration::MAX)
    }
}

/// The query text's key: the hash of the body's `query` (of the whole body when it is
/// not JSON).
fn query_key(body: &Body) -> u64 {
    let mut hasher = DefaultHasher::new();
    match body {
        Body::Json(value) => match value.get("query").and_then(Value::as_str) {
            Some(query) => query.hash(&mut hasher),
            None => value.to_string().hash(&mut hasher),
        },
        Body::Bytes { data, .. } => data.hash(&mut hasher),
        Body::Empty | Body::Multipart(_) => 0u8.hash(&mut hasher),
    }
    hasher.finish()
}

/// The cost extension of a GraphQL answer, if it has one.
fn cost_extension(body: &[u8]) -> Option<CostExtension> {
    if !body.windows(4).any(|w| w == b"cost") {
        return None;
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()?
        .extensions?
        .cost
}

#[async_trait]
impl Layer for GraphqlCostPacer {
    fn name(&self) -> &'static str {
        "shopify-graphql-cost"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        if !is_graphql(&request.url) {
            return next.run(request).await;
        }
        let key = query_key(&request.body);
        let deadline = CALL_DEADLINE.try_with(|d| *d).ok();
        let mut changes = self.changes.subscribe();
        let (seq, cost) = self.enqueue(key);
        let claim = Claim { pacer: self, seq };
        let queued = Instant::now();
        let mut first = true;
        loop {
            changes.borrow_and_update();
            let wait = self.wait(seq, Instant::now(), queued, deadline);
            if wait.is_zero() {
                break;
            }
            if first {
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    estimated_cost = cost,
                    "shopify: pacing for the GraphQL cost bucket"
                );
                first = false;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // An answer (or a request leaving the queue) changed the model: look again.
                _ = changes.changed() => {}
            }
        }
        self.mark_sent(seq);
        let response = next.run(request).await?;
        if let Some(extension) = cost_extension(&response.body) {
            tracing::trace!(
                requested = extension.requested_query_cost,
                actual = extension.actual_query_cost,
                available = extension.throttle_status.map(|s| s.currently_available),
                "shopify: GraphQL cost"
            );
            self.observe(seq, key, &extension, Instant::now());
        }
        drop(claim);
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
        // Shopify checks the cost before running anything: a throttled operation, a
        // mutation too, was refused without effect.
        return Verdict::Refused { after: Some(wait) };
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

    fn answer(requested: f64, available: f64, max: f64, rate: f64) -> CostExtension {
        let body = json!({
            "data": {"products": {"nodes": [{"title": "cost"}]}},
            "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                "throttleStatus": {"maximumAvailable": max, "currentlyAvailable": available, "restoreRate": rate}}}
        });
        cost_extension(body.to_string().as_bytes()).unwrap()
    }

    fn close(a: Duration, secs: f64) -> bool {
        (a.as_secs_f64() - secs).abs() < 0.001
    }

    #[test]
    fn the_cost_extension_is_read_from_an_answer() {
        let ext = answer(12.0, 2.0, 20.0, 10.0);
        assert_eq!(ext.requested_query_cost, Some(12.0));
        assert_eq!(
            ext.throttle_status.map(|s| s.currently_available),
            Some(2.0)
        );
        assert_eq!(cost_extension(br#"{"data": {"shop": null}}"#), None);
        assert_eq!(cost_extension(b"not json, cost"), None);
        let a = query_key(&Body::Json(
            json!({"query": "{ shop { name } }", "variables": {"a": 1}}),
        ));
        let b = query_key(&Body::Json(
            json!({"query": "{ shop { name } }", "variables": {"a": 2}}),
        ));
        let c = query_key(&Body::Json(json!({"query": "{ shop { id } }"})));
        assert_eq!(a, b, "the query text, not its variables");
        assert_ne!(a, c);
    }

    #[test]
    fn the_cost_pacer_waits_for_the_points_a_query_needs() {
        let pacer = GraphqlCostPacer::new(50.0, Duration::from_secs(30));
        let t0 = Instant::now();
        let wait = |seq, at: Instant| pacer.wait(seq, at, t0, None);
        // Nothing known yet: no wait, the default cost is counted.
        let (first, cost) = pacer.enqueue(1);
        assert_eq!((cost, wait(first, t0)), (50.0, Duration::ZERO));
        pacer.mark_sent(first);
        // The answer: the query costs 12; 2 of 20 points left, 10 back a second.
        pacer.observe(first, 1, &answer(12.0, 2.0, 20.0, 10.0), t0);
        assert!(pacer.lock().claims.is_empty());

        // The same query again needs 10 more points: 1 s.
        let (a, cost) = pacer.enqueue(1);
        assert_eq!(cost, 12.0);
        assert!(close(wait(a, t0), 1.0), "{:?}", wait(a, t0));
        // Another queues behind it: (12 + 12 − 2) / 10; the first does not count it.
        let (b, _) = pacer.enqueue(1);
        assert!(close(wait(b, t0), 2.2), "{:?}", wait(b, t0));
        assert!(close(wait(a, t0), 1.0));
        // Half a second later, a third: (36 − 2 − 5) / 10.
        let (c, _) = pacer.enqueue(1);
        let half = t0 + Duration::from_millis(500);
        assert!(close(wait(c, half), 2.9), "{:?}", wait(c, half));
        // A sent request counts for everyone until its answer, which ends its claim.
        pacer.mark_sent(c);
        assert!(close(wait(a, t0), 2.2), "{:?}", wait(a, t0));
        pacer.observe(c, 1, &answer(12.0, 0.0, 20.0, 10.0), t0);
        assert!(close(wait(a, t0), 1.2), "{:?}", wait(a, t0));
        pacer.release(a);
        pacer.release(b);
        assert!(pacer.lock().claims.is_empty());
    }

    #[test]
    fn an_over_estimate_ahead_stops_counting_once_answered() {
        let pacer = GraphqlCostPacer::new(50.0, Duration::from_secs(30));
        let t0 = Instant::now();
        pacer.lock().learn(1, &answer(4.0, 20.0, 20.0, 10.0), t0);
        // A query not seen yet is counted at 50 points while it is in flight.
        let (unknown, _) = pacer.enqueue(2);
        pacer.mark_sent(unknown);
        let (known, cost) = pacer.enqueue(1);
        assert_eq!(cost, 4.0);
        assert!(close(pacer.wait(known, t0, t0, None), 3.4));
        // Its answer says it cost 5: the next look finds the bucket covers the other.
        pacer.observe(unknown, 2, &answer(5.0, 15.0, 20.0, 10.0), t0);
        assert_eq!(pacer.wait(known, t0, t0, None), Duration::ZERO);
    }

    #[test]
    fn the_cost_pacer_gives_way_to_its_ceiling_the_deadline_and_impossible_costs() {
        let t0 = Instant::now();
        let pacer = GraphqlCostPacer::new(10.0, Duration::from_secs(2));
        pacer.lock().learn(1, &answer(30.0, 0.0, 20.0, 10.0), t0);
        pacer.lock().learn(2, &answer(10.0, 0.0, 20.0, 1.0), t0);
        // More than the whole bucket: never covered, so not waited for.
        let (big, _) = pacer.enqueue(1);
        assert_eq!(pacer.wait(big, t0, t0, None), Duration::ZERO);
        pacer.release(big);
        // 10 s needed, 2 s at most, counted from when the request was queued.
        let (slow, _) = pacer.enqueue(2);
        assert_eq!(pacer.wait(slow, t0, t0, None), Duration::from_secs(2));
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(
            pacer.wait(slow, later, t0, None),
            Duration::from_millis(500)
        );
        // A wait the deadline would cut short is not started.
        let deadline = t0 + Duration::from_secs(1);
        assert_eq!(pacer.wait(slow, t0, t0, Some(deadline)), Duration::ZERO);
        pacer.release(slow);
        // One that ends before it is.
        let pacer = GraphqlCostPacer::new(10.0, Duration::from_secs(2));
        pacer.lock().learn(2, &answer(10.0, 5.0, 20.0, 10.0), t0);
        let (quick, _) = pacer.enqueue(2);
        let wait = pacer.wait(quick, t0, t0, Some(deadline));
        assert!(close(wait, 0.5), "{wait:?}");
    }

    #[test]
    fn an_answer_run_earlier_does_not_raise_the_model() {
        let mut model = CostModel::default();
        let t0 = Instant::now();
        model.learn(1, &answer(10.0, 4.0, 20.0, 10.0), t0);
        // An answer Shopify ran before the one above arrives after it.
        model.learn(1, &answer(10.0, 14.0, 20.0, 10.0), t0);
        assert_eq!(model.reported, 4.0);
        // Time restores the bucket, up to its size.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(model.projection(later), Some(20.0));
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
