//! The connection to the daemon.
//!
//! Typed calls go through bollard. A few go over raw HTTP on the same socket
//! because bollard's models lose what docker shows: the progress streams
//! (`PushImageInfo` has no layer `id`), and `inspect`/`info`/`version`
//! (docker prints the daemon's JSON as sent, key order included).

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;

/// A request body: empty, or streamed from a file or stdin.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn empty_body() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn reader_body<R: AsyncRead + Send + 'static>(reader: R) -> Body {
    let frames = tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data);
    StreamBody::new(frames).boxed_unsync()
}

/// An error the daemon answered with; printed as docker prints it.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn is_not_found(err: &anyhow::Error) -> bool {
        err.downcast_ref::<ApiError>()
            .is_some_and(|e| e.status == 404)
    }
}

/// Nothing answered on the daemon's socket.
#[derive(Debug)]
pub struct ConnectError {
    pub host: String,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot connect to the servin daemon at {}. Is servind running?",
            self.host
        )
    }
}

impl std::error::Error for ConnectError {}

/// Turns a bollard error into the error docker would print.
pub fn api_error(host: &str, err: bollard::errors::Error) -> anyhow::Error {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError {
            status_code,
            message,
        } => ApiError {
            status: status_code,
            message,
        }
        .into(),
        E::DockerStreamError { error } => anyhow::anyhow!(error),
        E::SocketNotFoundError(_) => ConnectError {
            host: host.to_string(),
        }
        .into(),
        E::HyperResponseError { .. } | E::IOError { .. } => {
            anyhow::anyhow!("error during connect: {err}")
        }
        other => other.into(),
    }
}

/// A connected, version-negotiated client.
#[derive(Clone)]
pub struct Client {
    pub docker: bollard::Docker,
    pub host: String,
    socket: PathBuf,
}

impl Client {
    pub fn new(docker: bollard::Docker, host: String, socket: PathBuf) -> Self {
        Client {
            docker,
            host,
            socket,
        }
    }

    /// The negotiated API version ("1.41").
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// Whether the negotiated API is at least 1.`minor`.
    pub fn api_at_least(&self, minor: u32) -> bool {
        self.api_version()
            .strip_prefix("1.")
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m >= minor)
    }

    /// Maps a bollard error for this daemon.
    pub fn err(&self, err: bollard::errors::Error) -> anyhow::Error {
        api_error(&self.host, err)
    }

    /// Sends `method path?query` under the negotiated version prefix and
    /// returns the response when it is a success.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response<Incoming>> {
        let mut uri = format!("/v{}{path}", self.api_version());
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&encode_query(query));
        }
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "docker")
            .header("User-Agent", concat!("servin/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = send(&self.socket, &self.host, req.body(body)?).await?;
        // Docker's client counts every status below 400 as success (a 304
        // for starting a started container, say).
        if resp.status().as_u16() < 400 {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Err(error_from_body(status, &bytes).into())
    }

    /// POSTs `path` asking to switch to a raw stream (`Upgrade: tcp`), as
    /// docker's attach and exec start do; a 101 answer gives the socket in
    /// both directions.
    pub async fn upgrade(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: Bytes,
    ) -> Result<Hijacked> {
        let mut uri = format!("/v{}{path}", self.api_version());
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&encode_query(query));
        }
        let req = Request::post(uri)
            .header("Host", "docker")
            .header("User-Agent", concat!("servin/", env!("CARGO_PKG_VERSION")))
            .header("Content-Type", content_type)
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
            .body(Full::new(body))?;
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|_| ConnectError {
                host: self.host.clone(),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("error during connect")?;
        tokio::spawn(conn.with_upgrades());
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        if status == 101 {
            let headers = resp.headers().clone();
            let upgraded = hyper::upgrade::on(resp).await?;
            let parts = upgraded
                .downcast::<TokioIo<tokio::net::UnixStream>>()
                .map_err(|_| {
                    anyhow::anyhow!("unable to upgrade to tcp: unexpected connection type")
                })?;
            let (read, write) = parts.io.into_inner().into_split();
            let already = std::io::Cursor::new(parts.read_buf);
            return Ok(Hijacked {
                reader: Box::new(tokio::io::AsyncReadExt::chain(already, read)),
                writer: Some(Box::new(write)),
                headers,
            });
        }
        // Docker's client takes nothing but a switch of protocols, and
        // reports any other answer by its status alone.
        anyhow::bail!("unable to upgrade to tcp, received {status}")
    }

    /// GETs a JSON document and returns its bytes untouched.
    pub async fn get_raw(&self, path: &str, query: &[(&str, String)]) -> Result<Bytes> {
        let resp = self
            .request(Method::GET, path, query, &[], empty_body())
            .await?;
        Ok(resp.into_body().collect().await?.to_bytes())
    }
}

