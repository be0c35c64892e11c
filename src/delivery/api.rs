//! What users call: queue a write for an org chosen at run time, and
//! retry or discard their own writes that did not go through.

use super::{outbox, queue};
use crate::access;
use crate::catalog;
use crate::error::{Error, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::JsonB;
use salesforce_core::naming::is_api_name;
use salesforce_core::write::journal::Op;
use serde_json::Value as Json;

/// A jsonb argument, read, and as given: a record that needs no change is
/// stored as it came, not written out and parsed again.
struct GivenJsonb {
    datum: pg_sys::Datum,
    value: Json,
}

impl FromDatum for GivenJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        typoid: pg_sys::Oid,
    ) -> Option<Self> {
        let value = JsonB::from_polymorphic_datum(datum, is_null, typoid)?.0;
        let datum = pg_sys::Datum::from(pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()));
        Some(GivenJsonb { datum, value })
    }
}

unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for GivenJsonb {
    unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        arg.unbox_arg_using_from_datum()
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

unsafe impl pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for GivenJsonb {
    fn argument_sql() -> std::result::Result<
        pgrx::pgrx_sql_entity_graph::metadata::SqlMapping,
        pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
    > {
        Ok(pgrx::pgrx_sql_entity_graph::metadata::SqlMapping::literal(
            "jsonb",
        ))
    }
    fn return_sql() -> std::result::Result<
        pgrx::pgrx_sql_entity_graph::metadata::Returns,
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
    > {
        Ok(pgrx::pgrx_sql_entity_graph::metadata::Returns::One(
            pgrx::pgrx_sql_entity_graph::metadata::SqlMapping::literal("jsonb"),
        ))
    }
}

/// The write `operation` means for `record`, with the external id field
/// `key` (a write with a key is an upsert by it).
fn op_for(operation: &str, record: Json, key: Option<&str>, id_of: Option<i64>) -> Result<Op> {
    let Json::Object(mut record) = record else {
        return Err(Error::invalid(
            "record must be a JSON object of field values",
            "Pass jsonb_build_object('LastName', 'Ng', ...).",
        ));
    };
    record.remove("attributes");
    let id_field = record
        .keys()
        .find(|k| k.eq_ignore_ascii_case("id"))
        .cloned();
    let id = id_field.and_then(|f| record.remove(&f));
    for field in record.keys() {
        if !is_api_name(field) {
            return Err(Error::invalid(
                format!("{field:?} is not a Salesforce field name"),
                "Use the fields' API names.",
            ));
        }
    }
    let id = match id {
        // Filled in from the write id_of names, once it is delivered.
        None | Some(Json::Null) if id_of.is_some() => Some(String::new()),
        Some(Json::String(id)) if !id.is_empty() && id_of.is_none() => Some(id),
        Some(_) if id_of.is_some() => {
            return Err(Error::invalid(
                "a write with id_of takes its Id from that write, not from the record",
                "Leave \"Id\" out of the record.",
            ))
        }
        None | Some(Json::Null) => None,
        Some(other) => {
            return Err(Error::invalid(
                format!("the record's Id must be text, not {other}"),
                "Pass the 15- or 18-character record Id.",
            ))
        }
    };
    let operation = operation.to_ascii_lowercase();
    if id_of.is_some() && !matches!(operation.as_str(), "update" | "delete") {
        return Err(Error::invalid(
            format!("an {operation} cannot take its Id from another queued write"),
            "id_of is for an update or delete of the record an earlier queued insert creates.",
        ));
    }
    match (operation.as_str(), key) {
        ("insert" | "upsert", Some(key)) => {
            if !is_api_name(key) {
                return Err(Error::invalid(
                    format!("{key:?} is not a Salesforce field name"),
                    "key is the API name of an external id field.",
                ));
            }
            if record.get(key).is_none_or(Json::is_null) {
                return Err(Error::invalid(
                    format!("the record has no value for its key {key}"),
                    "A write with a key carries the key's value, so that a second delivery updates the record the first made.",
                ));
            }
            Ok(Op::Upsert {
                key_field: key.to_string(),
                record,
            })
        }
        ("upsert", None) => Err(Error::invalid(
            "an upsert needs a key",
            "Pass key => the API name of the external id field.",
        )),
        ("insert", None) => Ok(Op::Create { record }),
        ("update" | "delete", Some(_)) => Err(Error::invalid(
            format!("an {operation} names its record by Id, not by a key"),
            "Put the Id in the record, or queue an upsert by the key.",
        )),
        ("update", None) => match id {
            Some(id) => Ok(Op::Update { id, fields: record }),
            None => Err(Error::invalid(
                "an update needs the record's Id",
                "Put \"Id\" in the record.",
            )),
        },
        ("delete", None) => match id {
            Some(id) => Ok(Op::Delete { id }),
            None => Err(Error::invalid(
                "a delete needs the record's Id",
                "Put \"Id\" in the record.",
            )),
        },
        (other, _) => Err(Error::invalid(
            format!("unknown operation {other:?}"),
            "operation is insert, upsert, update or delete.",
        )),
    }
}

/// Queues a write to `object` on `server`, delivered by the sync worker
/// after this transaction commits, with the caller's user mapping; returns
/// the queued write's id (see salesforce.queued_writes). An update or
/// delete may name, instead of an Id, the earlier queued insert whose
/// record it changes (`id_of`): it waits for that write's Id. No
/// search_path of its own: it runs SQL only with the path pinned, and a
/// function's SET clause would cost each queued write a GUC nest level.
#[pg_extern]
fn enqueue(
    server: &str,
    object: &str,
    operation: &str,
    record: GivenJsonb,
    key: default!(Option<&str>, "NULL"),
    id_of: default!(Option<i64>, "NULL"),
) -> i64 {
    let role = access::current_role();
    (|| {
        let server_oid = catalog::server_oid(server)?;
        access::check_server_use(server_oid, role)?;
        if !is_api_name(object) {
            return Err(Error::invalid(
                format!("{object:?} is not a Salesforce object name"),
                "Use the object's API name, such as Contact.",
            ));
        }
        let fields = record.value.as_object().map_or(0, |m| m.len());
        let op = op_for(operation, record.value, key, id_of)?;
        if let Some(first) = id_of {
            access::pinned(|| outbox::check_id_of(first, role, server, object))?;
        }
        match &op {
            // Stored as given, when nothing was taken out of it.
            Op::Create { record: kept } | Op::Upsert { record: kept, .. }
                if kept.len() == fields =>
            {
                let id = outbox::add_given(role, server, object, &op, record.datum)?;
                super::wake::at_commit();
                Ok(id)
            }
            _ => queue(role, server, object, &op, id_of),
        }
    })()
    .or_raise()
}

/// Sends a failed or unknown queued write again, from its first attempt.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn retry_queued(id: i64) {
    outbox::set_state(id, &["failed", "unknown"], "pending", "retried").or_raise();
    super::wake::at_commit();
}

