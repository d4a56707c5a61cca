//! An HTTPS Kubernetes API stub that accepts only bearer tokens issued by a
//! [`FakeIdp`], serving just enough discovery and one pod for real kubectl
//! (1.27–1.33) to run `kubectl get pods`.
//!
//! TLS is mandatory because kubectl does not run exec credential plugins
//! for `http://` servers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::http::{Handler, Reply, Request, Server};
use crate::idp::FakeIdp;
use crate::tls::TestCa;
use crate::util::lock;

/// The Kubernetes version the stub claims to be.
pub const MINOR: &str = "33";

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct KubeRequest {
    /// Method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query.
    pub query: String,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// The bearer token presented, if any.
    pub token: Option<String>,
    /// Status answered.
    pub status: u16,
}

/// How the kubeconfig's `users[].user.exec` entry runs a plugin.
#[derive(Debug, Clone)]
pub struct ExecPlugin {
    /// Executable (absolute path or name on PATH).
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment for the plugin.
    pub env: Vec<(String, String)>,
    /// `client.authentication.k8s.io/v1` (default) or `…/v1beta1`.
    pub api_version: String,
    /// `Never` (default), `IfAvailable` or `Always`.
    pub interactive_mode: String,
    /// Whether kubectl passes `spec.cluster` to the plugin.
    pub provide_cluster_info: bool,
}

impl ExecPlugin {
    /// A v1 plugin with `interactiveMode: Never`.
    pub fn new(command: &str, args: &[&str]) -> ExecPlugin {
        ExecPlugin {
            command: command.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
            api_version: "client.authentication.k8s.io/v1".to_owned(),
            interactive_mode: "Never".to_owned(),
            provide_cluster_info: false,
        }
    }
}

/// The running stub; stops on drop.
pub struct KubeApi {
    server: Server,
    log: Arc<Mutex<Vec<KubeRequest>>>,
    ca_path: PathBuf,
    _dir: TempDir,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl KubeApi {
    /// Starts the stub with a certificate from `ca` for `127.0.0.1` and
    /// `localhost`, and writes the CA PEM next to it (see [`Self::ca_pem_path`]).
    ///
    /// # Panics
    /// If the temporary directory cannot be created or written.
    pub fn start(idp: FakeIdp, ca: &TestCa) -> KubeApi {
        let dir = tempfile::Builder::new()
            .prefix("testkit-kube")
            .tempdir()
            .expect("create temp dir");
        let ca_path = dir.path().join("ca.pem");
        ca.write_pem(&ca_path).expect("write CA PEM");
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = {
            let log = Arc::clone(&log);
            Arc::new(move |req: &Request| handle(&idp, &log, req))
        };
        let server = Server::start(handler, Some(ca.server_config(&["127.0.0.1", "localhost"])));
        KubeApi {
            server,
            log,
            ca_path,
            _dir: dir,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A file holding the CA certificate (lives as long as the stub).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<KubeRequest> {
        lock(&self.log).clone()
    }

    /// Number of requests so far.
    pub fn request_count(&self) -> usize {
        lock(&self.log).len()
    }

    /// Distinct bearer tokens presented, in first-seen order (valid or not).
    pub fn seen_tokens(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for token in lock(&self.log).iter().filter_map(|r| r.token.clone()) {
            if !seen.contains(&token) {
                seen.push(token);
            }
        }
        seen
    }

    /// Forgets the request log.
    pub fn reset(&self) {
        lock(&self.log).clear();
    }

    /// A kubeconfig (JSON, which kubectl reads as YAML) using a static token.
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        self.kubeconfig(json!({"token": token}))
    }

    /// A kubeconfig whose user runs `plugin` for credentials.
    pub fn kubeconfig_with_exec(&self, plugin: &ExecPlugin) -> String {
        let env: Vec<Value> = plugin
            .env
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        self.kubeconfig(json!({"exec": {
            "apiVersion": plugin.api_version,
            "command": plugin.command,
            "args": plugin.args,
            "env": env,
            "interactiveMode": plugin.interactive_mode,
            "provideClusterInfo": plugin.provide_cluster_info,
        }}))
    }

    fn kubeconfig(&self, user: Value) -> String {
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testkit", "cluster": {
                "server": self.url(),
                "certificate-authority": self.ca_path,
            }}],
            "users": [{"name": "testkit", "user": user}],
            "contexts": [{"name": "testkit", "context": {
                "cluster": "testkit", "user": "testkit", "namespace": "default"
            }}],
            "current-context": "testkit",
        });
        config.to_string()
    }
}