/// A connection switched to a raw stream: what the daemon sends, and the
/// way back, whose shutdown half-closes the socket.
pub struct Hijacked {
    pub reader: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    pub writer: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>>,
    /// The headers of the `101` answer.
    pub headers: hyper::HeaderMap,
}

/// A response body as a byte stream.
pub fn body_reader(body: Incoming) -> Box<dyn tokio::io::AsyncRead + Unpin + Send> {
    let frames = http_body_util::BodyStream::new(body).filter_map(|f| async {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(std::io::Error::other(e))),
        }
    });
    Box::new(tokio_util::io::StreamReader::new(Box::pin(frames)))
}

/// One HTTP/1.1 exchange on a fresh connection to the socket.
pub async fn send(
    socket: &std::path::Path,
    host: &str,
    req: Request<Body>,
) -> Result<Response<Incoming>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|_| ConnectError {
            host: host.to_string(),
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("error during connect")?;
    tokio::spawn(conn);
    Ok(sender.send_request(req).await?)
}

fn error_from_body(status: u16, body: &[u8]) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let message = match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message.trim().to_string(),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    ApiError { status, message }
}

/// Decodes the daemon's JSON as Go does: a `null` leaves a field at its
/// zero value instead of failing.
pub fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T> {
    let mut value: serde_json::Value = serde_json::from_slice(raw)?;
    strip_nulls(&mut value);
    Ok(serde_json::from_value(value)?)
}

fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Escapes an image name for a URL path as Go's `url.URL` does, so names
/// with odd characters reach the daemon (and fail there, as with docker).
pub fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` query, as Go's `url.Values.Encode`.
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Reads a body of concatenated JSON values (docker's progress streams).
pub struct JsonStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl JsonStream {
    pub fn new(resp: Response<Incoming>) -> Self {
        JsonStream {
            body: resp.into_body(),
            buf: Vec::new(),
            done: false,
        }
    }

    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        loop {
            match self.buf.iter().position(|b| !b.is_ascii_whitespace()) {
                None => self.buf.clear(),
                Some(start) => {
                    let mut values = serde_json::Deserializer::from_slice(&self.buf[start..])
                        .into_iter::<serde_json::Value>();
                    match values.next() {
                        Some(Ok(mut v)) => {
                            let used = start + values.byte_offset();
                            self.buf.drain(..used);
                            strip_nulls(&mut v);
                            return Ok(Some(serde_json::from_value(v)?));
                        }
                        Some(Err(e)) if e.is_eof() && !self.done => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => {}
                    }
                }
            }
            if self.done {
                return Ok(None);
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let q = encode_query(&[
            ("fromImage", "127.0.0.1:5055/busybox".to_string()),
            ("changes", "CMD [\"/bin/sh\"]".to_string()),
        ]);
        assert_eq!(
            q,
            "fromImage=127.0.0.1%3A5055%2Fbusybox&changes=CMD%20%5B%22%2Fbin%2Fsh%22%5D"
        );
    }

    #[test]
    fn path_escaping() {
        assert_eq!(
            escape_path("127.0.0.1:5000/a/b@sha256:ab"),
            "127.0.0.1:5000/a/b@sha256:ab"
        );
        assert_eq!(escape_path("a b%"), "a%20b%25");
    }

    #[test]
    fn nulls_decode_as_zero_values() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct T {
            #[serde(default)]
            a: String,
            #[serde(default)]
            b: Vec<String>,
        }
        let t: T = decode(br#"{"a":null,"b":null}"#).unwrap();
        assert_eq!(
            t,
            T {
                a: String::new(),
                b: Vec::new()
            }
        );
    }

    #[test]
    fn daemon_error_messages() {
        let e = error_from_body(404, br#"{"message":"No such image: x:latest"}"#);
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such image: x:latest"
        );
        let e = error_from_body(500, b"plain text\n");
        assert_eq!(e.to_string(), "Error response from daemon: plain text");
    }
}
