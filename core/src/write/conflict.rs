//! Conflicts of updates made against a copy: before an update from a
//! read-write copy goes, Salesforce's version of its record is read, and
//! if it changed after the copy's version the update was made against,
//! the values the update replaces are its losing version.

use super::chunk::CHUNK;
use super::delivery::{Outgoing, Seen};
use super::journal::Op;
use crate::client::session::{parse_datetime, Session};
use crate::soql::literal::quote;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// An update to check.
struct Checked<'a> {
    outbox_id: i64,
    object: &'a str,
    id: &'a str,
    sent: &'a Map<String, Json>,
    seen: &'a Seen,
}

/// For each update in `rows` whose record Salesforce changed after the
/// copy's version it was made against: Salesforce's values of the fields
/// it sends that differ from what it sends, with SystemModstamp. One query
/// per object per 100 records; a failed read records nothing (the update
/// goes, or fails, as it would).
pub fn replaced(session: &mut Session, rows: &[Outgoing]) -> Vec<(i64, Json)> {
    let checked: Vec<Checked> = rows
        .iter()
        .filter_map(|o| match (&o.write.op, &o.seen) {
            (Op::Update { id, fields }, Some(seen)) if !id.is_empty() => Some(Checked {
                outbox_id: o.outbox_id,
                object: o.write.target.object.as_str(),
                id: id.as_str(),
                sent: fields,
                seen,
            }),
            _ => None,
        })
        .collect();
    let mut found = vec![];
    // Half a Collections call per query: 200 Ids and the fields would pass
    // the 16,384-byte limit on a request line.
    for chunk in checked.chunks(CHUNK / 2) {
        let mut by_object: HashMap<&str, Vec<&Checked>> = HashMap::new();
        for c in chunk {
            by_object.entry(c.object).or_default().push(c);
        }
        for (object, updates) in by_object {
            let Ok(page) = session.query(&query(object, &updates), false) else {
                continue;
            };
            let current: HashMap<&str, &Map<String, Json>> = page
                .records
                .iter()
                .filter_map(|r| Some((r.get("Id")?.as_str()?, r)))
                .collect();
            for u in updates {
                if let Some(losing) = current.get(u.id).and_then(|now| losing_version(u, now)) {
                    found.push((u.outbox_id, losing));
                }
            }
        }
    }
    found
}

fn query(object: &str, updates: &[&Checked]) -> String {
    let mut fields: Vec<&str> = updates
        .iter()
        .flat_map(|u| u.sent.keys().map(String::as_str))
        .filter(|f| *f != "Id" && *f != "SystemModstamp")
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let mut select = vec!["Id", "SystemModstamp"];
    select.extend(fields);
    let ids: Vec<String> = updates.iter().map(|u| quote(u.id)).collect();
    format!(
        "SELECT {} FROM {object} WHERE Id IN ({})",
        select.join(", "),
        ids.join(", ")
    )
}

/// The values `u` replaces in Salesforce's `now`, if it changed since.
fn losing_version(u: &Checked, now: &Map<String, Json>) -> Option<Json> {
    let stamp = now.get("SystemModstamp").and_then(Json::as_str)?;
    if parse_datetime(stamp).is_none_or(|t| t <= u.seen.stamp) {
        return None;
    }
    // A field Salesforce holds as the copy had it was not changed there.
    let mut losing: Map<String, Json> = u
        .sent
        .iter()
        .filter_map(|(f, v)| {
            let theirs = now.get(f.as_str())?;
            let changed = u.seen.values.get(f.as_str()) != Some(theirs);
            (theirs != v && changed).then(|| (f.clone(), theirs.clone()))
        })
        .collect();
    if losing.is_empty() {
        return None;
    }
    losing.insert("SystemModstamp".into(), Json::from(stamp));
    Some(Json::Object(losing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update<'a>(sent: &'a Map<String, Json>, seen: &'a Seen) -> Checked<'a> {
        Checked {
            outbox_id: 7,
            object: "Contact",
            id: "003000000000001AAA",
            sent,
            seen,
        }
    }

    #[test]
    fn only_a_newer_record_with_other_values_is_a_conflict() {
        let sent = json!({"Title": "Local"}).as_object().unwrap().clone();
        let seen = Seen {
            stamp: parse_datetime("2026-12-03T10:00:00.000+0000").unwrap(),
            values: json!({"Title": "Before"}).as_object().unwrap().clone(),
        };
        let u = update(&sent, &seen);
        let now = |stamp: &str, title: &str| {
            json!({"Id": "003000000000001AAA", "SystemModstamp": stamp, "Title": title})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(
            losing_version(&u, &now("2026-12-03T10:05:00.000+0000", "Remote")),
            Some(json!({"Title": "Remote", "SystemModstamp": "2026-12-03T10:05:00.000+0000"}))
        );
        assert_eq!(
            losing_version(&u, &now("2026-12-03T10:00:00.000+0000", "Remote")),
            None
        );
        assert_eq!(
            losing_version(&u, &now("2026-12-03T10:05:00.000+0000", "Local")),
            None
        );
        assert!(query("Contact", &[&u]).starts_with(
            "SELECT Id, SystemModstamp, Title FROM Contact WHERE Id IN ('003000000000001AAA')"
        ));
    }
}