/// Gives up a queued write that is not delivered.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn discard_queued(id: i64) {
    outbox::set_state(
        id,
        &["pending", "failed", "unknown", "unresolved"],
        "discarded",
        "discarded",
    )
    .or_raise();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_makes_an_upsert_and_an_update_needs_an_id() {
        let upsert = op_for(
            "insert",
            json!({"LastName": "Ng", "User_Id__c": "u-1"}),
            Some("User_Id__c"),
            None,
        )
        .unwrap();
        assert!(matches!(upsert, Op::Upsert { ref key_field, .. } if key_field == "User_Id__c"));
        assert!(op_for(
            "insert",
            json!({"LastName": "Ng"}),
            Some("User_Id__c"),
            None
        )
        .is_err());
        assert!(op_for("update", json!({"LastName": "Ng"}), None, None).is_err());
        let update = op_for(
            "UPDATE",
            json!({"id": "003A", "LastName": "Ng"}),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            update,
            Op::Update {
                id: "003A".into(),
                fields: json!({"LastName": "Ng"}).as_object().unwrap().clone()
            }
        );
        assert!(op_for("insert", json!({"Last/Name": "x"}), None, None).is_err());
        assert!(
            op_for("merge", json!({}), None, None).is_err()
                && op_for("update", json!({"Id": "003A"}), None, Some(4)).is_err()
                && op_for("insert", json!({"LastName": "x"}), None, Some(4)).is_err()
        );
    }
}
