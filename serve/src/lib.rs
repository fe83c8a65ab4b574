//! Pre-fork servers over mc worker processes: the counterpart of
//! Ocamlnet's Netplex, on which Netmulticore's master runs.
//!
//! A [`Server`] has named services. Each listens on TCP and Unix sockets
//! that the master binds before any worker exists, and each has worker
//! processes that accept on those sockets and serve one connection at a
//! time per thread with a handler. The workers are mc processes: they see
//! the pools created before them and open shared heaps, tables, locks and
//! camlboxes by descriptor in their init hook, so the workers of a service
//! share typed state. The master supervises them:
//!
//! - a worker that crashes (a signal, a panic outside a handler, a failed
//!   init) is replaced, at once after a healthy life and with a doubling
//!   backoff when it keeps crashing;
//! - a worker whose heartbeat stops (a handler stuck) is killed and
//!   replaced;
//! - a worker is replaced after about `max_requests` connections (with
//!   jitter, so that they do not all leave at once);
//! - `SIGINT`/`SIGTERM` stop the server gracefully: workers stop
//!   accepting, finish their connections within the graceful timeout (then
//!   are killed), and the Unix socket files are removed;
//! - `SIGHUP` replaces every worker; connections that arrive meanwhile wait
//!   in the listen queue.
//!
//! A panic in a handler closes its connection and is counted; the worker
//! goes on.
//!
//! ```no_run
//! use std::io::{BufRead, BufReader, Write};
//! use mc_serve::{ServerBuilder, ServiceConfig};
//!
//! let server = ServerBuilder::new()
//!     .service(ServiceConfig::new("echo", "echo").listen("127.0.0.1:7000").workers(4))
//!     .handler("echo", |mut conn, _: &()| {
//!         let mut line = String::new();
//!         BufReader::new(&mut conn).read_line(&mut line)?;
//!         conn.write_all(line.as_bytes())
//!     })
//!     .bind()?;
//! println!("listening on {:?}", server.addrs("echo"));
//! let report = server.run()?; // until Ctrl-C
//! println!("{} workers started", report.started);
//! # Ok::<(), mc_serve::ServeError>(())
//! ```
//!
//! Workers share state through their init hook's context:
//!
//! ```no_run
//! use std::io::Write;
//! use mc_serve::{ServerBuilder, ServiceConfig};
//!
//! // Created before the run, so every worker has the pool mapped.
//! let pool = mc::Pool::create(64 << 20)?;
//! let hits = mc::SHashtbl::<String, u64>::create(&pool, &())?;
//! let descr = hits.descr();
//! let server = ServerBuilder::with_init(move |_| Ok(descr.open()?))
//!     .service(ServiceConfig::new("hits", "count").listen("127.0.0.1:0"))
//!     .handler("count", |mut conn, hits: &mc::SHashtbl<String, u64>| {
//!         let key = "all".to_string();
//!         hits.modify_value(&key, |_, mut n| *n += 1).map_err(std::io::Error::other)?;
//!         writeln!(conn, "{:?}", hits.find_copy(&key).map_err(std::io::Error::other)?)
//!     })
//!     .bind()?;
//! hits.add(&"all".to_string(), &0)?;
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod admin;
mod asynch;
mod config;
mod error;
mod listener;
mod server;
mod stats;
mod worker;

pub use asynch::AsyncConnection;
pub use config::{Dynamic, Listen, ServerConfig, ServiceConfig, MAX_THREADS, MAX_WORKERS};
pub use error::ServeError;
pub use listener::{BoundAddr, Connection};
pub use server::{Control, ServeReport, Server, ServerBuilder};
pub use stats::{WorkerState, WorkerStatus};
pub use worker::WorkerInfo;
