//! `serve`: an interactive page and an HTTP interface to a trained model.
//!
//! Endpoints:
//! - `GET /`: the page (with `/app.js` and `/style.css`), embedded in the
//!   binary: paint or reveal observations, watch the mean, the std and
//!   samples;
//! - `POST /predict`: one `predict` request object in, exactly the answer
//!   line the `predict` command writes for it out (HTTP 400 with
//!   `{"error": message}` and the same message where `predict` would stop);
//! - `GET /info`: what the page needs to know: `P`, `V`, the grid, the value
//!   range of the domain's test signals, whether it has an exact posterior,
//!   the limits;
//! - `GET /signal?seed=N`: test signal `N` on the grid;
//! - `POST /posterior`: the domain's exact posterior (404 where it has none).
//!
//! The model runs on the calling thread, one request at a time (each spreads
//! over the cores), quick requests first (`queue`); the HTTP side (`http`)
//! runs on its own thread. `api` computes what the endpoints other than
//! `/predict` return.

mod api;
mod http;
mod queue;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::{oneshot, Notify};

use self::http::{Handler, HttpLimits, Incoming, Outcome, Reply};
use self::queue::{Lane, Queue};
use crate::domain::Domain;
use crate::infer::predict::{answer_line_with, Limits};
use crate::{Backend, BinnedMixture, Model};

const INDEX: &str = include_str!("../../../assets/serve/index.html");
const SCRIPT: &str = include_str!("../../../assets/serve/app.js");
const STYLE: &str = include_str!("../../../assets/serve/style.css");

/// Where to listen, and what requests and clients may ask.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on: `127.0.0.1` keeps the server on this machine.
    pub host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Per-request limits, as for `predict`.
    pub limits: Limits,
    /// Time for a request's head to arrive; also how long an idle
    /// connection stays open.
    pub header_timeout: Duration,
    /// Time for a request's body to arrive.
    pub body_timeout: Duration,
    /// Time a reply may wait for the client to read it.
    pub write_stall: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most requests waiting for the model; more are refused with 503.
    pub max_waiting: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_stall: Duration::from_secs(30),
            max_connections: 256,
            max_waiting: 64,
        }
    }
}

/// The largest body a request within `limits` needs: every query,
/// observation and truth value written out at up to 32 bytes a number, plus
/// a megabyte for the other fields.
fn max_body(limits: &Limits, p: usize, v: usize) -> usize {
    limits
        .max_queries
        .saturating_add(limits.max_observations)
        .saturating_mul(p + v)
        .saturating_mul(32)
        .saturating_add(1 << 20)
}

/// A running server, as [`serve`] hands it to its `ready` callback.
#[derive(Clone)]
pub struct Serving {
    /// The address it listens on (with the port it got, for port 0).
    pub addr: SocketAddr,
    stop: Arc<dyn Fn() + Send + Sync>,
}

impl Serving {
    /// The page's address, e.g. `http://127.0.0.1:8080/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops the server: [`serve`] returns once the request the model is on
    /// is done; requests still waiting get 503.
    pub fn stop(&self) {
        (self.stop)()
    }
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").field("addr", &self.addr).finish()
    }
}

/// What a job computes.
enum Task {
    Predict(String),
    Signal(u64),
    Posterior(String),
}

struct Job {
    task: Task,
    reply: oneshot::Sender<Reply>,
}

/// Routes requests: static things at once, the rest to the model's queue.
struct Routes {
    queue: Arc<Queue<Job>>,
    info: String,
}

impl Handler for Routes {
    fn handle(&self, request: Incoming) -> Outcome {
        let get = request.method == "GET" || request.method == "HEAD";
        let post = request.method == "POST";
        let text = || -> Result<String, Reply> {
            String::from_utf8(request.body.to_vec())
                .map_err(|_| Reply::error(400, "the request body is not UTF-8 text"))
        };
        let (lane, task) = match (request.path.as_str(), get, post) {
            ("/" | "/index.html", true, _) => return page(INDEX, "text/html; charset=utf-8"),
            ("/app.js", true, _) => return page(SCRIPT, "text/javascript; charset=utf-8"),
            ("/style.css", true, _) => return page(STYLE, "text/css; charset=utf-8"),
            ("/info", true, _) => return Outcome::Now(Reply::json(200, self.info.clone())),
            ("/signal", true, _) => match api::seed_of(request.query.as_deref()) {
                Ok(seed) => (Lane::Quick, Task::Signal(seed)),
                Err(e) => return Outcome::Now(Reply::error(400, e)),
            },
            ("/predict", _, true) => match text() {
                Ok(body) => (lane_of(&body), Task::Predict(body)),
                Err(reply) => return Outcome::Now(reply),
            },
            ("/posterior", _, true) => match text() {
                Ok(body) => (Lane::Quick, Task::Posterior(body)),
                Err(reply) => return Outcome::Now(reply),
            },
            ("/" | "/index.html" | "/app.js" | "/style.css" | "/info" | "/signal", _, _) => {
                return Outcome::Now(Reply::error(405, "this address answers GET only"))
            }
            ("/predict" | "/posterior", _, _) => {
                return Outcome::Now(Reply::error(405, "this address answers POST only"))
            }
            (path, _, _) => {
                return Outcome::Now(Reply::error(
                    404,
                    format!("nothing at {path}: the page is at /, the model answers POST /predict"),
                ))
            }
        };
        let (reply, answer) = oneshot::channel();
        match self.queue.push(lane, Job { task, reply }) {
            Ok(()) => Outcome::Later(answer),
            Err(_) => Outcome::Now(Reply::error(
                503,
                "the server is busy: too many requests are waiting for the model; try again",
            )),
        }
    }
}

