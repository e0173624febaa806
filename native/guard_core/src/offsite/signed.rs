//! Signed S3 requests built by hand, for what object_store 0.12 cannot send or does not let us
//! see: the copy of an object onto itself that replaces its metadata ([`super::restamp`]) and
//! the ranged GETs of a download ([`super::download`]), whose status, `Content-Range` and `ETag`
//! must be read before the body (a server may answer a ranged GET with the whole object, or
//! with the range under status 200). Requests are signed with object_store's own SigV4 signer
//! ([`AwsAuthorizer`]) and sent through an [`HttpClient`] made from the same [`ClientOptions`]
//! as the store (timeouts, TLS verification, CA file).
//!
//! [`ClientOptions`]: object_store::ClientOptions

use std::time::Duration;

use http::{Method, Request};
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequestBody, HttpResponse, ReqwestConnector,
};

use super::client::{cancellable, client_endpoint, client_options};
use super::error::{one_line, remote_error, scrub};
use super::{OffsiteConfig, OffsiteError};
use crate::reading::CancelFlag;

/// Signed requests on one object of the bucket.
pub(super) struct Signed<'a> {
    cfg: &'a OffsiteConfig,
    client: HttpClient,
    credential: AwsCredential,
    /// `…/<bucket>/<encoded key>` (path style) or `…<bucket>.host/<encoded key>`.
    url: String,
    /// The object's key, for messages.
    key: String,
}

impl<'a> Signed<'a> {
    /// Requests on the object `name`, each bounded by `timeout` (`None`: by nothing but the
    /// connect timeout; the caller bounds them).
    pub(super) fn new(
        cfg: &'a OffsiteConfig,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, OffsiteError> {
        let options = match timeout {
            Some(timeout) => client_options(cfg)?.with_timeout(timeout),
            None => client_options(cfg)?.with_timeout_disabled(),
        };
        let client = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| OffsiteError::BadConfig(scrub(&e.to_string(), cfg)))?;
        let key = cfg.key(name);
        Ok(Signed {
            cfg,
            client,
            credential: AwsCredential {
                key_id: cfg.access_key.clone(),
                secret_key: cfg.secret_key.expose().to_string(),
                token: None,
            },
            url: format!("{}/{}", bucket_url(cfg), encode(&key, true)),
            key,
        })
    }

    /// The object's key, for messages.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// `x-amz-copy-source` of the object itself, pinned to `e_tag` when known.
    pub(super) fn copy_source_headers(&self, e_tag: Option<&String>) -> Vec<(String, String)> {
        let source = format!("{}/{}", self.cfg.bucket, encode(&self.key, true));
        let mut headers = vec![("x-amz-copy-source".to_string(), source)];
        if let Some(etag) = e_tag {
            headers.push(("x-amz-copy-source-if-match".to_string(), etag.clone()));
        }
        headers
    }

    pub(super) fn malformed(&self, what: &str) -> OffsiteError {
        OffsiteError::Remote {
            where_: self.cfg.where_(),
            detail: format!("{}: the answer has no {what}", self.key),
        }
    }

    /// Sends one request (retried as the module documentation says) and returns the answer's
    /// body; any other outcome is the error it means.
    pub(super) async fn send(
        &self,
        method: Method,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        cancel: &CancelFlag,
    ) -> Result<String, OffsiteError> {
        let mut attempt = 0;
        loop {
            let request = self.request(method.clone(), query, headers, body.clone())?;
            let answer = cancellable(cancel, self.exchange(request)).await?;
            match answer {
                Ok(text) => return Ok(text),
                Err(Failure { retry, error }) if !retry || attempt >= self.cfg.max_retries => {
                    return Err(error)
                }
                Err(_) => {}
            }
            let wait = Duration::from_millis(200u64.saturating_mul(1 << attempt.min(10)));
            cancellable(cancel, tokio::time::sleep(wait.min(Duration::from_secs(5)))).await?;
            attempt += 1;
        }
    }

    fn request(
        &self,
        method: Method,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Request<HttpRequestBody>, OffsiteError> {
        let url = match query {
            "" => self.url.clone(),
            q => format!("{}?{q}", self.url),
        };
        // Some servers (rclone serve s3) refuse a PUT or POST without Content-Length.
        let empty_upload = body.is_empty() && method != Method::GET && method != Method::DELETE;
        let mut builder = Request::builder().method(method).uri(url);
        if empty_upload {
            builder = builder.header("content-length", "0");
        }
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request = builder.body(HttpRequestBody::from(body)).map_err(|e| {
            OffsiteError::BadConfig(format!("{}: {}", self.key, one_line(&e.to_string())))
        })?;
        AwsAuthorizer::new(&self.credential, "s3", &self.cfg.region).authorize(&mut request, None);
        Ok(request)
    }

    async fn exchange(&self, request: Request<HttpRequestBody>) -> Result<String, Failure> {
        let response = self.execute(request).await?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| self.transport(e))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if (200..300).contains(&status) && !text.contains("<Error>") {
            return Ok(text);
        }
        Err(self.refusal(status, &text))
    }

    /// Sends one request; the answer whatever its status.
    async fn execute(&self, request: Request<HttpRequestBody>) -> Result<HttpResponse, Failure> {
        self.client
            .execute(request)
            .await
            .map_err(|e| self.transport(e))
    }

    /// Sends a GET of the object (`range`: bytes `start..end`; `if_match`: its ETag) and
    /// answers the response of a 2xx status before its body is read; the error an other
    /// status means (412: the object was replaced) after reading its body. Not retried.
    pub(super) async fn get(
        &self,
        range: Option<std::ops::Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<HttpResponse, Failure> {
        let mut headers = Vec::new();
        if let Some(range) = range {
            let last = range.end.saturating_sub(1);
            headers.push(("range".to_string(), format!("bytes={}-{last}", range.start)));
        }
        if let Some(etag) = if_match {
            headers.push(("if-match".to_string(), etag.to_string()));
        }
        let request = self
            .request(Method::GET, "", &headers, Vec::new())
            .map_err(|error| Failure {
                retry: false,
                error,
            })?;
        let response = self.execute(request).await?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let bytes = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| self.transport(e))?;
        Err(self.refusal(status, &String::from_utf8_lossy(&bytes)))
    }

    /// What a failure of the transport (connecting, sending, reading the answer) means.
    pub(super) fn transport(&self, e: HttpError) -> Failure {
        let retry = matches!(
            e.kind(),
            object_store::client::HttpErrorKind::Connect
                | object_store::client::HttpErrorKind::Timeout
                | object_store::client::HttpErrorKind::Request
                | object_store::client::HttpErrorKind::Interrupted
        );
        let error = object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        };
        Failure {
            retry,
            error: remote_error(error, self.cfg),
        }
    }

    /// What an error answer means.
    pub(super) fn refusal(&self, status: u16, body: &str) -> Failure {
        let code = xml_field(body, "Code").unwrap_or_default();
        let message = xml_field(body, "Message").unwrap_or_default();
        let detail = scrub(
            &format!("{}: HTTP {status} {code} {message}", self.key),
            self.cfg,
        );
        let where_ = self.cfg.where_();
        let retry = status >= 500
            || status == 429
            || ["InternalError", "SlowDown", "ServiceUnavailable"].contains(&code.as_str());
        let error = match status {
            401 | 403 => OffsiteError::Auth { where_, detail },
            404 => OffsiteError::NotFound { where_, detail },
            412 => OffsiteError::Integrity(format!(
                "{} was replaced by another upload while it was copied or downloaded: try again",
                self.key
            )),
            _ => OffsiteError::Remote { where_, detail },
        };
        Failure { retry, error }
    }
}

