//! Parsing user-supplied locations (plain paths and URLs) into a [`Location`].

use std::path::{Path, PathBuf};

use rask_error::{RaskError, Result};

/// The kind of store a [`Location`] points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// A local file or folder (a plain path or a `file://` URL).
    Local,
    /// Amazon S3 or any S3-compatible server (`s3://bucket/key`, also `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://bucket/key`, also `gcs://`).
    Gcs,
    /// Azure Blob Storage (`az://container/key`, also `abfs://`, `azure://`).
    Azure,
    /// A plain HTTP(S) server (`http://host/path`, `https://host/path`).
    Http,
}

impl Scheme {
    /// The canonical URL scheme (`file`, `s3`, `gs`, `az`, `http`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Local => "file",
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
            Scheme::Http => "http",
        }
    }
}

/// A parsed location: a local path, or a bucket (or HTTP origin) and a key inside it.
///
/// ```
/// use rask_io::{Location, Scheme};
/// let loc = Location::parse("s3://my-bucket/data/x.parquet").unwrap();
/// assert_eq!(loc.scheme(), Scheme::S3);
/// assert_eq!(loc.bucket(), Some("my-bucket"));
/// assert_eq!(loc.key(), "data/x.parquet");
/// assert_eq!(loc.to_string(), "s3://my-bucket/data/x.parquet");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    scheme: Scheme,
    /// Bucket or container (S3, GCS, Azure); the origin `scheme://host[:port]` for HTTP; `None`
    /// for local paths.
    bucket: Option<String>,
    /// The key inside the bucket, without a leading `/`; for local paths the absolute path
    /// without its leading `/`.
    key: String,
}

impl Location {
    /// Parses a plain path (relative or absolute) or a URL (`file://`, `s3://`, `s3a://`,
    /// `gs://`, `gcs://`, `az://`, `azure://`, `abfs://`, `http://`, `https://`).
    ///
    /// Relative plain paths are made absolute against the current directory. Unknown schemes and
    /// malformed URLs are errors naming the input.
    pub fn parse(input: &str) -> Result<Location> {
        let input_trim = input.trim();
        if input_trim.is_empty() {
            return Err(RaskError::invalid_argument("location", "empty path or URL"));
        }
        let Some((scheme, _)) = input_trim.split_once("://") else {
            if input_trim.starts_with("file:") {
                return Err(RaskError::invalid_argument(
                    "location",
                    format!("malformed URL `{input}`: expected `file:///absolute/path`"),
                ));
            }
            return Location::local(Path::new(input_trim));
        };
        // A Windows path such as `C:\x` never contains "://", so everything here is a URL.
        let url = url::Url::parse(input_trim).map_err(|e| {
            RaskError::invalid_argument("location", format!("malformed URL `{input}`: {e}"))
        })?;
        let scheme_lc = scheme.to_ascii_lowercase();
        let kind = match scheme_lc.as_str() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    RaskError::invalid_argument(
                        "location",
                        format!("malformed URL `{input}`: not a local absolute file path"),
                    )
                })?;
                return Location::local(&path);
            }
            "s3" | "s3a" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" | "adl" => Scheme::Azure,
            "http" | "https" => Scheme::Http,
            other => {
                return Err(RaskError::invalid_argument(
                    "location",
                    format!(
                        "unsupported URL scheme `{other}` in `{input}` (supported: plain paths, \
                         file://, s3://, gs://, az://, http://, https://)"
                    ),
                ));
            }
        };
        let host = url.host_str().unwrap_or("");
        if host.is_empty() {
            let what = if kind == Scheme::Http {
                "host"
            } else {
                "bucket"
            };
            return Err(RaskError::invalid_argument(
                "location",
                format!("malformed URL `{input}`: no {what} name"),
            ));
        }
        let bucket = if kind == Scheme::Http {
            match url.port() {
                Some(p) => format!("{}://{host}:{p}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        } else {
            host.to_string()
        };
        let key = percent_decode(url.path().trim_start_matches('/'));
        Ok(Location {
            scheme: kind,
            bucket: Some(bucket),
            key,
        })
    }

    fn local(path: &Path) -> Result<Location> {
        let abs = std::path::absolute(path).map_err(|e| RaskError::io(path.display(), e))?;
        // `.` and `..` are resolved lexically, as Python's `os.path.abspath` does: object
        // store paths refuse them as segments.
        let mut normal = std::path::PathBuf::new();
        for part in abs.components() {
            match part {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    normal.pop();
                }
                other => normal.push(other),
            }
        }
        let s = normal.to_string_lossy().replace('\\', "/");
        Ok(Location {
            scheme: Scheme::Local,
            bucket: None,
            key: s.trim_start_matches('/').trim_end_matches('/').to_string(),
        })
    }

    /// The kind of store.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The bucket (S3, GCS), container (Azure) or origin (`http://host:port`); `None` for local
    /// paths.
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// The key inside the bucket (no leading `/`). For local paths, the absolute path without
    /// its leading `/`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True for local files and folders.
    pub fn is_local(&self) -> bool {
        self.scheme == Scheme::Local
    }

    /// The local path, for local locations.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.is_local()
            .then(|| PathBuf::from(format!("/{}", self.key)))
    }

    /// The same bucket (or origin, or local file system) with another key.
    pub fn with_key(&self, key: &str) -> Location {
        let mut out = self.clone();
        out.key = key.trim_matches('/').to_string();
        out
    }

    /// This location with `rel` (a `/`-separated relative path) appended to the key.
    pub fn join(&self, rel: &str) -> Location {
        let rel = rel.trim_matches('/');
        let mut out = self.clone();
        if !rel.is_empty() {
            out.key = if self.key.is_empty() {
                rel.to_string()
            } else {
                format!("{}/{rel}", self.key)
            };
        }
        out
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.scheme, &self.bucket) {
            (Scheme::Local, _) => write!(f, "/{}", self.key),
            (Scheme::Http, Some(origin)) => write!(f, "{origin}/{}", self.key),
            (s, Some(b)) => write!(f, "{}://{b}/{}", s.as_str(), self.key),
            (_, None) => write!(f, "{}", self.key),
        }
    }
}

