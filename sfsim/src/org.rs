//! The org's data: records of every object, held in memory, with the writes
//! Salesforce allows and the checks it makes on them.

use crate::access::{FieldAccess, Login, EVERYTHING};
use crate::clock::Clock;
use crate::convert::{self, Converted};
use crate::ids::{self, Rid};
use crate::journal::{Journal, Written};
use crate::lookup::{self, FieldIndex};
use crate::schema::{DeclaredUser, FieldDef, FieldType, Formula, ObjectDef, Schema};
use crate::value::{self, Value};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One stored record: only the fields holding a value (not null) take
/// room, so the many a record leaves empty cost a bit each.
#[derive(Clone, Debug)]
pub struct Record {
    /// A bit per field, set for each field holding a value.
    set: Bits,
    /// The values of the fields set, in field order.
    values: Box<[Value]>,
}

#[derive(Clone, Debug)]
enum Bits {
    /// Objects of up to 128 fields, most of them.
    Inline([u64; 2]),
    Heap(Box<[u64]>),
}

impl Bits {
    fn for_fields(fields: usize) -> Bits {
        let words = fields.div_ceil(64);
        if words <= 2 {
            Bits::Inline([0; 2])
        } else {
            Bits::Heap(vec![0; words].into_boxed_slice())
        }
    }

    fn words(&self) -> &[u64] {
        match self {
            Bits::Inline(words) => words,
            Bits::Heap(words) => words,
        }
    }

    fn insert(&mut self, field: usize) {
        let words = match self {
            Bits::Inline(words) => &mut words[..],
            Bits::Heap(words) => &mut words[..],
        };
        words[field / 64] |= 1 << (field % 64);
    }

    fn contains(&self, field: usize) -> bool {
        self.words()
            .get(field / 64)
            .is_some_and(|w| w & (1 << (field % 64)) != 0)
    }
}

static NULL: Value = Value::Null;

impl Record {
    /// A record of every field's value, by field.
    pub fn new(mut values: Vec<Value>) -> Record {
        Record::take(&mut values)
    }

    /// A record of the values in `slots` (one per field), taken out: every
    /// slot is left null, ready for the next record.
    pub fn take(slots: &mut [Value]) -> Record {
        let mut set = Bits::for_fields(slots.len());
        let mut kept = Vec::with_capacity(slots.iter().filter(|v| !v.is_null()).count());
        for (i, v) in slots.iter_mut().enumerate() {
            if !v.is_null() {
                set.insert(i);
                kept.push(std::mem::replace(v, Value::Null));
            }
        }
        Record {
            set,
            values: kept.into_boxed_slice(),
        }
    }

    /// The fields holding a value, with it, in field order.
    pub fn fields(&self) -> impl Iterator<Item = (usize, &Value)> + '_ {
        let words = self.set.words();
        let fields = (0..words.len() * 64).filter(|i| words[i / 64] & (1 << (i % 64)) != 0);
        fields.zip(self.values.iter())
    }

    /// A field's stored value; fields added after the record was written read as null.
    pub fn get(&self, field: usize) -> &Value {
        let words = self.set.words();
        let (word, bit) = (field / 64, field % 64);
        match words.get(word) {
            Some(w) if w & (1 << bit) != 0 => {
                let before: u32 = words[..word].iter().map(|w| w.count_ones()).sum();
                let at = before + (w & ((1u64 << bit) - 1)).count_ones();
                &self.values[at as usize]
            }
            _ => &NULL,
        }
    }

    /// Every field's value, by field, for `fields` fields.
    pub fn to_values(&self, fields: usize) -> Vec<Value> {
        (0..fields).map(|i| self.get(i).clone()).collect()
    }

    pub fn id(&self) -> &str {
        self.get(0).as_str().expect("every record has an Id")
    }

    pub fn rid(&self) -> Rid {
        Rid::new(self.id())
    }

    pub fn is_deleted(&self, def: &ObjectDef) -> bool {
        matches!(self.get(def.system.is_deleted), Value::Bool(true))
    }
}

/// One record error, as Salesforce reports it: `errorCode` in single-record
/// responses, `statusCode` in collection results.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordError {
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> Self {
        RecordError {
            code,
            message: message.into(),
            fields,
        }
    }

    /// Whether the single-record REST endpoints answer this error with 404 rather than 400.
    pub fn is_not_found(&self) -> bool {
        matches!(self.code, "NOT_FOUND" | "ENTITY_IS_DELETED")
    }
}

/// A value a write gives one field: JSON from the REST API, or a Bulk
/// CSV cell's text (`column` counts from 1), or null.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    Json(&'a Json),
    Text { text: &'a str, column: usize },
    Null,
}

pub struct DeletedRecord {
    pub id: String,
    pub object: String,
    pub deleted_date: DateTime<Utc>,
}

