//! The S3 client made from an [`OffsiteConfig`] (object_store's `AmazonS3`: SigV4, retries with
//! backoff, request checksums), the current-thread runtime each operation drives it on, waits
//! that stop when the job is cancelled, and the HEAD request upload and fetch both start with.

use std::fs;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, BackoffConfig, ClientOptions, GetOptions, ObjectStore, RetryConfig};

use super::error::{one_line, remote_error, scrub, shown};
use super::{OffsiteConfig, OffsiteError};
use crate::reading::CancelFlag;

/// How often a wait on the network checks the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The endpoint the client is given: for virtual-hosted style with a custom endpoint,
/// `scheme://<bucket>.host…` (object_store expects the bucket in it).
pub(super) fn client_endpoint(cfg: &OffsiteConfig) -> Option<String> {
    let endpoint = cfg.endpoint.as_ref()?.trim_end_matches('/').to_string();
    if cfg.path_style {
        return Some(endpoint);
    }
    let (scheme, host) = endpoint.split_once("://")?;
    Some(format!("{scheme}://{}.{host}", cfg.bucket))
}

/// The HTTP client options of `cfg` (timeouts, TLS verification, CA file, plain HTTP).
pub(super) fn client_options(cfg: &OffsiteConfig) -> Result<ClientOptions, OffsiteError> {
    let mut client = ClientOptions::new()
        .with_connect_timeout(cfg.connect_timeout)
        .with_timeout(cfg.request_timeout)
        .with_allow_invalid_certificates(!cfg.tls_verify);
    if let Some(ca) = &cfg.ca_file {
        let pem = fs::read(ca).map_err(|e| {
            OffsiteError::BadConfig(format!(
                "ca_file {}: {}",
                shown(ca),
                one_line(&e.to_string())
            ))
        })?;
        let cert = object_store::Certificate::from_pem(&pem).map_err(|e| {
            OffsiteError::BadConfig(format!(
                "ca_file {}: not a PEM certificate: {}",
                shown(ca),
                one_line(&e.to_string())
            ))
        })?;
        client = client.with_root_certificate(cert);
    }
    if cfg
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
    {
        client = client.with_allow_http(true);
    }
    Ok(client)
}

/// The client for `cfg`.
pub(super) fn store(cfg: &OffsiteConfig) -> Result<AmazonS3, OffsiteError> {
    cfg.validate()?;
    let client = client_options(cfg)?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: cfg.max_retries,
        retry_timeout: cfg.request_timeout * 2,
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_access_key_id(&cfg.access_key)
        .with_secret_access_key(cfg.secret_key.expose())
        .with_virtual_hosted_style_request(!cfg.path_style)
        .with_client_options(client)
        .with_retry(retry)
        .with_checksum_algorithm(Checksum::SHA256);
    if let Some(endpoint) = client_endpoint(cfg) {
        builder = builder.with_endpoint(endpoint);
    }
    builder
        .build()
        .map_err(|e| OffsiteError::BadConfig(scrub(&e.to_string(), cfg)))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, OffsiteError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OffsiteError::Io {
            path: PathBuf::from("(runtime)"),
            detail: format!("cannot start the network runtime: {e}"),
        })
}

/// `fut`, unless `cancel` is set first (checked every [`CANCEL_POLL`]).
pub(super) async fn cancellable<F: Future>(
    cancel: &CancelFlag,
    fut: F,
) -> Result<F::Output, OffsiteError> {
    let watch = async {
        loop {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(CANCEL_POLL).await;
        }
    };
    let fut = std::pin::pin!(fut);
    let watch = std::pin::pin!(watch);
    match futures_util::future::select(fut, watch).await {
        futures_util::future::Either::Left((out, _)) => Ok(out),
        futures_util::future::Either::Right(_) => Err(OffsiteError::Cancelled),
    }
}

pub(super) fn object_path(cfg: &OffsiteConfig, name: &str) -> Result<ObjectPath, OffsiteError> {
    ObjectPath::parse(cfg.key(name))
        .map_err(|e| OffsiteError::BadConfig(format!("object key: {}", one_line(&e.to_string()))))
}

/// A remote object as HEAD shows it: size, ETag and user metadata (keys in lowercase).
#[derive(Debug, Clone)]
pub(super) struct ObjectInfo {
    pub(super) size: u64,
    pub(super) e_tag: Option<String>,
    pub(super) metadata: Vec<(String, String)>,
}

impl ObjectInfo {
    pub(super) fn from_head(got: &object_store::GetResult) -> Self {
        let metadata = got
            .attributes
            .iter()
            .filter_map(|(key, value)| match key {
                Attribute::Metadata(name) => {
                    Some((name.to_ascii_lowercase(), value.as_ref().to_string()))
                }
                _ => None,
            })
            .collect();
        ObjectInfo {
            size: got.meta.size,
            e_tag: got.meta.e_tag.clone(),
            metadata,
        }
    }

    /// The metadata value of `key`.
    pub(super) fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// HEAD of the object `name` under the prefix; `None` when there is none.
pub(super) async fn head_object(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    cancel: &CancelFlag,
) -> Result<Option<ObjectInfo>, OffsiteError> {
    let path = object_path(cfg, name)?;
    let opts = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match cancellable(cancel, store.get_opts(&path, opts)).await? {
        Ok(got) => Ok(Some(ObjectInfo::from_head(&got))),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(remote_error(e, cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::unreachable_test_config as cfg;
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        let mut c = cfg();
        assert_eq!(client_endpoint(&c).as_deref(), Some("http://127.0.0.1:1"));
        c.path_style = false;
        c.endpoint = Some("https://s3.example.net/".into());
        assert_eq!(
            client_endpoint(&c).as_deref(),
            Some("https://backups.s3.example.net")
        );
        c.endpoint = None;
        assert_eq!(client_endpoint(&c), None);
    }
}
