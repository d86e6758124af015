//! Authentication to the SQL API: the key-pair JWT's claims and fingerprint, and the
//! layer and token-type header each [`SnowflakeAuth`] method needs.
//!
//! The public key and its fingerprint come from the private key through aws-lc-rs, the
//! crypto library `jsonwebtoken` already signs with in this crate (and the HTTP client's
//! TLS already links): it parses PKCS#8 and PKCS#1 RSA keys and encodes the public key as
//! the DER `SubjectPublicKeyInfo` whose SHA-256 Snowflake registers. RustCrypto's `rsa` +
//! `pkcs8` + `sha2` would do the same with a second RSA implementation in the build.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use kernelize_core::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};

use super::config::{SnowflakeAuth, SnowflakeSettings};
use crate::http::{BearerAuth, JwtAuth, JwtClaims, JwtSigner, Layer};

/// The header naming the kind of bearer token.
pub const TOKEN_TYPE_HEADER: &str = "X-Snowflake-Authorization-Token-Type";

/// How long before a JWT expires a new one is signed (at most half its lifetime).
pub const JWT_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The account as a key-pair JWT names it: upper case, without the region and cloud
/// suffix of an account locator (`xy12345.us-east-1` → `XY12345`); for a `.global`
/// (replication) identifier, the part before the first `-`. This is what Snowflake's own
/// drivers do.
pub fn jwt_account(account: &str) -> String {
    let account = account.trim();
    let base = if account.contains(".global") {
        account.split('-').next().unwrap_or(account)
    } else {
        account.split('.').next().unwrap_or(account)
    };
    base.to_ascii_uppercase()
}

/// The `SHA256:<base64>` fingerprint of the public key of an RSA private key in PEM: the
/// SHA-256 of the public key's DER `SubjectPublicKeyInfo`, base64 (standard alphabet),
/// which is Snowflake's `RSA_PUBLIC_KEY_FP`. Errors never quote the key.
pub fn public_key_fingerprint(private_key_pem: &SecretString) -> Result<String> {
    let key = rsa_key_pair(private_key_pem)?;
    let der = key.public_key().as_der().map_err(|_| {
        Error::new(
            ErrorKind::ConfigInvalid,
            "cannot encode the private key's public key",
        )
    })?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    ))
}

fn bad_key(why: &str) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("`auth.private_key` {why}"),
    )
}

fn rsa_key_pair(pem: &SecretString) -> Result<aws_lc_rs::rsa::KeyPair> {
    let text = pem.expose_secret();
    let label = text
        .lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .ok_or_else(|| bad_key("is not in PEM (no `-----BEGIN ...-----` line)"))?
        .to_string();
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty() && !l.contains(':'))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad_key("has a PEM body that is not base64"))?;
    match label.as_str() {
        "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der)
            .map_err(|_| bad_key("is not an RSA private key of 2048 to 8192 bits in PKCS#8")),
        "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der)
            .map_err(|_| bad_key("is not an RSA private key of 2048 to 8192 bits in PKCS#1")),
        "ENCRYPTED PRIVATE KEY" => Err(bad_key(
            "is encrypted; decrypt it first (`openssl pkcs8 -in rsa_key.p8 -out rsa_key.pem`) and keep the result as a secret",
        )),
        other => Err(bad_key(&format!(
            "is a `{other}`, not an RSA private key (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`)"
        ))),
    }
}

/// What authenticating needs: the layer that sets `Authorization`, and the value of
/// [`TOKEN_TYPE_HEADER`] (none when the header is left out).
pub struct AuthPlan {
    /// The authentication layer.
    pub layer: Arc<dyn Layer>,
    /// `KEYPAIR_JWT`, `OAUTH`, `PROGRAMMATIC_ACCESS_TOKEN`, or none.
    pub token_type: Option<&'static str>,
}

impl std::fmt::Debug for AuthPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPlan")
            .field("layer", &self.layer.name())
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// The authentication of `settings` (checked first with [`SnowflakeSettings::validate`]).
pub fn auth_plan(settings: &SnowflakeSettings) -> Result<AuthPlan> {
    match &settings.auth {
        SnowflakeAuth::KeyPair {
            private_key,
            public_key_fingerprint: configured,
            jwt_lifetime,
        } => {
            let user = settings.user.as_deref().unwrap_or_default().trim();
            let fingerprint = match configured {
                Some(fp) => normalize_fingerprint(fp)?,
                None => public_key_fingerprint(private_key)?,
            };
            let qualified = format!(
                "{}.{}",
                jwt_account(&settings.account),
                user.to_ascii_uppercase()
            );
            let mut claims = JwtClaims::new(&format!("{qualified}.{fingerprint}"));
            claims.subject = Some(qualified);
            claims.lifetime = *jwt_lifetime;
            let signer = JwtSigner::rs256_pem(private_key)
                .map_err(|e| bad_key(&format!("cannot sign: {}", e.message())))?;
            Ok(AuthPlan {
                layer: Arc::new(JwtAuth::new(signer, claims, JWT_REFRESH_MARGIN)),
                token_type: Some("KEYPAIR_JWT"),
            })
        }
        SnowflakeAuth::Oauth {
            token,
            send_token_type,
        } => Ok(AuthPlan {
            layer: Arc::new(BearerAuth::new(token.clone())),
            token_type: send_token_type.then_some("OAUTH"),
        }),
        SnowflakeAuth::ProgrammaticAccessToken { token } => Ok(AuthPlan {
            layer: Arc::new(BearerAuth::new(token.clone())),
            token_type: Some("PROGRAMMATIC_ACCESS_TOKEN"),
        }),
    }
}

/// `SHA256:<base64>`, with or without the prefix, as given to `public_key_fingerprint`.
fn normalize_fingerprint(fp: &str) -> Result<String> {
    let b64 = fp.trim().strip_prefix("SHA256:").unwrap_or(fp.trim());
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(d) if d.len() == 32 => Ok(format!("SHA256:{b64}")),
        _ => Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "`auth.public_key_fingerprint` must be `SHA256:` and the base64 of a SHA-256 digest (as `DESC USER` shows in RSA_PUBLIC_KEY_FP), not `{fp}`"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_jwt_account_drops_region_and_is_upper_case() {
        assert_eq!(jwt_account("xy12345.us-east-1"), "XY12345");
        assert_eq!(jwt_account("xy12345.us-east-2.aws"), "XY12345");
        assert_eq!(jwt_account("myorg-myaccount"), "MYORG-MYACCOUNT");
        assert_eq!(jwt_account("myacct-abc123.global"), "MYACCT");
    }

    #[test]
    fn fingerprints_are_checked_and_normalized() {
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        assert_eq!(normalize_fingerprint(fp).unwrap(), fp);
        assert_eq!(normalize_fingerprint(&fp[7..]).unwrap(), fp);
        assert!(normalize_fingerprint("SHA256:abc").is_err());
    }

    #[test]
    fn a_key_that_is_not_pem_is_a_config_error_without_the_key() {
        let err = public_key_fingerprint(&SecretString::from("sekrit-key-material")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        assert!(!err.message().contains("sekrit"), "{err}");
        let err = public_key_fingerprint(&SecretString::from(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
        ))
        .unwrap_err();
        assert!(err.message().contains("encrypted"), "{err}");
    }
}
