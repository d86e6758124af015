//! Retry classification for a GraphQL endpoint: an answer that is a GraphQL response is
//! final, whatever its status, so GraphQL `errors` never cause a retry.

use crate::http::{Response, Verdict, default_verdict};

use super::response::decode_http;

/// The retry classification for an [`HttpClient`](crate::http::HttpClient) in front of a
/// GraphQL endpoint: [`default_verdict`], except that an answer carrying a GraphQL response
/// (a 500 with `errors`, for instance) is final. A 429 keeps its meaning (wait and retry),
/// since a rate limit is about the caller's budget, not the operation.
///
/// Use it as `RetryLayer::new(policy).classify(graphql::retry_verdict)`;
/// [`GraphQLClient::with_defaults`](super::GraphQLClient::with_defaults) does.
pub fn retry_verdict(response: &Response) -> Verdict {
    graphql_aware(response, default_verdict(response))
}

/// Wraps a vendor's classification the same way as [`retry_verdict`] wraps the default
/// one: whatever `inner` says, an answer carrying a GraphQL response is final (a refusal
/// such as a 429 aside).
pub fn classify_with<F>(inner: F) -> impl Fn(&Response) -> Verdict + Send + Sync + 'static
where
    F: Fn(&Response) -> Verdict + Send + Sync + 'static,
{
    move |response| graphql_aware(response, inner(response))
}

fn graphql_aware(response: &Response, verdict: Verdict) -> Verdict {
    // Only a retry needs the body read: most answers are settled without it.
    if matches!(verdict, Verdict::Done | Verdict::Refused { .. }) {
        return verdict;
    }
    if decode_http(response).is_ok() {
        Verdict::Done
    } else {
        verdict
    }
}
