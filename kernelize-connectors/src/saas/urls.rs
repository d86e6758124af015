//! URLs that are their own credential ([`CredentialUrl`]: a webhook whose path is the key,
//! a trigger URL whose query carries a signature) and what may be shown of a URL.

use std::fmt;
use std::marker::PhantomData;

use kernelize_core::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// What kind of [`CredentialUrl`] a type is: its name, the setting it is read from, and
/// what of it may be shown.
pub trait UrlKind: 'static {
    /// The type's name, as `Debug` shows it (`HookUrl`).
    const NAME: &'static str;
    /// The setting it is deserialized from (`hook_url`), named by its errors.
    const SETTING: &'static str;
    /// What an error calls it (`hook` in `bad hook URL`).
    const NOUN: &'static str;
    /// Told after "must be an http(s) URL with a host" when it is not one (`: copy the
    /// flow's HTTP POST URL`).
    const HINT: &'static str;

    /// What may be shown of `url`: enough to tell which service, nothing that grants.
    fn shown(url: &Url) -> String;
}

/// A URL that is its own credential, kept as a secret: `Debug`, serialization and
/// [`CredentialUrl::redacted`] give only what its [`UrlKind`] shows, and errors about it
/// never quote it.
pub struct CredentialUrl<K> {
    secret: SecretString,
    kind: PhantomData<fn() -> K>,
}

impl<K: UrlKind> CredentialUrl<K> {
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
                format!("`{setting}` must be an http(s) URL with a host{}", K::HINT),
            ));
        }
        Ok(Self {
            secret: SecretString::from(text.to_string()),
            kind: PhantomData,
        })
    }

    /// The URL, to send to.
    pub fn url(&self) -> Result<Url> {
        Url::parse(self.secret.expose_secret()).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("bad {} URL ({e})", K::NOUN),
            )
        })
    }

    /// What may be shown of the URL ([`UrlKind::shown`]).
    pub fn redacted(&self) -> String {
        match self.url() {
            Ok(url) => K::shown(&url),
            Err(_) => "(a bad URL)".into(),
        }
    }
}

impl<K> Clone for CredentialUrl<K> {
    fn clone(&self) -> Self {
        Self {
            secret: self.secret.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: UrlKind> fmt::Debug for CredentialUrl<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", K::NAME, self.redacted())
    }
}

/// Serialized redacted: settings never write the credential out.
impl<K: UrlKind> Serialize for CredentialUrl<K> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de, K: UrlKind> Deserialize<'de> for CredentialUrl<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(K::SETTING, &text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// `url` as `scheme://host[:port]/…`: for a URL whose path is the credential.
pub fn without_path(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}/…",
        url.scheme(),
        url.host_str().unwrap_or("")
    )
}

/// `url` without its query, fragment and password, as text: for a URL whose query is the
/// credential.
pub fn without_query(url: &Url) -> String {
    let mut out = url.clone();
    out.set_query(None);
    out.set_fragment(None);
    let _ = out.set_password(None);
    out.to_string()
}

/// `url` without path, query or credentials: what a network grant is checked against,
/// and all an error about the grant may show.
pub fn origin(url: &Url) -> Url {
    let mut out = url.clone();
    out.set_path("/");
    out.set_query(None);
    out.set_fragment(None);
    let _ = out.set_username("");
    let _ = out.set_password(None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hook;

    impl UrlKind for Hook {
        const NAME: &'static str = "HookUrl";
        const SETTING: &'static str = "hook_url";
        const NOUN: &'static str = "hook";
        const HINT: &'static str = ", such as https://hooks.example.com/HOOK/";

        fn shown(url: &Url) -> String {
            without_path(url)
        }
    }

    #[test]
    fn the_credential_is_never_shown() {
        let hook: CredentialUrl<Hook> =
            serde_json::from_value(serde_json::json!("https://hooks.example.com/s3cret/")).unwrap();
        assert_eq!(format!("{hook:?}"), "HookUrl(https://hooks.example.com/…)");
        assert_eq!(
            serde_json::to_value(&hook).unwrap(),
            serde_json::json!("https://hooks.example.com/…")
        );
        assert_eq!(hook.url().unwrap().path(), "/s3cret/");
    }

    #[test]
    fn a_bad_url_is_named_by_its_setting_not_quoted() {
        let err = CredentialUrl::<Hook>::parse("hook_url", "ftp://s3cret@host/").unwrap_err();
        assert_eq!(
            err.message(),
            "`hook_url` must be an http(s) URL with a host, such as https://hooks.example.com/HOOK/"
        );
        let err =
            serde_json::from_value::<CredentialUrl<Hook>>(serde_json::json!("s3cret")).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn origins_and_redactions_drop_what_grants() {
        let url = Url::parse("https://u:p@flows.example.com:8443/a/b?sig=s3cret#f").unwrap();
        assert_eq!(origin(&url).as_str(), "https://flows.example.com:8443/");
        assert_eq!(without_query(&url), "https://u@flows.example.com:8443/a/b");
        assert_eq!(without_path(&url), "https://flows.example.com:8443/…");
    }
}
