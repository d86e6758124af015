//! [`RESTConnector`]: what every REST connector offers on top of its [`HttpClient`].

use std::future::Future;

use kernelize_core::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::client::HttpClient;
use super::request::{Request, Response};

/// A connector to one REST API. A connector holds an [`HttpClient`] (base URL, layers,
/// pool) and gets typed JSON calls from it; it overrides [`RESTConnector::authenticate`]
/// when its API needs a step before the first call (fetching a token, checking a key).
pub trait RESTConnector: Send + Sync {
    /// The client every call goes through.
    fn http(&self) -> &HttpClient;

    /// The API's base URL (the config's override when one is set).
    fn base_url(&self) -> &Url {
        self.http().base_url()
    }

    /// Prepares credentials, or checks them; the default does nothing.
    fn authenticate(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Sends a request built by the caller (bytes, multipart, headers, idempotency key),
    /// failing on a non-2xx answer.
    fn send(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        self.http().send_ok(request)
    }

    /// `GET path?query`, the answer parsed as JSON.
    fn get<T: DeserializeOwned, Q: Serialize + Sync + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> impl Future<Output = Result<T>> + Send {
        self.http().get(path, query)
    }

    /// `POST path` with a JSON body (sent once; see [`HttpClient::post`]).
    fn post<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> impl Future<Output = Result<T>> + Send {
        self.http().post(path, body)
    }

    /// `PUT path` with a JSON body.
    fn put<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> impl Future<Output = Result<T>> + Send {
        self.http().put(path, body)
    }

    /// `PATCH path` with a JSON body (sent once unless it has an idempotency key).
    fn patch<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> impl Future<Output = Result<T>> + Send {
        self.http().patch(path, body)
    }

    /// `DELETE path`.
    fn delete(&self, path: &str) -> impl Future<Output = Result<Response>> + Send {
        self.http().delete(path)
    }
}
