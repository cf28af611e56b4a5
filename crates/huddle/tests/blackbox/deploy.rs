//! deploy/: the Dockerfile passes hadolint; every kustomize overlay renders, validates
//! against the Kubernetes schemas (`kubernetes-validate --strict`) and yamllint; and the
//! args and env of every rendered workload's containers are accepted by
//! `huddle serve --check-config` (every flag and variable in the manifests is one the
//! binary takes). The tools come from `make test-deps`: a missing one fails the test.
//!
//! The cluster overlays read the store URL, the Redis URL and the cluster secret from a
//! Secret made out of band: the check points them at the test's own PostgreSQL and
//! Redis, so `--check-config` reaches real servers, as it would in the pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use huddle_cluster::testing::TestRedis;
use huddle_store::testing::TestPostgres;
use huddle_testkit::huddle_command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tool` (a test dependency); a tool that is not installed fails the test.
fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install it with `make test-deps`"))
}

fn expect_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = run("hadolint", &["deploy/Dockerfile"]);
    expect_success("hadolint deploy/Dockerfile", &out);
}

#[test]
fn the_deploy_sources_pass_yamllint() {
    let out = run(
        "yamllint",
        &["-s", "-c", "deploy/.yamllint.yaml", "deploy/"],
    );
    expect_success("yamllint deploy/", &out);
}

fn overlays() -> Vec<String> {
    let dir = repo().join("deploy/k8s/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for expected in ["single", "cluster", "dev"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    names
}

/// The overlay rendered by `kubectl kustomize`, written to `file`, as JSON documents.
fn render(overlay: &str, file: &Path) -> Vec<Value> {
    let out = run(
        "kubectl",
        &["kustomize", &format!("deploy/k8s/overlays/{overlay}")],
    );
    expect_success(&format!("kubectl kustomize {overlay}"), &out);
    std::fs::write(file, &out.stdout).unwrap();
    // PyYAML comes with yamllint.
    let json = run(
        "python3",
        &[
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            &file.to_string_lossy(),
        ],
    );
    expect_success("YAML to JSON", &json);
    serde_json::from_slice(&json.stdout).unwrap()
}

/// What the Secret `huddle-cluster` holds in a real deployment, pointed at this test's
/// own servers.
struct Servers {
    _pg: TestPostgres,
    _redis: TestRedis,
    secrets: BTreeMap<&'static str, String>,
}

impl Servers {
    fn start() -> Self {
        let pg = TestPostgres::start();
        let redis = TestRedis::start_own();
        let secrets = BTreeMap::from([
            ("store-url", pg.database()),
            ("redis-url", redis.url().to_string()),
            ("cluster-secret", "a-test-cluster-secret".to_string()),
        ]);
        Self {
            _pg: pg,
            _redis: redis,
            secrets,
        }
    }
}

#[test]
fn every_overlay_renders_and_validates_and_its_workloads_pass_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Servers::start();
    for overlay in overlays() {
        let file = dir.path().join(format!("{overlay}.yaml"));
        let docs = render(&overlay, &file);
        let path = file.to_string_lossy().to_string();
        let valid = run("kubernetes-validate", &["--strict", "--quiet", &path]);
        expect_success(&format!("kubernetes-validate --strict ({overlay})"), &valid);
        let lint = run("yamllint", &["-s", "-c", "deploy/.yamllint.yaml", &path]);
        expect_success(&format!("yamllint ({overlay})"), &lint);

        let workloads: Vec<&Value> = docs
            .iter()
            .filter(|d| matches!(d["kind"].as_str(), Some("StatefulSet" | "Deployment")))
            .collect();
        assert!(!workloads.is_empty(), "{overlay} has no workload");
        for workload in workloads {
            let containers = workload["spec"]["template"]["spec"]["containers"]
                .as_array()
                .expect("containers");
            for container in containers {
                if container["name"] == "huddle" {
                    check_container(&overlay, &docs, container, dir.path(), &servers);
                }
            }
        }
    }
}

/// `huddle <args> --check-config` with the container's environment (its data dir a
/// temporary one: the volume is not here).
fn check_container(
    overlay: &str,
    docs: &[Value],
    container: &Value,
    tmp: &Path,
    servers: &Servers,
) {
    assert!(
        container.get("command").is_none(),
        "{overlay}: the image's entrypoint (huddle) runs the args"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(args.first(), Some(&"serve"), "{overlay}: {args:?}");
    let env = container_env(docs, container, servers);
    assert!(env.contains_key("HUDDLE_DATA_DIR"), "{overlay}: {env:?}");
    let data = tmp.join(format!("{overlay}-data"));
    let mut cmd = huddle_command(&args);
    cmd.arg("--check-config")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap());
    cmd.envs(&env).env("HUDDLE_DATA_DIR", &data);
    let out = cmd.output().unwrap();
    expect_success(
        &format!("{overlay}: huddle {args:?} --check-config with {env:?}"),
        &out,
    );
}

/// The variables a container gets: `envFrom` config maps, then `env` (values with
/// `$(VAR)` references, config-map and secret references, the downward API's pod name
/// and IP). Secrets come from `servers`, whatever the overlay generated: they point at
/// this test's own PostgreSQL and Redis.
fn container_env(docs: &[Value], container: &Value, servers: &Servers) -> BTreeMap<String, String> {
    let config_map = |name: &str| -> &serde_json::Map<String, Value> {
        docs.iter()
            .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
            .and_then(|d| d["data"].as_object())
            .unwrap_or_else(|| panic!("no ConfigMap {name} rendered"))
    };
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"]
            .as_str()
            .expect("only config maps");
        for (k, v) in config_map(name) {
            env.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_string();
        let from = &var["valueFrom"];
        let value = if let Some(v) = var["value"].as_str() {
            substitute(v, &env)
        } else if let Some(r) = from["configMapKeyRef"].as_object() {
            let map = config_map(r["name"].as_str().unwrap());
            map[r["key"].as_str().unwrap()]
                .as_str()
                .unwrap()
                .to_string()
        } else if let Some(r) = from["secretKeyRef"].as_object() {
            let key = r["key"].as_str().unwrap();
            servers.secrets.get(key).cloned().unwrap_or_else(|| {
                panic!("env {name}: secret key {key} is not one a cluster Secret holds")
            })
        } else {
            match from["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => "huddle-7d9f8c6b5-x2x4z".to_string(),
                Some("status.podIP") => "127.0.0.1".to_string(),
                other => panic!("env {name}: unsupported source {other:?}"),
            }
        };
        env.insert(name, value);
    }
    env
}

/// Kubernetes' `$(VAR)` expansion of earlier variables in an env value.
fn substitute(value: &str, env: &BTreeMap<String, String>) -> String {
    env.iter().fold(value.to_string(), |v, (k, val)| {
        v.replace(&format!("$({k})"), val)
    })
}
