//! The org's schema: objects and fields loaded from `data/org.json`, with the
//! describe flags Salesforce derives from each field's type filled in.

use crate::access::FieldAccess;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Id,
    Reference,
    String,
    Textarea,
    Picklist,
    Multipicklist,
    Combobox,
    Email,
    Phone,
    Url,
    Encryptedstring,
    Boolean,
    Int,
    Long,
    Double,
    Currency,
    Percent,
    Date,
    Datetime,
    Time,
    Address,
    Location,
    Base64,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Encryptedstring => "encryptedstring",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Time => "time",
            FieldType::Address => "address",
            FieldType::Location => "location",
            FieldType::Base64 => "base64",
        }
    }

    /// Types whose values are text in SOQL and JSON.
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Picklist
                | FieldType::Multipicklist
                | FieldType::Combobox
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Encryptedstring
                | FieldType::Base64
        )
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int
                | FieldType::Long
                | FieldType::Double
                | FieldType::Currency
                | FieldType::Percent
        )
    }

    pub fn is_compound(self) -> bool {
        matches!(self, FieldType::Address | FieldType::Location)
    }

    fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Long => "xsd:long",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            FieldType::Time => "xsd:time",
            FieldType::Base64 => "xsd:base64Binary",
            FieldType::Address => "urn:address",
            FieldType::Location => "urn:location",
            _ => "xsd:string",
        }
    }
}

/// Values computed by Salesforce rather than stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Formula {
    /// FirstName and LastName joined by a space.
    FullName,
    /// Amount * Probability / 100.
    ExpectedRevenue,
    /// Amount__c * (1 + Tax_Rate__c / 100).
    InvoiceTotal,
    /// The Name of the record's Account, through AccountId.
    AccountName,
    /// Days from Issued_On__c to today on sfsim's clock.
    DaysSinceIssued,
}

impl Formula {
    /// The formula as a Salesforce admin would write it, for describe's
    /// `calculatedFormula`.
    pub fn text(self) -> &'static str {
        match self {
            Formula::FullName => "FirstName & \" \" & LastName",
            Formula::ExpectedRevenue => "Amount * Probability",
            // Percent fields read as fractions in formulas (10% is 0.1).
            Formula::InvoiceTotal => "Amount__c * (1 + Tax_Rate__c)",
            Formula::AccountName => "Account.Name",
            Formula::DaysSinceIssued => "TODAY() - Issued_On__c",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub ftype: FieldType,
    pub length: u32,
    pub precision: u32,
    pub scale: u32,
    pub digits: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub filterable: bool,
    pub sortable: bool,
    pub groupable: bool,
    /// Whether any aggregate function takes the field (describe's `aggregatable`).
    pub aggregatable: bool,
    pub custom: bool,
    pub external_id: bool,
    pub id_lookup: bool,
    pub unique: bool,
    pub calculated: bool,
    pub defaulted_on_create: bool,
    pub name_field: bool,
    pub auto_number: Option<String>,
    pub formula: Option<Formula>,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    /// The name the referenced object's describe gives the records pointing
    /// at it through this field (`Contacts` for Contact.AccountId), if any.
    pub child_relationship_name: Option<String>,
    pub picklist_values: Vec<String>,
    pub restricted_picklist: bool,
    pub default_value: Option<String>,
    pub compound_field_name: Option<String>,
}

impl FieldDef {
    /// A long text area: more than 255 characters, never filterable or sortable.
    pub fn is_long_text(&self) -> bool {
        self.ftype == FieldType::Textarea && self.length > 255
    }

    /// Salesforce refuses a create that leaves this field empty.
    pub fn is_required_on_create(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }

    /// Salesforce shows the formula of custom formula fields only; standard
    /// computed fields (Name, ExpectedRevenue) report none.
    fn calculated_formula(&self) -> Option<&'static str> {
        self.formula.filter(|_| self.custom).map(Formula::text)
    }