/// Who writes and when; the system fields are set from it.
#[derive(Clone)]
pub struct Author {
    pub user_id: String,
    pub now: DateTime<Utc>,
}

enum UndoEntry {
    Put {
        object: usize,
        id: Rid,
        previous: Option<Arc<Record>>,
        /// The write's entry in the journal.
        change: u64,
    },
    DeletedLog(usize),
}

static LAST_TRANSACTION: AtomicU64 = AtomicU64::new(0);

/// What a transaction's writes changed, so an allOrNone request can take it
/// back. Writes made with one Undo belong to one transaction.
pub struct Undo {
    entries: Vec<UndoEntry>,
    transaction: u64,
    /// The API making the writes, as Change Data Capture's `changeOrigin`
    /// names it (`com/salesforce/api/rest/62.0`).
    origin: Arc<str>,
}

/// A transaction of its own, made as in Salesforce's UI (no origin).
impl Default for Undo {
    fn default() -> Self {
        Undo::new("")
    }
}

impl Undo {
    /// A new transaction's, its writes made through `origin`.
    pub fn new(origin: &str) -> Undo {
        Undo {
            entries: Vec::new(),
            transaction: LAST_TRANSACTION.fetch_add(1, Ordering::Relaxed) + 1,
            origin: origin.into(),
        }
    }

    /// For more writes of the same transaction, as a composite call's subrequests make.
    pub fn joining(&self) -> Undo {
        Undo {
            entries: Vec::new(),
            transaction: self.transaction,
            origin: self.origin.clone(),
        }
    }

    /// Takes over `later`'s changes, to be undone before this one's.
    pub fn append(&mut self, mut later: Undo) {
        self.entries.append(&mut later.entries);
    }
}

pub struct ObjectData {
    pub def: Arc<ObjectDef>,
    pub records: BTreeMap<Rid, Arc<Record>>,
    next_seq: u64,
    next_auto_number: u64,
    /// Live records by the lower-cased value of each unique, external-id or
    /// duplicate-rule field.
    lookup: Vec<(usize, FieldIndex)>,
}

impl ObjectData {
    fn new(def: Arc<ObjectDef>) -> Self {
        let mut indexed: Vec<usize> = (0..def.fields.len())
            .filter(|i| def.fields[*i].unique || def.fields[*i].external_id)
            .collect();
        if let Some(rule) = &def.duplicate_rule {
            indexed.extend(rule.fields.iter().filter_map(|f| def.field_index(f)));
        }
        indexed.sort_unstable();
        indexed.dedup();
        ObjectData {
            lookup: indexed
                .into_iter()
                .map(|i| (i, FieldIndex::default()))
                .collect(),
            def,
            records: BTreeMap::new(),
            next_seq: 1,
            next_auto_number: 1,
        }
    }

    fn field_index(&self, field: usize) -> Option<&FieldIndex> {
        self.lookup
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, index)| index)
    }

    /// Moves a record's index entries from what it held (`old`, if it was
    /// stored) to what it holds (`new`, if it stays); deleted records are
    /// not indexed.
    fn reindex(&mut self, old: Option<&Record>, new: Option<&Record>) {
        let def = &self.def;
        let old = old.filter(|r| !r.is_deleted(def));
        let new = new.filter(|r| !r.is_deleted(def));
        for (field, index) in self.lookup.iter_mut() {
            let old_key = old.and_then(|r| lookup::key(r.get(*field)).map(|k| (r, k)));
            let new_key = new.and_then(|r| lookup::key(r.get(*field)).map(|k| (r, k)));
            if let (Some((o, ok)), Some((n, nk))) = (&old_key, &new_key) {
                // A record alone under an unchanged key would be taken out
                // and put back where it was.
                let id = n.rid();
                if ok == nk && o.rid() == id && index.is_only(nk, id) {
                    continue;
                }
            }
            if let Some((r, k)) = &old_key {
                index.remove(k, r.rid());
            }
            if let Some((r, k)) = &new_key {
                index.add(k, r.rid());
            }
        }
    }

    /// Gives each index room for at least a job's `records` keys: a job
    /// that fills an object sizes its indexes once, and one that updates
    /// what is there does not grow them.
    pub fn reserve_for(&mut self, records: usize) {
        for (_, index) in self.lookup.iter_mut() {
            index.reserve_at_least(records);
        }
    }

    /// Live records whose indexed field equals `value`, ignoring case.
    pub fn find(&self, field: usize, value: &Value) -> Vec<String> {
        let Some(key) = lookup::key(value) else {
            return vec![];
        };
        match self.field_index(field) {
            Some(index) => index
                .get(&key)
                .iter()
                .map(|id| id.as_str().to_string())
                .collect(),
            None => self
                .records
                .values()
                .filter(|r| {
                    !r.is_deleted(&self.def) && lookup::key(r.get(field)).as_ref() == Some(&key)
                })
                .map(|r| r.id().to_string())
                .collect(),
        }
    }

    /// The first live record other than `id` whose field `field` equals
    /// `value`, ignoring case, as `find` lists them.
    pub fn find_other(&self, field: usize, value: &Value, id: Rid) -> Option<String> {
        let key = lookup::key(value)?;
        match self.field_index(field) {
            Some(index) => index
                .get(&key)
                .iter()
                .find(|other| **other != id)
                .map(|other| other.as_str().to_string()),
            None => self
                .find(field, value)
                .into_iter()
                .find(|other| *other != id.as_str()),
        }
    }

    /// The only live record whose indexed field equals `value`: Ok(None)
    /// when there is none, Err when there are several.
    pub fn find_one(&self, field: usize, value: &Value) -> Result<Option<Rid>, ()> {
        let Some(key) = lookup::key(value) else {
            return Ok(None);
        };
        match self.field_index(field) {
            Some(index) => match index.get(&key) {
                [] => Ok(None),
                [one] => Ok(Some(*one)),
                _ => Err(()),
            },
            None => match self.find(field, value).as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(Rid::new(one))),
                _ => Err(()),
            },
        }
    }

    pub fn live_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| !r.is_deleted(&self.def))
            .count()
    }
}

