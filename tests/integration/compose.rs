//! docker-compose.yml's structure, as Docker users get it: the services, their health
//! checks, dependency conditions, ports, and that tributary's environment only names
//! configuration keys that exist. The file itself runs for real in the container chaos
//! suite (`make chaos-containers`: `compose-up` and the container faults), with the
//! images built here put in place by stack/containers/compose.local.yml.

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde_norway::Value;
use std::collections::BTreeSet;
use tributary::config::{Config, DEFAULT_TOML, ENV_PREFIX};

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml exists");
    let mut value: Value = serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML");
    // `<<: *anchor` merges, as docker compose applies them.
    value
        .apply_merge()
        .expect("docker-compose.yml's merge keys");
    value
}

/// A value as docker compose interpolates it with nothing set: `${NAME:-default}` is
/// its default.
fn interpolated(value: &str) -> String {
    value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|inner| inner.split_once(":-"))
        .map_or_else(|| value.to_owned(), |(_, default)| default.to_owned())
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("service {name} is defined"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn stack_services_have_images_healthchecks_and_loopback_ports() {
    let compose = compose();
    let expected_images = [
        ("kafka", "apache/kafka:4."),
        ("cassandra", "cassandra:5.0"),
        ("postgres", "postgres:16"),
        ("jaeger", "jaegertracing/jaeger:2."),
    ];
    for (name, image) in expected_images {
        let svc = service(&compose, name);
        let got = svc["image"].as_str().unwrap_or_default();
        assert!(
            got.starts_with(image),
            "{name}: image {got:?} should start with {image:?}"
        );
        assert!(
            !strings(&svc["healthcheck"]["test"]).is_empty(),
            "{name} has a healthcheck test"
        );
        for port in strings(&svc["ports"]) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name}: port {port} must bind loopback"
            );
        }
    }
    let kafka_env = &service(&compose, "kafka")["environment"];
    assert_eq!(
        kafka_env["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller"),
        "KRaft combined node"
    );
}

#[test]
fn tributary_is_built_and_waits_for_healthy_stores() {
    let compose = compose();
    let tributary = service(&compose, "tributary");
    assert_eq!(
        tributary["build"]["dockerfile"].as_str(),
        Some("Dockerfile")
    );
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "multi-stage Dockerfile"
    );
    for store in ["kafka", "cassandra", "postgres", "jaeger"] {
        assert_eq!(
            tributary["depends_on"][store]["condition"].as_str(),
            Some("service_healthy"),
            "tributary waits for {store} to be healthy"
        );
    }
    let init = service(&compose, "schema");
    assert!(strings(&init["command"]).join(" ").contains("schema apply"));
    assert_eq!(
        tributary["depends_on"]["schema"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
}

/// Every TRIBUTARY__ variable in the compose file must name a real configuration key
/// and hold a value of the right type: loading the configuration with them must succeed.
#[test]
fn tributary_environment_matches_config_keys() {
    let compose = compose();
    let mut keys = BTreeSet::new();
    for name in ["tributary", "schema"] {
        let env = service(&compose, name)["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name}: environment is a mapping"));
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        for (key, value) in env {
            let key = key.as_str().expect("string keys");
            if !key.starts_with(ENV_PREFIX) {
                continue;
            }
            let path = key[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
            let value = match value {
                Value::Number(n) => figment::value::Value::from(n.as_i64().expect("integer")),
                Value::String(s) => match interpolated(s) {
                    n if n.parse::<i64>().is_ok() => {
                        figment::value::Value::from(n.parse::<i64>().expect("integer"))
                    }
                    s => figment::value::Value::from(s),
                },
                other => panic!("{key}: unexpected value {other:?}"),
            };
            keys.insert(path.clone());
            figment = figment.merge(Serialized::default(&path, value));
        }
        let config: Config = figment
            .extract()
            .unwrap_or_else(|e| panic!("{name}: compose environment does not fit the config: {e}"));
        config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            config.postgres.host, "postgres",
            "{name} reaches postgres by its service name"
        );
        assert_eq!(config.kafka.bootstrap_servers, "kafka:9092");
        assert_eq!(config.cassandra.contact_points, ["cassandra:9042"]);
    }
    assert!(
        keys.contains("telemetry.otlp_endpoint"),
        "traces go to the jaeger service"
    );
}
