//! `@{referenceId.path}` references to earlier subrequests' results, which
//! Salesforce replaces in a subrequest's URL and body before running it.
//! A path is `.field` and `[index]` steps into the result's JSON body:
//! `@{newAccount.id}`, `@{q.records[0].Id}`, `@{newAccounts[1].id}`.

use serde_json::Value as Json;
use std::collections::HashMap;

/// Each earlier subrequest's body by referenceId; `None` when it failed or
/// did not run, so nothing can be read from it.
pub type Results = HashMap<String, Option<Json>>;

/// A reference that names no value.
#[derive(Debug, PartialEq)]
pub struct Unresolved {
    pub reference: String,
    pub reference_id: String,
}

impl Unresolved {
    pub fn message(&self) -> String {
        format!(
            "Invalid reference specified. No value for {} found in {}.",
            self.reference, self.reference_id
        )
    }
}

enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

/// The referenceId and path steps of `newAccount.records[0].Id`.
fn parse(reference: &str) -> Option<(&str, Vec<Step<'_>>)> {
    let id_end = reference
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(reference.len());
    let (id, mut rest) = reference.split_at(id_end);
    if id.is_empty() {
        return None;
    }
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Field(&after[..end]));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let (index, tail) = after.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = tail;
        } else {
            return None;
        }
    }
    Some((id, steps))
}

fn value<'r>(reference: &str, results: &'r Results) -> Result<&'r Json, Unresolved> {
    let unresolved = |id: &str| Unresolved {
        reference: reference.to_string(),
        reference_id: id.to_string(),
    };
    let (id, steps) = parse(reference).ok_or_else(|| unresolved(reference))?;
    let mut current = results
        .get(id)
        .and_then(Option::as_ref)
        .ok_or_else(|| unresolved(id))?;
    for step in steps {
        current = match step {
            Step::Field(name) => current.get(name),
            Step::Index(i) => current.get(i),
        }
        .ok_or_else(|| unresolved(id))?;
    }
    Ok(current)
}

fn as_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` with every `@{...}` replaced by the value it names.
pub fn in_text(text: &str, results: &Results) -> Result<String, Unresolved> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let reference = &rest[start + 2..start + 2 + len];
        out.push_str(&as_text(value(reference, results)?));
        rest = &rest[start + 2 + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A subrequest URL with its references replaced. A reference written
/// percent-encoded (`%40%7Bq.records%5B0%5D.Id%7D`, as a client encoding its
/// whole query string sends it) gets its value percent-encoded.
pub fn in_url(url: &str, results: &Results) -> Result<String, Unresolved> {
    const OPEN: &str = "%40%7b";
    const CLOSE: &str = "%7d";
    let lowered = url.to_ascii_lowercase();
    let mut out = String::with_capacity(url.len());
    let mut at = 0;
    while let Some(start) = lowered[at..].find(OPEN).map(|i| at + i) {
        let inner = start + OPEN.len();
        let Some(end) = lowered[inner..].find(CLOSE).map(|i| inner + i) else {
            break;
        };
        out.push_str(&url[at..start]);
        let reference = percent_decode(&url[inner..end]);
        let text = as_text(value(&reference, results)?);
        out.extend(url::form_urlencoded::byte_serialize(text.as_bytes()));
        at = end + CLOSE.len();
    }
    out.push_str(&url[at..]);
    in_text(&out, results)
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A body with references replaced in every string. A string that is one
/// reference and nothing else takes the value itself, number, boolean or
/// null included.
pub fn in_json(body: &Json, results: &Results) -> Result<Json, Unresolved> {
    Ok(match body {
        Json::String(s) => {
            let whole = s
                .strip_prefix("@{")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|r| !r.contains('}'));
            match whole {
                Some(reference) => value(reference, results)?.clone(),
                None => Json::String(in_text(s, results)?),
            }
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| in_json(v, results))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), in_json(v, results)?)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn results() -> Results {
        Results::from([
            (
                "newAccount".to_string(),
                Some(json!({"id": "001000000000001AAA", "success": true})),
            ),
            (
                "q".to_string(),
                Some(
                    json!({"records": [{"Id": "003000000000001AAA", "Amount": 12.5, "Email": null}]}),
                ),
            ),
            (
                "made".to_string(),
                Some(json!([{"id": "a", "success": true}, {"id": "b", "success": true}])),
            ),
            ("failed".to_string(), None),
        ])
    }

    #[test]
    fn references_walk_fields_and_indexes() {
        let r = results();
        assert_eq!(
            in_text("/sobjects/Account/@{newAccount.id}", &r).unwrap(),
            "/sobjects/Account/001000000000001AAA"
        );
        assert_eq!(
            in_text("WHERE Id = '@{q.records[0].Id}' AND x = @{made[1].id}", &r).unwrap(),
            "WHERE Id = '003000000000001AAA' AND x = b"
        );
        assert_eq!(in_text("no refs @{ here", &r).unwrap(), "no refs @{ here");
    }

    #[test]
    fn encoded_references_in_urls_get_encoded_values() {
        let r = results();
        assert_eq!(
            in_url(
                "/query?q=SELECT+Id+FROM+Contact+WHERE+Id+%3D+%27%40%7Bq.records%5B0%5D.Id%7D%27",
                &r
            )
            .unwrap(),
            "/query?q=SELECT+Id+FROM+Contact+WHERE+Id+%3D+%27003000000000001AAA%27"
        );
        assert_eq!(
            in_url("/sobjects/Account/@{newAccount.id}", &r).unwrap(),
            "/sobjects/Account/001000000000001AAA"
        );
        assert!(in_url("/x/%40%7Bnope.id%7D", &r).is_err());
    }

    #[test]
    fn whole_string_references_keep_the_value_type() {
        let body = json!({"AccountId": "@{newAccount.id}", "Amount": "@{q.records[0].Amount}", "Email": "@{q.records[0].Email}", "Note": "for @{newAccount.id}", "n": 1});
        assert_eq!(
            in_json(&body, &results()).unwrap(),
            json!({"AccountId": "001000000000001AAA", "Amount": 12.5, "Email": null, "Note": "for 001000000000001AAA", "n": 1})
        );
    }

    #[test]
    fn missing_values_and_failed_subrequests_do_not_resolve() {
        let r = results();
        for (text, id) in [
            ("@{newAccount.nope}", "newAccount"),
            ("@{q.records[3].Id}", "q"),
            ("@{failed.id}", "failed"),
            ("@{later.id}", "later"),
        ] {
            let e = in_text(text, &r).unwrap_err();
            assert_eq!(e.reference_id, id, "{text}");
        }
        assert_eq!(
            in_text("@{newAccount.nope}", &r).unwrap_err().message(),
            "Invalid reference specified. No value for newAccount.nope found in newAccount."
        );
    }
}
