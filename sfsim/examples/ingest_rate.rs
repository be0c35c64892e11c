//! Measures a Bulk API 2.0 ingest upsert of N Contacts (default 1,000,000)
//! through sfsim over loopback HTTP: the CSV (ten columns, about 100 bytes a
//! row) is uploaded in 20 MB pieces, the job closed and polled to
//! JobComplete (the poll that starts it writes every record), then its
//! successfulResults read. Run twice over, the second upsert updates what
//! the first created. With `--url` it uses a running sfsim; otherwise it
//! starts one in-process with an empty org.
//!
//! cargo run --release -p sfsim --example ingest_rate -- [--url URL] [N]

use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::time::Instant;

// The simulator's own allocator, as the sfsim binary's: see its main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PIECE_BYTES: usize = 20 << 20;

fn csv_pieces(n: usize, round: usize) -> Vec<String> {
    let header = "User_Id__c,FirstName,LastName,Email,Phone,Title,LeadSource,Birthdate,HasOptedOutOfEmail,Description\n";
    let mut pieces = vec![];
    let mut piece = String::from(header);
    for i in 0..n {
        piece.push_str(&format!(
            "U{i:08},First{i},Last{round}-{i},p{i}@ingest.example.net,555-{:04},Title {round},Web,19{:02}-0{}-1{},{},Row {i} of the benchmark\n",
            i % 10_000,
            i % 100,
            1 + i % 9,
            i % 10,
            i % 2 == 0
        ));
        if piece.len() >= PIECE_BYTES {
            pieces.push(std::mem::replace(&mut piece, String::from(header)));
        }
    }
    if piece.len() > header.len() {
        pieces.push(piece);
    }
    pieces
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .iter()
        .position(|a| a == "--url")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let n = args
        .iter()
        .find(|a| !a.starts_with("--") && Some(*a) != url.as_ref())
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000usize);
    let mut in_process: Option<Running> = None;
    let base_url = match url {
        Some(url) => url,
        None => {
            let server = spawn(Options {
                seed: "empty".into(),
                daily_limit: u64::MAX,
                ..Options::demo()
            })
            .expect("sfsim starts");
            let url = server.base_url.clone();
            in_process = Some(server);
            url
        }
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("a client");
    http.patch(format!("{base_url}/__sim/settings"))
        .json(&json!({"bulk_job_processing_ms": 0}))
        .send()
        .expect("settings");
    let token: Value = http
        .post(format!("{base_url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", sfsim::auth::CLIENT_ID),
            ("client_secret", sfsim::auth::CLIENT_SECRET),
            ("username", sfsim::seed::ADMIN_USERNAME),
            ("password", "sfsim-passwordSFSIMTOKEN"),
        ])
        .send()
        .and_then(|r| r.json())
        .expect("a token");
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let jobs = format!("{base_url}/services/data/v62.0/jobs/ingest");
    for round in 0..2 {
        let pieces = csv_pieces(n, round);
        let bytes: usize = pieces.iter().map(String::len).sum();
        let started = Instant::now();
        let job: Value = http
            .post(&jobs)
            .bearer_auth(&token)
            .json(&json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "User_Id__c"}))
            .send()
            .and_then(|r| r.json())
            .expect("a job");
        let id = job["id"].as_str().expect("a job id").to_string();
        for piece in pieces {
            let r = http
                .put(format!("{jobs}/{id}/batches"))
                .bearer_auth(&token)
                .header("Content-Type", "text/csv")
                .body(piece)
                .send()
                .expect("an upload");
            assert_eq!(r.status().as_u16(), 201, "upload");
        }
        let uploaded = started.elapsed();
        http.patch(format!("{jobs}/{id}"))
            .bearer_auth(&token)
            .json(&json!({"state": "UploadComplete"}))
            .send()
            .expect("close");
        let info: Value = http
            .get(format!("{jobs}/{id}"))
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.json())
            .expect("job info");
        let processed = started.elapsed();
        assert_eq!(info["state"], "JobComplete", "{info}");
        let results = http
            .get(format!("{jobs}/{id}/successfulResults"))
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.bytes())
            .expect("results");
        let total = started.elapsed();
        println!(
            "round {} ({}): {} records, {:.1} MB of CSV: uploaded in {:.2} s, processed in {:.2} s, results ({:.1} MB) in {:.2} s; {:.2} s in all, {:.0} records/s; failed {}",
            round + 1,
            if round == 0 { "creates" } else { "updates" },
            info["numberRecordsProcessed"],
            bytes as f64 / 1e6,
            uploaded.as_secs_f64(),
            (processed - uploaded).as_secs_f64(),
            results.len() as f64 / 1e6,
            (total - processed).as_secs_f64(),
            total.as_secs_f64(),
            n as f64 / total.as_secs_f64(),
            info["numberRecordsFailed"],
        );
    }
    drop(in_process);
}