fn handle(idp: &FakeIdp, log: &Mutex<Vec<KubeRequest>>, req: &Request) -> Reply {
    let token = req.bearer();
    let reply = if token.is_some_and(|t| idp.is_valid_token(t)) {
        route(req)
    } else {
        status_reply(401, "Unauthorized", "Unauthorized")
    };
    lock(log).push(KubeRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        accept: req.header("accept").map(str::to_owned),
        user_agent: req.header("user-agent").map(str::to_owned),
        token: token.map(str::to_owned),
        status: reply.status().unwrap_or(0),
    });
    reply
}

/// A `metav1.Status` failure.
fn status_reply(code: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code
        }),
    )
}

fn route(req: &Request) -> Reply {
    if req.method != "GET" {
        return status_reply(
            405,
            "MethodNotAllowed",
            "the server does not allow this method",
        );
    }
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Reply::json(200, &version()),
        ["api"] => Reply::json(200, &api_versions(req)),
        ["apis"] => Reply::json(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ["api", "v1"] => Reply::json(200, &api_resources()),
        ["api", "v1", "pods"] => pods(req, "default"),
        ["api", "v1", "namespaces", ns, "pods"] => pods(req, ns),
        ["api", "v1", "namespaces", ns, "pods", "demo"] => pods(req, ns),
        ["api", "v1", "namespaces", _, "pods", name] => {
            status_reply(404, "NotFound", &format!("pods \"{name}\" not found"))
        }
        _ => status_reply(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

/// The pod list (or the single pod) as a `Table` when kubectl asks for
/// server-side printing (`Accept: …;as=Table;…`), else as plain objects.
fn pods(req: &Request, namespace: &str) -> Reply {
    let wants_table = req.header("accept").is_some_and(|a| a.contains("as=Table"));
    let single = req.path.ends_with("/demo");
    let body = match (wants_table, single) {
        (true, _) => pod_table(namespace),
        (false, true) => pod(namespace),
        (false, false) => pod_list(namespace),
    };
    Reply::json(200, &body)
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": format!("v1.{MINOR}.0"),
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:07:02Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn api_versions(req: &Request) -> Value {
    let host = req.header("host").unwrap_or("127.0.0.1");
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
    })
}

fn api_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [{
            "name": "pods",
            "singularName": "pod",
            "namespaced": true,
            "kind": "Pod",
            "verbs": ["get", "list"],
            "shortNames": ["po"],
            "categories": ["all"]
        }]
    })
}

fn pod(namespace: &str) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "demo",
            "namespace": namespace,
            "uid": "5f0c6a8e-0000-4000-8000-000000000001",
            "resourceVersion": "1",
            "creationTimestamp": "2025-01-01T00:00:00Z"
        },
        "spec": {"containers": [{"name": "demo", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": "demo", "ready": true, "restartCount": 0, "started": true,
                "image": "busybox", "imageID": "",
                "state": {"running": {"startedAt": "2025-01-01T00:00:01Z"}}
            }]
        }
    })
}

fn pod_table(namespace: &str) -> Value {
    let column = |name: &str, format: &str| json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0});
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "1"},
        "columnDefinitions": [
            column("Name", "name"),
            column("Ready", ""),
            column("Status", ""),
            column("Restarts", ""),
            column("Age", ""),
        ],
        "rows": [{
            "cells": ["demo", "1/1", "Running", "0", "1d"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": pod(namespace)["metadata"].clone()
            }
        }]
    })
}

fn pod_list(namespace: &str) -> Value {
    json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": [pod(namespace)]
    })
}
