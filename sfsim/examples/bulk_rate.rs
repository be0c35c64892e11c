//! Measures how fast sfsim runs a Bulk API 2.0 query job over every Contact
//! and serves its CSV results: creates the job, polls it to JobComplete (the
//! poll that starts it renders the results), then reads every results page
//! over loopback HTTP and prints records/s. With `--url` it uses a running
//! sfsim (pin it to one core with taskset, as bench/sfsim_page_rate.sh
//! does); otherwise it starts one in-process with N generated Contacts.
//!
//! cargo run --release -p sfsim --example bulk_rate -- [--url URL | N] [--max-records M]

use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::time::Instant;

// The simulator's own allocator, as the sfsim binary's: see its main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let max_records = arg("--max-records");
    let mut in_process: Option<Running> = None;
    let base_url = match arg("--url") {
        Some(url) => url,
        None => {
            let n = args
                .first()
                .and_then(|a| a.replace('_', "").parse().ok())
                .unwrap_or(1_000_000usize);
            let server = spawn(Options {
                records: vec![("Contact".into(), n)],
                daily_limit: u64::MAX,
                ..Options::demo()
            })
            .expect("sfsim starts");
            let url = server.base_url.clone();
            in_process = Some(server);
            url
        }
    };
    let http = reqwest::blocking::Client::new();
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
    let token = token["access_token"].as_str().expect("access_token");
    let jobs = format!("{base_url}/services/data/v62.0/jobs/query");
    let soql = "SELECT Id, FirstName, LastName, Email, Phone, Title, AccountId, Birthdate, LastModifiedDate, SystemModstamp FROM Contact";
    let started = Instant::now();
    let job: Value = http
        .post(&jobs)
        .bearer_auth(token)
        .json(&json!({"operation": "query", "query": soql}))
        .send()
        .and_then(|r| r.json())
        .expect("a job");
    let id = job["id"].as_str().expect("a job id");
    loop {
        let info: Value = http
            .get(format!("{jobs}/{id}"))
            .bearer_auth(token)
            .send()
            .and_then(|r| r.json())
            .expect("job info");
        if info["state"] == "JobComplete" {
            break;
        }
    }
    let processed = started.elapsed().as_secs_f64();
    let (mut records, mut pages, mut bytes) = (0usize, 0usize, 0usize);
    let mut locator: Option<String> = None;
    loop {
        let mut query: Vec<(&str, &str)> = vec![];
        if let Some(m) = &max_records {
            query.push(("maxRecords", m));
        }
        if let Some(l) = &locator {
            query.push(("locator", l));
        }
        let r = http
            .get(format!("{jobs}/{id}/results"))
            .query(&query)
            .bearer_auth(token)
            .send()
            .expect("a page");
        let header = |name: &str| r.headers()[name].to_str().expect("ascii").to_string();
        records += header("sforce-numberofrecords")
            .parse::<usize>()
            .expect("a count");
        let next = header("sforce-locator");
        bytes += r.bytes().expect("a page body").len();
        pages += 1;
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    let total = started.elapsed().as_secs_f64();
    let downloaded = total - processed;
    println!(
        "job over {records} Contacts with 10 fields: processed in {processed:.2} s, {pages} pages ({:.1} MiB of CSV) read in {downloaded:.2} s",
        bytes as f64 / 1_048_576.0
    );
    println!(
        "serving results: {:.0} records/s; create to last page: {:.0} records/s",
        records as f64 / downloaded,
        records as f64 / total
    );
    drop(in_process);
}