fn page(body: &'static str, content_type: &'static str) -> Outcome {
    Outcome::Now(Reply {
        status: 200,
        content_type,
        body: body.into(),
    })
}

/// Requests that may draw samples wait in the slow lane. A look for the
/// field's name, not a parse: this runs on the I/O thread, and a request
/// that names `samples` without drawing any only waits a little longer.
fn lane_of(body: &str) -> Lane {
    if body.contains("\"samples\"") {
        Lane::Slow
    } else {
        Lane::Quick
    }
}

/// Binds `host:port`, with a message that says what to do when it cannot.
fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--host {host} is not an address this machine can listen on"))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {addr}: the port is in use (another `serve`?); choose another \
             --port, or --port 0 for any free one"
        ),
        Some((addr, e)) => bail!("cannot listen on {addr}: {e}"),
        None => bail!("--host {host} names no address"),
    }
}

/// Serves `model` (trained on `domain`) until [`Serving::stop`] is called:
/// binds the address, calls `ready` with it, then answers requests, running
/// the model on this thread.
pub fn serve<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    model: &Model<P, V, D, BinnedMixture>,
    options: &ServeOptions,
    ready: impl FnOnce(&Serving),
) -> anyhow::Result<()> {
    let listener = bind(&options.host, options.port)?;
    let addr = listener.local_addr()?;
    let limits = options.limits.clone();
    let info = api::info(domain, model, &limits).to_string();
    let queue = Arc::new(Queue::new(options.max_waiting.max(1)));
    let notify = Arc::new(Notify::new());
    let routes = Arc::new(Routes {
        queue: queue.clone(),
        info,
    });
    let http_limits = HttpLimits {
        header_timeout: options.header_timeout,
        body_timeout: options.body_timeout,
        write_stall: options.write_stall,
        max_body: max_body(&limits, P, V),
        max_connections: options.max_connections.max(1),
    };
    let stop = {
        let (queue, notify) = (queue.clone(), notify.clone());
        Arc::new(move || {
            queue.close();
            notify.notify_one();
        })
    };
    let io = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("serve-http".into())
            .spawn(move || {
                let outcome = http::run(listener, routes, http_limits, notify);
                // Whatever ended the HTTP side ends the model's loop too.
                stop();
                outcome
            })?
    };
    ready(&Serving { addr, stop });
    while let Some(job) = queue.pop() {
        // A client that gave up while its job waited needs no answer.
        if job.reply.is_closed() {
            continue;
        }
        let reply = std::panic::catch_unwind(AssertUnwindSafe(|| {
            compute(domain, model, &limits, job.task)
        }))
        .unwrap_or_else(|_| {
            Reply::error(
                500,
                "the model failed on this request (a bug: please report it)",
            )
        });
        let _ = job.reply.send(reply);
    }
    io.join()
        .map_err(|_| anyhow::anyhow!("the HTTP thread failed"))?
        .context("the HTTP server stopped")
}

fn compute<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    model: &Model<P, V, D, BinnedMixture>,
    limits: &Limits,
    task: Task,
) -> Reply {
    let answer = match task {
        Task::Predict(body) => {
            // As `predict` reads a file that starts with a byte-order mark.
            let line = body.trim_start_matches('\u{feff}');
            answer_line_with(model, line, limits)
                .map(|response| serde_json::to_string(&response).expect("responses serialise"))
        }
        Task::Signal(seed) => api::signal(domain, seed, limits),
        Task::Posterior(body) => match api::posterior(domain, &body, limits) {
            Ok(Some(json)) => Ok(json),
            Ok(None) => {
                return Reply::error(
                    404,
                    format!("the {} domain has no exact posterior", Dm::NAME),
                )
            }
            Err(e) => Err(e),
        },
    };
    match answer {
        Ok(json) => Reply::json(200, json),
        Err(message) => Reply::error(400, message),
    }
}
