//! Measures how fast sfsim serves query pages: pages through every Contact
//! over loopback HTTP and prints records/s. With `--url` it reads from a
//! running sfsim (see bench/sfsim_page_rate.sh, which pins it to one core);
//! otherwise it starts one in-process with N generated Contacts.
//!
//! cargo run --release -p sfsim --example page_rate -- [--url URL | N]

use serde::de::IgnoredAny;
use serde::Deserialize;
use sfsim::server::{spawn, Options, Running};
use std::time::Instant;

// The simulator's own allocator, as the sfsim binary's: see its main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    next_records_url: Option<String>,
    records: Vec<IgnoredAny>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut in_process: Option<Running> = None;
    let base_url = match args.as_slice() {
        [flag, url] if flag == "--url" => url.clone(),
        other => {
            let n = other
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
    let token: serde_json::Value = http
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
    let soql = "SELECT Id, FirstName, LastName, Email, Phone, Title, AccountId, Birthdate, LastModifiedDate, SystemModstamp FROM Contact";
    let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    let started = Instant::now();
    let mut url = format!("{base_url}/services/data/v62.0/query?q={encoded}");
    let (mut records, mut pages, mut bytes) = (0usize, 0usize, 0usize);
    loop {
        let body = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.bytes())
            .expect("a page");
        bytes += body.len();
        let page: Page = serde_json::from_slice(&body).expect("a query page");
        records += page.records.len();
        pages += 1;
        match page.next_records_url {
            Some(next) => url = format!("{base_url}{next}"),
            None => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("served {records} records with 10 fields in {pages} pages ({:.1} MiB of JSON) in {secs:.2} s", bytes as f64 / 1_048_576.0);
    println!("rate: {:.0} records/s", records as f64 / secs);
    drop(in_process);
}
