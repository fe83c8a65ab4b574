//! The HTTP service of the `queens_server` showcase (hyper on the
//! connections of `mc-serve`'s async workers), and the same handler over
//! a `Mutex<HashMap>` for one process, which the serve benchmark measures
//! it against.
//!
//! - `GET /queens/N` (N = 1..=16): the number of solutions, from the
//!   shared cache when any worker computed it before;
//! - `GET /count/KEY`: counts a hit on KEY, returns the count;
//! - `GET /stats`: every key's count.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use mc::structures::SHashtbl;

use crate::nqueens;

/// Hit counts, with a lock in the header for adding a key.
pub type Hits = SHashtbl<String, u64, mc::sync::Mutex<()>>;

/// What the service keeps: in shared tables (the workers of a service),
/// or in a process (the baseline).
pub trait Store: Send + Sync + 'static {
    /// Counts a hit on `key`; its count now.
    ///
    /// # Errors
    ///
    /// When the store fails (a shared table's heap).
    fn hit(&self, key: &str) -> Result<u64, String>;
    /// The cached count of N-queens for `n`, if any.
    ///
    /// # Errors
    ///
    /// As [`hit`](Store::hit).
    fn cached(&self, n: u32) -> Result<Option<u64>, String>;
    /// Caches the count for `n`.
    ///
    /// # Errors
    ///
    /// As [`hit`](Store::hit).
    fn cache(&self, n: u32, count: u64) -> Result<(), String>;
    /// Every key and its count, sorted.
    ///
    /// # Errors
    ///
    /// As [`hit`](Store::hit).
    fn hits(&self) -> Result<Vec<(String, u64)>, String>;
}

/// The tables every worker opens in its init hook.
pub struct SharedStore {
    /// Hits per key.
    pub hits: Hits,
    /// N → the number of solutions.
    pub cache: SHashtbl<u32, u64>,
}

impl Store for SharedStore {
    fn hit(&self, key: &str) -> Result<u64, String> {
        let key = key.to_owned();
        let bump = |h: &Hits| {
            h.modify_value(&key, |_, mut v| {
                *v += 1;
                *v
            })
        };
        if let Some(n) = bump(&self.hits).map_err(|e| e.to_string())? {
            return Ok(n);
        }
        // A new key is added under the header's lock, so that two workers
        // adding it at once count both hits.
        let h = self.hits.header().map_err(|e| e.to_string())?;
        let _adding = h.lock().map_err(|e| e.to_string())?;
        if let Some(n) = bump(&self.hits).map_err(|e| e.to_string())? {
            return Ok(n);
        }
        self.hits.replace(&key, &1).map_err(|e| e.to_string())?;
        Ok(1)
    }

    fn cached(&self, n: u32) -> Result<Option<u64>, String> {
        self.cache.find_copy(&n).map_err(|e| e.to_string())
    }

    fn cache(&self, n: u32, count: u64) -> Result<(), String> {
        self.cache.replace(&n, &count).map_err(|e| e.to_string())
    }

    fn hits(&self) -> Result<Vec<(String, u64)>, String> {
        let mut all = self.hits.to_vec().map_err(|e| e.to_string())?;
        all.sort();
        Ok(all)
    }
}

/// The baseline's store: one process, its threads sharing maps.
#[derive(Default)]
pub struct LocalStore {
    hits: Mutex<HashMap<String, u64>>,
    cache: Mutex<HashMap<u32, u64>>,
}

impl Store for LocalStore {
    fn hit(&self, key: &str) -> Result<u64, String> {
        let mut g = self.hits.lock().map_err(|e| e.to_string())?;
        let n = g.entry(key.to_owned()).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    fn cached(&self, n: u32) -> Result<Option<u64>, String> {
        Ok(self
            .cache
            .lock()
            .map_err(|e| e.to_string())?
            .get(&n)
            .copied())
    }

    fn cache(&self, n: u32, count: u64) -> Result<(), String> {
        self.cache
            .lock()
            .map_err(|e| e.to_string())?
            .insert(n, count);
        Ok(())
    }

    fn hits(&self) -> Result<Vec<(String, u64)>, String> {
        let mut all: Vec<_> = self
            .hits
            .lock()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort();
        Ok(all)
    }
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Answers one request.
pub async fn route<S: Store>(path: &str, s: &Arc<S>) -> Response<Full<Bytes>> {
    let pid = std::process::id();
    if let Some(n) = path.strip_prefix("/queens/") {
        let Ok(n @ 1..=16) = n.parse::<u32>() else {
            return reply(400, "N must be 1 to 16\n".into());
        };
        let (count, cached) = match s.cached(n) {
            Ok(Some(c)) => (c, true),
            Ok(None) => {
                // Counting takes up to seconds: off the runtime's threads.
                let c = tokio::task::spawn_blocking(move || nqueens::count_sequential(n as usize))
                    .await
                    .unwrap_or(0);
                if let Err(e) = s.cache(n, c) {
                    return reply(500, format!("{e}\n"));
                }
                (c, false)
            }
            Err(e) => return reply(500, format!("{e}\n")),
        };
        return reply(
            200,
            format!("{{\"n\":{n},\"solutions\":{count},\"cached\":{cached},\"pid\":{pid}}}"),
        );
    }
    if let Some(key) = path.strip_prefix("/count/") {
        return match s.hit(key) {
            Ok(n) => reply(
                200,
                format!("{{\"key\":\"{key}\",\"hits\":{n},\"pid\":{pid}}}"),
            ),
            Err(e) => reply(500, format!("{e}\n")),
        };
    }
    if path == "/stats" {
        return match s.hits() {
            Ok(all) => reply(200, all.iter().map(|(k, v)| format!("{k} {v}\n")).collect()),
            Err(e) => reply(500, format!("{e}\n")),
        };
    }
    reply(200, "GET /queens/N (1..=16), /count/KEY, /stats\n".into())
}

/// Serves HTTP/1.1 (keep-alive) on one connection.
///
/// # Errors
///
/// When the connection fails or sends what is not HTTP.
pub async fn serve_connection<S, IO>(conn: IO, s: Arc<S>) -> io::Result<()>
where
    S: Store,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let s = s.clone();
        async move { Ok::<_, Infallible>(route(req.uri().path(), &s).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
        .await
        .map_err(io::Error::other)
}
