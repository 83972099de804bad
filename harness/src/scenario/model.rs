//! The scenario file format: the types a `scenarios/<name>.yaml` file deserializes into.
//!
//! Every struct rejects unknown keys, and every reference to something declared
//! elsewhere (a workload, a probe, a manifest) is `Spanned`, so the loader can point at
//! the exact line and column of a bad reference. See `README.md` ("Writing a scenario")
//! for the user-facing description of each field.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::wire::FlowClass;

/// The value of `apiVersion` this version of meshproof reads.
pub const API_VERSION: &str = "meshproof.dev/v1alpha1";

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioFile {
    /// Must be [`API_VERSION`].
    pub api_version: Spanned<String>,
    /// Must be `Scenario`.
    pub kind: Spanned<String>,
    /// Kebab-case name; must equal the file stem.
    pub name: Spanned<String>,
    /// One line for `scenarios list`.
    pub summary: String,
    /// The write-up in `shared/seeds/` the scenario comes from.
    #[serde(default)]
    pub seed: Option<String>,
    /// What the scenario proves, for `scenarios show` and reports.
    #[serde(default)]
    pub description: String,
    /// Free-form labels for selection (`istio`, `metallb`, `hpa`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// What the lab must provide.
    pub requires: Requirements,
    /// The workloads, described independently of any provider.
    pub workloads: Vec<Workload>,
    /// The phases, run in order.
    pub phases: Vec<Phase>,
}

/// What a lab must provide before the first step runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirements {
    /// Worker nodes (kind adds one control plane). Cross-node traffic needs at least 2.
    #[serde(default = "two")]
    pub workers: u32,
    /// The LoadBalancer implementation, if the scenario needs `type: LoadBalancer`.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    /// The mesh to install.
    #[serde(default)]
    pub mesh: Option<Mesh>,
    /// Install metrics-server (needed for HPA).
    #[serde(default)]
    pub metrics_server: bool,
}

fn two() -> u32 {
    2
}

/// LoadBalancer implementations meshproof can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancer {
    /// MetalLB in L2 mode with a pool carved from the cluster's Docker network.
    Metallb,
}

/// The mesh and its install options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mesh {
    /// Which mesh.
    pub name: MeshName,
    /// Istio install profile (`default`, `demo`, `minimal`).
    #[serde(default = "default_profile")]
    pub profile: String,
    /// `meshConfig.outboundTrafficPolicy.mode`.
    #[serde(default)]
    pub outbound_traffic_policy: OutboundPolicy,
    /// Install an ingress gateway (a LoadBalancer Service).
    #[serde(default = "yes")]
    pub ingress_gateway: bool,
    /// Install an egress gateway.
    #[serde(default)]
    pub egress_gateway: bool,
    /// Sidecar resources (`values.global.proxy.resources`).
    #[serde(default)]
    pub proxy: ProxyResources,
    /// Consul only: transparent proxy on by default.
    #[serde(default)]
    pub transparent_proxy: Option<bool>,
}

fn default_profile() -> String {
    "default".to_string()
}

fn yes() -> bool {
    true
}

/// Meshes meshproof knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeshName {
    /// Istio with sidecars.
    Istio,
    /// Consul Connect on Kubernetes.
    Consul,
}

/// Istio's `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundPolicy {
    /// Unknown destinations pass through (Istio's default).
    #[default]
    AllowAny,
    /// Only destinations in the registry (Services, ServiceEntries) are reachable.
    RegistryOnly,
}

/// Sidecar resource requests and limits, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyResources {
    /// CPU request (Istio default `100m`).
    #[serde(default = "proxy_cpu")]
    pub cpu_request: String,
    /// Memory request (Istio default `128Mi`).
    #[serde(default = "proxy_memory")]
    pub memory_request: String,
    /// CPU limit (Istio default `2000m`).
    #[serde(default = "proxy_cpu_limit")]
    pub cpu_limit: String,
    /// Memory limit (Istio default `1024Mi`).
    #[serde(default = "proxy_memory_limit")]
    pub memory_limit: String,
}

impl Default for ProxyResources {
    fn default() -> Self {
        ProxyResources {
            cpu_request: proxy_cpu(),
            memory_request: proxy_memory(),
            cpu_limit: proxy_cpu_limit(),
            memory_limit: proxy_memory_limit(),
        }
    }
}

