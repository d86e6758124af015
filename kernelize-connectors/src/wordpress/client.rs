//! [`WordPressClient`]: one site's REST API calls, typed, usable without the plugin.

use bytes::Bytes;
use kernelize_core::{Error, ErrorKind, Result};
use md5::{Digest, Md5};
use serde_json::{Map, Value};

use super::config::SiteSettings;
use crate::http::{
    BasicAuth, HttpClient, Method, Pagination, Paginator, Request, Response, excerpt,
};
use crate::saas::{HttpOptions, build_client};

/// The most items WordPress returns per page (`per_page` 1–100).
pub const MAX_PER_PAGE: u32 = 100;

/// Items a list call collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    /// The items, in the API's order.
    pub items: Vec<Value>,
    /// Pages fetched.
    pub pages: usize,
    /// Whether the walk reached the last page (`false`: the page cap stopped it).
    pub complete: bool,
}

/// A file to upload to the media library.
#[derive(Debug, Clone)]
pub struct MediaUpload {
    /// The file name WordPress stores it under (any characters; see
    /// [`content_disposition`]).
    pub filename: String,
    /// Its media type (`image/png`).
    pub mime_type: String,
    /// The bytes.
    pub data: Bytes,
    /// Send `Content-MD5` (hex, as WordPress compares it), so a corrupted upload is refused.
    pub content_md5: bool,
}

/// A client of one WordPress site's REST API, authenticated with an application password
/// (HTTP Basic).
#[derive(Debug, Clone)]
pub struct WordPressClient {
    name: String,
    http: HttpClient,
}

impl WordPressClient {
    /// A client for `site` with the connection `options`.
    pub fn new(site: &SiteSettings, options: &HttpOptions) -> Result<Self> {
        let base = site.api_base()?;
        let auth = std::sync::Arc::new(BasicAuth::new(
            &site.user,
            site.application_password.clone(),
        ));
        let http = build_client(&base, options, None, vec![auth])?;
        Ok(Self {
            name: site.name.clone(),
            http,
        })
    }

