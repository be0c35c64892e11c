//! Platform event definitions (`Name__e`), declared under `platformEvents`
//! in `data/org.json`: custom fields plus the standard fields Salesforce
//! gives every platform event (ReplayId, CreatedDate, CreatedById,
//! EventUuid). Events are published, never stored: they are createable and
//! describable, not queryable, retrievable, updateable or deletable.

use crate::schema::{FieldDef, FieldSpec, FieldType};
use serde::Deserialize;
use serde_json::{json, Value as Json};

/// A platform event as the data file declares it.
#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EventSpec {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

#[derive(Clone, Debug)]
pub struct EventDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    /// The standard fields, then the custom ones in declaration order.
    pub fields: Vec<FieldDef>,
}

/// The standard fields every platform event has, as Salesforce's field
/// reference lists them, set by the system only.
pub const STANDARD_FIELDS: [&str; 4] = ["ReplayId", "CreatedDate", "CreatedById", "EventUuid"];

fn system(name: &str, ftype: FieldType, length: u32, label: &str) -> FieldDef {
    let mut f = FieldSpec {
        name: name.into(),
        ftype: Some(ftype),
        length,
        label: Some(label.into()),
        custom: Some(false),
        ..Default::default()
    }
    .into_def();
    f.createable = false;
    f.updateable = false;
    f.filterable = false;
    f.sortable = false;
    f.groupable = false;
    f.aggregatable = false;
    f
}

impl EventSpec {
    pub fn into_def(self) -> Result<EventDef, String> {
        if !self.name.ends_with("__e") {
            return Err(format!("platform event {}: names end in __e", self.name));
        }
        let mut created_by = system("CreatedById", FieldType::Reference, 18, "Created By ID");
        created_by.reference_to = vec!["User".into()];
        created_by.relationship_name = Some("CreatedBy".into());
        created_by.nillable = false;
        let mut created = system("CreatedDate", FieldType::Datetime, 0, "Created Date");
        created.nillable = false;
        let mut fields = vec![
            system("ReplayId", FieldType::String, 1000, "Replay ID"),
            created,
            created_by,
            system("EventUuid", FieldType::String, 36, "Event UUID"),
        ];
        for spec in self.fields {
            if !spec.name.ends_with("__c") {
                return Err(format!(
                    "platform event {}: field {} is not custom",
                    self.name, spec.name
                ));
            }
            let mut f = spec.into_def();
            // Event fields are written once, by the publisher, and never read back by query.
            f.updateable = false;
            f.filterable = false;
            f.sortable = false;
            f.groupable = false;
            f.aggregatable = false;
            f.id_lookup = false;
            fields.push(f);
        }
        Ok(EventDef {
            name: self.name,
            label: self.label,
            label_plural: self.label_plural,
            key_prefix: self.key_prefix,
            fields,
        })
    }
}

impl EventDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The custom fields, which publishers set.
    pub fn custom_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.custom)
    }

    /// Its entry in describe global: createable and triggerable, nothing a
    /// stored record would be.
    pub fn sobject_summary(&self, version: &str) -> Json {
        let base = format!("/services/data/v{version}/sobjects/{}", self.name);
        json!({
            "activateable": false,
            "createable": true,
            "custom": true,
            "customSetting": false,
            "deletable": false,
            "deprecatedAndHidden": false,
            "feedEnabled": false,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": false,
            "mergeable": false,
            "mruEnabled": false,
            "name": self.name,
            "queryable": false,
            "replicateable": false,
            "retrieveable": false,
            "searchable": false,
            "triggerable": true,
            "undeletable": false,
            "updateable": false,
            "urls": {
                "eventSchema": format!("{base}/eventSchema"),
                "describe": format!("{base}/describe"),
                "sobject": base,
            }
        })
    }

    pub fn describe(&self, version: &str) -> Json {
        let mut d = self.sobject_summary(version);
        d["fields"] = Json::Array(self.fields.iter().map(FieldDef::describe).collect());
        d["childRelationships"] = json!([]);
        d["recordTypeInfos"] = json!([]);
        d
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::Schema;

    #[test]
    fn the_demo_org_declares_two_events() {
        let schema = Schema::builtin();
        let names: Vec<&str> = schema.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Signup__e", "Payment__e"]);
        let signup = &schema.events[0];
        let fields: Vec<&str> = signup.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            fields,
            [
                "ReplayId",
                "CreatedDate",
                "CreatedById",
                "EventUuid",
                "Email__c",
                "User_Id__c",
                "Seats__c"
            ]
        );
        let email = signup.field("email__c").unwrap();
        assert!(email.createable && !email.updateable && !email.filterable);
        assert!(!signup.field("ReplayId").unwrap().createable);
        assert_eq!(signup.field("EventUuid").unwrap().length, 36);
        let summary = signup.sobject_summary("62.0");
        assert_eq!(summary["queryable"], false);
        assert_eq!(summary["createable"], true);
        assert!(
            schema.objects.iter().all(|o| !o.name.ends_with("__e")),
            "events are not objects"
        );
    }
}