fn proxy_cpu() -> String {
    "100m".into()
}
fn proxy_memory() -> String {
    "128Mi".into()
}
fn proxy_cpu_limit() -> String {
    "2000m".into()
}
fn proxy_memory_limit() -> String {
    "1024Mi".into()
}

/// One workload, described independently of any provider. The kind path finds it in
/// the manifests by kind, name and namespace; the lab builds a container for each replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workload {
    /// Name of the Deployment or StatefulSet (and, by default, of its Service).
    pub name: Spanned<String>,
    /// Namespace.
    pub namespace: String,
    /// The Kubernetes object that runs it.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// ServiceAccount, which is also the SPIFFE identity. Defaults to `default`.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Number of pods.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Which worker it is pinned to (`a`, `b`, ...), through the node label
    /// `meshproof.dev/slot`. Pinning two workloads apart makes their traffic cross nodes.
    #[serde(default)]
    pub slot: Option<String>,
    /// The ports it serves.
    #[serde(default)]
    pub ports: Vec<ServedPort>,
    /// The upstreams it calls.
    #[serde(default)]
    pub calls: Vec<Call>,
    /// Documents a MongoDB workload starts with, by `database.collection` (an external
    /// database seeded with data the scenario then checks it reads).
    #[serde(default)]
    pub data: BTreeMap<String, Vec<serde_json::Value>>,
}

fn one() -> u32 {
    1
}

/// The Kubernetes object behind a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// An `apps/v1` Deployment.
    #[default]
    Deployment,
    /// An `apps/v1` StatefulSet with stable pod names.
    StatefulSet,
    /// Something outside the cluster (a container on the cluster's Docker network).
    External,
}

/// A port a workload serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedPort {
    /// The container port.
    pub port: u16,
    /// What it speaks.
    pub protocol: Protocol,
    /// The container port's name, when the Service targets it by name.
    #[serde(default)]
    pub name: Option<String>,
    /// The application's own TLS wraps `protocol` here (MongoDB with TLS required): on
    /// the wire, and to the policy model, the port speaks `tls`.
    #[serde(default)]
    pub tls: bool,
}

/// Application protocols meshproof can speak and recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// Raw TCP.
    Tcp,
    /// The MySQL client/server protocol.
    Mysql,
    /// AMQP 0-9-1.
    Amqp,
    /// The MongoDB wire protocol.
    Mongodb,
    /// PostgreSQL's frontend/backend protocol.
    Postgres,
    /// Erlang's port mapper daemon.
    Epmd,
    /// Erlang distribution between RabbitMQ nodes.
    ErlangDist,
    /// The application's own TLS (AMQPS, HTTPS).
    Tls,
}

/// An upstream a workload calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The workload called.
    pub to: Spanned<String>,
    /// The Service port dialled.
    pub port: u16,
    /// The Service dialled; defaults to the callee's name.
    #[serde(default)]
    pub service: Option<String>,
}

/// A named group of steps. Reports, `--phase` and `tls-check --phase` use its name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Kebab-case name, unique in the scenario.
    pub name: Spanned<String>,
    /// What changes in this phase and why.
    #[serde(default)]
    pub description: String,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

/// One step. Written as a single-key map: `- apply: [mysql.yaml]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Server-side apply these manifests from `fixtures/<scenario>/`.
    Apply(Vec<Spanned<String>>),
    /// Delete the objects in these manifests.
    Delete(Vec<Spanned<String>>),
    /// Set (or, with a null value, remove) labels on a namespace.
    Label(LabelStep),
    /// Rolling-restart these workloads, so new pods pick up injection and policy.
    Restart(Vec<Spanned<String>>),
    /// Wait for a condition on workloads.
    Wait(WaitStep),
    /// Run probes outside any capture.
    Probe(Vec<Probe>),
    /// Capture packets around probes and check what the wire showed.
    Capture(CaptureStep),
    /// Prove an HPA's sidecar skew live: under the same app load, the skewed HPA holds
    /// still where the app alone would scale, and the fixed HPA scales out.
    Hpa(Box<HpaStep>),
}

/// `label:` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelStep {
    /// The namespace.
    pub namespace: String,
    /// Labels to set; a null value removes the label.
    pub labels: BTreeMap<String, Option<String>>,
}

/// `wait:` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// The condition.
    #[serde(rename = "for")]
    pub condition: WaitFor,
    /// The workloads it applies to.
    #[serde(default)]
    pub workloads: Vec<Spanned<String>>,
    /// How long to wait, such as `90s` or `5m`.
    #[serde(default = "default_wait")]
    pub timeout: Spanned<String>,
}

