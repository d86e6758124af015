//! Settings of the `zapier-connector` plugin, and [`HookUrl`], a URL that is its own
//! credential.

use std::path::PathBuf;

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::saas::HttpOptions;

/// Zapier's catch-hook host (`https://hooks.zapier.com/hooks/catch/{account}/{hook}/`).
pub const HOOKS_HOST: &str = "https://hooks.zapier.com";

/// A webhook URL whose path is the credential (a Zapier catch hook, a REST Hook target).
///
/// It never shows itself whole: `Debug`, serialization and [`HookUrl::redacted`] give the
/// scheme and host only, and errors about it never quote the path.
#[derive(Clone)]
pub struct HookUrl {
    secret: SecretString,
}

impl HookUrl {
    /// Checks `text` (an `http(s)` URL with a host); the error names `setting`, never the
    /// URL.
    pub fn parse(setting: &str, text: &str) -> Result<Self> {
        let url = Url::parse(text).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("`{setting}` is not a valid URL ({e})"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`{setting}` must be an http(s) URL with a host, such as {HOOKS_HOST}/hooks/catch/ACCOUNT/HOOK/"
                ),
            ));
        }
        Ok(Self {
            secret: SecretString::from(text.to_string()),
        })
    }

    /// The URL, to send to.
    pub fn url(&self) -> Result<Url> {
        Url::parse(self.secret.expose_secret())
            .map_err(|e| Error::new(ErrorKind::ConfigInvalid, format!("bad hook URL ({e})")))
    }

    /// `https://hooks.zapier.com/…`: enough to tell which service, nothing that grants.
    pub fn redacted(&self) -> String {
        match self.url() {
            Ok(url) => redact(&url),
            Err(_) => "(a bad URL)".into(),
        }
    }
}

/// `url` as `scheme://host[:port]/…`.
pub(crate) fn redact(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}/…",
        url.scheme(),
        url.host_str().unwrap_or("")
    )
}

/// `url` without path, query or credentials: what a network grant is checked against,
/// and all an error about the grant may show.
pub(crate) fn origin(url: &Url) -> Url {
    let mut out = url.clone();
    out.set_path("/");
    out.set_query(None);
    out.set_fragment(None);
    let _ = out.set_username("");
    let _ = out.set_password(None);
    out
}

impl std::fmt::Debug for HookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookUrl({})", self.redacted())
    }
}

impl Serialize for HookUrl {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for HookUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HookUrl::parse("hook_url", &text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// Settings of the `zapier-connector` plugin.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ZapierSettings {
    /// The catch hook `trigger` sends to when its config names none:
    /// `https://hooks.zapier.com/hooks/catch/{account}/{hook}/` (or its `/silent/` form), as
    /// `${secret:ZAPIER_HOOK_URL}` — the URL is the credential. Pointing it elsewhere (a
    /// proxy, a test server) is the base-URL override.
    #[schemars(with = "Option<String>")]
    pub hook_url: Option<HookUrl>,
    /// The JSON file that keeps REST Hook subscriptions across calls and processes; the
    /// REST Hook actions (`subscribe`, `unsubscribe`, `list_subscriptions`, `notify`) need
    /// it, and a `file_write` grant for it.
    pub subscriptions_file: Option<PathBuf>,
    /// Retry, timeouts, client-side rate limit and concurrency.
    pub http: HttpOptions,
}