    pub fn describe(&self) -> serde_json::Value {
        let picklist: Vec<serde_json::Value> = self
            .picklist_values
            .iter()
            .map(|v| {
                serde_json::json!({
                    "active": true,
                    "defaultValue": self.default_value.as_deref() == Some(v.as_str()),
                    "label": v,
                    "validFor": null,
                    "value": v,
                })
            })
            .collect();
        serde_json::json!({
            "autoNumber": self.auto_number.is_some(),
            "byteLength": if self.ftype.is_textual() { self.length * 3 } else { 0 },
            "calculated": self.calculated,
            "calculatedFormula": self.calculated_formula(),
            "caseSensitive": false,
            "compoundFieldName": self.compound_field_name,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultedOnCreate": self.defaulted_on_create,
            "digits": self.digits,
            "externalId": self.external_id,
            "aggregatable": self.aggregatable,
            "filterable": self.filterable,
            "groupable": self.groupable,
            "htmlFormatted": false,
            "idLookup": self.id_lookup,
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "picklistValues": picklist,
            "polymorphicForeignKey": self.reference_to.len() > 1,
            "precision": self.precision,
            "referenceTo": self.reference_to,
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "soapType": self.ftype.soap_type(),
            "sortable": self.sortable,
            "type": self.ftype.name(),
            "unique": self.unique,
            "updateable": self.updateable,
        })
    }
}

/// A rule that refuses a record whose field is below a minimum.
#[derive(Clone, Debug, Deserialize)]
pub struct ValidationRule {
    pub field: String,
    pub min: f64,
    pub message: String,
}

/// A blocking duplicate rule: no two live records share these fields' values.
#[derive(Clone, Debug, Deserialize)]
pub struct DuplicateRule {
    pub fields: Vec<String>,
}

/// Positions of the fields every object has.
#[derive(Clone, Copy, Debug)]
pub struct SystemFields {
    pub id: usize,
    pub is_deleted: usize,
    pub owner_id: Option<usize>,
    pub created_date: usize,
    pub created_by_id: usize,
    pub last_modified_date: usize,
    pub last_modified_by_id: usize,
    pub system_modstamp: usize,
}

#[derive(Clone, Debug)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub custom: bool,
    pub fields: Vec<FieldDef>,
    pub system: SystemFields,
    pub validation_rules: Vec<ValidationRule>,
    pub duplicate_rule: Option<DuplicateRule>,
    field_index: HashMap<String, usize>,
    relationship_index: HashMap<String, usize>,
    /// The field each validation rule checks, and the duplicate rule's
    /// first field, found once: every write checks them.
    validation_fields: Vec<Option<usize>>,
    duplicate_field: Option<usize>,
}

impl ObjectDef {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.field_index.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// The reference field behind a relationship name such as `Account` or `Account__r`.
    pub fn relationship_field(&self, relationship: &str) -> Option<usize> {
        self.relationship_index
            .get(&relationship.to_ascii_lowercase())
            .copied()
    }

    /// The component fields of a compound field, in declaration order.
    pub fn components_of(&self, compound: &str) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|i| self.fields[*i].compound_field_name.as_deref() == Some(compound))
            .collect()
    }

    pub fn add_field(&mut self, field: FieldDef) {
        self.fields.push(field);
        self.reindex();
    }

    fn reindex(&mut self) {
        self.field_index = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        self.relationship_index = self
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.relationship_name
                    .as_ref()
                    .map(|r| (r.to_ascii_lowercase(), i))
            })
            .collect();
        self.validation_fields = self
            .validation_rules
            .iter()
            .map(|rule| self.field_index(&rule.field))
            .collect();
        self.duplicate_field = self
            .duplicate_rule
            .as_ref()
            .and_then(|rule| rule.fields.first())
            .and_then(|f| self.field_index(f));
    }

    /// The validation rules with the field each checks, if it exists.
    pub fn validation_rules_by_field(
        &self,
    ) -> impl Iterator<Item = (&ValidationRule, Option<usize>)> + '_ {
        self.validation_rules
            .iter()
            .zip(self.validation_fields.iter().copied())
    }

    /// The field a duplicate rule matches records by (its first), if any.
    pub fn duplicate_field(&self) -> Option<usize> {
        self.duplicate_field
    }

    pub fn sobject_summary(&self, version: &str) -> serde_json::Value {
        let base = format!("/services/data/v{version}/sobjects/{}", self.name);
        let is_user = self.name == "User";
        serde_json::json!({
            "activateable": false,
            "createable": true,
            "custom": self.custom,
            "customSetting": false,
            "deletable": !is_user,
            "deprecatedAndHidden": false,
            "feedEnabled": false,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": true,
            "mergeable": false,
            "mruEnabled": true,
            "name": self.name,
            "queryable": true,
            "replicateable": true,
            "retrieveable": true,
            "searchable": true,
            "triggerable": true,
            "undeletable": !is_user,
            "updateable": true,
            "urls": {
                "rowTemplate": format!("{base}/{{ID}}"),
                "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
                "describe": format!("{base}/describe"),
                "sobject": base,
            }
        })
    }

    /// The object's describe, listing only the fields `visible` lets through,
    /// with the child relationships given.
    pub fn describe(
        &self,
        version: &str,
        visible: impl Fn(usize) -> bool,
        child_relationships: Vec<serde_json::Value>,
    ) -> serde_json::Value {
        let mut d = self.sobject_summary(version);
        let fields: Vec<serde_json::Value> = self
            .fields
            .iter()
            .enumerate()
            .filter(|(i, _)| visible(*i))
            .map(|(_, f)| f.describe())
            .collect();
        d["fields"] = serde_json::Value::Array(fields);
        d["childRelationships"] = serde_json::Value::Array(child_relationships);
        d["recordTypeInfos"] = serde_json::json!([]);
        d
    }
}

