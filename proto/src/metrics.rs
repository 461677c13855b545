//! Prometheus text exposition (format version 0.0.4) and a minimal HTTP/1.1
//! responder that serves it on `GET /metrics`.
//!
//! The metric types here only take `&'static str` label values, so a peer
//! can never grow the number of series: callers map whatever a request said
//! onto a fixed set of names (with a catch-all such as `other`) before
//! counting. The responder reads at most [`MAX_REQUEST_HEAD`] bytes of the
//! request head, which is untrusted, within a few seconds, serves at most
//! [`MAX_CONNECTIONS`] connections at once, and answers each with
//! `Connection: close`; it serves nothing but the exposition.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head the responder reads, in bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Most connections answered at once; further ones are closed unanswered.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Latency buckets in seconds shared by every latency histogram: 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A family of monotonic counters keyed by a fixed number of label values.
#[derive(Debug, Default)]
pub struct CounterVec {
    values: Mutex<BTreeMap<Vec<&'static str>, u64>>,
}

impl CounterVec {
    /// An empty family.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to the series named by `labels` (values in the order of the
    /// label names given to [`Exposition::counter`]).
    pub fn inc(&self, labels: &[&'static str]) {
        self.add(labels, 1);
    }

    /// Adds `n` to the series named by `labels`.
    pub fn add(&self, labels: &[&'static str], n: u64) {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        *values.entry(labels.to_vec()).or_default() += n;
    }

    /// The current value of one series; zero if it was never counted.
    pub fn value(&self, labels: &[&'static str]) -> u64 {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.get(labels).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(Vec<&'static str>, u64)> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A family of histograms over [`LATENCY_BUCKETS`], keyed by one label value.
#[derive(Debug, Default)]
pub struct HistogramVec {
    series: Mutex<BTreeMap<&'static str, HistogramData>>,
}

#[derive(Clone, Debug, Default)]
struct HistogramData {
    /// Observations per bucket, not cumulative; the last slot is `+Inf`.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl HistogramVec {
    /// An empty family.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one observation of `seconds` in the series `label`.
    pub fn observe(&self, label: &'static str, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let data = series.entry(label).or_default();
        if data.buckets.is_empty() {
            data.buckets = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        data.buckets[slot] += 1;
        data.sum += seconds;
        data.count += 1;
    }

    /// How many observations the series `label` holds.
    pub fn count(&self, label: &'static str) -> u64 {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.get(label).map_or(0, |d| d.count)
    }

    fn snapshot(&self) -> Vec<(&'static str, HistogramData)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// A plain monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Builds one text exposition, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a counter family; `labels` names the label of each position in
    /// the series keys.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[&str], family: &CounterVec) {
        self.header(name, help, "counter");
        for (values, n) in family.snapshot() {
            let _ = writeln!(self.out, "{name}{} {n}", label_set(labels, &values, None));
        }
    }

    /// Writes a counter without labels.
    pub fn single_counter(&mut self, name: &str, help: &str, counter: &Counter) {
        self.header(name, help, "counter");
        let _ = writeln!(self.out, "{name} {}", counter.value());
    }

    /// Writes a gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// Writes a histogram family whose series differ in the label `label`.
    pub fn histogram(&mut self, name: &str, help: &str, label: &str, family: &HistogramVec) {
        self.header(name, help, "histogram");
        for (value, data) in family.snapshot() {
            let mut cumulative = 0;
            for (slot, n) in data.buckets.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS
                    .get(slot)
                    .map_or_else(|| "+Inf".to_owned(), f64::to_string);
                let labels = label_set(&[label], &[value], Some(&le));
                let _ = writeln!(self.out, "{name}_bucket{labels} {cumulative}");
            }
            let labels = label_set(&[label], &[value], None);
            let _ = writeln!(self.out, "{name}_sum{labels} {}", data.sum);
            let _ = writeln!(self.out, "{name}_count{labels} {}", data.count);
        }
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }
}

/// `{a="x",b="y"}` with values escaped as the text format requires, or the
/// empty string when there are no labels.
fn label_set(names: &[&str], values: &[&str], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Produces the exposition text at scrape time.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

// Limitation: the endpoint has no authentication and no TLS; the services'
// binaries only bind it to loopback addresses.
/// Answers `GET /metrics` on `listener` with the text `render` produces,
/// until `shutdown` completes. Other paths get 404, other methods 405, and a
/// malformed or oversized request head 400.
pub async fn serve_metrics(
    listener: TcpListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept failed");
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("metrics connection refused: too many open");
            continue;
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            if let Err(e) = answer(stream, render).await {
                tracing::debug!(error = %e, "metrics connection failed");
            }
            drop(slot);
        });
    }
}

async fn answer(mut stream: TcpStream, render: Render) -> std::io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let (status, body) = match route(head.as_deref()) {
        Route::Metrics => ("200 OK", render().await),
        Route::NotFound => ("404 Not Found", "not found\n".to_owned()),
        Route::BadMethod => ("405 Method Not Allowed", "method not allowed\n".to_owned()),
        Route::BadRequest => ("400 Bad Request", "bad request\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the blank line that ends the request head; `None` when the
/// head is larger than [`MAX_REQUEST_HEAD`] or the peer closes early.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() + n > MAX_REQUEST_HEAD {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(head))
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadMethod,
    BadRequest,
}

// Limitation: the request line is untrusted, but no fuzz target reaches
// this private function; its unit tests below are what covers it.
fn route(head: Option<&[u8]>) -> Route {
    let Some(line) = head.and_then(|h| h.split(|b| *b == b'\r').next()) else {
        return Route::BadRequest;
    };
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with(b"HTTP/1.") || parts.next().is_some() {
        return Route::BadRequest;
    }
    if method != b"GET" {
        return Route::BadMethod;
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    if path == b"/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(
            route(Some(b"GET /metrics HTTP/1.1\r\n\r\n")),
            Route::Metrics
        );
        assert_eq!(
            route(Some(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")),
            Route::Metrics
        );
        assert_eq!(route(Some(b"GET / HTTP/1.1\r\n\r\n")), Route::NotFound);
        assert_eq!(
            route(Some(b"POST /metrics HTTP/1.1\r\n\r\n")),
            Route::BadMethod
        );
        assert_eq!(route(Some(b"GET /metrics\r\n\r\n")), Route::BadRequest);
        assert_eq!(route(None), Route::BadRequest);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = HistogramVec::new();
        // Powers of two, so the sum is exact: 2^-10 + 2^-8 + 16.
        h.observe("a", 0.000_976_562_5);
        h.observe("a", 0.003_906_25);
        h.observe("a", 16.0);
        let mut e = Exposition::new();
        e.histogram("lat_seconds", "latency", "rpc", &h);
        let text = e.finish();
        // 2^-10 <= 0.001; 2^-8 first fits 0.005; 16 s only in +Inf.
        assert!(text.contains("lat_seconds_bucket{rpc=\"a\",le=\"0.001\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{rpc=\"a\",le=\"0.0025\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{rpc=\"a\",le=\"0.005\"} 2\n"));
        assert!(text.contains("lat_seconds_bucket{rpc=\"a\",le=\"10\"} 2\n"));
        assert!(text.contains("lat_seconds_bucket{rpc=\"a\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("lat_seconds_count{rpc=\"a\"} 3\n"));
        assert!(text.contains("lat_seconds_sum{rpc=\"a\"} 16.0048828125\n"));
    }

    #[test]
    fn counters_render_with_escaped_labels() {
        let c = CounterVec::new();
        c.inc(&["a\"b"]);
        c.add(&["x"], 4);
        let mut e = Exposition::new();
        e.counter("things_total", "things", &["kind"], &c);
        assert_eq!(
            e.finish(),
            "# HELP things_total things\n# TYPE things_total counter\n\
             things_total{kind=\"a\\\"b\"} 1\nthings_total{kind=\"x\"} 4\n"
        );
    }
}
