//! An HTTP/1.1 proxy on 127.0.0.1 in front of a real S3 server that makes it ignore `Range`, as
//! RFC 9110 lets any server (and some S3-compatible gateways) do: every request goes to the
//! server unchanged (so its SigV4 signature, `If-Match` and errors are the server's own), and the
//! answer to a ranged GET is replaced by `200 OK` with the server's headers, no `Content-Range`,
//! and the whole object's bytes (read from the server's own file of the object, which the tests
//! know). Everything else is passed through as it came. It counts the GETs it saw and the whole
//! answers it gave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the proxy saw.
#[derive(Default)]
pub struct Seen {
    /// GET requests.
    pub gets: AtomicUsize,
    /// Ranged GETs answered with the whole object.
    pub whole: AtomicUsize,
}

/// A running proxy: its port and what it saw. Its threads end with the process.
pub struct Proxy {
    pub port: u16,
    pub seen: Arc<Seen>,
}

/// Starts a proxy to the server on `upstream` whose object files are `object_file(key)`.
pub fn start(
    upstream: u16,
    object_file: impl Fn(&str) -> PathBuf + Send + Sync + 'static,
) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let object_file = Arc::new(object_file);
    let counts = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (counts, object_file) = (counts.clone(), object_file.clone());
            std::thread::spawn(move || {
                let _ = serve(client, upstream, &counts, &*object_file);
            });
        }
    });
    Proxy { port, seen }
}

/// One message head: its lines (without line ends), lower-cased names in `header`.
struct Head(Vec<String>);

impl Head {
    /// The head read from `from`, `None` at the end of the connection.
    fn read(from: &mut impl BufRead) -> std::io::Result<Option<Head>> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if from.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if line.is_empty() {
                return Ok(Some(Head(lines)));
            }
            lines.push(line);
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.0[1..].iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn length(&self) -> usize {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.0 {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn serve(
    client: TcpStream,
    upstream: u16,
    seen: &Seen,
    object_file: &(dyn Fn(&str) -> PathBuf + Send + Sync),
) -> std::io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut from_server = BufReader::new(server.try_clone()?);
    let (mut to_client, mut to_server) = (client, server);
    while let Some(request) = Head::read(&mut from_client)? {
        let mut body = vec![0; request.length()];
        from_client.read_exact(&mut body)?;
        to_server.write_all(&request.bytes())?;
        to_server.write_all(&body)?;
        let Some(answer) = Head::read(&mut from_server)? else {
            return Ok(());
        };
        let method_path: Vec<&str> = request.0[0].split(' ').collect();
        let is_head = method_path[0] == "HEAD";
        let mut answer_body = vec![0; if is_head { 0 } else { answer.length() }];
        from_server.read_exact(&mut answer_body)?;
        if method_path[0] == "GET" {
            seen.gets.fetch_add(1, Ordering::Relaxed);
        }
        let ranged = method_path[0] == "GET"
            && request.header("range").is_some()
            && answer.header("content-range").is_some();
        if !ranged {
            to_client.write_all(&answer.bytes())?;
            to_client.write_all(&answer_body)?;
            continue;
        }
        // The whole object, as a server that ignores Range sends it.
        let path = method_path[1].split('?').next().unwrap_or("");
        let key = path
            .trim_start_matches('/')
            .split_once('/')
            .map_or("", |(_bucket, key)| key);
        let whole = std::fs::read(object_file(key))?;
        let mut head = vec!["HTTP/1.1 200 OK".to_string()];
        head.extend(
            answer.0[1..]
                .iter()
                .filter(|l| {
                    let name = l
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    name != "content-range" && name != "content-length"
                })
                .cloned(),
        );
        head.push(format!("content-length: {}", whole.len()));
        to_client.write_all(&Head(head).bytes())?;
        to_client.write_all(&whole)?;
        seen.whole.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