// ---- loading ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgFile {
    org_id: String,
    objects: Vec<ObjectSpec>,
    #[serde(default)]
    users: Vec<UserSpec>,
    #[serde(default)]
    platform_events: Vec<crate::event_defs::EventSpec>,
    /// User permissions the admin's profile grants (see `PERMISSIONS`).
    #[serde(default)]
    admin_permissions: Vec<String>,
}

/// The user permissions sfsim models: `BulkApiHardDelete` ("Bulk API Hard
/// Delete"), which Bulk API 2.0 `hardDelete` jobs need.
pub const PERMISSIONS: &[&str] = &["BulkApiHardDelete"];

fn known_permissions(who: &str, permissions: Vec<String>) -> Result<Vec<String>, String> {
    match permissions
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        Some(p) => Err(format!("{who}: unknown permission {p}")),
        None => Ok(permissions),
    }
}

/// A user the data file declares besides the admin: who it is, and the
/// fields its profile hides, by object name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserSpec {
    username: String,
    first_name: String,
    last_name: String,
    #[serde(default)]
    hidden_fields: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    permissions: Vec<String>,
}

/// A user the data file declares, for seeding to create.
#[derive(Clone, Debug)]
pub struct DeclaredUser {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub access: FieldAccess,
    /// User permissions its profile grants, off unless the data file lists them.
    pub permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectSpec {
    name: String,
    label: String,
    label_plural: String,
    key_prefix: String,
    #[serde(default)]
    custom: bool,
    #[serde(default = "yes")]
    owned: bool,
    #[serde(default)]
    validation_rules: Vec<ValidationRule>,
    duplicate_rule: Option<DuplicateRule>,
    fields: Vec<FieldSpec>,
}

fn yes() -> bool {
    true
}

/// A field as written in the data file: its type plus only what differs from
/// what Salesforce derives from that type.
#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ftype: Option<FieldType>,
    pub label: Option<String>,
    #[serde(default)]
    pub length: u32,
    #[serde(default)]
    pub precision: u32,
    #[serde(default)]
    pub scale: u32,
    #[serde(default)]
    pub digits: u32,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub id_lookup: bool,
    #[serde(default)]
    pub name_field: bool,
    pub custom: Option<bool>,
    #[serde(default)]
    pub calculated: bool,
    pub formula: Option<Formula>,
    pub auto_number: Option<String>,
    #[serde(default)]
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    pub child_relationship_name: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub restricted: bool,
    pub default: Option<String>,
    pub compound: Option<String>,
}

