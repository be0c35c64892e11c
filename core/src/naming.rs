//! Local names for Salesforce API names: `Contact` → `contact`,
//! `MailingPostalCode` → `mailing_postal_code`, `User_Id__c` → `user_id__c`.

/// snake_case of an API name. Underscores are kept as they are, so custom
/// suffixes (`__c`, `__s`) stay recognisable.
/// Whether `name` can be a Salesforce API name (an object or a field):
/// letters, digits and underscores, from a letter, so that it can go into
/// a URL's path as it is.
pub fn is_api_name(name: &str) -> bool {
    name.len() <= 80
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn snake_case(api_name: &str) -> String {
    let chars: Vec<char> = api_name.chars().collect();
    let mut out = String::with_capacity(api_name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let starts_word = prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower);
            if starts_word && prev != '_' {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Gives fields distinct local column names: snake_case, except that a
/// field whose snake_case name is taken keeps its API name.
#[derive(Default)]
pub struct ColumnNamer {
    used: std::collections::HashSet<String>,
}

impl ColumnNamer {
    pub fn with_taken(taken: impl IntoIterator<Item = String>) -> ColumnNamer {
        ColumnNamer {
            used: taken.into_iter().collect(),
        }
    }

    pub fn name(&mut self, api_name: &str, snake: bool) -> String {
        let mut name = if snake {
            snake_case(api_name)
        } else {
            api_name.to_string()
        };
        if !self.used.insert(name.clone()) {
            name = api_name.to_string();
            self.used.insert(name.clone());
        }
        name
    }
}

/// PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1).
pub const MAX_NAME_BYTES: usize = 63;

/// `base` followed by `suffix`, within 63 bytes: `base` is cut by bytes, at
/// a character boundary, so the suffix always survives and the name never
/// equals `base` itself, as PostgreSQL's own truncation would make it.
pub fn with_suffix(base: &str, suffix: &str) -> String {
    let room = MAX_NAME_BYTES.saturating_sub(suffix.len());
    let mut cut = base.len().min(room);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// Double-quotes an identifier for SQL when it needs it.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// SQL keywords that cannot be column or table names unquoted.
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "all"
            | "analyse"
            | "analyze"
            | "and"
            | "any"
            | "array"
            | "as"
            | "asc"
            | "case"
            | "cast"
            | "check"
            | "collate"
            | "column"
            | "constraint"
            | "create"
            | "current_date"
            | "current_time"
            | "current_timestamp"
            | "current_user"
            | "default"
            | "desc"
            | "distinct"
            | "do"
            | "else"
            | "end"
            | "except"
            | "false"
            | "fetch"
            | "for"
            | "foreign"
            | "from"
            | "grant"
            | "group"
            | "having"
            | "in"
            | "initially"
            | "intersect"
            | "into"
            | "leading"
            | "limit"
            | "not"
            | "null"
            | "offset"
            | "on"
            | "only"
            | "or"
            | "order"
            | "placing"
            | "primary"
            | "references"
            | "returning"
            | "select"
            | "some"
            | "table"
            | "then"
            | "to"
            | "trailing"
            | "true"
            | "union"
            | "unique"
            | "user"
            | "using"
            | "when"
            | "where"
            | "window"
            | "with"
    )
}

/// SQL string literal.
pub fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        // E'' reads backslashes the same whatever standard_conforming_strings says.
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_letters_digits_and_underscores_only() {
        for good in ["Contact", "User_Id__c", "ns__Thing__e"] {
            assert!(is_api_name(good), "{good}");
        }
        for bad in [
            "",
            "1Contact",
            "Contact/../x",
            "Contact?x=1",
            "Con tact",
            "Contact%2F",
            &"a".repeat(81),
        ] {
            assert!(!is_api_name(bad), "{bad}");
        }
    }

    #[test]
    fn api_names_become_snake_case() {
        for (api, local) in [
            ("Contact", "contact"),
            ("Invoice__c", "invoice__c"),
            ("User_Id__c", "user_id__c"),
            ("MailingPostalCode", "mailing_postal_code"),
            ("SystemModstamp", "system_modstamp"),
            ("CreatedById", "created_by_id"),
            ("IsDeleted", "is_deleted"),
            ("HTMLBody", "html_body"),
            ("Address2__c", "address2__c"),
            (
                "Delivery_Location__Latitude__s",
                "delivery_location__latitude__s",
            ),
            ("Id", "id"),
        ] {
            assert_eq!(snake_case(api), local, "{api}");
        }
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(quote_ident("last_name"), "last_name");
        assert_eq!(quote_ident("LastName"), "\"LastName\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn suffixed_names_fit_in_63_bytes_and_differ_from_their_base() {
        let long = "a".repeat(63);
        let staged = with_suffix(&long, "__resync_7");
        assert_eq!(staged.len(), 63);
        assert!(staged.ends_with("__resync_7"));
        assert_ne!(staged, long);
        // Two-byte characters: never cut inside one.
        let accented = "é".repeat(31) + "x";
        assert_eq!(accented.len(), 63);
        let staged = with_suffix(&accented, "__resync_12");
        assert!(staged.len() <= 63, "{} bytes", staged.len());
        assert!(staged.ends_with("__resync_12"));
        assert_eq!(staged, "é".repeat(26) + "__resync_12");
        // Three-byte characters, cut where a character ends.
        let kanji = "表".repeat(21);
        let staged = with_suffix(&kanji, "__resync_1");
        assert_eq!(staged, "表".repeat(17) + "__resync_1");
        assert_eq!(with_suffix("contact", "__resync_1"), "contact__resync_1");
    }
}
