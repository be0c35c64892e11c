//! Change events from committed writes: one per record change of a selected
//! object, in the order of the writes, stamped per transaction (one
//! transaction key and commit number, sequence numbers from 1). Updates and
//! deletes of one object that are identical within a transaction, as a
//! collections call setting the same values on several records makes them,
//! are merged into one event listing every record id.

use super::avro::{EventSchema, Schemas};
use super::faults::CdcFaults;
use super::header::{ChangeType, Header};
use crate::journal::Change;
use crate::org::{Org, Record};
use crate::schema::ObjectDef;
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A change event ready to be encoded.
pub struct Draft {
    pub object: Arc<str>,
    pub schema: Arc<EventSchema>,
    pub header: Header,
    pub carried: BTreeMap<usize, Value>,
}

/// What turning changes into events reads and updates on the bus.
pub struct Publishing<'a> {
    pub org: &'a Org,
    pub selected: &'a BTreeSet<String>,
    pub schemas: &'a mut Schemas,
    pub faults: &'a mut CdcFaults,
    /// The last commit number given out.
    pub commits: &'a mut i64,
}

fn change_type(
    def: &ObjectDef,
    before: Option<&Record>,
    after: Option<&Record>,
) -> Option<ChangeType> {
    let live = |r: Option<&Record>| r.map(|r| !r.is_deleted(def));
    match (live(before), live(after)) {
        (None, Some(true)) => Some(ChangeType::Create),
        (Some(true), Some(true)) => Some(ChangeType::Update),
        (Some(true), Some(false) | None) => Some(ChangeType::Delete),
        (Some(false), Some(true)) => Some(ChangeType::Undelete),
        // Emptying the recycle bin publishes nothing.
        _ => None,
    }
}

/// The header and field values of one change, before its transaction stamps it.
fn draft(change: &Change, def: &ObjectDef, schema: Arc<EventSchema>, kind: ChangeType) -> Draft {
    let (before, after) = (change.before.as_deref(), change.after.as_deref());
    let fields = 0..def.fields.len();
    let mut carried = BTreeMap::new();
    let (mut changed_fields, mut nulled_fields) = (vec![], vec![]);
    match (kind, before, after) {
        (ChangeType::Create | ChangeType::Undelete, _, Some(after)) => {
            carried.extend(fields.filter_map(|i| {
                let v = after.get(i);
                (!v.is_null()).then(|| (i, v.clone()))
            }));
        }
        (ChangeType::Update, Some(before), Some(after)) => {
            let changed: BTreeSet<usize> =
                fields.filter(|i| before.get(*i) != after.get(*i)).collect();
            let nulled: BTreeSet<usize> = changed
                .iter()
                .copied()
                .filter(|i| after.get(*i).is_null())
                .collect();
            changed_fields = schema.changed_bits(&changed).to_strings();
            nulled_fields = schema
                .nulled_bits(&nulled, |i| after.get(i).is_null())
                .to_strings();
            carried.extend(changed.into_iter().map(|i| (i, after.get(i).clone())));
        }
        _ => {}
    }
    Draft {
        object: def.name.as_str().into(),
        schema,
        header: Header {
            entity_name: def.name.clone(),
            record_ids: vec![],
            change_type: kind,
            change_origin: change.origin.to_string(),
            transaction_key: String::new(),
            sequence_number: 0,
            commit_timestamp: 0,
            commit_number: 0,
            commit_user: change.user_id.to_string(),
            nulled_fields,
            diff_fields: vec![],
            changed_fields,
        },
        carried,
    }
}

/// A header-only event: a gap for one record, or an overflow for an object.
fn header_only(mut event: Draft, kind: ChangeType) -> Draft {
    event.header.change_type = kind;
    event.header.changed_fields.clear();
    event.header.nulled_fields.clear();
    event.carried.clear();
    event
}

/// The change events of the committed changes, in commit order.
pub fn drafts(p: &mut Publishing, changes: Vec<Change>) -> Vec<Draft> {
    let mut transactions: Vec<(u64, Vec<Change>)> = Vec::new();
    // Objects not selected make no events, so their changes are not grouped.
    let selected = changes
        .into_iter()
        .filter(|c| p.selected.contains(&p.org.def(c.object).name));
    for change in selected {
        match transactions
            .iter_mut()
            .find(|(t, _)| *t == change.transaction)
        {
            Some((_, group)) => group.push(change),
            None => transactions.push((change.transaction, vec![change])),
        }
    }
    transactions
        .into_iter()
        .flat_map(|(_, group)| transaction(p, group))
        .collect()
}

fn transaction(p: &mut Publishing, changes: Vec<Change>) -> Vec<Draft> {
    let mut events: Vec<Draft> = Vec::new();
    let mut merged: HashMap<(Arc<str>, Vec<u8>), usize> = HashMap::new();
    let mut committed_at = None;
    for change in &changes {
        let def = p.org.def(change.object);
        if !p.selected.contains(&def.name) {
            continue;
        }
        let record = change.after.as_deref().or(change.before.as_deref());
        let (Some(kind), Some(record)) = (
            change_type(def, change.before.as_deref(), change.after.as_deref()),
            record,
        ) else {
            continue;
        };
        committed_at = committed_at.max(Some(change.at));
        let id = record.id().to_string();
        let mut event = draft(change, def, p.schemas.current(def), kind);
        if p.faults.take_gap(&def.name) {
            event = header_only(event, kind.gap());
        } else if matches!(kind, ChangeType::Update | ChangeType::Delete) {
            let key = (
                event.object.clone(),
                event.schema.encode(&event.header, &event.carried),
            );
            if let Some(&i) = merged.get(&key) {
                if !events[i].header.record_ids.contains(&id) {
                    events[i].header.record_ids.push(id);
                    continue;
                }
            }
            merged.insert(key, events.len());
        }
        event.header.record_ids.push(id);
        events.push(event);
    }
    if p.faults.take_overflow_if(!events.is_empty()) {
        let mut objects: Vec<Draft> = Vec::new();
        for event in events {
            if !objects.iter().any(|o| o.object == event.object) {
                let mut overflow = header_only(event, ChangeType::GapOverflow);
                overflow.header.record_ids.clear();
                objects.push(overflow);
            }
        }
        events = objects;
    }
    let Some(at) = committed_at else {
        return events;
    };
    *p.commits += 1;
    let key = super::uuid();
    for (i, event) in events.iter_mut().enumerate() {
        let h = &mut event.header;
        h.transaction_key = key.clone();
        h.sequence_number = i as i32 + 1;
        h.commit_timestamp = at.timestamp_millis();
        h.commit_number = *p.commits;
    }
    events
}