/// Decodes `%XX` escapes (URL paths arrive encoded; object keys are stored decoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_forms() {
        let l = Location::parse("s3://b/k/x.npy").unwrap();
        assert_eq!(
            (l.scheme(), l.bucket(), l.key()),
            (Scheme::S3, Some("b"), "k/x.npy")
        );
        let l = Location::parse("https://example.com:8080/a/b%20c").unwrap();
        assert_eq!(l.bucket(), Some("https://example.com:8080"));
        assert_eq!(l.key(), "a/b c");
        let l = Location::parse("file:///tmp/x").unwrap();
        assert_eq!(l.local_path().unwrap(), PathBuf::from("/tmp/x"));
        let l = Location::parse("/tmp/y/").unwrap();
        assert_eq!(l.key(), "tmp/y");
        assert!(Location::parse("rel/path").unwrap().is_local());
        assert_eq!(Location::parse("gs://g/o").unwrap().scheme(), Scheme::Gcs);
        assert_eq!(Location::parse("az://c/o").unwrap().scheme(), Scheme::Azure);
    }

    #[test]
    fn local_paths_resolve_dot_segments() {
        let l = Location::parse("/tmp/a/../b/./c.csv").unwrap();
        assert_eq!(l.key(), "tmp/b/c.csv");
        let here = std::env::current_dir().unwrap();
        let up = Location::parse("../x.parquet").unwrap();
        let want = here.parent().unwrap_or(&here).join("x.parquet");
        assert_eq!(up.local_path().unwrap(), want);
    }

    #[test]
    fn bad_inputs_name_the_input() {
        for bad in ["ftp://host/x", "s3:///nokey", "http://", ""] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains("location"), "{e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