pub struct Org {
    pub org_id: String,
    pub admin_user_id: String,
    /// The users the data file declares besides the admin, for seeding to create.
    pub declared_users: Vec<DeclaredUser>,
    /// The permissions the admin's profile grants.
    pub admin_permissions: Vec<String>,
    /// Users who can log in; seeding fills it.
    pub logins: Vec<Login>,
    pub objects: Vec<ObjectData>,
    /// Platform events, which are published rather than stored.
    pub events: Vec<Arc<crate::event_defs::EventDef>>,
    by_name: HashMap<String, usize>,
    by_prefix: HashMap<String, usize>,
    pub deleted_log: Vec<DeletedRecord>,
    pub schema_changed_at: DateTime<Utc>,
    /// Where formulas that depend on today's date read it.
    pub clock: Arc<Clock>,
    /// Writes not yet committed.
    pub journal: Journal,
    /// A slot per field for the record a write builds, all null between
    /// writes: kept to save an allocation a write.
    slots: Vec<Value>,
}

fn not_found() -> RecordError {
    RecordError::new("NOT_FOUND", "The requested resource does not exist", vec![])
}

impl Org {
    pub fn new(schema: Schema, now: DateTime<Utc>) -> Org {
        let objects: Vec<ObjectData> = schema.objects.into_iter().map(ObjectData::new).collect();
        let by_name = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.def.name.to_ascii_lowercase(), i))
            .collect();
        let by_prefix = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.def.key_prefix.clone(), i))
            .collect();
        Org {
            org_id: schema.org_id,
            admin_user_id: String::new(),
            declared_users: schema.users,
            admin_permissions: schema.admin_permissions,
            logins: Vec::new(),
            objects,
            events: schema.events,
            by_name,
            by_prefix,
            deleted_log: Vec::new(),
            schema_changed_at: now,
            clock: Arc::new(Clock::default()),
            journal: Journal::default(),
            slots: Vec::new(),
        }
    }

    /// The platform event of that name (ignoring case).
    pub fn event(&self, name: &str) -> Option<&Arc<crate::event_defs::EventDef>> {
        self.events
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    pub fn object(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// What a user's profile lets it see; users without a login see everything.
    pub fn field_access(&self, user_id: &str) -> &FieldAccess {
        self.logins
            .iter()
            .find(|l| l.user_id == user_id)
            .map_or(&EVERYTHING, |l| &l.access)
    }

    /// Whether a user's profile grants a permission (`schema::PERMISSIONS`).
    pub fn has_permission(&self, user_id: &str, permission: &str) -> bool {
        self.logins
            .iter()
            .find(|l| l.user_id == user_id)
            .is_some_and(|l| l.permissions.iter().any(|p| p == permission))
    }

    pub fn def(&self, object: usize) -> &Arc<ObjectDef> {
        &self.objects[object].def
    }

    pub fn object_of_id(&self, id: &str) -> Option<usize> {
        self.by_prefix.get(ids::key_prefix(id)).copied()
    }

    /// The record with this id (15 or 18 characters), deleted or not.
    pub fn record(&self, object: usize, id: &str) -> Option<&Arc<Record>> {
        let id = Rid::canonical(id)?;
        self.objects[object].records.get(&id)
    }

    pub fn record_by_id(&self, id: &str) -> Option<(usize, &Arc<Record>)> {
        let object = self.object_of_id(id)?;
        self.record(object, id).map(|r| (object, r))
    }

    /// The lookups pointing at `parent`, as (child object, reference field)
    /// in schema order: its describe's `childRelationships`.
    pub fn child_relationships(&self, parent: usize) -> Vec<(usize, usize)> {
        let name = &self.def(parent).name;
        self.objects
            .iter()
            .enumerate()
            .flat_map(|(child, data)| {
                data.def
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.reference_to.iter().any(|t| t == name))
                    .map(move |(field, _)| (child, field))
            })
            .collect()
    }

    pub fn add_field(&mut self, object: usize, field: FieldDef, now: DateTime<Utc>) {
        let data = &mut self.objects[object];
        let mut def = (*data.def).clone();
        def.add_field(field);
        data.def = Arc::new(def);
        self.schema_changed_at = now;
    }

    /// A field's value as Salesforce shows it: stored, or computed for formula
    /// and compound fields.
    pub fn read(&self, def: &ObjectDef, rec: &Record, field: usize) -> Value {
        let f = &def.fields[field];
        let by_name = |name: &str| {
            def.field_index(name)
                .map(|i| rec.get(i).clone())
                .unwrap_or(Value::Null)
        };
        if let Some(formula) = f.formula {
            return match formula {
                Formula::FullName => {
                    let parts: Vec<String> = [by_name("FirstName"), by_name("LastName")]
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect();
                    if parts.is_empty() {
                        Value::Null
                    } else {
                        Value::text(parts.join(" "))
                    }
                }
                Formula::ExpectedRevenue => {
                    match (by_name("Amount").as_f64(), by_name("Probability").as_f64()) {
                        (Some(a), Some(p)) => Value::Number((a * p).round() / 100.0),
                        _ => Value::Null,
                    }
                }
                Formula::InvoiceTotal => match by_name("Amount__c").as_f64() {
                    Some(a) => {
                        let rate = by_name("Tax_Rate__c").as_f64().unwrap_or(0.0);
                        Value::Number((a * (100.0 + rate)).round() / 100.0)
                    }
                    None => Value::Null,
                },
                Formula::AccountName => self.parent_name(&by_name("AccountId")),
                Formula::DaysSinceIssued => match by_name("Issued_On__c") {
                    Value::Date(issued) => {
                        let today = self.clock.now().date_naive();
                        Value::Number((today - issued).num_days() as f64)
                    }
                    _ => Value::Null,
                },
            };
        }
        if f.ftype.is_compound() {
            return compound_value(def, rec, f);
        }
        rec.get(field).clone()
    }

    /// The Name of the record a lookup holds, as `Account.Name` reads it in SOQL.
    fn parent_name(&self, lookup: &Value) -> Value {
        let Some((object, parent)) = lookup.as_str().and_then(|id| self.record_by_id(id)) else {
            return Value::Null;
        };
        let def = self.def(object);
        match def.field_index("Name") {
            Some(name) => self.read(def, parent, name),
            None => Value::Null,
        }
    }

    /// Stores or removes a record, keeping the indexes right; answers what was there.
    fn swap(&mut self, object: usize, id: Rid, new: Option<Arc<Record>>) -> Option<Arc<Record>> {
        let data = &mut self.objects[object];
        let previous = match &new {
            Some(rec) => data.records.insert(id, rec.clone()),
            None => data.records.remove(&id),
        };
        data.reindex(previous.as_deref(), new.as_deref());
        previous
    }

    /// Every write to a record goes through here, into the journal and `undo`.
    fn put(
        &mut self,
        object: usize,
        id: Rid,
        new: Option<Arc<Record>>,
        author: &Author,
        undo: &mut Undo,
    ) {
        let previous = self.swap(object, id, new.clone());
        let written = Written {
            object,
            user_id: &author.user_id,
            transaction: undo.transaction,
            origin: &undo.origin,
            at: author.now,
        };
        let change = self.journal.record(written, previous.clone(), new);
        undo.entries.push(UndoEntry::Put {
            object,
            id,
            previous,
            change,
        });
    }

    pub fn rollback(&mut self, undo: Undo) {
        let mut undone = HashSet::new();
        for entry in undo.entries.into_iter().rev() {
            match entry {
                UndoEntry::Put {
                    object,
                    id,
                    previous,
                    change,
                } => {
                    self.swap(object, id, previous);
                    undone.insert(change);
                }
                UndoEntry::DeletedLog(len) => self.deleted_log.truncate(len),
            }
        }
        self.journal.forget(&undone);
    }

    /// Converts and checks the fields of a create or update body. A field
    /// the author's profile hides is as unknown as one that does not exist.
    fn parse_fields(
        &self,
        object: usize,
        body: &Map<String, Json>,
        creating: bool,
        author: &Author,
    ) -> Result<Vec<(usize, Value)>, RecordError> {
        let mut fields = Vec::with_capacity(body.len());
        for (key, json) in body {
            if key == "attributes" {
                continue;
            }
            let index = self.writable_field(object, key, author)?;
            fields.push((index, Input::Json(json)));
        }
        self.parse_inputs(object, fields, creating)
    }

    /// The field a write names, if the author may see it; unknown and
    /// hidden fields are `INVALID_FIELD`.
    pub fn writable_field(
        &self,
        object: usize,
        name: &str,
        author: &Author,
    ) -> Result<usize, RecordError> {
        let def = self.def(object);
        let access = self.field_access(&author.user_id);
        def.field_index(name)
            .filter(|i| access.can_see(object, *i))
            .ok_or_else(|| {
                RecordError::new(
                    "INVALID_FIELD",
                    format!("No such column '{name}' on sobject of type {}", def.name),
                    vec![],
                )
            })
    }

    /// Converts and checks the values a write gives fields already found
    /// with `writable_field`, in their order: the Id (refused on create,
    /// skipped on update), fields the author cannot write, values of the
    /// wrong type or out of the field's range, references to records that
    /// are missing, deleted or of another object.
    pub fn parse_inputs<'a>(
        &self,
        object: usize,
        fields: impl IntoIterator<Item = (usize, Input<'a>)>,
        creating: bool,
    ) -> Result<Vec<(usize, Value)>, RecordError> {
        let converted = convert::convert(self.def(object), fields, creating);
        self.finish_inputs(object, converted)
    }

    /// `parse_inputs` after `convert::convert`: the references are checked
    /// against the org's records, in field order, before the error that
    /// stopped the conversion (which came after them).
    pub fn finish_inputs(
        &self,
        object: usize,
        converted: Converted,
    ) -> Result<Vec<(usize, Value)>, RecordError> {
        let def = self.def(object);
        for (index, value) in &converted.values {
            let field = &def.fields[*index];
            if field.ftype == FieldType::Reference {
                self.check_reference(field, value)?;
            }
        }
        converted.result()
    }

    fn check_reference(&self, field: &FieldDef, value: &Value) -> Result<(), RecordError> {
        let Value::Text(text) = value else {
            return Ok(());
        };
        let fields = || vec![field.name.clone()];
        let bad_type = || {
            RecordError::new(
                "MALFORMED_ID",
                format!("{}: id value of incorrect type: {text}", field.label),
                fields(),
            )
        };
        let id = ids::canonical(text).ok_or_else(bad_type)?;
        let (object, rec) = self.record_by_id(&id).ok_or_else(|| {
            RecordError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                vec![],
            )
        })?;
        if !field
            .reference_to
            .iter()
            .any(|t| *t == self.def(object).name)
        {
            return Err(RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                format!("{}: id value of incorrect type: {text}", field.label),
                fields(),
            ));
        }
        if rec.is_deleted(self.def(object)) {
            return Err(RecordError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                fields(),
            ));
        }
        Ok(())
    }

    /// The rules that look at the whole record: required fields, validation
    /// rules, unique fields and the duplicate rule.
    fn check_record(&self, object: usize, rec: &Record) -> Result<(), RecordError> {
        let data = &self.objects[object];
        let def = &data.def;
        let missing: Vec<String> = def
            .fields
            .iter()
            .enumerate()
            .filter(|(i, f)| !f.nillable && f.createable && rec.get(*i).is_null())
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            ));
        }
        for (rule, field) in def.validation_rules_by_field() {
            let Some(i) = field else {
                continue;
            };
            if rec.get(i).as_f64().is_some_and(|v| v < rule.min) {
                return Err(RecordError::new(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    rule.message.clone(),
                    vec![rule.field.clone()],
                ));
            }
        }
        let other = |field: usize| data.find_other(field, rec.get(field), rec.rid());
        for (i, f) in def.fields.iter().enumerate() {
            if f.unique {
                if let Some(other) = other(i) {
                    return Err(RecordError::new(
                        "DUPLICATE_VALUE",
                        format!(
                            "duplicate value found: {} duplicates value on record with id: {other}",
                            f.name
                        ),
                        vec![],
                    ));
                }
            }
        }
        if let Some(i) = def.duplicate_field() {
            if other(i).is_some() {
                return Err(RecordError::new(
                    "DUPLICATES_DETECTED",
                    "You're creating a duplicate record. We recommend you use an existing record instead.",
                    vec![],
                ));
            }
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        object: usize,
        body: &Map<String, Json>,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<String, RecordError> {
        let parsed = self.parse_fields(object, body, true, author)?;
        let id = self.create_parsed(object, parsed, author, undo)?;
        Ok(id.as_str().to_string())
    }

    /// Creates a record from values `parse_inputs` has checked.
    pub fn create_parsed(
        &mut self,
        object: usize,
        parsed: Vec<(usize, Value)>,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<Rid, RecordError> {
        let def = self.def(object).clone();
        let mut values = self.take_slots(def.fields.len());
        for (i, f) in def.fields.iter().enumerate() {
            if f.ftype == FieldType::Boolean {
                values[i] = Value::Bool(false);
            } else if let (Some(d), true) = (&f.default_value, f.ftype == FieldType::Picklist) {
                values[i] = Value::text(d.as_str());
            }
        }
        for (i, v) in parsed {
            values[i] = v;
        }
        let data = &mut self.objects[object];
        let id = Rid::generate(&def.key_prefix, data.next_seq);
        data.next_seq += 1;
        for (i, f) in def.fields.iter().enumerate() {
            if let Some(format) = &f.auto_number {
                values[i] = Value::text(format_auto_number(format, data.next_auto_number));
            }
        }
        if def.fields.iter().any(|f| f.auto_number.is_some()) {
            data.next_auto_number += 1;
        }
        let s = def.system;
        values[s.id] = Value::text(id.as_str());
        if let Some(owner) = s.owner_id {
            if values[owner].is_null() {
                values[owner] = Value::text(author.user_id.as_str());
            }
        }
        for i in [s.created_by_id, s.last_modified_by_id] {
            values[i] = Value::text(author.user_id.as_str());
        }
        for i in [s.created_date, s.last_modified_date, s.system_modstamp] {
            values[i] = Value::DateTime(author.now);
        }
        let rec = self.record_from_slots(values);
        self.check_record(object, &rec)?;
        self.put(object, id, Some(Arc::new(rec)), author, undo);
        Ok(id)
    }

    /// The slots a write builds its record in, one per field, all null.
    fn take_slots(&mut self, fields: usize) -> Vec<Value> {
        let mut slots = std::mem::take(&mut self.slots);
        slots.resize(fields, Value::Null);
        slots
    }

    /// The record built in `slots`, which are kept for the next write.
    fn record_from_slots(&mut self, mut slots: Vec<Value>) -> Record {
        let rec = Record::take(&mut slots);
        self.slots = slots;
        rec
    }

    pub fn live_record(&self, object: usize, id: &str) -> Result<Arc<Record>, RecordError> {
        let rec = self.record(object, id).ok_or_else(not_found)?;
        if rec.is_deleted(self.def(object)) {
            return Err(RecordError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                vec![],
            ));
        }
        Ok(rec.clone())
    }

    fn touched(def: &ObjectDef, mut values: Vec<Value>, author: &Author) -> Vec<Value> {
        let s = def.system;
        values.resize(def.fields.len(), Value::Null);
        values[s.last_modified_by_id] = Value::text(author.user_id.as_str());
        values[s.last_modified_date] = Value::DateTime(author.now);
        values[s.system_modstamp] = Value::DateTime(author.now);
        values
    }

    pub fn update(
        &mut self,
        object: usize,
        id: &str,
        body: &Map<String, Json>,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<String, RecordError> {
        let current = self.live_record(object, id)?;
        let parsed = self.parse_fields(object, body, false, author)?;
        let id = self.update_parsed(object, current, parsed, author, undo)?;
        Ok(id.as_str().to_string())
    }

    /// Updates a live record (from `live_record`) with values `parse_inputs` has checked.
    pub fn update_parsed(
        &mut self,
        object: usize,
        current: Arc<Record>,
        parsed: Vec<(usize, Value)>,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<Rid, RecordError> {
        let def = self.def(object).clone();
        let mut values = self.take_slots(def.fields.len());
        // Only the fields the update leaves as they were are copied.
        let mut given = Bits::for_fields(def.fields.len());
        for (i, _) in &parsed {
            given.insert(*i);
        }
        for (i, v) in current.fields() {
            if i < values.len() && !given.contains(i) {
                values[i] = v.clone();
            }
        }
        let s = def.system;
        values[s.last_modified_by_id] = Value::text(author.user_id.as_str());
        values[s.last_modified_date] = Value::DateTime(author.now);
        values[s.system_modstamp] = Value::DateTime(author.now);
        for (i, v) in parsed {
            values[i] = v;
        }
        let rec = self.record_from_slots(values);
        self.check_record(object, &rec)?;
        let id = rec.rid();
        self.put(object, id, Some(Arc::new(rec)), author, undo);
        Ok(id)
    }

    /// Moves a record to the recycle bin.
    pub fn delete(
        &mut self,
        object: usize,
        id: &str,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<String, RecordError> {
        let def = self.def(object).clone();
        let current = self.live_record(object, id)?;
        let mut values = Self::touched(&def, current.to_values(def.fields.len()), author);
        values[def.system.is_deleted] = Value::Bool(true);
        let rec = Record::new(values);
        let id = rec.id().to_string();
        undo.entries
            .push(UndoEntry::DeletedLog(self.deleted_log.len()));
        self.deleted_log.push(DeletedRecord {
            id: id.clone(),
            object: def.name.clone(),
            deleted_date: author.now,
        });
        self.put(object, Rid::new(&id), Some(Arc::new(rec)), author, undo);
        Ok(id)
    }

    pub fn undelete(
        &mut self,
        object: usize,
        id: &str,
        author: &Author,
    ) -> Result<String, RecordError> {
        let def = self.def(object).clone();
        let current = self.record(object, id).ok_or_else(not_found)?.clone();
        if !current.is_deleted(&def) {
            return Err(RecordError::new(
                "UNDELETE_FAILED",
                "Entity is not in the recycle bin",
                vec![],
            ));
        }
        let mut values = Self::touched(&def, current.to_values(def.fields.len()), author);
        values[def.system.is_deleted] = Value::Bool(false);
        let rec = Record::new(values);
        self.check_record(object, &rec)?;
        let id = rec.id().to_string();
        self.deleted_log.retain(|d| d.id != id);
        self.put(
            object,
            Rid::new(&id),
            Some(Arc::new(rec)),
            author,
            &mut Undo::default(),
        );
        Ok(id)
    }

    /// Removes a record for good, as emptying the recycle bin does.
    pub fn hard_delete(
        &mut self,
        object: usize,
        id: &str,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<String, RecordError> {
        let current = self.record(object, id).ok_or_else(not_found)?.clone();
        let id = current.id().to_string();
        if !self.deleted_log.iter().any(|d| d.id == id) {
            let name = self.def(object).name.clone();
            self.deleted_log.push(DeletedRecord {
                id: id.clone(),
                object: name,
                deleted_date: author.now,
            });
        }
        self.put(object, Rid::new(&id), None, author, undo);
        Ok(id)
    }

    /// Inserts a generated record as it is, without the checks a write makes.
    /// An empty `author` makes the record its own author (the first user).
    pub fn insert_seeded(
        &mut self,
        object: usize,
        mut values: Vec<Value>,
        created: DateTime<Utc>,
        author: &str,
    ) -> String {
        let def = self.def(object).clone();
        let data = &mut self.objects[object];
        let id = ids::generate(&def.key_prefix, data.next_seq);
        data.next_seq += 1;
        values.resize(def.fields.len(), Value::Null);
        for (i, f) in def.fields.iter().enumerate() {
            if let Some(format) = &f.auto_number {
                values[i] = Value::text(format_auto_number(format, data.next_auto_number));
            } else if f.ftype == FieldType::Boolean && values[i].is_null() {
                values[i] = Value::Bool(false);
            }
        }
        if def.fields.iter().any(|f| f.auto_number.is_some()) {
            data.next_auto_number += 1;
        }
        let s = def.system;
        values[s.id] = Value::text(id.clone());
        let author = if author.is_empty() {
            id.as_str()
        } else {
            author
        };
        for i in [
            Some(s.created_by_id),
            Some(s.last_modified_by_id),
            s.owner_id,
        ]
        .into_iter()
        .flatten()
        {
            if values[i].is_null() {
                values[i] = Value::text(author);
            }
        }
        for i in [s.created_date, s.last_modified_date, s.system_modstamp] {
            values[i] = Value::DateTime(created);
        }
        let rec = Record::new(values);
        data.reindex(None, Some(&rec));
        data.records.insert(Rid::new(&id), Arc::new(rec));
        id
    }
}

/// `INV-{000000}` with 42 gives `INV-000042`.
fn format_auto_number(format: &str, n: u64) -> String {
    match (format.find('{'), format.find('}')) {
        (Some(open), Some(close)) if close > open => {
            let width = close - open - 1;
            format!(
                "{}{:0width$}{}",
                &format[..open],
                n,
                &format[close + 1..],
                width = width
            )
        }
        _ => format!("{format}{n}"),
    }
}

fn compound_value(def: &ObjectDef, rec: &Record, f: &FieldDef) -> Value {
    let components = def.components_of(&f.name);
    if components.iter().all(|i| rec.get(*i).is_null()) {
        return Value::Null;
    }
    let mut obj = Map::new();
    if f.ftype == FieldType::Address {
        for key in [
            "city",
            "country",
            "countryCode",
            "geocodeAccuracy",
            "latitude",
            "longitude",
            "postalCode",
            "state",
            "stateCode",
            "street",
        ] {
            obj.insert(key.into(), Json::Null);
        }
    }
    let prefix = f.name.trim_end_matches("Address").trim_end_matches("__c");
    for i in components {
        let name = def.fields[i]
            .name
            .trim_start_matches(prefix)
            .trim_start_matches("__")
            .trim_end_matches("__s");
        let mut key: Vec<char> = name.chars().collect();
        if let Some(c) = key.first_mut() {
            *c = c.to_ascii_lowercase();
        }
        obj.insert(key.into_iter().collect(), value::to_json(rec.get(i)));
    }
    Value::Compound(Box::new(Json::Object(obj)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> (Org, Author) {
        let now = Utc::now();
        let mut org = Org::new(Schema::builtin(), now);
        let user = org.object("User").unwrap();
        let admin = org.insert_seeded(user, vec![], now, "005000000000000AAA");
        (
            org,
            Author {
                user_id: admin,
                now,
            },
        )
    }

    fn body(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn create_sets_system_fields_and_defaults() {
        let (mut org, author) = org();
        let contact = org.object("contact").unwrap();
        let id = org
            .create(
                contact,
                &body(serde_json::json!({"LastName": "Ng", "firstname": "Ada"})),
                &author,
                &mut Undo::default(),
            )
            .unwrap();
        let def = org.def(contact).clone();
        let rec = org.record(contact, &id).unwrap().clone();
        assert_eq!(
            rec.get(def.field_index("SystemModstamp").unwrap()),
            &Value::DateTime(author.now)
        );
        assert_eq!(
            rec.get(def.field_index("HasOptedOutOfEmail").unwrap()),
            &Value::Bool(false)
        );
        assert_eq!(
            org.read(&def, &rec, def.field_index("Name").unwrap()),
            Value::text("Ada Ng")
        );
    }

    #[test]
    fn writes_are_checked_like_salesforce() {
        let (mut org, author) = org();
        let contact = org.object("Contact").unwrap();
        let mut undo = Undo::default();
        let cases = [
            (
                serde_json::json!({"FirstName": "A"}),
                "REQUIRED_FIELD_MISSING",
            ),
            (
                serde_json::json!({"LastName": "A", "Foo__c": 1}),
                "INVALID_FIELD",
            ),
            (
                serde_json::json!({"LastName": "A", "Name": "x"}),
                "INVALID_FIELD_FOR_INSERT_UPDATE",
            ),
            (
                serde_json::json!({"LastName": "A", "Birthdate": "01/02/2024"}),
                "JSON_PARSER_ERROR",
            ),
            (
                serde_json::json!({"LastName": "A", "Email": "nope"}),
                "INVALID_EMAIL_ADDRESS",
            ),
            (
                serde_json::json!({"LastName": "A", "Level__c": "Quaternary"}),
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ),
            (
                serde_json::json!({"LastName": "A", "AccountId": "001xyz"}),
                "MALFORMED_ID",
            ),
            (
                serde_json::json!({"LastName": "x".repeat(81)}),
                "STRING_TOO_LONG",
            ),
            (
                serde_json::json!({"Id": "003000000000001", "LastName": "A"}),
                "INVALID_FIELD",
            ),
        ];
        for (b, code) in cases {
            let err = org
                .create(contact, &body(b.clone()), &author, &mut undo)
                .unwrap_err();
            assert_eq!(err.code, code, "{b}");
        }
    }

    #[test]
    fn unique_and_duplicate_rules_block_second_record() {
        let (mut org, author) = org();
        let contact = org.object("Contact").unwrap();
        let mut undo = Undo::default();
        org.create(
            contact,
            &body(serde_json::json!({"LastName": "A", "User_Id__c": "u1", "Email": "a@x.io"})),
            &author,
            &mut undo,
        )
        .unwrap();
        let dup_key = org
            .create(
                contact,
                &body(serde_json::json!({"LastName": "B", "User_Id__c": "U1"})),
                &author,
                &mut undo,
            )
            .unwrap_err();
        assert_eq!(dup_key.code, "DUPLICATE_VALUE");
        let dup_email = org
            .create(
                contact,
                &body(serde_json::json!({"LastName": "B", "Email": "A@X.io"})),
                &author,
                &mut undo,
            )
            .unwrap_err();
        assert_eq!(dup_email.code, "DUPLICATES_DETECTED");
    }

    #[test]
    fn rollback_restores_every_change() {
        let (mut org, author) = org();
        let account = org.object("Account").unwrap();
        let id = org
            .create(
                account,
                &body(serde_json::json!({"Name": "Keep"})),
                &author,
                &mut Undo::default(),
            )
            .unwrap();
        let mut undo = Undo::default();
        org.create(
            account,
            &body(serde_json::json!({"Name": "Gone"})),
            &author,
            &mut undo,
        )
        .unwrap();
        org.update(
            account,
            &id,
            &body(serde_json::json!({"Name": "Changed"})),
            &author,
            &mut undo,
        )
        .unwrap();
        org.delete(account, &id, &author, &mut undo).unwrap();
        org.rollback(undo);
        let committed = org.journal.take();
        assert_eq!(
            committed.len(),
            1,
            "only the create before the undone writes"
        );
        assert!(committed[0].before.is_none());
        let def = org.def(account).clone();
        assert_eq!(org.objects[account].records.len(), 1);
        let rec = org.record(account, &id).unwrap();
        assert_eq!(
            rec.get(def.field_index("Name").unwrap()),
            &Value::text("Keep")
        );
        assert!(!rec.is_deleted(&def));
        assert!(org.deleted_log.is_empty());
    }

    #[test]
    fn auto_numbers_are_zero_padded() {
        assert_eq!(format_auto_number("INV-{000000}", 42), "INV-000042");
        assert_eq!(format_auto_number("{00000000}", 7), "00000007");
    }
}
