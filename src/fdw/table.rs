//! A foreign table's link to its Salesforce object: which object, and which
//! field each column reads.

use super::connection;
use super::error::SalesforceFdwError;
use super::pg::{options_of, relation_name};
use crate::naming::snake_case;
use crate::salesforce::describe::{FieldDescribe, ObjectDescribe};
use pgrx::pg_sys::{self, Oid};
use pgrx::PgRelation;

pub struct Column {
    pub attno: i16,
    pub name: String,
    /// None when no field matches; an error only if the column is used.
    pub field: Option<FieldDescribe>,
}

pub struct Table {
    pub relid: Oid,
    pub server: Oid,
    pub user: Oid,
    pub object: String,
    pub columns: Vec<Column>,
    /// The `estimated_rows` option: how many records the object holds.
    pub estimated_rows: Option<f64>,
}

/// The field a column reads: its `field` option, else the field whose API
/// name matches the column's name ignoring case, else whose snake_case does.
fn field_for(
    describe: &ObjectDescribe,
    column: &str,
    option: Option<&String>,
) -> Result<Option<FieldDescribe>, SalesforceFdwError> {
    if let Some(name) = option {
        return describe.field(name).cloned().map(Some).ok_or_else(|| {
            SalesforceFdwError::mapping(
                format!("field \"{name}\" of column \"{column}\" does not exist on Salesforce object {}", describe.name),
                "Check the column's field option, or re-run IMPORT FOREIGN SCHEMA.",
            )
        });
    }
    Ok(describe
        .field(column)
        .or_else(|| {
            describe
                .fields
                .iter()
                .find(|f| snake_case(&f.name) == column)
        })
        .cloned())
}

impl Table {
    pub fn load(relid: Oid, user: Oid) -> Result<Table, SalesforceFdwError> {
        let (server, options) = unsafe {
            let ft = pg_sys::GetForeignTable(relid);
            ((*ft).serverid, options_of((*ft).options))
        };
        let object = options
            .get("object")
            .cloned()
            .unwrap_or_else(|| relation_name(relid));
        let describe = connection::describe(server, user, &object)?;
        let rel = unsafe { PgRelation::open(relid) };
        let mut columns = Vec::new();
        for attr in rel.tuple_desc().iter().filter(|a| !a.is_dropped()) {
            let column_options =
                unsafe { options_of(pg_sys::GetForeignColumnOptions(relid, attr.attnum)) };
            let name = attr.name().to_string();
            let field = field_for(&describe, &name, column_options.get("field"))?;
            columns.push(Column {
                attno: attr.attnum,
                name,
                field,
            });
        }
        let estimated_rows = options.get("estimated_rows").and_then(|n| n.parse().ok());
        Ok(Table {
            relid,
            server,
            user,
            object: describe.name.clone(),
            columns,
            estimated_rows,
        })
    }

    /// A field of the object by API name, whether or not a column reads it.
    pub fn describe_field(&self, name: &str) -> Option<&FieldDescribe> {
        self.columns
            .iter()
            .filter_map(|c| c.field.as_ref())
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn column(&self, attno: i16) -> Option<&Column> {
        self.columns.iter().find(|c| c.attno == attno)
    }

    /// The field behind a column the query uses.
    pub fn field_of(&self, attno: i16) -> Result<&FieldDescribe, SalesforceFdwError> {
        let column = self
            .column(attno)
            .ok_or_else(|| SalesforceFdwError::mapping(format!("no column {attno}"), ""))?;
        column.field.as_ref().ok_or_else(|| {
            SalesforceFdwError::mapping(
                format!("column \"{}\" of foreign table \"{}\" matches no field of Salesforce object {}", column.name, relation_name(self.relid), self.object),
                "Give the column a field option naming the API field, or re-run IMPORT FOREIGN SCHEMA.",
            )
        })
    }
}
