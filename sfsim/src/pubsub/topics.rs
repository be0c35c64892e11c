//! Change event channels: `/data/ChangeEvents` for every selected object,
//! `/data/<Object>ChangeEvent` for one (`/data/<Name>__ChangeEvent` for a
//! custom object `<Name>__c`).

use crate::org::Org;

pub const ALL_CHANGES: &str = "/data/ChangeEvents";
const PREFIX: &str = "/data/";
const SUFFIX: &str = "ChangeEvent";
const EVENT_PREFIX: &str = "/event/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    AllChanges,
    /// One object's channel, by the object's API name.
    Object(String),
    /// A platform event's channel, `/event/Name__e`, by the event's name.
    Event(String),
}

impl Topic {
    /// The topic a channel name names, if it is one of the org's.
    pub fn parse(name: &str, org: &Org) -> Option<Topic> {
        if let Some(event) = name.strip_prefix(EVENT_PREFIX) {
            return org.event(event).map(|e| Topic::Event(e.name.clone()));
        }
        let entity = name.strip_prefix(PREFIX)?;
        if entity == "ChangeEvents" {
            return Some(Topic::AllChanges);
        }
        let stem = entity.strip_suffix(SUFFIX)?;
        let object = match stem.strip_suffix("__") {
            Some(custom) => format!("{custom}__c"),
            None => stem.to_string(),
        };
        let index = org.object(&object)?;
        Some(Topic::Object(org.def(index).name.clone()))
    }

    pub fn carries(&self, object: &str) -> bool {
        match self {
            // Platform events are never change events.
            Topic::AllChanges => !object.ends_with("__e"),
            Topic::Object(o) | Topic::Event(o) => o == object,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Topic::AllChanges => ALL_CHANGES.to_string(),
            Topic::Object(object) => format!("{PREFIX}{}", entity_name(object)),
            Topic::Event(event) => format!("{EVENT_PREFIX}{event}"),
        }
    }
}

/// The change event's name: `AccountChangeEvent`, `Invoice__ChangeEvent`.
pub fn entity_name(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(custom) => format!("{custom}__{SUFFIX}"),
        None => format!("{object}{SUFFIX}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn channel_names_follow_salesforce() {
        let org = Org::new(Schema::builtin(), chrono::Utc::now());
        let parse = |n: &str| Topic::parse(n, &org);
        assert_eq!(parse("/data/ChangeEvents"), Some(Topic::AllChanges));
        assert_eq!(
            parse("/data/AccountChangeEvent"),
            Some(Topic::Object("Account".into()))
        );
        assert_eq!(
            parse("/data/Invoice__ChangeEvent"),
            Some(Topic::Object("Invoice__c".into()))
        );
        assert_eq!(parse("/data/NopeChangeEvent"), None);
        assert_eq!(parse("/event/Order__e"), None);
        assert_eq!(
            parse("/event/Signup__e"),
            Some(Topic::Event("Signup__e".into()))
        );
        assert!(!Topic::AllChanges.carries("Signup__e"));
        assert_eq!(parse("/data/Account"), None);
        assert_eq!(
            Topic::Object("Invoice__c".into()).name(),
            "/data/Invoice__ChangeEvent"
        );
        assert_eq!(entity_name("Contact"), "ContactChangeEvent");
    }
}
