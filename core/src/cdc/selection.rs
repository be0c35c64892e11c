//! Which objects the org has selected for Change Data Capture on the
//! standard `ChangeEvents` channel, as the Tooling API's
//! `PlatformEventChannelMember` lists them: an object not selected sends
//! no change events, whatever a subscription to it says.

use serde_json::{Map, Value};

/// The Tooling API query for the channel members.
pub const MEMBERS_SOQL: &str =
    "SELECT DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember";

/// The change event of an object: `AccountChangeEvent`, and for a custom
/// object `Invoice__c` `Invoice__ChangeEvent`.
pub fn change_event_name(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(custom) => format!("{custom}__ChangeEvent"),
        None => format!("{object}ChangeEvent"),
    }
}

/// The change events selected on the standard channel, from the members'
/// records. A member is on it when its channel is `ChangeEvents`, or, if
/// the channel comes as an Id, when its developer name says so.
pub fn standard_channel_selection(records: &[Map<String, Value>]) -> Vec<String> {
    let text = |r: &Map<String, Value>, f: &str| {
        r.get(f).and_then(Value::as_str).unwrap_or("").to_string()
    };
    records
        .iter()
        .filter(|r| {
            let channel = text(r, "EventChannel");
            let developer = text(r, "DeveloperName");
            channel.eq_ignore_ascii_case("ChangeEvents")
                || (!channel.ends_with("__chn")
                    && developer.starts_with("ChangeEvents_")
                    && !developer.starts_with("ChangeEvents_chn_"))
        })
        .map(|r| text(r, "SelectedEntity"))
        .filter(|e| !e.is_empty())
        .collect()
}

/// Whether `object` is among the selected change events.
pub fn is_selected(selection: &[String], object: &str) -> bool {
    let wanted = change_event_name(object);
    selection.iter().any(|e| e.eq_ignore_ascii_case(&wanted))
}

/// The warning for `object` given the selection: None when it is selected.
pub fn warning(selection: &[String], object: &str) -> Option<String> {
    (!is_selected(selection, object)).then(|| not_selected_warning(object))
}

/// Why the selection could not be read, most often.
pub const UNREADABLE: &str =
    "the Tooling API's PlatformEventChannelMember needs the View Setup and Configuration permission";

/// What to tell the user when an object is not selected.
pub fn not_selected_warning(object: &str) -> String {
    format!(
        "{object} is not selected for Change Data Capture: Salesforce sends no change events for it, and only the sync's polls keep the copy current. In Setup, Integrations > Change Data Capture, move {object} to Selected Entities"
    )
}

#[cfg(test)]
mod selection_tests {
    use super::*;
    use serde_json::json;

    fn member(channel: &str, developer: &str, entity: &str) -> Map<String, Value> {
        json!({"EventChannel": channel, "DeveloperName": developer, "SelectedEntity": entity})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn change_events_are_named_as_salesforce_names_them() {
        assert_eq!(change_event_name("Account"), "AccountChangeEvent");
        assert_eq!(change_event_name("Invoice__c"), "Invoice__ChangeEvent");
    }

    #[test]
    fn only_the_standard_channel_counts() {
        let records = vec![
            member(
                "ChangeEvents",
                "ChangeEvents_AccountChangeEvent",
                "AccountChangeEvent",
            ),
            member(
                "0YLxx0000000001",
                "ChangeEvents_Invoice_ChangeEvent",
                "Invoice__ChangeEvent",
            ),
            member(
                "Orders__chn",
                "Orders_chn_ContactChangeEvent",
                "ContactChangeEvent",
            ),
            member(
                "ChangeEvents__chn",
                "ChangeEvents_chn_LeadChangeEvent",
                "LeadChangeEvent",
            ),
        ];
        let selected = standard_channel_selection(&records);
        assert!(is_selected(&selected, "Account"));
        assert!(is_selected(&selected, "invoice__c"));
        assert!(!is_selected(&selected, "Contact"));
        assert!(
            !is_selected(&selected, "Lead"),
            "a custom channel named ChangeEvents__chn"
        );
        assert!(not_selected_warning("Contact").contains("move Contact to Selected Entities"));
    }
}
