//! A foreign table's link to its Salesforce object: which object, and which
//! field each column reads.

use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use crate::pg::relation_name;
use crate::values;
use pgrx::pg_sys::Oid;
use pgrx::PgRelation;
use salesforce_core::client::describe::{FieldDescribe, ObjectDescribe};
use salesforce_core::naming::snake_case;

pub struct Column {
    pub attno: i16,
    pub name: String,
    pub type_oid: Oid,
    /// None when no field matches; an error only if the column is used.
    pub field: Option<FieldDescribe>,
}

pub struct Table {
    pub relid: Oid,
    pub server: Oid,
    pub user: Oid,
    pub object: String,
    pub columns: Vec<Column>,
    pub options: salesforce_core::options::TableOptions,
}

/// The field a column reads: its `field` option, else the field whose API
/// name matches the column's name ignoring case, else whose snake_case does.
fn field_for(
    describe: &ObjectDescribe,
    column: &str,
    option: Option<&String>,
) -> Result<Option<FieldDescribe>> {
    if let Some(name) = option {
        return describe.field(name).cloned().map(Some).ok_or_else(|| {
            Error::mapping(
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
    pub fn load(relid: Oid, user: Oid) -> Result<Table> {
        let foreign = catalog::foreign_table(relid)?;
        let object = foreign
            .options
            .object
            .clone()
            .unwrap_or_else(|| relation_name(relid));
        let describe = connection::describe(foreign.server, user, &object)?;
        let rel = unsafe { PgRelation::open(relid) };
        let mut columns = Vec::new();
        for attr in rel.tuple_desc().iter().filter(|a| !a.is_dropped()) {
            let name = attr.name().to_string();
            let option = catalog::column_field(relid, attr.attnum);
            let field = field_for(&describe, &name, option.as_ref())?;
            columns.push(Column {
                attno: attr.attnum,
                name,
                type_oid: attr.atttypid,
                field,
            });
        }
        Ok(Table {
            relid,
            server: foreign.server,
            user,
            object: describe.name.clone(),
            columns,
            options: foreign.options,
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

    /// The field behind a column the query uses, refused if the column's
    /// type cannot hold it.
    pub fn field_of(&self, attno: i16) -> Result<&FieldDescribe> {
        let column = self
            .column(attno)
            .ok_or_else(|| Error::mapping(format!("no column {attno}"), ""))?;
        let table = relation_name(self.relid);
        let field = column.field.as_ref().ok_or_else(|| {
            Error::mapping(
                format!("column \"{}\" of foreign table \"{table}\" matches no field of Salesforce object {}", column.name, self.object),
                "Give the column a field option naming the API field, or re-run IMPORT FOREIGN SCHEMA.",
            )
        })?;
        values::check_column(&table, &column.name, column.type_oid, field)?;
        Ok(field)
    }
}