fn default_wait() -> Spanned<String> {
    unlocated("300s".to_string())
}

/// Conditions a `wait:` step can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitFor {
    /// The rollout finished: updated, ready and available replicas all match the spec.
    Rollout,
    /// Every pod of the workload is Ready.
    PodsReady,
    /// Every pod runs an `istio-proxy` sidecar (classic or native) and is Ready.
    SidecarInjected,
    /// The mesh's ingress gateway has a LoadBalancer IP.
    GatewayAddress,
}

/// One probe: traffic that observes, and never judges. Its `expect` is checked by the
/// runner afterwards, against what the probe reported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Unique within the scenario; expectations refer to it.
    pub name: Spanned<String>,
    /// Where the traffic starts: a workload, or `host` (outside the cluster).
    pub from: Spanned<String>,
    /// Where it goes.
    pub to: Target,
    /// HTTP request.
    #[serde(default)]
    pub http: Option<HttpProbe>,
    /// Raw TCP payload.
    #[serde(default)]
    pub tcp: Option<TcpProbe>,
    /// MySQL query.
    #[serde(default)]
    pub mysql: Option<MysqlProbe>,
    /// AMQP publish (and consume).
    #[serde(default)]
    pub amqp: Option<AmqpProbe>,
    /// MongoDB insert and find.
    #[serde(default)]
    pub mongodb: Option<MongodbProbe>,
    /// What the probe should see.
    #[serde(default)]
    pub expect: ProbeExpect,
    /// Attempts before giving up on a connection failure (not on a wrong answer).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Per-attempt time limit.
    #[serde(default = "default_probe_timeout")]
    pub timeout: Spanned<String>,
}

fn default_attempts() -> u32 {
    3
}

fn default_probe_timeout() -> Spanned<String> {
    unlocated("10s".to_string())
}

/// Where a probe goes: a workload's port, or a gateway's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A workload by name (through its Service), or `ingress-gateway`.
    pub workload: Spanned<String>,
    /// The Service port (or the gateway's port).
    pub port: u16,
    /// The Service to dial; defaults to the workload's name.
    #[serde(default)]
    pub service: Option<String>,
}

/// An HTTP/1.1 request. Strings may contain `{{canary}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// Method, `GET` by default.
    #[serde(default = "get")]
    pub method: String,
    /// Path and query.
    #[serde(default = "slash")]
    pub path: String,
    /// The `Host` header (for gateway routing).
    #[serde(default)]
    pub host: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Form fields, sent as `application/x-www-form-urlencoded`.
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    /// A raw body (exclusive with `form`).
    #[serde(default)]
    pub body: Option<String>,
}

fn get() -> String {
    "GET".into()
}
fn slash() -> String {
    "/".into()
}

/// A raw TCP exchange.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// Bytes to send (text; may contain `{{canary}}`).
    pub send: String,
}

/// A MySQL query over the real protocol, without app-level TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlProbe {
    /// The SQL text (may contain `{{canary}}`).
    pub query: String,
}

/// An AMQP 0-9-1 publish, and optionally a consume of the same message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpProbe {
    /// The queue (declared if missing).
    pub queue: String,
    /// The message body (may contain `{{canary}}`).
    pub publish: String,
    /// Also consume the message and report its body.
    #[serde(default)]
    pub consume: bool,
    /// Declare a quorum queue, replicated to every cluster node, instead of a classic one.
    #[serde(default)]
    pub quorum: bool,
}

/// MongoDB commands over OP_MSG: `hello`, then `insert` (if any documents), then `find`
/// (if a filter is given). Strings in the documents may contain `{{canary}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongodbProbe {
    /// The database (`$db`).
    #[serde(default = "test_db")]
    pub database: String,
    /// The collection.
    pub collection: String,
    /// Documents to insert.
    #[serde(default)]
    pub insert: Vec<serde_json::Value>,
    /// Top-level equality filter to find with; `{}` finds every document.
    #[serde(default)]
    pub find: Option<serde_json::Value>,
    /// Open the application's own TLS first, with the dialled host as SNI (the target's
    /// `service`, else its workload name).
    #[serde(default)]
    pub tls: bool,
}

fn test_db() -> String {
    "test".into()
}

