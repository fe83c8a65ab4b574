//! `mcctl`: list mc segments on this machine, inspect a pool and its heaps
//! (read-only), remove segments whose owner has died, and list, stop or
//! restart the running mc-serve servers.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mc::inspect::{self as segment, SegmentInfo};

/// Administer mc shared-memory segments.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the mc segments in /dev/shm with kind, owner, liveness and size.
    List,
    /// Show a pool's figures and its heaps' (maps it read-only, takes no lock).
    Show {
        /// The segment name (as `mcctl list` prints it, e.g. `mc.pool.demo`)
        /// or a pool's short name (`demo`).
        name: String,
    },
    /// Remove segments whose owner process has ended.
    Clean {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the running mc-serve servers, their services and workers
    /// (pid, state, connections served, restarts, uptime, last exit); or
    /// stop or restart the server that runs a service.
    Services {
        #[command(subcommand)]
        action: Option<ServiceAction>,
    },
}

#[derive(Subcommand)]
enum ServiceAction {
    /// Stop the server that runs service NAME gracefully (SIGTERM).
    Stop {
        /// The service's name.
        name: String,
    },
    /// Replace every worker of the server that runs service NAME (SIGHUP).
    Restart {
        /// The service's name.
        name: String,
    },
}

fn services(action: Option<ServiceAction>) -> Result<(), String> {
    use mc_serve::admin::{self, Request};
    let (name, request) = match action {
        Some(ServiceAction::Stop { name }) => (name, Request::Stop),
        Some(ServiceAction::Restart { name }) => (name, Request::Restart),
        None => return list_services(),
    };
    let pid = admin::signal_service(&name, request).map_err(|e| e.to_string())?;
    let what = match request {
        Request::Stop => "asked to stop",
        Request::Restart => "asked to restart its workers",
    };
    println!("server {pid} (service {name}): {what}");
    Ok(())
}

fn list_services() -> Result<(), String> {
    let servers = mc_serve::admin::servers().map_err(|e| e.to_string())?;
    if servers.is_empty() {
        println!("no running mc-serve server");
        return Ok(());
    }
    for s in servers {
        println!(
            "server {} (up {:.1} s)",
            s.master_pid,
            s.uptime_ms as f64 / 1000.0
        );
        for svc in s.services {
            println!("  service {} on {}", svc.name, svc.addrs.join(", "));
            println!(
                "    {:>4} {:>8} {:<9} {:>9} {:>5} {:>8} {:>10}  LAST EXIT",
                "SLOT", "PID", "STATE", "SERVED", "BUSY", "RESTARTS", "UPTIME"
            );
            for (w, last) in svc.workers.iter().zip(&svc.last_exit) {
                let up = if w.pid == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1} s", w.uptime_ms as f64 / 1000.0)
                };
                println!(
                    "    {:>4} {:>8} {:<9} {:>9} {:>5} {:>8} {:>10}  {}",
                    w.slot,
                    w.pid,
                    format!("{:?}", w.state).to_lowercase(),
                    w.served,
                    w.busy,
                    w.restarts,
                    up,
                    last.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn describe(s: &SegmentInfo) -> (String, String, String, String) {
    match &s.header {
        Some(h) => (
            s.kind().map_or("?", |k| k.name()).to_owned(),
            h.owner_pid.to_string(),
            if h.owner_alive() { "alive" } else { "dead" }.to_owned(),
            human(h.size),
        ),
        None => ("?".into(), "?".into(), "unreadable".into(), "?".into()),
    }
}

fn list() -> Result<(), String> {
    let segs = segment::list_segments().map_err(|e| format!("cannot read /dev/shm: {e}"))?;
    if segs.is_empty() {
        println!("no mc segments");
        return Ok(());
    }
    println!(
        "{:<44} {:<5} {:>8} {:<10} {:>10} {:>10}",
        "NAME", "KIND", "OWNER", "STATE", "SIZE", "IN MEMORY"
    );
    for s in &segs {
        let (kind, owner, state, size) = describe(s);
        println!(
            "{:<44} {:<5} {:>8} {:<10} {:>10} {:>10}",
            s.name,
            kind,
            owner,
            state,
            size,
            human(s.allocated)
        );
    }
    Ok(())
}

fn show(name: &str) -> Result<(), String> {
    let seg = if name.starts_with(segment::NAME_PREFIX) {
        name.to_owned()
    } else {
        format!("mc.pool.{name}")
    };
    let r = mc::inspect::inspect_pool(&seg).map_err(|e| e.to_string())?;
    println!("pool {}", r.name);
    println!(
        "  owner pid {} ({}), mapped at {:#x}",
        r.header.owner_pid,
        if r.header.owner_alive() {
            "alive"
        } else {
            "dead"
        },
        r.base
    );
    println!(
        "  size {} : used {}, free {}, memory reserved {}",
        human(r.stats.max_size as u64),
        human(r.stats.used as u64),
        human(r.stats.free as u64),
        human(r.stats.committed as u64)
    );
    if r.heaps.is_empty() {
        println!("  no heaps");
    }
    for h in &r.heaps {
        let root = if r.root_heap == Some(h.addr) {
            " (root heap)"
        } else {
            ""
        };
        println!(
            "  heap at {:#x}{root}, type fingerprint {:#018x}{}",
            h.addr,
            h.fingerprint,
            if h.poisoned { ", POISONED" } else { "" }
        );
        let s = &h.stats;
        println!(
            "    live {}, free {}, {} chunks ({}), {} GC runs (last {:?}), {} pinned",
            human(s.live_bytes as u64),
            human(s.free_bytes as u64),
            s.chunks,
            human(s.chunk_bytes as u64),
            s.gc_runs,
            s.last_gc,
            s.pinned
        );
    }
    Ok(())
}

fn clean(dry_run: bool) -> Result<(), String> {
    if dry_run {
        let segs = segment::list_segments().map_err(|e| format!("cannot read /dev/shm: {e}"))?;
        let stale: Vec<_> = segs
            .iter()
            .filter(|s| s.header.is_some() && s.is_stale())
            .collect();
        if stale.is_empty() {
            println!("nothing to remove");
        }
        for s in stale {
            println!("would remove {}", s.name);
        }
        return Ok(());
    }
    let removed = segment::remove_stale().map_err(|e| format!("cannot clean /dev/shm: {e}"))?;
    if removed.is_empty() {
        println!("nothing to remove");
    }
    for n in removed {
        println!("removed {n}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::List => list(),
        Command::Show { name } => show(&name),
        Command::Clean { dry_run } => clean(dry_run),
        Command::Services { action } => services(action),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcctl: {e}");
            ExitCode::FAILURE
        }
    }
}
