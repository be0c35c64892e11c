//! Field-level security: the fields a user's profile hides. To that user a
//! hidden field does not exist: describe leaves it out, SOQL and writes
//! naming it get INVALID_FIELD, and no record it reads carries it.

use std::collections::BTreeSet;

/// The fields one profile hides, as (object, field) positions in the org.
#[derive(Clone, Debug, Default)]
pub struct FieldAccess {
    hidden: BTreeSet<(usize, usize)>,
}

/// The access of a user whose profile hides nothing, such as the admin.
pub static EVERYTHING: FieldAccess = FieldAccess {
    hidden: BTreeSet::new(),
};

impl FieldAccess {
    pub fn hiding(fields: impl IntoIterator<Item = (usize, usize)>) -> FieldAccess {
        FieldAccess {
            hidden: fields.into_iter().collect(),
        }
    }

    pub fn can_see(&self, object: usize, field: usize) -> bool {
        !self.hidden.contains(&(object, field))
    }
}

/// A user who can log in, and what its profile lets it see.
#[derive(Clone, Debug)]
pub struct Login {
    pub username: String,
    pub user_id: String,
    pub access: FieldAccess,
    /// User permissions its profile grants (`schema::PERMISSIONS`).
    pub permissions: Vec<String>,
}