/// A failed exchange, and whether trying it again may help.
pub(super) struct Failure {
    pub(super) retry: bool,
    pub(super) error: OffsiteError,
}

/// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host[:port]`: the URL
/// object_store's client uses for the bucket.
fn bucket_url(cfg: &OffsiteConfig) -> String {
    match (client_endpoint(cfg), cfg.path_style) {
        (Some(endpoint), true) => format!("{endpoint}/{}", cfg.bucket),
        (Some(endpoint), false) => endpoint,
        (None, true) => format!("https://s3.{}.amazonaws.com/{}", cfg.region, cfg.bucket),
        (None, false) => format!("https://{}.s3.{}.amazonaws.com", cfg.bucket, cfg.region),
    }
}

/// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~` (and `/` when `keep_slash`): S3's URI
/// encoding, the one the signer and the server both apply.
pub(super) fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>…</tag>` in `xml`, entities decoded.
pub(super) fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

pub(super) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsite::Secret;

    fn cfg() -> OffsiteConfig {
        let mut c = OffsiteConfig::new("backups", "AKID", Secret::new("s3cr3t"));
        c.region = "eu-central-1".into();
        c
    }

    #[test]
    fn bucket_urls_follow_the_request_style() {
        let mut c = cfg();
        assert_eq!(
            bucket_url(&c),
            "https://backups.s3.eu-central-1.amazonaws.com"
        );
        c.path_style = true;
        assert_eq!(
            bucket_url(&c),
            "https://s3.eu-central-1.amazonaws.com/backups"
        );
        c.endpoint = Some("http://127.0.0.1:9000/".into());
        assert_eq!(bucket_url(&c), "http://127.0.0.1:9000/backups");
        c.path_style = false;
        c.endpoint = Some("https://s3.example.net".into());
        assert_eq!(bucket_url(&c), "https://backups.s3.example.net");
    }

    #[test]
    fn keys_are_uri_encoded_as_s3_wants() {
        assert_eq!(
            encode(
                "emqx/prod/emqx-export-2026-01-01-00-00-00.000.tar.gz.age",
                true
            ),
            "emqx/prod/emqx-export-2026-01-01-00-00-00.000.tar.gz.age"
        );
        assert_eq!(encode("a b/ü+=", true), "a%20b/%C3%BC%2B%3D");
        assert_eq!(encode("x/y", false), "x%2Fy");
    }

    #[test]
    fn xml_fields_are_decoded() {
        let body = "<?xml version=\"1.0\"?><CopyPartResult><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyPartResult>";
        assert_eq!(
            xml_field(body, "ETag").as_deref(),
            Some("\"9b2cf535f27731c974343645a3985328\"")
        );
        assert_eq!(xml_field(body, "UploadId"), None);
        assert_eq!(xml_escape("\"a&b\""), "&quot;a&amp;b&quot;");
    }
}
