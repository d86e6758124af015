//! The HTTP foundation every REST connector stands on: [`HttpClient`], its [`Layer`]s and
//! the [`RESTConnector`] trait.

mod auth;
mod breaker;
mod cache;
mod client;
mod connector;
mod layer;
mod limits;
mod paginate;
pub mod plugin;
mod request;
mod retry;
mod timeout;

pub use auth::{
    ApiKeyAuth, ApiKeyPlace, BasicAuth, BearerAuth, ClientAuthMethod, ClientCredentials,
    HeaderAuth, JWT_BEARER_GRANT, JwtAuth, JwtBearer, JwtClaims, JwtSigner,
    OAuth2ClientCredentials, OAuth2JwtBearer, RequestSigner, ScopePlacement, SigningLayer,
};
pub use breaker::{BreakerSettings, BreakerState, CircuitBreaker};
pub use cache::{CacheOutcome, CacheSettings, CacheStats, ResponseCache};
pub use client::{ClientSettings, HttpClient, HttpClientBuilder};
pub use connector::RESTConnector;
pub use layer::{Layer, Next, Transport};
pub use limits::{ConcurrencyLimit, RateLimit};
pub use paginate::{
    Collected, DEFAULT_MAX_PAGES, ErrorMapper, Page, Pagination, Paginator, next_link,
};
pub use request::{BODY_EXCERPT, Body, IDEMPOTENCY_KEY, Part, Request, Response, excerpt};
pub use retry::{Classifier, RetryLayer, RetryPolicy, Verdict, default_verdict};
pub use timeout::{TimeoutLayer, TimeoutScope};

pub use reqwest::{Method, StatusCode};
