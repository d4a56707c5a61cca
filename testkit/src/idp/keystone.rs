//! PCD step 1 and 2: Keystone password authentication and the resmgr
//! `dexclients` map.

use serde_json::{Value, json};

use super::state::State;
use crate::http::{Reply, Request};
use crate::util::{rfc3339_micros, uuid_v4};

/// Keystone's error shape: `{"error":{"code":…,"message":…,"title":…}}`.
fn keystone_error(status: u16, message: &str, title: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": status, "message": message, "title": title}}),
    )
}

/// The exact 401 body of pcd-auth.md, plus Keystone's `WWW-Authenticate`.
fn unauthorized(state: &State) -> Reply {
    keystone_error(
        401,
        "The request you have made requires authentication.",
        "Unauthorized",
    )
    .with_header(
        "WWW-Authenticate",
        &format!("Keystone uri=\"{}/keystone\"", state.base_url),
    )
}

/// Password credentials extracted from the request body.
struct PasswordAuth {
    name: String,
    domain: String,
    password: String,
    project: Option<String>,
}

/// Validates the body's structure. Only the shape of Keystone's 400 errors
/// is sourced; the messages are modelled on its JSON-schema validator.
fn parse_auth(body: &Value) -> Result<PasswordAuth, String> {
    let auth = body
        .get("auth")
        .ok_or("Expecting to find auth in request body.")?;
    let identity = auth
        .get("identity")
        .ok_or("Invalid input for field 'auth': 'identity' is a required property")?;
    let methods = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or("Invalid input for field 'identity': 'methods' is a required property")?;
    if !methods.iter().any(|m| m == "password") {
        return Err(
            "Invalid input for field 'identity/methods': only 'password' is supported".into(),
        );
    }
    let user = identity
        .pointer("/password/user")
        .ok_or("Invalid input for field 'identity/password': 'user' is a required property")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let name = text(user.get("name"))
        .ok_or("Invalid input for field 'identity/password/user': 'name' is a required property")?;
    let password = text(user.get("password")).ok_or(
        "Invalid input for field 'identity/password/user': 'password' is a required property",
    )?;
    let domain = text(user.pointer("/domain/name"))
        .or_else(|| text(user.pointer("/domain/id")).map(|id| domain_name_of_id(&id)))
        .unwrap_or_default();
    let project = text(auth.pointer("/scope/project/name"));
    Ok(PasswordAuth {
        name,
        domain,
        password,
        project,
    })
}

/// Keystone's built-in domain has id `default` and name `Default`.
fn domain_name_of_id(id: &str) -> String {
    if id == "default" {
        "Default".to_owned()
    } else {
        id.to_owned()
    }
}

/// `POST /keystone/v3/auth/tokens`.
pub(crate) fn auth_tokens(state: &mut State, req: &Request) -> Reply {
    if req.method != "POST" {
        return keystone_error(
            405,
            "The method is not allowed for the requested URL.",
            "Method Not Allowed",
        );
    }
    let Some(body) = req.json() else {
        return keystone_error(400, "The request body is not valid JSON.", "Bad Request");
    };
    let auth = match parse_auth(&body) {
        Ok(auth) => auth,
        Err(message) => return keystone_error(400, &message, "Bad Request"),
    };
    let Some(account) = state.account(&auth.name).cloned() else {
        return unauthorized(state);
    };
    if account.user.password != auth.password || account.user.domain != auth.domain {
        return unauthorized(state);
    }
    let (token, expires_at) = state.new_keystone_token();
    let mut token_body = json!({
        "methods": ["password"],
        "user": {
            "domain": {"id": domain_id(&account.user.domain), "name": account.user.domain},
            "id": account.keystone_id,
            "name": account.user.username,
            "password_expires_at": null
        },
        "audit_ids": [uuid_v4().replace('-', "")[..22].to_owned()],
        "expires_at": rfc3339_micros(expires_at),
        "issued_at": rfc3339_micros(state.now()),
    });
    if let Some(project) = auth.project {
        token_body["project"] = json!({
            "domain": {"id": "default", "name": "Default"},
            "id": uuid_v4().replace('-', ""),
            "name": project
        });
        token_body["roles"] = json!([{"id": uuid_v4().replace('-', ""), "name": "member"}]);
        token_body["catalog"] = json!([]);
    }
    Reply::json(201, &json!({ "token": token_body }))
        .with_header("X-Subject-Token", &token)
        .with_header("Vary", "X-Auth-Token")
}

fn domain_id(name: &str) -> String {
    if name == "Default" {
        "default".to_owned()
    } else {
        name.to_lowercase()
    }
}

/// `GET /resmgr/v2/dexclients`: every confidential client's secret.
pub(crate) fn dexclients(state: &State, req: &Request) -> Reply {
    if req.method != "GET" {
        return Reply::json(405, &json!({"message": "Method Not Allowed", "code": 405}));
    }
    let authorised = req
        .header("x-auth-token")
        .is_some_and(|t| state.keystone_token_valid(t));
    if !authorised {
        return Reply::json(401, &json!({"message": "Unauthorized", "code": 401}));
    }
    let map: serde_json::Map<String, Value> = state
        .clients
        .values()
        .filter_map(|c| Some((c.id.clone(), Value::String(c.secret.clone()?))))
        .collect();
    Reply::json(200, &Value::Object(map))
}