    /// The site's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying HTTP client (base URL `…/wp-json/wp/v2/`).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// `GET {resource}?per_page=…&page=N&filters…` until `X-WP-TotalPages` (or
    /// `max_pages`).
    pub async fn list(
        &self,
        resource: &str,
        filters: &[(String, String)],
        per_page: u32,
        max_pages: usize,
    ) -> Result<Listed> {
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`per_page` must be between 1 and {MAX_PER_PAGE}, not {per_page}"),
            ));
        }
        let mut request = self.http.request(Method::GET, resource)?;
        for (k, v) in filters {
            if k == "page" || k == "per_page" || k == "offset" {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("`{k}` is set by the connector's paging, not a filter"),
                ));
            }
            request.url.query_pairs_mut().append_pair(k, v);
        }
        let paginator = Paginator::new(Pagination::Page {
            page_param: "page".into(),
            first_page: 1,
            per_page_param: "per_page".into(),
            per_page: Some(u64::from(per_page)),
            total_pages_header: Some("x-wp-totalpages".into()),
            total_pages_path: None,
        })
        .max_pages(max_pages)
        .map_error({
            let site = self.name.clone();
            let describe = format!("{} {}", request.method, request.path_label());
            move |response| Some(wp_failure(&site, &describe, response))
        });
        let collected = self
            .http
            .paginate_all(request, paginator)
            .await
            .map_err(|e| e.with_context("site", &self.name))?;
        Ok(Listed {
            items: collected.items,
            pages: collected.pages,
            complete: collected.complete,
        })
    }

    /// `POST {resource}` (`posts`, `pages`): creates an item; returns WordPress's answer
    /// (201, or 200 on sites that answer so).
    pub async fn create(&self, resource: &str, body: &Map<String, Value>) -> Result<Value> {
        let request = self.http.request(Method::POST, resource)?.json(body)?;
        self.send(request).await?.json()
    }

    /// `POST {resource}/{id}`: updates the fields given. Setting fields to values twice
    /// leaves them as once, so it is retried like a PUT.
    pub async fn update(
        &self,
        resource: &str,
        id: u64,
        body: &Map<String, Value>,
    ) -> Result<Value> {
        let request = self
            .http
            .request(Method::POST, &format!("{resource}/{id}"))?
            .path_template(&format!("{resource}/{{id}}"))
            .json(body)?
            .replayable();
        self.send(request).await?.json()
    }

    /// `DELETE {resource}/{id}?force=…`: to the trash, or for good with `force` (media and
    /// terms need `force`).
    pub async fn delete(&self, resource: &str, id: u64, force: bool) -> Result<Value> {
        let request = self
            .http
            .request(Method::DELETE, &format!("{resource}/{id}"))?
            .path_template(&format!("{resource}/{{id}}"))
            .query(&[("force", if force { "true" } else { "false" })])?;
        self.send(request).await?.json()
    }

    /// `POST media` with the raw bytes, `Content-Type`, `Content-Disposition` and
    /// (optionally) `Content-MD5`; returns the attachment.
    pub async fn upload_media(&self, upload: &MediaUpload) -> Result<Value> {
        if upload.data.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{}` is empty; WordPress refuses an upload without data",
                    upload.filename
                ),
            ));
        }
        let mut request = self
            .http
            .request(Method::POST, "media")?
            .bytes(upload.data.clone(), &upload.mime_type)
            .header(
                "content-disposition",
                &content_disposition(&upload.filename)?,
            )?;
        if upload.content_md5 {
            request = request.header("content-md5", &md5_hex(&upload.data))?;
        }
        self.send(request).await?.json()
    }

    /// Sends a request; a non-2xx answer becomes a clear error.
    async fn send(&self, request: Request) -> Result<Response> {
        let describe = format!("{} {}", request.method, request.path_label());
        let response = self.http.send(request).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(wp_failure(&self.name, &describe, &response))
        }
    }
}

/// The hex MD5 of `data`, as WordPress compares `Content-MD5` (not RFC 1864's base64).
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `attachment; filename="…"` for `filename`, with RFC 6266's `filename*=UTF-8''…` beside
/// it when the name is not plain ASCII.
///
/// WordPress reads only `filename`, splitting the header on `;` and stripping one pair of
/// quotes, without unescaping: so the quoted name is kept to printable ASCII without `"`,
/// `\`, `;` or `%` (each replaced by `_`), and the exact name goes in `filename*` for
/// servers that read it. A path is cut to its last component; a name that is empty after
/// that is refused.
pub fn content_disposition(filename: &str) -> Result<String> {
    let name = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{filename}` is not a usable file name"),
        ));
    }
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == name {
        return Ok(format!("attachment; filename=\"{name}\""));
    }
    let mut encoded = String::new();
    for byte in name.bytes() {
        let c = byte as char;
        if c.is_ascii_alphanumeric() || "!#$&+-.^_`|~".contains(c) {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
}

/// A media type for a file name by its extension, for uploads given without one.
pub fn guess_mime(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// A non-2xx answer as an error: the kind by status, WordPress's `code` and `message`.
fn wp_failure(site: &str, describe: &str, response: &Response) -> Error {
    let status = response.status.as_u16();
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| excerpt(&response.body));
    let kind = match (status, code.as_deref()) {
        (401 | 403, _) => ErrorKind::PermissionDenied,
        (404, _) => ErrorKind::NotFound,
        (412, _) | (_, Some("rest_upload_hash_mismatch")) => ErrorKind::CorruptData,
        (429, _) => ErrorKind::RateLimited,
        (400 | 409 | 410 | 413 | 415 | 422, _) => ErrorKind::InvalidInput,
        (501, _) => ErrorKind::Unsupported,
        _ => ErrorKind::Remote,
    };
    let text = match &code {
        Some(code) => {
            format!("WordPress site `{site}` answered {status} to {describe}: {code}: {message}")
        }
        None => format!("WordPress site `{site}` answered {status} to {describe}: {message}"),
    };
    let mut error = Error::new(kind, text)
        .with_status(status)
        .with_context("site", site);
    if let Some(code) = code {
        error = error.with_context("code", code);
    }
    error = if status == 429 || status >= 500 && status != 501 {
        error.set_temporary()
    } else {
        error.set_permanent()
    };
    if let Some(after) = response.retry_after() {
        error = error.with_retry_after(after);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_are_quoted_and_others_get_an_rfc_6266_twin() {
        assert_eq!(
            content_disposition("logo.png").unwrap(),
            "attachment; filename=\"logo.png\""
        );
        assert_eq!(
            content_disposition("dir/My \"best\"; 100%.png").unwrap(),
            "attachment; filename=\"My _best__ 100_.png\"; filename*=UTF-8''My%20%22best%22%3B%20100%25.png"
        );
        assert_eq!(
            content_disposition("café.jpg").unwrap(),
            "attachment; filename=\"caf_.jpg\"; filename*=UTF-8''caf%C3%A9.jpg"
        );
        assert!(content_disposition("dir/").is_err());
        assert!(content_disposition("a\nb").is_err());
    }

    #[test]
    fn md5_is_hex_as_wordpress_compares_it() {
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn mime_types_are_guessed_from_the_extension() {
        assert_eq!(guess_mime("A.PNG"), "image/png");
        assert_eq!(guess_mime("notes"), "application/octet-stream");
    }
}
