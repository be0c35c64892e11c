//! IMPORT FOREIGN SCHEMA: one foreign table per queryable object, typed
//! through the shared type map.

use crate::connection;
use crate::error::{Error, Result};
use pgrx::pg_sys::{self, Oid};
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::naming::{quote_ident, quote_literal, snake_case, ColumnNamer};
use salesforce_core::options::OptionError;
use salesforce_core::typemap::pg_type;
use std::collections::HashSet;
use supabase_wrappers::prelude::{ImportForeignSchemaStmt, ImportSchemaType};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Naming {
    Snake,
    Api,
}

impl Naming {
    fn local(self, api_name: &str) -> String {
        match self {
            Naming::Snake => snake_case(api_name),
            Naming::Api => api_name.to_string(),
        }
    }
}

fn naming(stmt: &ImportForeignSchemaStmt) -> Result<Naming> {
    for key in stmt.options.keys() {
        if key != "naming" {
            return Err(OptionError {
                message: format!("invalid IMPORT FOREIGN SCHEMA option \"{key}\""),
                hint: Some("The only option is naming ('snake' or 'api').".into()),
            }
            .into());
        }
    }
    match stmt.options.get("naming").map(String::as_str) {
        None | Some("snake") => Ok(Naming::Snake),
        Some("api") => Ok(Naming::Api),
        Some(other) => Err(OptionError {
            message: format!("invalid value for option \"naming\": \"{other}\""),
            hint: Some("Use 'snake' or 'api'.".into()),
        }
        .into()),
    }
}

/// `CREATE FOREIGN TABLE` for one object; `rows` (its record count) guides the planner.
fn create_table(
    schema: &str,
    server: &str,
    table: &str,
    object: &ObjectDescribe,
    naming: Naming,
    rows: Option<u64>,
) -> String {
    let mut namer = ColumnNamer::default();
    let mut id_column = String::new();
    let columns: Vec<String> = object
        .fields
        .iter()
        .map(|f| {
            let name = namer.name(&f.name, naming == Naming::Snake);
            if f.field_type == "id" {
                id_column = name.clone();
            }
            format!(
                "  {} {} OPTIONS (field {})",
                quote_ident(&name),
                pg_type(&f.field_type).ddl(),
                quote_literal(&f.name)
            )
        })
        .collect();
    let estimate = rows
        .map(|n| format!(", estimated_rows '{n}'"))
        .unwrap_or_default();
    // An object without an Id field (some system objects) gets no rowid_column.
    let rowid = if id_column.is_empty() {
        String::new()
    } else {
        format!(", rowid_column {}", quote_literal(&id_column))
    };
    format!(
        "CREATE FOREIGN TABLE {}.{} (\n{}\n) SERVER {} OPTIONS (object {}{rowid}{estimate})",
        quote_ident(schema),
        quote_ident(table),
        columns.join(",\n"),
        quote_ident(server),
        quote_literal(&object.name),
    )
}

pub fn statements(server: Oid, stmt: &ImportForeignSchemaStmt) -> Result<Vec<String>> {
    if !stmt.remote_schema.eq_ignore_ascii_case("salesforce") {
        return Err(Error::mapping(
            format!("Salesforce has no schema \"{}\"", stmt.remote_schema),
            "Salesforce has one schema: IMPORT FOREIGN SCHEMA salesforce FROM SERVER ... INTO ...",
        ));
    }
    let naming = naming(stmt)?;
    let user = unsafe { pg_sys::GetUserId() };
    let global = connection::with_session(server, user, |s| s.describe_global())?;
    let listed: HashSet<&str> = stmt.table_list.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for summary in global.sobjects.iter().filter(|o| o.queryable) {
        let table = naming.local(&summary.name);
        let wanted = match stmt.list_type {
            ImportSchemaType::FdwImportSchemaAll => true,
            ImportSchemaType::FdwImportSchemaLimitTo => listed.contains(table.as_str()),
            ImportSchemaType::FdwImportSchemaExcept => !listed.contains(table.as_str()),
        };
        if wanted {
            let object = connection::fresh_describe(server, user, &summary.name)?;
            // One COUNT() per object; an object too large to count in time gets no estimate.
            let rows = connection::with_session(server, user, |s| {
                s.query(&format!("SELECT COUNT() FROM {}", object.name), false)
            })
            .ok()
            .map(|p| p.total_size);
            out.push(create_table(
                &stmt.local_schema,
                &stmt.server_name,
                &table,
                &object,
                naming,
                rows,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce_core::client::describe::FieldDescribe;

    fn field(name: &str, t: &str) -> FieldDescribe {
        FieldDescribe::of_type(name, t)
    }

    #[test]
    fn tables_are_typed_and_named() {
        let object = ObjectDescribe {
            name: "Invoice__c".into(),
            fields: vec![
                field("Id", "id"),
                field("Amount__c", "currency"),
                field("Paid_At__c", "datetime"),
                field("Languages__c", "multipicklist"),
                field("Order", "string"),
            ],
        };
        assert_eq!(
            create_table("crm", "org", "invoice__c", &object, Naming::Snake, Some(150)),
            "CREATE FOREIGN TABLE crm.invoice__c (\n  id pg_catalog.text OPTIONS (field 'Id'),\n  amount__c pg_catalog.numeric OPTIONS (field 'Amount__c'),\n  paid_at__c pg_catalog.timestamptz OPTIONS (field 'Paid_At__c'),\n  languages__c pg_catalog.text[] OPTIONS (field 'Languages__c'),\n  \"order\" pg_catalog.text OPTIONS (field 'Order')\n) SERVER org OPTIONS (object 'Invoice__c', rowid_column 'id', estimated_rows '150')"
        );
        let api = create_table("Crm", "org", "Invoice__c", &object, Naming::Api, None);
        assert!(api.starts_with(
            "CREATE FOREIGN TABLE \"Crm\".\"Invoice__c\" (\n  \"Id\" pg_catalog.text"
        ));
        assert!(api.ends_with("rowid_column 'Id')"));
    }

    #[test]
    fn colliding_snake_names_keep_the_api_name() {
        let object = ObjectDescribe {
            name: "X__c".into(),
            fields: vec![
                field("Id", "id"),
                field("FooBar__c", "string"),
                field("Foo_Bar__c", "string"),
            ],
        };
        let sql = create_table("s", "o", "x__c", &object, Naming::Snake, None);
        assert!(sql.contains("foo_bar__c pg_catalog.text OPTIONS (field 'FooBar__c')"));
        assert!(sql.contains("\"Foo_Bar__c\" pg_catalog.text OPTIONS (field 'Foo_Bar__c')"));
    }
}
