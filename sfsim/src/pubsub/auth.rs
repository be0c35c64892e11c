//! Who is calling: the `accesstoken`, `instanceurl` and `tenantid` metadata
//! every call carries, checked against the tokens sfsim's OAuth endpoints
//! issued. Pub/Sub calls count nothing against the daily API limit.

use super::status::{failure, AUTH_ERROR};
use crate::sim::Sim;
use eventbus::tonic::metadata::MetadataMap;
use eventbus::tonic::{Code, Status};

pub struct Caller {
    token: String,
}

/// The caller, if its metadata names a live token of this org.
pub fn authenticate(sim: &Sim, metadata: &MetadataMap, rpc_id: &str) -> Result<Caller, Status> {
    let get = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let token = get(eventbus::ACCESS_TOKEN);
    let tenant = get(eventbus::TENANT_ID);
    let instance = get(eventbus::INSTANCE_URL).trim_end_matches('/');
    let org_id = sim.org.read().org_id.clone();
    let tenant_ok = tenant == org_id || (tenant.len() == 15 && org_id.starts_with(tenant));
    let caller = Caller {
        token: token.to_string(),
    };
    if tenant_ok && instance == sim.config.base_url && caller.is_valid(sim) {
        Ok(caller)
    } else {
        Err(failure(
            Code::Unauthenticated,
            AUTH_ERROR,
            "An error occurred while trying to authenticate: the access token, instance URL or tenant ID is not valid.",
            rpc_id,
        ))
    }
}

impl Caller {
    /// The id of the user whose token this is, while it is live.
    pub fn user(&self, sim: &Sim) -> Option<String> {
        sim.auth
            .lock()
            .user_of(&self.token, sim.clock.now())
            .map(str::to_string)
    }

    /// Whether the caller's token is still live: tokens expire and are
    /// revoked while streams are open.
    pub fn is_valid(&self, sim: &Sim) -> bool {
        sim.auth
            .lock()
            .user_of(&self.token, sim.clock.now())
            .is_some()
    }
}
