use clap::Parser;
use sfsim::server::{run, Options, Started};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

// Bulk ingest allocates and frees millions of small values a job, on two
// threads (one converts rows ahead of the one writing them, which frees
// what the first allocated): with mimalloc a million-record job is
// processed in about 2.0 s, with glibc's malloc 2.7 s without the second
// thread and slower with it. Transparent huge pages stay off (`no_thp`):
// they sped up the writes a little but made filling a large results
// buffer twice as slow once the heap was fragmented.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A local Salesforce: OAuth, REST, SOQL, limits, Change Data Capture and a control API.
#[derive(Parser)]
#[command(name = "sfsim", version)]
struct Cli {
    /// Address to serve on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// Seed data: `demo` (a believable small org) or `empty` (just the admin and the limited user).
    #[arg(long, default_value = "demo")]
    seed: String,
    /// Record counts overriding the seed's, e.g. `Contact=1000000` (repeatable, or comma-separated).
    #[arg(long = "records", value_delimiter = ',', value_parser = parse_count)]
    records: Vec<(String, usize)>,
    /// Daily API request limit (rolling 24 hours).
    #[arg(long, default_value_t = sfsim::sim::DEFAULT_DAILY_LIMIT)]
    daily_limit: u64,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = sfsim::sim::DEFAULT_TOKEN_LIFETIME_SECS)]
    token_lifetime: i64,
    /// Serve HTTPS with a self-signed certificate.
    #[arg(long)]
    tls: bool,
    /// Folder for the certificate's PEM file (default: a temporary folder).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Also serve the Pub/Sub API (gRPC, Change Data Capture) here; port 0
    /// picks a free one. Without --tls only on a loopback address.
    #[arg(long)]
    pubsub_listen: Option<SocketAddr>,
    /// Seconds an idle Subscribe stream waits before a keepalive response.
    #[arg(long, default_value_t = sfsim::pubsub::DEFAULT_KEEPALIVE.as_secs())]
    pubsub_keepalive: u64,
    /// How many orgs to serve; org k >= 2 has usernames `...@org{k}.sfsim.example`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=sfsim::orgs::MAX_ORGS as u64))]
    orgs: u64,
    /// Delay every answer of every org this many milliseconds (a round trip).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

fn parse_count(s: &str) -> Result<(String, usize), String> {
    let (object, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected OBJECT=COUNT, got '{s}'"))?;
    let n = n
        .replace('_', "")
        .parse::<usize>()
        .map_err(|_| format!("'{n}' is not a record count"))?;
    Ok((object.to_string(), n))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let tls_dir = cli.tls.then(|| {
        cli.tls_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("sfsim-{}", std::process::id())))
    });
    let options = Options {
        listen: cli.listen,
        seed: cli.seed,
        records: cli.records,
        daily_limit: cli.daily_limit,
        token_lifetime_secs: cli.token_lifetime,
        tls_dir,
        pubsub_listen: cli.pubsub_listen,
        pubsub_keepalive: std::time::Duration::from_secs(cli.pubsub_keepalive),
        orgs: cli.orgs as usize,
        delay_ms: cli.delay_ms,
    };
    let ready = |started: &Started| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", started.base_url);
        if let Some(cert) = started.cert_path {
            let _ = writeln!(out, "tls-cert: {}", cert.display());
        }
        let org = started.sim.org.read();
        let _ = writeln!(
            out,
            "org: {} ({} records)",
            org.org_id,
            org.objects.iter().map(|o| o.records.len()).sum::<usize>()
        );
        let _ = writeln!(
            out,
            "client_id: {}  client_secret: {}",
            sfsim::auth::CLIENT_ID,
            sfsim::auth::CLIENT_SECRET
        );
        let _ = writeln!(
            out,
            "username: {}  password: {}  security token: {}",
            sfsim::seed::ADMIN_USERNAME,
            sfsim::auth::PASSWORD,
            sfsim::auth::SECURITY_TOKEN
        );
        let _ = writeln!(out, "refresh_token: {}", sfsim::auth::DEMO_REFRESH_TOKEN);
        if started.orgs.len() > 1 {
            let _ = writeln!(out, "orgs: {}", started.orgs.len());
        }
        if let Some(url) = started.pubsub_url {
            let _ = writeln!(out, "pubsub: {url}");
        }
        let _ = out.flush();
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    if let Err(e) = run(options, ready, shutdown).await {
        eprintln!("sfsim: {e}");
        std::process::exit(1);
    }
}