/// "BillingCity" -> "Billing City", "Tax_Rate__c" -> "Tax Rate".
fn label_from_api_name(name: &str) -> String {
    let base = name.trim_end_matches("__c").trim_end_matches("__s");
    let mut out = String::new();
    let mut prev_lower = false;
    for c in base.chars() {
        if c == '_' {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    out.trim().to_string()
}

impl FieldSpec {
    pub fn into_def(self) -> FieldDef {
        let ftype = self.ftype.unwrap_or(FieldType::String);
        let custom = self
            .custom
            .unwrap_or_else(|| self.name.ends_with("__c") || self.name.ends_with("__s"));
        let computed = self.formula.is_some()
            || self.calculated
            || self.auto_number.is_some()
            || ftype.is_compound();
        let long_text = ftype == FieldType::Textarea && self.length > 255;
        let unfilterable = long_text
            || matches!(ftype, FieldType::Base64 | FieldType::Encryptedstring)
            || ftype.is_compound();
        let unsortable = unfilterable || ftype == FieldType::Multipicklist;
        // As Salesforce's describe reports them: numbers with decimals
        // (double, currency, percent), datetimes, times, auto numbers and
        // computed text do not group; checkboxes, dates, ints, ids and short
        // text do. The full-name field is Salesforce's compound Name, not a
        // formula, and groups like text.
        let formula_field =
            (self.formula.is_some() && self.formula != Some(Formula::FullName)) || self.calculated;
        let groupable = !unsortable
            && !formula_field
            && self.auto_number.is_none()
            && !matches!(
                ftype,
                FieldType::Double
                    | FieldType::Currency
                    | FieldType::Percent
                    | FieldType::Datetime
                    | FieldType::Time
            );
        // Salesforce's table of aggregate functions per type: none take
        // booleans, times, blobs, compound fields, multipicklists, encrypted
        // or long text.
        let aggregatable = !long_text
            && !ftype.is_compound()
            && !matches!(
                ftype,
                FieldType::Boolean
                    | FieldType::Time
                    | FieldType::Base64
                    | FieldType::Multipicklist
                    | FieldType::Encryptedstring
            );
        let boolean = ftype == FieldType::Boolean;
        let defaulted = boolean || self.default.is_some() || self.auto_number.is_some();
        let length = match ftype {
            FieldType::Id | FieldType::Reference => 18,
            t if t.is_textual() => self.length,
            _ => 0,
        };
        FieldDef {
            label: self
                .label
                .unwrap_or_else(|| label_from_api_name(&self.name)),
            ftype,
            length,
            precision: self.precision,
            scale: self.scale,
            digits: self.digits,
            nillable: !(self.required || boolean || self.auto_number.is_some()),
            createable: !computed,
            updateable: !computed,
            filterable: !unfilterable,
            sortable: !unsortable,
            groupable,
            aggregatable,
            custom,
            external_id: self.external_id,
            id_lookup: self.id_lookup || self.external_id || ftype == FieldType::Id,
            unique: self.unique,
            calculated: self.calculated,
            defaulted_on_create: defaulted,
            name_field: self.name_field,
            auto_number: self.auto_number,
            formula: self.formula,
            reference_to: self.reference_to,
            relationship_name: self.relationship_name,
            child_relationship_name: self.child_relationship_name,
            picklist_values: self.values,
            restricted_picklist: self.restricted,
            default_value: self
                .default
                .or_else(|| boolean.then(|| "false".to_string())),
            compound_field_name: self.compound,
            name: self.name,
        }
    }
}

fn system_field(name: &str, ftype: FieldType) -> FieldDef {
    let mut f = FieldSpec {
        name: name.into(),
        ftype: Some(ftype),
        custom: Some(false),
        ..Default::default()
    }
    .into_def();
    f.createable = false;
    f.updateable = false;
    f.nillable = false;
    f.defaulted_on_create = true;
    f
}

fn user_reference(name: &str, relationship: &str) -> FieldDef {
    let mut f = system_field(name, FieldType::Reference);
    f.reference_to = vec!["User".into()];
    f.relationship_name = Some(relationship.into());
    f
}

fn build_object(spec: ObjectSpec) -> ObjectDef {
    let mut fields = vec![
        system_field("Id", FieldType::Id),
        system_field("IsDeleted", FieldType::Boolean),
    ];
    let owner_id = spec.owned.then(|| {
        let mut owner = user_reference("OwnerId", "Owner");
        owner.createable = true;
        owner.updateable = true;
        fields.push(owner);
        fields.len() - 1
    });
    fields.extend(spec.fields.into_iter().map(FieldSpec::into_def));
    let base = fields.len();
    fields.push(system_field("CreatedDate", FieldType::Datetime));
    fields.push(user_reference("CreatedById", "CreatedBy"));
    fields.push(system_field("LastModifiedDate", FieldType::Datetime));
    fields.push(user_reference("LastModifiedById", "LastModifiedBy"));
    fields.push(system_field("SystemModstamp", FieldType::Datetime));
    let mut def = ObjectDef {
        name: spec.name,
        label: spec.label,
        label_plural: spec.label_plural,
        key_prefix: spec.key_prefix,
        custom: spec.custom,
        fields,
        system: SystemFields {
            id: 0,
            is_deleted: 1,
            owner_id,
            created_date: base,
            created_by_id: base + 1,
            last_modified_date: base + 2,
            last_modified_by_id: base + 3,
            system_modstamp: base + 4,
        },
        validation_rules: spec.validation_rules,
        duplicate_rule: spec.duplicate_rule,
        field_index: HashMap::new(),
        relationship_index: HashMap::new(),
        validation_fields: vec![],
        duplicate_field: None,
    };
    def.reindex();
    def
}

#[derive(Clone)]
pub struct Schema {
    pub org_id: String,
    pub objects: Vec<Arc<ObjectDef>>,
    pub users: Vec<DeclaredUser>,
    /// Platform events (`Name__e`): published, never stored.
    pub events: Vec<Arc<crate::event_defs::EventDef>>,
    pub admin_permissions: Vec<String>,
}

fn declared_user(spec: UserSpec, objects: &[Arc<ObjectDef>]) -> Result<DeclaredUser, String> {
    let mut hidden = Vec::new();
    for (object_name, fields) in &spec.hidden_fields {
        let object = objects
            .iter()
            .position(|o| o.name == *object_name)
            .ok_or_else(|| format!("user {}: no object {object_name}", spec.username))?;
        let def = &objects[object];
        for name in fields {
            let field = def
                .field_index(name)
                .ok_or_else(|| format!("user {}: no field {object_name}.{name}", spec.username))?;
            let f = &def.fields[field];
            // Salesforce keeps required fields, and those only the system
            // sets, visible to every profile.
            if f.is_required_on_create() || !(f.nillable || f.createable) {
                return Err(format!(
                    "user {}: {object_name}.{name} cannot be hidden",
                    spec.username
                ));
            }
            hidden.push((object, field));
        }
    }
    Ok(DeclaredUser {
        permissions: known_permissions(&spec.username, spec.permissions)?,
        username: spec.username,
        first_name: spec.first_name,
        last_name: spec.last_name,
        access: FieldAccess::hiding(hidden),
    })
}

impl Schema {
    pub fn from_json(text: &str) -> Result<Schema, String> {
        let file: OrgFile = serde_json::from_str(text).map_err(|e| format!("org schema: {e}"))?;
        let objects: Vec<Arc<ObjectDef>> = file
            .objects
            .into_iter()
            .map(|o| Arc::new(build_object(o)))
            .collect();
        let users = file
            .users
            .into_iter()
            .map(|u| declared_user(u, &objects))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("org schema: {e}"))?;
        let events = file
            .platform_events
            .into_iter()
            .map(|e| e.into_def().map(Arc::new))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("org schema: {e}"))?;
        Ok(Schema {
            org_id: file.org_id,
            objects,
            users,
            events,
            admin_permissions: known_permissions("admin", file.admin_permissions)
                .map_err(|e| format!("org schema: {e}"))?,
        })
    }

    /// The bundled schema, `data/org.json`. It is parsed once; every org
    /// shares its object definitions until one of them changes (adding a
    /// field gives that org its own copy of the object's definition).
    pub fn builtin() -> Schema {
        static BUILTIN: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Schema::from_json(include_str!("../data/org.json"))
                    .expect("the bundled org schema is valid")
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_api_names() {
        assert_eq!(label_from_api_name("BillingCity"), "Billing City");
        assert_eq!(label_from_api_name("Tax_Rate__c"), "Tax Rate");
        assert_eq!(label_from_api_name("User_Id__c"), "User Id");
    }

    #[test]
    fn flags_follow_salesforce_rules() {
        let schema = Schema::builtin();
        let contact = schema.objects.iter().find(|o| o.name == "Contact").unwrap();
        let description = contact.field("description").unwrap();
        assert!(
            !description.filterable && !description.sortable,
            "long text areas are not filterable"
        );
        let languages = contact.field("Languages__c").unwrap();
        assert!(languages.filterable && !languages.sortable);
        let modstamp = contact.field("SystemModstamp").unwrap();
        assert!(!modstamp.createable && !modstamp.updateable && !modstamp.nillable);
        assert!(contact.field("LastName").unwrap().is_required_on_create());
        assert!(!contact
            .field("HasOptedOutOfEmail")
            .unwrap()
            .is_required_on_create());
        assert!(!contact.field("Name").unwrap().createable);
        let user_id = contact.field("User_Id__c").unwrap();
        assert!(user_id.external_id && user_id.unique && user_id.id_lookup && user_id.custom);
        assert_eq!(
            contact.relationship_field("account"),
            contact.field_index("AccountId")
        );
    }

    #[test]
    fn groupable_and_aggregatable_follow_the_field_type() {
        let schema = Schema::builtin();
        let flags = |object: &str, field: &str| {
            let o = schema.objects.iter().find(|o| o.name == object).unwrap();
            let f = o.field(field).unwrap();
            (f.groupable, f.aggregatable)
        };
        for (object, field, want) in [
            ("Contact", "LastName", (true, true)),
            ("Contact", "Name", (true, true)),
            ("Contact", "Id", (true, true)),
            ("Contact", "AccountId", (true, true)),
            ("Contact", "Birthdate", (true, true)),
            ("Contact", "HasOptedOutOfEmail", (true, false)),
            ("Contact", "Lifetime_Value__c", (false, true)),
            ("Contact", "CreatedDate", (false, true)),
            ("Contact", "Preferred_Call_Time__c", (false, false)),
            ("Contact", "Languages__c", (false, false)),
            ("Contact", "Description", (false, false)),
            ("Contact", "Tax_Id__c", (false, false)),
            ("Contact", "MailingAddress", (false, false)),
            ("Contact", "MailingCity", (true, true)),
            ("Invoice__c", "Notes__c", (true, true)),
            ("Invoice__c", "Total__c", (false, true)),
            ("Opportunity", "Probability", (false, true)),
            ("Document", "Body", (false, false)),
        ] {
            assert_eq!(flags(object, field), want, "{object}.{field}");
        }
    }

    #[test]
    fn declared_users_hide_only_optional_fields_that_exist() {
        let schema = Schema::builtin();
        let limited = &schema.users[0];
        assert_eq!(limited.username, "limited@sfsim.example");
        let position = |object: &str, field: &str| {
            let o = schema
                .objects
                .iter()
                .position(|d| d.name == object)
                .unwrap();
            (o, schema.objects[o].field_index(field).unwrap())
        };
        for (object, field) in [
            ("Contact", "Email"),
            ("Contact", "Birthdate"),
            ("Account", "AnnualRevenue"),
        ] {
            let (o, f) = position(object, field);
            assert!(!limited.access.can_see(o, f), "{object}.{field}");
        }
        let (o, f) = position("Contact", "LastName");
        assert!(limited.access.can_see(o, f));
        let org_with = |hidden: &str| {
            format!(
                r#"{{"orgId": "00D000000000001AAA", "objects": [{{"name": "Contact", "label": "Contact", "labelPlural": "Contacts", "keyPrefix": "003",
                    "fields": [{{"name": "LastName", "required": true}}, {{"name": "Email", "type": "email", "length": 80}}]}}],
                  "users": [{{"username": "u@x.example", "firstName": "U", "lastName": "X", "hiddenFields": {{"Contact": ["{hidden}"]}}}}]}}"#
            )
        };
        assert!(Schema::from_json(&org_with("Email")).is_ok());
        for refused in ["Nope", "LastName", "Id", "SystemModstamp"] {
            assert!(
                Schema::from_json(&org_with(refused)).is_err(),
                "{refused} cannot be hidden"
            );
        }
    }

    #[test]
    fn every_reference_field_type_is_in_the_org() {
        let schema = Schema::builtin();
        let types: std::collections::HashSet<&str> = schema
            .objects
            .iter()
            .flat_map(|o| o.fields.iter().map(|f| f.ftype.name()))
            .collect();
        for t in [
            "id",
            "reference",
            "string",
            "textarea",
            "picklist",
            "multipicklist",
            "email",
            "phone",
            "url",
            "boolean",
            "int",
            "double",
            "currency",
            "percent",
            "date",
            "datetime",
            "time",
            "address",
            "location",
            "base64",
            "combobox",
            "encryptedstring",
        ] {
            assert!(types.contains(t), "no field of type {t}");
        }
    }
}
