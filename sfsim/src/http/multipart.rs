//! The multipart/form-data create of a Bulk API 2.0 ingest job: a `job`
//! part (the job's JSON) and a `content` part (its CSV), RFC 7578.

use super::bulk::bad_request;
use super::data::ApiRequest;
use super::errors::ApiError;
use axum::response::Response;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The boundary a multipart Content-Type names.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts of a multipart body, by the name in their Content-Disposition.
fn parts<'b>(body: &'b [u8], boundary: &str) -> Vec<(String, &'b [u8])> {
    let delimiter = format!("--{boundary}");
    let mut out = vec![];
    let mut rest = body;
    let Some(first) = find(rest, delimiter.as_bytes()) else {
        return out;
    };
    rest = &rest[first + delimiter.len()..];
    while !rest.starts_with(b"--") {
        let Some(next) = find(rest, delimiter.as_bytes()) else {
            break;
        };
        let part = &rest[..next];
        rest = &rest[next + delimiter.len()..];
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        let (head, body) = match find(part, b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match find(part, b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => continue,
            },
        };
        // The line break before the next delimiter belongs to it.
        let body = body
            .strip_suffix(b"\r\n")
            .or_else(|| body.strip_suffix(b"\n"))
            .unwrap_or(body);
        let head = String::from_utf8_lossy(head);
        let name = head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix("name=")
                    .map(|n| n.trim_matches('"').to_string())
            })
        });
        if let Some(name) = name {
            out.push((name, body));
        }
    }
    out
}

pub fn create(req: &mut ApiRequest, content_type: &str) -> Result<Response, ApiError> {
    let boundary = boundary(content_type)
        .ok_or_else(|| bad_request("API_ERROR", "A multipart request needs a boundary"))?;
    let body = req.body.clone();
    let parts = parts(&body, &boundary);
    let part = |name: &str| parts.iter().find(|(n, _)| n == name).map(|(_, b)| *b);
    let job = part("job")
        .ok_or_else(|| bad_request("API_ERROR", "A multipart request needs a part named job"))?;
    let content = part("content").ok_or_else(|| {
        bad_request(
            "API_ERROR",
            "A multipart request needs a part named content",
        )
    })?;
    super::ingest::create_with_content(req, job, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_found_by_name() {
        let body = b"--B\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n{\"object\":\"Contact\"}\r\n--B\r\nContent-Type: text/csv\r\nContent-Disposition: form-data; name=\"content\"; filename=\"content\"\r\n\r\nLastName\nNg\n\r\n--B--\r\n";
        let parts = parts(body, "B");
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            ("job".to_string(), &b"{\"object\":\"Contact\"}"[..])
        );
        assert_eq!(parts[1], ("content".to_string(), &b"LastName\nNg\n"[..]));
        assert_eq!(
            boundary("multipart/form-data; boundary=\"B\"").as_deref(),
            Some("B")
        );
    }
}