/// What a probe should observe. Unset fields are not checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeExpect {
    /// The HTTP status.
    #[serde(default)]
    pub status: Option<u16>,
    /// A substring of the response body (may contain `{{canary}}`).
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The connection is reset or closed without an answer.
    #[serde(default)]
    pub reset: Option<bool>,
}

/// `capture:` step: packets are taken while the probes run, then checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureStep {
    /// Unique within the scenario; names the pcap artifact.
    pub name: Spanned<String>,
    /// Workloads restarted once the capture is live and before the probes run, so that
    /// long-lived connections (cluster links) are re-established inside the window and
    /// their handshakes are seen. The restart waits until the pods are ready again.
    #[serde(default)]
    pub restart: Vec<Spanned<String>>,
    /// The probes run inside the capture window.
    pub probes: Vec<Probe>,
    /// Wire expectations.
    #[serde(default)]
    pub expect: Vec<WireExpectation>,
    /// Negative controls: expectations that prove this capture could see what the others
    /// say is absent (for example, the canary in clear on an excluded port). If a control
    /// fails, the capture's other verdicts are errors, not passes.
    #[serde(default)]
    pub controls: Vec<WireExpectation>,
}

/// What one flow should look like on the wire.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireExpectation {
    /// Unique within the capture.
    pub name: Spanned<String>,
    /// Which flows.
    pub flow: FlowSelector,
    /// The class every selected flow must have.
    #[serde(default)]
    pub class: Option<FlowClass>,
    /// Whether the canary must appear in clear (`present`) or nowhere (`absent`).
    #[serde(default)]
    pub canary: Option<CanaryRule>,
    /// `false`: no connection from the client reaches the server port at all, not even
    /// a SYN (egress blocked before the wire, or routed elsewhere). Such an absence means
    /// something only beside a control that shows the capture sees that server.
    #[serde(default)]
    pub reached: Option<bool>,
    /// The probes whose traffic this expectation judges; at least one.
    pub probes: Vec<Spanned<String>>,
}

/// Selects flows by their endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSelector {
    /// The client workload (the side that sent the SYN), or `any`.
    pub from: Spanned<String>,
    /// The server workload.
    pub to: Spanned<String>,
    /// The server port as seen on the wire (the container port).
    pub port: u16,
}

/// Where the canary may be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryRule {
    /// At least one selected flow carries the canary in clear.
    Present,
    /// No selected flow carries the canary in clear.
    Absent,
}

/// `hpa:` step. The step applies `skewed`, runs a bounded busy loop in `container` of
/// every pod of `workload` (the load never crosses the sidecar), watches the HPA's
/// status, then applies `fixed` under the same load and watches again. It overrides the
/// HPAs' `behavior` so the check takes minutes, and writes a time series and an SVG plot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaStep {
    /// Unique within the scenario; names the artifacts (`hpa-<name>.json`, `.csv`, `.svg`).
    pub name: Spanned<String>,
    /// The workload the HPAs scale.
    pub workload: Spanned<String>,
    /// The app container the busy loop runs in; it needs `sh` and a CPU limit above its
    /// request, so the load is set by the limit.
    pub container: Spanned<String>,
    /// Manifest with the HPA as the mesh skews it (pod-level `Resource cpu` utilization).
    pub skewed: Spanned<String>,
    /// Manifest with the fixed HPA, of the same name, which replaces the skewed one.
    pub fixed: Spanned<String>,
    /// How long the skewed HPA must hold still while the app alone would scale.
    #[serde(default = "default_hold")]
    pub hold: Spanned<String>,
    /// How long each half may take before it is judged.
    #[serde(default = "default_hpa_timeout")]
    pub timeout: Spanned<String>,
}

fn default_hold() -> Spanned<String> {
    unlocated("3m".to_string())
}

fn default_hpa_timeout() -> Spanned<String> {
    unlocated("8m".to_string())
}

/// A value with no source location, for defaults.
pub fn unlocated<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Peer names that are not workloads.
pub mod peers {
    /// Outside the cluster: the machine running meshproof.
    pub const HOST: &str = "host";
    /// The mesh's ingress gateway.
    pub const INGRESS_GATEWAY: &str = "ingress-gateway";
    /// The mesh's egress gateway.
    pub const EGRESS_GATEWAY: &str = "egress-gateway";
    /// Any peer (in a flow selector's `from`).
    pub const ANY: &str = "any";
}
