//! Change event channels: `/data/ChangeEvents` for every selected object,
//! `/data/<Object>ChangeEvent` for one (`/data/<Name>__ChangeEvent` for a
//! custom object `<Name>__c`).

use crate::org::Org;

pub const ALL_CHANGES: &str = "/data/ChangeEvents";
const PREFIX: &str = "/data/";
const SUFFIX: &str = "ChangeEvent";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    AllChanges,
    /// One object's channel, by the object's API name.
    Object(String),
}

impl Topic {
    /// The topic a channel name names, if it is one of the org's.
    pub fn parse(name: &str, org: &Org) -> Option<Topic> {
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
            Topic::AllChanges => true,
            Topic::Object(o) => o == object,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Topic::AllChanges => ALL_CHANGES.to_string(),
            Topic::Object(object) => format!("{PREFIX}{}", entity_name(object)),
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
        assert_eq!(parse("/data/Account"), None);
        assert_eq!(
            Topic::Object("Invoice__c".into()).name(),
            "/data/Invoice__ChangeEvent"
        );
        assert_eq!(entity_name("Contact"), "ContactChangeEvent");
    }
}
